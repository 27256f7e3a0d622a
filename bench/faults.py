"""Faults, measured: a job SIGKILLed inside every stage and rerun, two merges into one warehouse
at once (several rounds), a reader during merges. Prints the matrix with pass/fail per cell and
writes bench/results/faults.json.

    .venv/bin/python bench/faults.py [--stages ingest,features,...] [--rounds 10] [--no-kills] [--hub-edges N]

The uninterrupted run: the whole pipeline on tests/data/dblp_acm_small (the tests' config) in
one warehouse, run id ``r``. A kill cell (stage S, point P): a copy of that warehouse without S's
outputs and those of every later stage, ``./spark-submit.sh S`` started and its process group
(driver JVM and Python workers) SIGKILLed at P, the same job rerun with the same run id, and S's
outputs compared with the uninterrupted run's: Parquet tables by content (their file names are
random), the model's weights byte for byte, JSON without its timings, Delta tables by content at
the version the merge log names. The points: ``first`` = the first file written under S's first
output, ``last`` = the first file under its last output (both: the stage has written part of
its output and not all). The two other checks are tests/faults.py's, repeated. Last, the bad-input
corpus's hub at full size: two million edges from one node.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(REPO / "tests"))

from faults import hub_case, hub_sampling, kill_cell, read_while_merging, stage_outputs, two_merges_at_once  # noqa: E402

from pipeline.config import SparkConfig, load_config  # noqa: E402
from pipeline.runner import STAGES, run_pipeline, setup_logging  # noqa: E402
from pipeline.schema import Paths  # noqa: E402
from pipeline.spark import get_spark  # noqa: E402

RESULTS = REPO / "bench" / "results"
RUN = "r"


def base_config(tmp: Path) -> Path:
    """The tests' config of the DBLP-ACM slice (tests/conftest.py ``dblp_run``)."""
    demo = yaml.safe_load((REPO / "conf" / "dblp_acm.yaml").read_text())
    raw = {"dataset": {"name": "dblp_acm_small", "format": "magellan", "path": str(REPO / "tests/data/dblp_acm_small"),
                       "options": demo["dataset"]["options"]},
           "warehouse": str(tmp / "base"), "features": demo["features"],
           "block": {"top_k": {"paper": 5, "author": 5, "venue": 3, "year": 1}},
           "extract": {"cap": 10, "shards": 2}, "train": {"epochs": 12, "patience": 4}}
    path = tmp / "base.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def hub_of(spark, tmp: Path, edges: int) -> dict:
    """The bad-input corpus's good case plus one venue with ``edges`` papers (tests/test_bad_input.py
    has it at 100,000): ingest keeps every row (rows in = kept + rejected), extract samples the
    venue's neighbours to the cap."""
    from pipeline import ingest
    from pipeline.stage import StageContext, run_stage

    case = hub_case(tmp / "hub", edges)
    raw = {"dataset": {"name": "hub", "format": "tables", "path": str(case), "options": {"file_format": "csv"}},
           "warehouse": str(tmp / "hub-warehouse")}
    (tmp / "hub.yaml").write_text(yaml.safe_dump(raw))
    config = load_config(tmp / "hub.yaml")
    paths = Paths(config.warehouse.resolve(), RUN)
    start = time.time()
    summary = run_stage("ingest", ingest.run, StageContext(spark, config, paths))
    ingest_s = time.time() - start
    start = time.time()
    hub_edges, sampled = hub_sampling(spark, paths, cap=10)
    return {"edges_from_one_node": edges, "rows_in": summary["rows_in"], "kept": summary["rows_out"],
            "rejected": summary["rejected"], "ingest_s": round(ingest_s, 1), "hub_edges": hub_edges,
            "sampled_neighbours": sampled, "sample_s": round(time.time() - start, 1),
            "pass": (summary["rows_in"] == summary["rows_out"] + summary["rejected"]
                     and hub_edges == edges + 6 and sampled == 10)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stages", default=",".join(STAGES))
    p.add_argument("--rounds", type=int, default=10, help="rounds of two merges at once")
    p.add_argument("--no-kills", action="store_true", help="only the concurrency checks")
    p.add_argument("--hub-edges", type=int, default=2_000_000, help="edges from one node in the hub case (0: none)")
    args = p.parse_args()
    setup_logging("WARNING")
    tmp = Path(tempfile.mkdtemp(prefix="kgmerge-faults-"))
    spark = get_spark(SparkConfig(master="local[2]", shuffle_partitions=4, driver_memory="2g"), "kgmerge-faults")
    conf_path = base_config(tmp)
    config = load_config(conf_path)
    start = time.time()
    run_pipeline(config, RUN, list(STAGES), spark=spark)
    base = Paths(config.warehouse.resolve(), RUN)
    print(f"uninterrupted run: {time.time() - start:.0f}s in {base.warehouse}", flush=True)

    def conf_of(warehouse: Path) -> Path:
        raw = yaml.safe_load(conf_path.read_text()) | {"warehouse": str(warehouse)}
        path = warehouse.with_suffix(".yaml")
        path.write_text(yaml.safe_dump(raw))
        return path

    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.node()}, {os.cpu_count()} cpus",
              "concurrent_merges": [], "reader": None, "hub": None, "kills": []}
    out = RESULTS / "faults.json"
    RESULTS.mkdir(exist_ok=True)

    def save() -> None:  # after every check: a run stopped midway keeps what it measured
        out.write_text(json.dumps(result, indent=2))

    print(f"\ntwo merges at once, {args.rounds} rounds (odd rounds: the Delta tables created by the race)")
    for i in range(args.rounds):
        round_dir = tmp / f"concurrent-{i}"
        round_dir.mkdir()
        r = two_merges_at_once(spark, config, base, round_dir, fresh_delta=i % 2 == 0)
        result["concurrent_merges"].append(r)
        save()
        verdict = "pass" if not r["problems"] else "FAIL " + "; ".join(r["problems"])[:300]
        print(f"  round {i + 1}: exits {r['exit_codes']}, {r['retries']} retried commits, "
              f"merge_log {r['logged_runs']}, {verdict} ({r['seconds']}s)", flush=True)
        shutil.rmtree(round_dir, ignore_errors=True)
    reader_dir = tmp / "reader"
    reader_dir.mkdir()
    r = read_while_merging(spark, config, base, reader_dir, thresholds=(0.05, 0.9) * 3)
    result["reader"] = r
    save()
    print(f"\nreader during 6 merges: {r['reads']} reads, {r['merges_seen']} merges seen, "
          f"{'pass' if not r['problems'] else 'FAIL ' + '; '.join(r['problems'])[:300]}", flush=True)
    if args.hub_edges:
        result["hub"] = h = hub_of(spark, tmp, args.hub_edges)
        save()
        print(f"\n{h['edges_from_one_node']:,} edges from one node: rows in {h['rows_in']:,} = kept {h['kept']:,} + "
              f"rejected {h['rejected']}; ingest {h['ingest_s']}s; sampled to {h['sampled_neighbours']} neighbours in "
              f"{h['sample_s']}s: {'pass' if h['pass'] else 'FAIL'}", flush=True)
    if not args.no_kills:
        print(f"\n{'stage':<10}{'point':<7}{'kill':<10}{'after s':>8}  {'rerun':<6}result", flush=True)
        for stage in args.stages.split(","):
            for point in ("first", "last") if len(stage_outputs(base, stage)) > 1 else ("first",):
                cell = kill_cell(spark, base, conf_of, tmp, stage, point)
                result["kills"].append(cell)
                save()
                print(f"{stage:<10}{point:<7}{cell['kill'][:9]:<10}{cell['killed_after_s']:>8}  {cell['rerun_exit']:<6}"
                      f"{'pass' if cell['pass'] else 'FAIL ' + '; '.join(cell['differences'])[:200]}", flush=True)
    passed = sum(c["pass"] for c in result["kills"])
    print(f"\nkill cells passed {passed}/{len(result['kills'])}; concurrent rounds passed "
          f"{sum(not r['problems'] for r in result['concurrent_merges'])}/{args.rounds}; written "
          f"{out}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

"""How the pipeline's cost grows with the graph: synthetic bibliographies (bench/synth.py) of
growing size, the whole pipeline on each, per stage: wall seconds, rows in/out, peak memory of
the driver (Python + JVM) and of Spark's Python workers, and the growth from one size to the next.

    .venv/bin/python bench/scale.py [--sizes 10000,100000,1000000] [--conf conf/synth.yaml]

Each size gets its own warehouse (warehouse/synth/<size>/); the synthetic graphs are generated
there once. Also times the Spark-free batch scorer (``model.infer.score_table``) alone on the
run's pair shards: one thread, then one process per core at once (the CPU pairs-per-second
figures). Prints one table per size, then
the growth table, and writes bench/results/scale.json. ``--scorer-only`` re-times just the batch
scorer on the runs already made (after a change to the model code); ``--rerun score`` reruns
stages alone on them and prints their seconds and peak memory.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.append(str(Path(__file__).resolve().parent))  # synth.py; after the repo: bench/pipeline.py must not shadow pipeline/

import psutil  # noqa: E402
import pyarrow.dataset as pads  # noqa: E402
import synth  # noqa: E402
import torch  # noqa: E402

from pipeline.config import load_config  # noqa: E402
from pipeline.runner import STAGES, run_pipeline, setup_logging  # noqa: E402
from pipeline.schema import Paths  # noqa: E402
from pipeline.spark import get_spark  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
GIB = 1024 ** 3


def proportional_size(process: psutil.Process) -> int:
    """Bytes of memory the process holds, pages shared with others (torch's libraries in every
    Python worker) counted in proportion (PSS), so the sum over processes is what the machine
    spends; the resident size where PSS is not available."""
    try:
        return process.memory_full_info().pss
    except (AttributeError, psutil.AccessDenied):
        return process.memory_info().rss


class PeakMemory:
    """Samples, every 0.5 s, the memory (PSS) of this process plus its JVM (the driver) and of
    every Python process the JVM started (Spark's Python workers); keeps the peaks."""

    def __init__(self):
        self.me = psutil.Process()
        self.driver = self.workers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        driver, workers = proportional_size(self.me), 0
        for child in self.me.children(recursive=True):
            try:
                size = proportional_size(child)
                if "python" in child.name().lower():
                    workers += size
                else:
                    driver += size  # the JVM
            except psutil.Error:
                pass
        self.driver, self.workers = max(self.driver, driver), max(self.workers, workers)

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            self._sample()

    def __enter__(self) -> "PeakMemory":
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def config_for(base_conf: str, size: int):
    cfg = load_config(base_conf)
    root = Path("warehouse/synth") / str(size)
    return cfg.model_copy(update={
        "warehouse": root,
        "dataset": cfg.dataset.model_copy(update={"path": root / "source", "name": f"synth-{size}"}),
    })


def _scorer_inputs(paths: Paths):
    """What a scoring worker holds for round 1: model, level-0 matrix, the rows anchored by the
    seed anchors, and the neighbourhoods for the nodes' first layer (pipeline/score.py)."""
    import pyarrow.parquet as pq

    from model.level0 import map_matrix_file, write_anchored_matrix, write_matrix_file
    from pipeline.anchors import read_anchors
    from pipeline.score import load_round

    matrix = write_matrix_file(paths.node_features, paths.node_feature_matrix)
    features = map_matrix_file(matrix)
    # a name of this process's own (the all-cores timing starts one per core), unlinked once mapped
    anchored_path = paths.anchored_matrix(1).with_suffix(f".{os.getpid()}.npy")
    write_anchored_matrix(matrix, read_anchors(paths.anchors(0)), anchored_path)
    ckpt, anchored = load_round(str(paths.model_dir), features, str(matrix), str(anchored_path), "cpu")
    anchored_path.unlink()
    return ckpt.model, features, anchored, pq.read_table(str(paths.neighbourhoods))


def batch_scorer_rate(paths: Paths, batch_size: int, max_rows: int = 200_000) -> dict:
    """Pairs per second of ``score_table`` alone (no Spark), one CPU thread, on real shards:
    plain (no anchors) and anchored with the seed anchors, as every scoring round runs. The
    nodes' first layer, computed once per round and worker (``node_first_layer``), is
    timed on its own: per round it costs the same however many pairs follow. Then every
    core at once, one process and thread each, as Spark's workers run (``all_cores``)."""
    from model.infer import node_first_layer, score_table

    torch.set_num_threads(1)
    model, features, anchored, hoods = _scorer_inputs(paths)
    table = pads.dataset(str(paths.shards)).head(max_rows)
    score_table(table.slice(0, batch_size), model, features, batch_size)  # warm-up
    rates = {"pairs": table.num_rows, "nodes": len(features)}
    for name, anchors in (("plain", None), ("anchored", anchored)):
        start = time.perf_counter()
        first_layer = node_first_layer(hoods, model, features, anchors)
        rates[f"{name}_first_layer_s"] = round(time.perf_counter() - start, 1)
        start = time.perf_counter()
        score_table(table, model, features, batch_size, anchored=anchors, first_layer=first_layer)
        rates[f"{name}_pairs_per_s"] = round(table.num_rows / (time.perf_counter() - start))
    rates |= {"batch_size": batch_size, **all_cores_rate(paths, batch_size, max_rows)}
    return rates


def _score_share(paths: Paths, batch_size: int, max_rows: int, share: int, shares: int, ready, results) -> None:
    """One process of ``all_cores_rate``: sets up, waits for the others, scores its share."""
    from model.infer import node_first_layer, score_table

    torch.set_num_threads(1)
    model, features, anchored, hoods = _scorer_inputs(paths)
    first_layer = node_first_layer(hoods, model, features, anchored)
    table = pads.dataset(str(paths.shards)).head(max_rows)
    rows = table.slice(share * table.num_rows // shares, table.num_rows // shares)
    score_table(rows.slice(0, batch_size), model, features, batch_size, anchored, first_layer)  # warm-up
    ready.wait()
    start = time.perf_counter()
    score_table(rows, model, features, batch_size, anchored, first_layer)
    results.put((rows.num_rows, time.perf_counter() - start))


def all_cores_rate(paths: Paths, batch_size: int, max_rows: int) -> dict:
    """Anchored pairs per second of one scoring process per core, all at once, each on its own
    share of the pairs: total pairs over the slowest process's seconds."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    n = os.cpu_count()
    ready, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_score_share, args=(paths, batch_size, max_rows, i, n, ready, results)) for i in range(n)]
    for proc in procs:
        proc.start()
    done = [results.get() for _ in procs]
    for proc in procs:
        proc.join()
    return {"all_cores": n, "all_cores_anchored_pairs_per_s": round(sum(r for r, _ in done) / max(s for _, s in done))}


def rerun_stages(spark, base_conf: str, size: int, names: list[str]) -> None:
    """Reruns some stages of a size's run already made and prints each one's seconds and peak
    memory (not written to scale.json: the other stages were not rerun)."""
    cfg = config_for(base_conf, size)
    for name in names:
        with PeakMemory() as mem:
            summary = run_pipeline(cfg, "scale", [name], spark=spark)[name]
        print(f"  {size}: {name} rerun: {summary['seconds']} s, driver peak {mem.driver / GIB:.2f} GiB, "
              f"workers peak {mem.workers / GIB:.2f} GiB (PSS)", flush=True)


def run_size(spark, base_conf: str, size: int) -> dict:
    cfg = config_for(base_conf, size)
    source = Path(cfg.dataset.path)
    if not (source / "SOURCE.json").is_file():
        print(f"generating {size} nodes per side -> {source}", flush=True)
        synth.generate(size, source)
    generated = json.loads((source / "SOURCE.json").read_text())
    stages, start = {}, time.time()
    for name in STAGES:
        with PeakMemory() as mem:
            summary = run_pipeline(cfg, "scale", [name], spark=spark)[name]
        stages[name] = {"seconds": summary["seconds"], "rows_in": summary["rows_in"], "rows_out": summary["rows_out"],
                        "driver_peak_gib": round(mem.driver / GIB, 2), "workers_peak_gib": round(mem.workers / GIB, 2)}
        print(f"  {size}: {name:<9} {json.dumps(stages[name])}", flush=True)
    metrics = json.loads(Paths(cfg.warehouse.resolve(), "scale").metrics.read_text())
    row = {"size": size, "generated": generated, "total_seconds": round(time.time() - start, 1), "stages": stages,
           "accuracy": {k: metrics.get(k) for k in ("precision", "recall", "f1", "hits_at_1", "pair_completeness")},
           "accuracy_by_type": metrics.get("per_type"),
           "batch_scorer_cpu": batch_scorer_rate(Paths(cfg.warehouse.resolve(), "scale"), cfg.score.batch_size)}
    return row


def print_tables(rows: list[dict]) -> None:
    for row in rows:
        print(f"\n== {row['size']} nodes per side: total {row['total_seconds']}s, accuracy {json.dumps(row['accuracy'])}")
        rate = row.get("batch_scorer_cpu")
        if not rate:  # a row written without it (bench/results/scale.json says why)
            print("   batch scorer alone: not measured")
        else:
            print_rate(rate)
        print(f"{'stage':<10}{'seconds':>9}{'rows in':>12}{'rows out':>12}{'driver GiB':>12}{'workers GiB':>13}")
        for name, s in row["stages"].items():
            print(f"{name:<10}{s['seconds']:>9.1f}{s['rows_in']:>12}{s['rows_out']:>12}"
                  f"{s['driver_peak_gib']:>12.2f}{s['workers_peak_gib']:>13.2f}")
    for prev, row in zip(rows, rows[1:]):
        x = row["size"] / prev["size"]
        print(f"\n== growth {prev['size']} -> {row['size']} (data x{x:g}): seconds ratio per stage")
        for name in row["stages"]:
            a, b = prev["stages"][name]["seconds"], row["stages"][name]["seconds"]
            print(f"{name:<10}x{b / max(a, 1e-9):.1f}")
        print(f"{'total':<10}x{row['total_seconds'] / prev['total_seconds']:.1f}")


def print_rate(rate: dict) -> None:
    print(f"   batch scorer alone (1 CPU thread), pairs/s: {rate['plain_pairs_per_s']} plain, "
          f"{rate['anchored_pairs_per_s']} anchored"
          + "".join(f"; {what} once per round: {rate[key]} s" for key, what in (
              ("anchored_first_layer_s", "nodes' first layer"),
              ("anchored_messages_s", "node messages")) if key in rate)  # the second: before 2026-12-08
          + (f"; {rate['all_cores']} processes at once: {rate['all_cores_anchored_pairs_per_s']} anchored"
             if "all_cores" in rate else ""))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--conf", default="conf/synth.yaml")
    p.add_argument("--scorer-only", action="store_true",
                   help="re-measure only the batch scorer, on the shards and model of runs already made")
    p.add_argument("--rerun", help="comma-separated stages to rerun alone on runs already made, "
                                   "printing their seconds and peak memory (e.g. score)")
    args = p.parse_args()
    setup_logging("INFO")
    sizes = [int(s) for s in args.sizes.split(",")]
    out = RESULTS / "scale.json"
    RESULTS.mkdir(exist_ok=True)
    if args.scorer_only:
        measured = json.loads(out.read_text()) if out.is_file() else {}
        for size in sizes:
            if str(size) not in measured:
                raise SystemExit(f"no run of size {size} in {out}: run bench/scale.py --sizes {size} first")
            cfg = config_for(args.conf, size)
            rate = batch_scorer_rate(Paths(cfg.warehouse.resolve(), "scale"), cfg.score.batch_size)
            measured[str(size)]["batch_scorer_cpu"] = rate | {"date": time.strftime("%Y-%m-%d")}
            print(f"  {size}: batch scorer {json.dumps(rate)}", flush=True)
        out.write_text(json.dumps(measured, indent=2))
        return
    spark = get_spark(load_config(args.conf).spark, "kgmerge-scale")
    if args.rerun:
        for size in sizes:
            rerun_stages(spark, args.conf, size, args.rerun.split(","))
        return
    rows = []
    for size in sizes:
        rows.append(run_size(spark, args.conf, size))
        previous = json.loads(out.read_text()) if out.is_file() else {}
        previous[str(size)] = rows[-1] | {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count()}
        out.write_text(json.dumps(previous, indent=2))  # after each size: a long run stopped keeps the rest
    # the table over every size measured so far (this run's and earlier ones), smallest first
    measured = json.loads(out.read_text())
    print_tables([measured[k] for k in sorted(measured, key=int)])
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()

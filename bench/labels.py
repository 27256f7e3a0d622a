"""Accuracy with no labels beside all of them, and Splink unsupervised beside both.

    DATA_DIR=../shared/data .venv/bin/python bench/labels.py [--datasets dblp_acm,amazon_google] [--seeds 1]

Per dataset (conf/<dataset>.yaml as shipped): the whole pipeline with every train label
(``train.labels: gold``, run id ``labels-<dataset>-all-seed<s>``), then the same run's features ..
extract reused with ``train.labels: none`` (``labels-<dataset>-none-seed<s>``): no gold link and
no labelled pair is read before evaluate. Prints end-to-end F1 (and the labelled-pair F1 where
the benchmark has labelled pairs), the pseudo-links used and how many were right, beside Splink's
unsupervised end-to-end F1 after the same one-to-one step as recorded by bench/compare_splink.py
(bench/results/compare_splink.json, its date kept), and writes bench/results/labels.json.

The learning curve (``--curve 25,100,400``): from the no-label run, a person answers pairs as the
``label`` job draws them (``labelling.next_pairs``: nearest the threshold, disagreeing signals,
types in turn), here answered from the gold links, and the run is trained again (train ..
evaluate, ``train.labels: none``: pseudo-links plus the answers) until the answers reach each
count; each count's pairs are drawn from the previous count's scores (active learning). A pair
touching a test link is never asked (the person's answer would leak the test split into the
fit). These runs live in a warehouse of their own (``warehouse/bench-labels/<dataset>/seed<s>``),
whose ``labels`` table is the curve's alone. ``--curve-only`` reuses the no-label run made
before and the figures already in labels.json.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.append(str(Path(__file__).resolve().parent))  # quality.py; after the repo (bench/pipeline.py)

import quality  # noqa: E402

from pipeline import labelling  # noqa: E402
from pipeline.config import PipelineConfig, load_config  # noqa: E402
from pipeline.runner import STAGES, run_pipeline, setup_logging  # noqa: E402
from pipeline.schema import Paths  # noqa: E402
from pipeline.spark import get_spark  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def splink_f1(name: str) -> dict | None:
    """Splink's unsupervised figures from bench/compare_splink.py's last run (one-to-one)."""
    path = RESULTS / "compare_splink.json"
    if not path.is_file():
        return None
    rows = json.loads(path.read_text()).get("datasets", {}).get(name, [])
    one_to_one = next((r for r in rows if r["system"] == "splink 1:1"), None)
    return None if one_to_one is None else {"f1": one_to_one["f1"], "date": one_to_one.get("date")}


def figures(summaries: dict) -> dict:
    metrics = summaries["evaluate"]["metrics"]
    train = summaries["train"]
    out = {"f1": metrics["f1"], "precision": metrics["precision"], "recall": metrics["recall"],
           "hits_at_1": metrics["hits_at_1"], "valid_f1": train.get("valid_f1"),
           "threshold": train.get("threshold")}
    if metrics.get("labelled_test"):
        out["labelled_f1"] = metrics["labelled_test"]["f1"]
    for key in ("pseudo_links", "pseudo_valid", "pseudo_links_of_gold_types", "pseudo_links_right", "pseudo_precision"):
        if key in train:
            out[key] = train[key]
    out["seconds"] = round(sum(s["seconds"] for s in summaries.values()), 1)
    return out


def answer_from_gold(spark, paths: Paths, want: int) -> dict:
    """Answers the label job's next pairs (none touching a test link) from the gold links until
    the curve's labels table holds ``want`` answers; returns the counts answered now."""
    answered = labelling.answered_labels(spark, paths)
    need = want - (answered.count() if answered is not None else 0)
    gold = spark.read.parquet(str(paths.gold)).collect()
    links = {(r["id_a"], r["id_b"], r["type"]) for r in gold}
    test_ends = {(r["type"], r["id_a"]) for r in gold if r["split"] == "test"} | {
        (r["type"], r["id_b"]) for r in gold if r["split"] == "test"}
    pairs, _, _ = labelling.next_pairs(spark, paths, 3 * need + 50)
    asked = [p for p in pairs if (p["type"], p["id_a"]) not in test_ends and (p["type"], p["id_b"]) not in test_ends]
    counts = {"match": 0, "not": 0}
    for pair in asked[:need]:
        label = int((pair["id_a"], pair["id_b"], pair["type"]) in links)
        labelling.record_answer(spark, paths, pair, label, "gold-oracle")
        counts["match" if label else "not"] += 1
    if sum(counts.values()) < need:
        print(f"  only {sum(counts.values())} of {need} pairs to ask away from the test links", flush=True)
    return counts


def learning_curve(cfg: PipelineConfig, name: str, seed: int, none_run: str, counts: list[int], spark) -> list[dict]:
    """F1 after 25, 100, ... answers (see the module docstring)."""
    raw = json.loads(cfg.model_dump_json())
    raw["warehouse"] = str(REPO / "warehouse" / "bench-labels" / name / f"seed{seed}")
    raw["train"] = {**raw["train"], "labels": "none", "seed": seed}
    curve_cfg = PipelineConfig.model_validate(raw)
    home = curve_cfg.warehouse.resolve()
    shutil.rmtree(home, ignore_errors=True)  # the curve's own labels table starts empty
    shutil.copytree(Paths(cfg.warehouse.resolve(), none_run).run, Paths(home, none_run).run)
    rows, previous = [], none_run
    for count in counts:
        answered = answer_from_gold(spark, Paths(home, previous), count)
        run = f"labels-{name}-k{count}-seed{seed}"
        quality.reuse_upstream(curve_cfg, none_run, run)
        summaries = run_pipeline(curve_cfg, run, quality.TRAIN_ON, spark=spark)
        row = {"labels": count, "answered_now": answered, **figures(summaries),
               "user_labels": summaries["train"].get("user_labels")}
        rows.append(row)
        print(f"{name} seed {seed} labels {count}: {json.dumps(row)}", flush=True)
        previous = run
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="dblp_acm,amazon_google")
    p.add_argument("--seeds", default="1")
    p.add_argument("--curve", default="", help="answer counts of the learning curve, e.g. 25,100,400")
    p.add_argument("--curve-only", action="store_true",
                   help="only the curve, from the no-label runs made before (their figures kept)")
    args = p.parse_args(argv)
    counts = [int(c) for c in args.curve.split(",") if c]
    setup_logging("WARNING")
    results_path = RESULTS / "labels.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {"datasets": {}}
    spark = None
    for name in args.datasets.split(","):
        cfg = load_config(REPO / "conf" / f"{name}.yaml")
        spark = spark or get_spark(cfg.spark, "kgmerge labels bench")
        before = results["datasets"].get(name, {})
        rows = before.get("runs", {"all": [], "none": []}) if args.curve_only else {"all": [], "none": []}
        curve = {}
        for seed in (int(s) for s in args.seeds.split(",")):
            none = f"labels-{name}-none-seed{seed}"
            if not args.curve_only:
                seeded = quality.with_overrides(cfg, {"train": {"seed": seed}})
                full = f"labels-{name}-all-seed{seed}"
                rows["all"].append(figures(run_pipeline(seeded, full, list(STAGES), spark=spark)))
                quality.reuse_upstream(cfg, full, none)
                unlabelled = quality.with_overrides(seeded, {"train": {"labels": "none"}})
                rows["none"].append(figures(run_pipeline(unlabelled, none, quality.TRAIN_ON, spark=spark)))
                for labels in ("all", "none"):
                    print(f"{name} seed {seed} labels {labels}: {json.dumps(rows[labels][-1])}", flush=True)
            if counts:
                curve[f"seed{seed}"] = learning_curve(cfg, name, seed, none, counts, spark)
        results["datasets"][name] = {**before, "seeds": args.seeds, "runs": rows,
                                     "splink_unsupervised": splink_f1(name), "cpus": os.cpu_count(),
                                     "date": before.get("date") if args.curve_only else datetime.date.today().isoformat()}
        if curve:
            results["datasets"][name]["curve"] = {"date": datetime.date.today().isoformat(), "by_seed": curve}
    RESULTS.mkdir(exist_ok=True)
    results_path.write_text(json.dumps(results, indent=1))
    print(f"\n{'dataset':<16}{'labels':<8}{'F1':>8}{'labelled F1':>13}{'pseudo (right)':>17}{'Splink 1:1 F1':>15}")
    for name, entry in results["datasets"].items():
        for labels, runs in entry["runs"].items():
            for r in runs:
                pseudo = f"{r['pseudo_links']} ({r['pseudo_links_right']})" if "pseudo_links" in r else ""
                splink = entry["splink_unsupervised"]["f1"] if entry["splink_unsupervised"] else ""
                print(f"{name:<16}{labels:<8}{r['f1']:>8.4f}{r.get('labelled_f1', float('nan')):>13.4f}"
                      f"{pseudo:>17}{splink:>15}")
        for seed, points in entry.get("curve", {}).get("by_seed", {}).items():
            for r in points:
                print(f"{name:<16}{r['labels']:<8}{r['f1']:>8.4f}{r.get('labelled_f1', float('nan')):>13.4f}"
                      f"{'(' + seed + ', learning curve)':>32}")


if __name__ == "__main__":
    main()

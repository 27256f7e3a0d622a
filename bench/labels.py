"""Accuracy with no labels beside all of them, and Splink unsupervised beside both.

    DATA_DIR=../shared/data .venv/bin/python bench/labels.py [--datasets dblp_acm,amazon_google] [--seeds 1]

Per dataset (conf/<dataset>.yaml as shipped): the whole pipeline with every train label
(``train.labels: gold``, run id ``labels-<dataset>-all-seed<s>``), then the same run's features ..
extract reused with ``train.labels: none`` (``labels-<dataset>-none-seed<s>``): no gold link and
no labelled pair is read before evaluate. Prints end-to-end F1 (and the labelled-pair F1 where
the benchmark has labelled pairs), the pseudo-links used and how many were right, beside Splink's
unsupervised end-to-end F1 after the same one-to-one step as recorded by bench/compare_splink.py
(bench/results/compare_splink.json, its date kept), and writes bench/results/labels.json.
The issue's 25 / 100 / 400-label points need the ``label`` job's way of drawing pairs, which
does not exist yet: they are not measured here.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.append(str(Path(__file__).resolve().parent))  # quality.py; after the repo (bench/pipeline.py)

import quality  # noqa: E402

from pipeline.config import load_config  # noqa: E402
from pipeline.runner import STAGES, run_pipeline, setup_logging  # noqa: E402
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


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="dblp_acm,amazon_google")
    p.add_argument("--seeds", default="1")
    args = p.parse_args(argv)
    setup_logging("WARNING")
    results_path = RESULTS / "labels.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {"datasets": {}}
    spark = None
    for name in args.datasets.split(","):
        cfg = load_config(REPO / "conf" / f"{name}.yaml")
        spark = spark or get_spark(cfg.spark, "kgmerge labels bench")
        rows = {"all": [], "none": []}
        for seed in (int(s) for s in args.seeds.split(",")):
            seeded = quality.with_overrides(cfg, {"train": {"seed": seed}})
            full = f"labels-{name}-all-seed{seed}"
            rows["all"].append(figures(run_pipeline(seeded, full, list(STAGES), spark=spark)))
            none = f"labels-{name}-none-seed{seed}"
            quality.reuse_upstream(cfg, full, none)
            unlabelled = quality.with_overrides(seeded, {"train": {"labels": "none"}})
            rows["none"].append(figures(run_pipeline(unlabelled, none, quality.TRAIN_ON, spark=spark)))
            for labels in ("all", "none"):
                print(f"{name} seed {seed} labels {labels}: {json.dumps(rows[labels][-1])}", flush=True)
        results["datasets"][name] = {"seeds": args.seeds, "runs": rows, "splink_unsupervised": splink_f1(name),
                                     "date": datetime.date.today().isoformat(), "cpus": os.cpu_count()}
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


if __name__ == "__main__":
    main()

"""Per-stage seconds and pairs scored per second, on DBLP-ACM and DBP15K fr_en.

    DATA_DIR=../shared/data .venv/bin/python bench/pipeline.py [conf ...]

Runs the whole pipeline for each config (default: conf/dblp_acm.yaml and
conf/dbp15k_fr_en.yaml) in one SparkSession and prints one table per dataset plus the
accuracy figures of the run. The MiniLM name cache under each warehouse is kept between runs
(delete <warehouse>/cache to time encoding from scratch).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.config import load_config  # noqa: E402
from pipeline.runner import STAGES, run_pipeline, setup_logging  # noqa: E402
from pipeline.spark import get_spark  # noqa: E402

DEFAULT = ["conf/dblp_acm.yaml", "conf/dbp15k_fr_en.yaml"]


def main(confs: list[str]) -> None:
    setup_logging("WARNING")
    spark = None
    for conf in confs:
        cfg = load_config(conf)
        spark = spark or get_spark(cfg.spark, "kgmerge-bench")
        start = time.time()
        summaries = run_pipeline(cfg, "bench", list(STAGES), spark=spark)
        total = time.time() - start
        print(f"\n== {cfg.dataset.name} ({conf}), total {total:.1f}s")
        print(f"{'stage':<10}{'seconds':>9}{'rows in':>12}{'rows out':>12}")
        for name, s in summaries.items():
            print(f"{name:<10}{s['seconds']:>9.1f}{s['rows_in']:>12}{s['rows_out']:>12}")
        score = summaries["score"]
        print(f"pairs scored per second (score stage, incl. Spark I/O): {score['rows_out'] / score['seconds']:.0f}")
        m = summaries["evaluate"]["metrics"]
        keys = ("precision", "recall", "f1", "pr_auc", "recall_at_p95", "hits_at_1", "mrr", "pair_completeness", "candidates")
        print(json.dumps({k: m.get(k) for k in keys}))


if __name__ == "__main__":
    main(sys.argv[1:] or DEFAULT)

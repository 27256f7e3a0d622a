"""Run one stage or the whole pipeline from the command line (what jobs/*.py call)."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

from pipeline import block, evaluate, extract, features, ingest, merge, score, train
from pipeline.config import ConfigError, PipelineConfig, load_config
from pipeline.schema import Paths
from pipeline.spark import get_spark
from pipeline.stage import StageContext, run_stage

STAGES = {
    "ingest": ingest.run,
    "features": features.run,
    "block": block.run,
    "extract": extract.run,
    "train": train.run,
    "score": score.run,
    "merge": merge.run,
    "evaluate": evaluate.run,
}
DEFAULT_RUN_ID = "local"

log = logging.getLogger("kgmerge")


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def run_pipeline(config: PipelineConfig, run_id: str, stages: list[str], spark=None) -> dict:
    spark = spark or get_spark(config.spark, app_name=f"kgmerge {config.dataset.name}")
    paths = Paths(config.warehouse.resolve(), run_id)
    ctx = StageContext(spark, config, paths)
    return {name: run_stage(name, STAGES[name], ctx) for name in stages}


def parse_args(stage: str, argv: list[str] | None) -> argparse.Namespace:
    what = "the whole pipeline" if stage == "pipeline" else f"the {stage} stage"
    script = "run_all" if stage == "pipeline" else stage  # jobs/pipeline.py would shadow the package
    p = argparse.ArgumentParser(prog=f"jobs/{script}.py", description=f"Run {what} of kgmerge.")
    p.add_argument("config", help="YAML config file, e.g. conf/dblp_acm.yaml")
    p.add_argument(
        "--run-id",
        default=os.environ.get("KGMERGE_RUN_ID", DEFAULT_RUN_ID),
        help="names the run's folder under <warehouse>/runs; stages of one run share it "
        "(default: $KGMERGE_RUN_ID or 'local')",
    )
    if stage == "pipeline":
        p.add_argument("--from-stage", choices=list(STAGES), default="ingest",
                       help="skip the stages before this one (their outputs must exist)")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


def main(stage: str, argv: list[str] | None = None) -> int:
    args = parse_args(stage, argv)
    setup_logging(args.log_level)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    names = list(STAGES)[list(STAGES).index(args.from_stage):] if stage == "pipeline" else [stage]
    start = time.time()
    summaries = run_pipeline(config, args.run_id, names)
    if "evaluate" in summaries:
        print(summary_text(summaries["evaluate"], time.time() - start))
    return 0


def summary_text(evaluation: dict, seconds: float) -> str:
    m = evaluation["metrics"]
    lines = [
        f"\n{evaluation['dataset']}: run '{evaluation['run_id']}' finished in {seconds:.0f}s",
        json.dumps({k: m[k] for k in ("precision", "recall", "f1", "pr_auc", "hits_at_1", "mrr") if k in m}),
        f"metrics:     {evaluation['metrics_path']}",
        f"Delta tables: {', '.join(evaluation['delta_tables'])}",
    ]
    return "\n".join(lines)

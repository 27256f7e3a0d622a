"""Run one stage or the whole pipeline from the command line (what jobs/*.py call)."""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import yaml
from pyspark.sql import functions as F

from pipeline.config import ConfigError, PipelineConfig, load_config
from pipeline.conflicts import ConflictError
from pipeline.schema import Paths, run_id_argument
from pipeline.spark import CLASS_ARCHIVE, REPO, get_spark
from pipeline.stage import DiskFullError, StageContext, StageResult, run_stage
from pipeline.validate import InputError

# the stages in order; each is the module pipeline/<name>.py with ``run(ctx) -> StageResult``
STAGES = ("ingest", "features", "block", "extract", "train", "score", "merge", "evaluate")
DEFAULT_RUN_ID = "local"
# errors whose message tells the user what to do: printed as one line, exit status 1
STOPS = (InputError, DiskFullError, ConflictError)


def stage_function(name: str) -> Callable[[StageContext], StageResult]:
    return importlib.import_module(f"pipeline.{name}").run


def start_spark_and_imports(config: PipelineConfig, stages: list[str]):
    """The SparkSession, with the stages' modules imported meanwhile: torch and PyTorch
    Geometric take several seconds to import and the JVM as long to start, so one waits on
    the other's socket instead of after it."""
    imported: list[BaseException] = []

    def import_stages() -> None:
        try:
            for name in stages:
                stage_function(name)
        except BaseException as exc:  # raised again in the caller's thread
            imported.append(exc)

    thread = threading.Thread(target=import_stages, name="kgmerge-imports")
    thread.start()
    try:
        spark = get_spark(config.spark, app_name=f"kgmerge {config.dataset.name}")
    finally:
        thread.join()
    if imported:
        raise imported[0]
    return spark

log = logging.getLogger("kgmerge")


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def run_pipeline(config: PipelineConfig, run_id: str, stages: list[str], spark=None,
                 base_run: str | None = None, incremental: bool = False) -> dict:
    """Runs ``stages`` in order. ``base_run``: use that run's model instead of training;
    ``incremental``: also reuse its scores where a pair's inputs did not change (the base run
    defaults to the one of the last completed merge)."""
    spark = spark or start_spark_and_imports(config, stages)
    paths = Paths(config.warehouse.resolve(), run_id)
    base = None
    if incremental and base_run is None:
        base_run = last_merged_run(spark, paths)
    if base_run is not None:
        if base_run == run_id:
            raise ValueError(f"run {run_id!r} cannot build on itself: give the new load its own --run-id")
        base = Paths(paths.warehouse, base_run)
        if not base.model_config.is_file():
            raise FileNotFoundError(f"base run {base_run!r} has no trained model in {base.model_dir}")
        log.info("run %s builds on run %s (%s)", run_id, base_run,
                 "incremental: reusing its model and unchanged scores" if incremental else "reusing its model")
    ctx = StageContext(spark, config, paths, base=base, incremental=incremental)
    return {name: run_stage(name, stage_function(name), ctx) for name in stages}


def last_merged_run(spark, paths: Paths) -> str:
    if not (paths.merge_log / "_delta_log").exists():
        raise FileNotFoundError(f"--incremental builds on the last completed merge, and {paths.merge_log} has "
                                "none: run the pipeline once without --incremental first")
    log_rows = spark.read.format("delta").load(str(paths.merge_log)).where(F.col("run_id") != paths.run_id)
    row = log_rows.orderBy(F.desc("finished_at")).first()  # a rerun of this run builds on the one before
    if row is None:
        raise FileNotFoundError(f"--incremental builds on an earlier completed merge, and {paths.merge_log} has "
                                f"none but run {paths.run_id!r}'s own: give --base-run")
    return row["run_id"]


def parse_args(stage: str, argv: list[str] | None) -> argparse.Namespace:
    what = "the whole pipeline" if stage == "pipeline" else f"the {stage} stage"
    script = "run_all" if stage == "pipeline" else stage  # jobs/pipeline.py would shadow the package
    p = argparse.ArgumentParser(prog=f"jobs/{script}.py", description=f"Run {what} of kgmerge.")
    p.add_argument("config", help="YAML config file, e.g. conf/dblp_acm.yaml")
    p.add_argument(
        "--run-id",
        type=run_id_argument,
        default=os.environ.get("KGMERGE_RUN_ID", DEFAULT_RUN_ID),
        help="names the run's folder under <warehouse>/runs; stages of one run share it "
        "(default: $KGMERGE_RUN_ID or 'local')",
    )
    if stage in ("pipeline", "train", "score"):
        p.add_argument("--base-run", metavar="RUN_ID", type=run_id_argument,
                       help="use this finished run's model instead of training one")
        p.add_argument("--incremental", action="store_true",
                       help="a new load of the same graphs: reuse the base run's model and the scores of "
                            "every pair whose inputs did not change (base run: --base-run, else the run "
                            "of the last completed merge)")
    if stage == "pipeline":
        p.add_argument("--from-stage", choices=list(STAGES), default="ingest",
                       help="skip the stages before this one (their outputs must exist)")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


def configured(args: argparse.Namespace) -> PipelineConfig | None:
    """Logging set up and the config read; None (after saying why) where the config is unusable."""
    setup_logging(args.log_level)
    try:
        return load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def main(stage: str, argv: list[str] | None = None) -> int:
    if stage == "label":
        return label_main(argv)
    if stage == "report":
        return report_main(argv)
    args = parse_args(stage, argv)
    config = configured(args)
    if config is None:
        return 2
    names = list(STAGES)[list(STAGES).index(args.from_stage):] if stage == "pipeline" else [stage]
    start = time.time()
    try:
        summaries = run_pipeline(config, args.run_id, names, base_run=getattr(args, "base_run", None),
                                 incremental=getattr(args, "incremental", False))
    except STOPS as exc:  # the message says what to do; the traceback would only bury it
        log.debug("stopped", exc_info=True)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if "evaluate" in summaries:
        print(summary_text(summaries["evaluate"], time.time() - start))
    return 0


def label_main(argv: list[str] | None = None) -> int:
    """The ``label`` job (pipeline/labelling.py): not a stage, a person at a terminal."""
    from pipeline import labelling

    args = labelling.parse_args(argv)
    config = configured(args)
    if config is None:
        return 2
    spark = get_spark(config.spark, app_name=f"kgmerge label {config.dataset.name}")
    labelling.session(spark, config, Paths(config.warehouse.resolve(), args.run_id), args.user, args.limit)
    return 0


def report_main(argv: list[str] | None = None) -> int:
    """The ``report`` job: rewrite a run's report (pipeline/run_report.py), e.g. to explain another
    pair; no Spark."""
    from pipeline.run_report import write_report

    p = argparse.ArgumentParser(prog="jobs/report.py", description="Rewrite a run's HTML report, e.g. to "
                                "explain another pair (no Spark; the evaluate stage writes it first).")
    p.add_argument("config", help="YAML config file, e.g. conf/dblp_acm.yaml")
    p.add_argument("--run-id", type=run_id_argument, default=os.environ.get("KGMERGE_RUN_ID", DEFAULT_RUN_ID),
                   help="the run whose report to rewrite (default: $KGMERGE_RUN_ID or 'local')")
    p.add_argument("--pair", nargs=2, metavar=("ID_A", "ID_B"), help="the pair to explain")
    p.add_argument("--anchors-round", type=int, help="anchors file the last scoring round read (default: the last)")
    p.add_argument("--log-level", default="WARNING")
    args = p.parse_args(argv)
    config = configured(args)
    if config is None:
        return 2
    print(write_report(Paths(config.warehouse.resolve(), args.run_id), args.anchors_round,
                       tuple(args.pair) if args.pair else None))
    return 0


def class_archive_workload(warehouse: Path) -> PipelineConfig:
    """What the class archive records: the demo's config on the bundled DBLP-ACM slice
    (tests/data/dblp_acm_small), every stage, one epoch."""
    demo = yaml.safe_load((REPO / "conf" / "dblp_acm.yaml").read_text(encoding="utf-8"))
    demo["dataset"]["path"] = str(REPO / "tests" / "data" / "dblp_acm_small")
    return PipelineConfig.model_validate(
        {**demo, "warehouse": str(warehouse), "spark": {"master": "local[2]", "shuffle_partitions": 4},
         "extract": {**demo["extract"], "shards": 2}, "train": {"epochs": 1}})


def build_class_archive(archive: Path = CLASS_ARCHIVE) -> Path:
    """The driver JVM's class-data archive (AppCDS, ``pipeline.spark.CLASS_ARCHIVE``): the classes
    a run loads (Spark's, Delta's, Parquet's, Arrow's), stored parsed and verified, so that later
    JVMs map them instead of loading them one by one. Runs ``class_archive_workload`` in a
    temporary warehouse, in a JVM started with ``-XX:ArchiveClassesAtExit``, and waits for that
    JVM to write the archive as it exits (``make setup``; about 4 minutes on 2 cores). With
    python, never under spark-submit: it starts its own JVM."""
    if "PYSPARK_GATEWAY_PORT" in os.environ:
        raise RuntimeError("build_class_archive starts its own JVM: run it with python, not spark-submit")
    start = time.time()
    partial = archive.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="kgmerge-classes-") as tmp:
        config = class_archive_workload(Path(tmp) / "warehouse")
        spark = get_spark(config.spark, "kgmerge class archive", archive_classes_to=partial)
        jvm = spark.sparkContext._gateway.proc  # the JVM pyspark started (spark-submit execs java)
        run_pipeline(config, "classes", list(STAGES), spark=spark)
        spark.stop()
        jvm.stdin.close()  # the gateway exits at the end of its input; the JVM writes the archive
        jvm.wait()
    if not partial.is_file():
        raise RuntimeError(f"the JVM wrote no class archive to {partial}")
    os.replace(partial, archive)
    log.info("class archive %s (%.0f MB) in %.0fs", archive, archive.stat().st_size / 2**20, time.time() - start)
    return archive


def summary_text(evaluation: dict, seconds: float) -> str:
    m = evaluation["metrics"]
    lines = [
        f"\n{evaluation['dataset']}: run '{evaluation['run_id']}' finished in {seconds:.0f}s",
        json.dumps({k: m[k] for k in ("precision", "recall", "f1", "pr_auc", "hits_at_1", "mrr") if k in m}),
        f"metrics:     {evaluation['metrics_path']}",
        f"Delta tables: {', '.join(evaluation['delta_tables'])}",
    ]
    return "\n".join(lines)

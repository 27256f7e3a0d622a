"""What every stage receives (``StageContext``) and returns (``StageResult``), and the one
place that times a stage and logs its summary line."""
from __future__ import annotations

import errno
import itertools
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pyspark.sql import SparkSession

from pipeline.config import PipelineConfig
from pipeline.schema import Paths

log = logging.getLogger("kgmerge")
_stage_calls = itertools.count(1)


@dataclass(frozen=True)
class StageContext:
    spark: SparkSession
    config: PipelineConfig
    paths: Paths
    base: Paths | None = None  # a finished run whose model this run uses instead of training one
    incremental: bool = False  # and whose scores it reuses where a pair's inputs did not change


@dataclass
class StageResult:
    rows_in: int
    rows_out: int
    rejected: int = 0  # input rows not kept, each with its reason in the ``rejected`` Delta table
    details: dict = field(default_factory=dict)


def run_stage(name: str, fn: Callable[[StageContext], StageResult], ctx: StageContext) -> dict:
    sc = ctx.spark.sparkContext
    group = f"kgmerge-{name}-{ctx.paths.run_id}-{next(_stage_calls)}"  # one per call: a rerun counts anew
    sc.setJobGroup(group, f"{name} [{ctx.config.dataset.name}]")
    start = time.time()
    try:
        result = fn(ctx)
    except Exception as exc:
        if out_of_space(exc):
            raise DiskFullError(
                f"stage {name} stopped: no space left on the disk of {ctx.paths.warehouse} (or of Spark's "
                "local folders); what it had written is in no Delta version and no finished output: free "
                f"space, then rerun {name} with the same --run-id") from exc
        raise
    finally:
        sc.setJobGroup(None, None)  # py4j: clears the group and description
    seconds = round(time.time() - start, 2)
    spark_jobs = len(sc.statusTracker().getJobIdsForGroup(group))
    summary = {
        "stage": name,
        "dataset": ctx.config.dataset.name,
        "run_id": ctx.paths.run_id,
        "rows_in": result.rows_in,
        "rows_out": result.rows_out,
        "rejected": result.rejected,
        "seconds": seconds,
        "spark_jobs": spark_jobs,
        **result.details,
    }
    log.info(
        "stage %-8s rows in %d, rows out %d, rejected %d, %.1fs (%d Spark jobs) %s",
        name, result.rows_in, result.rows_out, result.rejected, seconds, spark_jobs,
        " ".join(f"{k}={v}" for k, v in result.details.items() if not isinstance(v, (dict, list))),
    )
    record_stage(ctx.paths.stage_log, summary)
    return summary


class DiskFullError(OSError):
    """A stage that ran out of disk; the message says where and what to do."""


def out_of_space(exc: BaseException) -> bool:
    """Whether ``exc``, or what caused it, is a full disk: ENOSPC from Python, or a JVM's
    "No space left on device" inside a Spark or Py4J error."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "No space left on device" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def record_stage(stage_log: Path, summary: dict) -> None:
    """Keeps the latest summary of each stage of the run (a rerun replaces its line)."""
    stage_log.parent.mkdir(parents=True, exist_ok=True)
    lines = read_stage_log(stage_log)
    lines[summary["stage"]] = summary
    write_atomically(stage_log, "".join(json.dumps(v) + "\n" for v in lines.values()))


def write_atomically(path: Path, text: str) -> None:
    """``path`` holds ``text`` whole or what it held before, never a part: a job killed while
    writing a file that the rerun reads (the stage log, a published metrics file) must not break it."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def read_stage_log(stage_log: Path) -> dict[str, dict]:
    if not stage_log.is_file():
        return {}
    rows = [json.loads(line) for line in stage_log.read_text().splitlines() if line.strip()]
    return {r["stage"]: r for r in rows}

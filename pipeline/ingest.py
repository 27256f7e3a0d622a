"""ingest: a source folder -> the pipeline's input tables (NODES, EDGES, GOLD, LABELLED) as Parquet,
checked (``pipeline/validate.py``): rows that cannot be used go to the ``rejected`` Delta table
with their reason, and problems the run cannot go on with stop it before anything is written.

Row accounting, checked here on every run: rows read = rows kept + rows rejected.
"""
from __future__ import annotations

import logging
import shutil

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline import validate
from pipeline.conflicts import create_table_if_missing, retry_on_conflict
from pipeline.schema import EDGES, GOLD, LABELLED, NODES, REJECTED, delta_table_name
from pipeline.sources import adapter
from pipeline.stage import StageContext, StageResult

log = logging.getLogger("kgmerge")


def _conform(df: DataFrame, schema) -> DataFrame:
    """The schema's columns, cast to its types, plus the adapter's ``_row`` where it has one."""
    extra = ["_row"] if "_row" in df.columns else []
    return df.select([F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields] + extra)


def _counts(df: DataFrame, *columns: str, sep: str = "/") -> dict[str, int]:
    """Rows per distinct value of ``columns`` (joined by ``sep``, null as 'None'), in one job.

    >>> _counts(spark.read.parquet(str(paths.gold)), "split")
    {'train': 1332, 'valid': 444, 'test': 448}
    """
    return {sep.join(str(r[c]) for c in columns): r["count"] for r in df.groupBy(*columns).count().collect()}


def write_rejected(spark: SparkSession, path, rejected: DataFrame, run_id: str, stage: str) -> None:
    """Replaces this run's and stage's rows of the ``rejected`` Delta table in one commit (so a
    rerun does not add them twice, and a reader sees the old rows or the new, never neither);
    the table is created on first use."""
    rows = rejected.select(F.lit(run_id).alias("run_id"), F.lit(stage).alias("stage"), *rejected.columns)

    def replace() -> None:
        create_table_if_missing(spark, path, REJECTED)
        (rows.select(*REJECTED.fieldNames()).writeTo(delta_table_name(path))
         .overwrite((F.col("run_id") == run_id) & (F.col("stage") == stage)))

    retry_on_conflict(replace, f"ingest: rejected rows into {path}")


def run(ctx: StageContext) -> StageResult:
    spark, ds, paths = ctx.spark, ctx.config.dataset, ctx.paths
    tables = adapter(ds.format).read(spark, ds, ds.adapter_options())
    # cached: the adapter's reading and parsing then runs once, not once per count, check and write
    tables.nodes, tables.edges = _conform(tables.nodes, NODES).cache(), _conform(tables.edges, EDGES).cache()
    tables.gold = _conform(tables.gold, GOLD).cache()
    if tables.labelled is not None:
        tables.labelled = _conform(tables.labelled, LABELLED).cache()
    if tables.rejected is not None:
        tables.rejected = tables.rejected.cache()
    sources = [t for t in (tables.nodes, tables.edges, tables.gold, tables.labelled, tables.rejected) if t is not None]
    read_counts = {"nodes": tables.nodes.count(), "edges": tables.edges.count(), "gold": tables.gold.count(),
                   "labelled": tables.labelled.count() if tables.labelled is not None else 0,
                   "unreadable": tables.rejected.count() if tables.rejected is not None else 0}
    checked = validate.check(tables, ctx.config)  # raises before any write

    checked.nodes.write.mode("overwrite").parquet(str(paths.nodes))
    checked.edges.write.mode("overwrite").parquet(str(paths.edges))
    checked.gold.write.mode("overwrite").parquet(str(paths.gold))
    if checked.labelled is not None:
        checked.labelled.write.mode("overwrite").parquet(str(paths.labelled))
    else:
        shutil.rmtree(paths.labelled, ignore_errors=True)
    write_rejected(spark, paths.rejected, checked.rejected, paths.run_id, "ingest")
    checked.release()
    for table in sources:
        table.unpersist()

    # what was written, read back: the counts per group also give the totals (one job a table)
    by_type = _counts(spark.read.parquet(str(paths.nodes)), "type")
    splits = _counts(spark.read.parquet(str(paths.gold)), "split")
    labelled = _counts(spark.read.parquet(str(paths.labelled)), "split", "label") if checked.labelled is not None else {}
    kept = {"nodes": sum(by_type.values()), "edges": spark.read.parquet(str(paths.edges)).count(),
            "gold": sum(splits.values()), "labelled": sum(labelled.values())}
    rejected = spark.read.format("delta").load(str(paths.rejected)).where(
        (F.col("run_id") == paths.run_id) & (F.col("stage") == "ingest"))
    reasons = _counts(rejected.select("source", F.substring_index("reason", ":", 1).alias("reason")),
                      "source", "reason", sep=": ")
    by_reason = dict(sorted(reasons.items(), key=lambda kv: -kv[1])[:20])
    n_rows_in, n_kept, n_rejected = sum(read_counts.values()), sum(kept.values()), sum(reasons.values())
    if n_rows_in != n_kept + n_rejected:  # a bug in the checks, never the data's fault
        raise RuntimeError(f"ingest lost rows: read {read_counts}, kept {kept}, rejected {n_rejected}")
    if n_rejected:
        log.warning("ingest rejected %d input rows (Delta table %s, run_id %r): %s",
                    n_rejected, paths.rejected, paths.run_id, by_reason)
    return StageResult(
        rows_in=n_rows_in, rows_out=n_kept, rejected=n_rejected,
        details={"nodes": kept["nodes"], "edges": kept["edges"], "gold": kept["gold"],
                 "nodes_by_type": by_type, "gold_by_split": splits, "labelled_by_split_label": labelled,
                 "read": read_counts, "rejected_by_reason": by_reason},
    )

"""The unified graph in Delta Lake, as the merge stage leaves it: how to read it.

Merge writes ``alignment``, ``unified_nodes`` and ``unified_edges`` as three Delta
transactions and then one ``merge_log`` row with the version each reached; ``read_merged``
reads the three at the versions of one completed merge, so a reader never sees one table of a
merge beside another of the merge before. The evaluate stage reads its own run's merge this
way; so should any consumer.

    >>> tables = read_merged(spark, "warehouse/delta")              # the last completed merge
    >>> links = current_links(read_merged(spark, "warehouse/delta", "nightly")["alignment"])
    >>> changes = read_changes(spark, "warehouse/delta", "nightly")["unified_nodes"]

Each table keeps Delta's change data feed, and each merge is one commit per table, so what a
run changed is that commit's change feed (``read_changes``): rows with ``_change_type``
insert, update_preimage / update_postimage, or delete (a link a run no longer produces is an
update that sets ``closed_in_run``, never a delete).
"""
from __future__ import annotations

from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.schema import UNIFIED_TABLES, Paths


def current_links(alignment: DataFrame) -> DataFrame:
    """The links of an ``alignment`` table that hold (not closed by a later run)."""
    return alignment.where(F.col("closed_in_run").isNull())


def read_merged(spark: SparkSession, delta_dir: Path | str, run_id: str | None = None) -> dict[str, DataFrame]:
    """The three tables as the last completed merge (or ``run_id``'s last merge) left them:
    {"alignment", "unified_nodes", "unified_edges"} -> DataFrame. ``delta_dir``: the
    warehouse's ``delta`` folder."""
    log = spark.read.format("delta").load(str(Paths.delta_table(delta_dir, "merge_log")))
    if run_id is not None:
        log = log.where(F.col("run_id") == run_id)
    last = log.orderBy(F.desc("finished_at")).first()
    if last is None:
        raise LookupError(f"no completed merge{f' of run {run_id}' if run_id else ''} in {delta_dir}/merge_log")
    return {name: spark.read.format("delta").option("versionAsOf", last[f"{name}_version"])
            .load(str(Paths.delta_table(delta_dir, name))) for name in UNIFIED_TABLES}


def read_changes(spark: SparkSession, delta_dir: Path | str, run_id: str) -> dict[str, DataFrame]:
    """What ``run_id``'s last merge changed in each of the three tables: Delta's change data
    feed of the commit its merge_log row names, with ``_change_type``, ``_commit_version`` and
    ``_commit_timestamp``."""
    log = spark.read.format("delta").load(str(Paths.delta_table(delta_dir, "merge_log")))
    last = log.where(F.col("run_id") == run_id).orderBy(F.desc("finished_at")).first()
    if last is None:
        raise LookupError(f"no completed merge of run {run_id} in {delta_dir}/merge_log")
    return {name: spark.read.format("delta").option("readChangeFeed", "true")
            .option("startingVersion", last[f"{name}_version"]).option("endingVersion", last[f"{name}_version"])
            .load(str(Paths.delta_table(delta_dir, name))) for name in UNIFIED_TABLES}

"""merge: resolve the alignment and MERGE the unified graph into Delta Lake, idempotently.

Resolution: per type, a pair aligns when its score reaches the threshold (chosen on the valid
split by training, or ``merge.threshold``) and each side is the other's best-scoring partner
(mutual best), which makes the alignment one-to-one.

Tables (``<warehouse>/delta``):
- ``unified_nodes``: one row per real-world entity; ``uid`` is a hash of the A member's
  (kg, id), or of the B member's when there is no A member, so it is stable across reruns;
  ``members`` lists the source nodes; ``name`` is the A name when there is one.
- ``unified_edges``: both graphs' edges re-pointed to uids and deduplicated; ``sources`` says
  which graphs state the edge.
- ``alignment``: (id_a, id_b, type, score, run_id, closed_in_run). A link the current run no
  longer produces is not deleted but closed (``closed_in_run`` = this run); the links that hold
  are those with ``closed_in_run`` null (``pipeline.unified.current_links``). A closed link produced again
  reopens.
- ``merge_log``: one row per completed merge with the version each table reached.
Each table is written by a Delta MERGE on its key: unchanged rows stay as they are (their
run_id is the run that last changed them), changed rows are updated, new rows inserted and rows
no longer produced deleted (closed, for links), so running merge twice leaves identical tables.

Each MERGE is one Delta transaction: a merge killed midway leaves every table at its last
committed version (files it had written are not in any version). The three tables are three
transactions, though; ``merge_log`` is written last, so a reader that wants all three as of one
completed run reads them at the logged versions (``pipeline.unified.read_merged``).
"""
from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from functools import reduce
from operator import and_, or_

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.conflicts import (ConflictError, create_table_if_missing, latest_commit, own_commit, retry_on_conflict,
                                tagged_commit)
from pipeline.pairs import mutual_best
from pipeline.schema import ALIGNMENT, KG_A, KG_B, MERGE_LOG, UNIFIED_EDGES, UNIFIED_NODES, delta_table_name
from pipeline.stage import StageContext, StageResult

log = logging.getLogger("kgmerge")
# every unified table keeps Delta's change data feed: a consumer reads what one run changed
# (pipeline.unified.read_changes)
CHANGE_FEED = "delta.enableChangeDataFeed"
MERGE_COUNTS = ("numTargetRowsInserted", "numTargetRowsUpdated", "numTargetRowsDeleted", "numOutputRows")
NO_OP_ATTEMPTS = 5  # a MERGE that changed nothing while another writer committed is run again


def resolve(scores: DataFrame, threshold: float) -> DataFrame:
    """Mutual best pairs at or above the threshold: (id_a, id_b, type, score)."""
    return mutual_best(scores, "score", threshold)


def _uid(kg: F.Column, node_id: F.Column) -> F.Column:
    return F.sha2(F.concat_ws("\u0001", kg, node_id), 256).substr(1, 32)


def unified_nodes(nodes: DataFrame, alignment: DataFrame) -> DataFrame:
    a = nodes.where(F.col("kg") == KG_A).select(F.col("id").alias("id_a"), "type", F.col("name").alias("name_a"))
    b = nodes.where(F.col("kg") == KG_B).select(F.col("id").alias("id_b"), "type", F.col("name").alias("name_b"))
    links = alignment.select("id_a", "id_b", "type")
    joined = a.join(links, ["id_a", "type"], "left").join(b, ["id_b", "type"], "full")
    member_a = F.when(F.col("id_a").isNotNull(), F.struct(F.lit(KG_A).alias("kg"), F.col("id_a").alias("id")))
    member_b = F.when(F.col("id_b").isNotNull(), F.struct(F.lit(KG_B).alias("kg"), F.col("id_b").alias("id")))
    return joined.select(
        F.when(F.col("id_a").isNotNull(), _uid(F.lit(KG_A), F.col("id_a"))).otherwise(_uid(F.lit(KG_B), F.col("id_b"))).alias("uid"),
        "type",
        F.coalesce("name_a", "name_b").alias("name"),
        F.filter(F.array(member_a, member_b), lambda m: m.isNotNull()).alias("members"),
    )


def unified_edges(edges: DataFrame, nodes_u: DataFrame) -> DataFrame:
    member_uid = nodes_u.select("uid", F.explode("members").alias("m")).select(
        "uid", F.col("m.kg").alias("kg"), F.col("m.id").alias("id"))
    src = member_uid.withColumnRenamed("id", "src").withColumnRenamed("uid", "src_uid")
    dst = member_uid.withColumnRenamed("id", "dst").withColumnRenamed("uid", "dst_uid")
    return edges.join(src, ["kg", "src"]).join(dst, ["kg", "dst"]).groupBy("src_uid", "rel", "dst_uid").agg(
        F.array_sort(F.collect_set("kg")).alias("sources"))


def merge_into(spark: SparkSession, path, rows: DataFrame, schema, keys: list[str],
               close_in_run: str | None = None) -> dict:
    """MERGE ``rows`` into the Delta table at ``path`` (created if missing, with its change data
    feed on); returns the metrics and the version it committed. Target rows the source lacks
    are deleted, or, with ``close_in_run``, kept with ``closed_in_run`` set to it. A MERGE that
    another writer's commit beat is rerun on the new version (``pipeline.conflicts``)."""
    return retry_on_conflict(lambda: _merge_once(spark, path, rows, schema, keys, close_in_run),
                             f"merge: MERGE into {path}")


def _merge_once(spark: SparkSession, path, rows: DataFrame, schema, keys: list[str],
                close_in_run: str | None) -> dict:
    create_table_if_missing(spark, path, schema, {CHANGE_FEED: "true"})
    add_new_columns(spark, path, schema)
    target = DeltaTable.forPath(spark, str(path))
    enable_change_feed(spark, target, path)
    t, s = (lambda c: F.col(f"t.`{c}`")), (lambda c: F.col(f"s.`{c}`"))
    content = [c for c in schema.fieldNames() if c not in keys and c != "run_id"]
    changed = reduce(or_, (~t(c).eqNullSafe(s(c)) for c in content), F.lit(False))
    merge = (
        target.alias("t")
        .merge(rows.alias("s"), reduce(and_, (t(k) == s(k) for k in keys)))
        .whenMatchedUpdateAll(condition=changed)
        .whenNotMatchedInsertAll()
    )
    if close_in_run is None:
        merge = merge.whenNotMatchedBySourceDelete()
    else:
        merge = merge.whenNotMatchedBySourceUpdate(condition=t("closed_in_run").isNull(),
                                                   set={"closed_in_run": F.lit(close_in_run)})
    for _ in range(NO_OP_ATTEMPTS):
        before = latest_commit(target)["version"]
        with tagged_commit(spark) as tag:
            merge.execute()
        own = own_commit(target, tag)
        if own is not None:
            return {"operation": own["operation"], "version": int(own["version"]),
                    **{k: int(v) for k, v in (own["operationMetrics"] or {}).items() if k in MERGE_COUNTS}}
        # a MERGE that changed nothing commits nothing: the version it read holds its rows already
        if latest_commit(target)["version"] == before:
            return {"operation": "MERGE", "version": int(before)}
        # another writer committed meanwhile: which version this MERGE read is unknown, so again
    raise ConflictError(f"merge: MERGE into {path} found nothing to change {NO_OP_ATTEMPTS} times while other "
                        "writers committed: let the other run finish, then rerun this stage (it is idempotent)")


def enable_change_feed(spark: SparkSession, table: DeltaTable, path) -> None:
    """A table made before the change data feed was on gets it (one commit, once)."""
    if table.detail().first()["properties"].get(CHANGE_FEED) != "true":
        spark.sql(f"ALTER TABLE {delta_table_name(path)} SET TBLPROPERTIES ('{CHANGE_FEED}' = 'true')")
        log.info("merge: turned on the change data feed of %s", path)


def add_new_columns(spark: SparkSession, path, schema) -> None:
    """A table written by an older version lacks columns added since (e.g. alignment's
    ``closed_in_run``): add them, empty, so the MERGE can set them."""
    have = set(spark.read.format("delta").load(str(path)).columns)
    missing = [f for f in schema.fields if f.name not in have]
    if not missing:
        return
    required = [f.name for f in missing if not f.nullable]
    if required:
        raise ValueError(f"Delta table {path} lacks required column(s) {required}: it was written by an "
                         "incompatible version; move it aside and rerun merge to rebuild it")
    columns = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in missing)
    spark.sql(f"ALTER TABLE {delta_table_name(path)} ADD COLUMNS ({columns})")
    log.info("merge: added column(s) %s to %s", [f.name for f in missing], path)


def log_merge(spark: SparkSession, path, run_id: str, versions: dict[str, int]) -> None:
    row = spark.createDataFrame([(run_id, datetime.now(timezone.utc).replace(tzinfo=None),
                                  versions["alignment"], versions["unified_nodes"], versions["unified_edges"])],
                                MERGE_LOG)
    # appends never conflict with appends; only two first writes of a new log can
    retry_on_conflict(lambda: row.write.format("delta").mode("append").save(str(path)), f"merge: append to {path}")


def run(ctx: StageContext) -> StageResult:
    spark, paths, cfg = ctx.spark, ctx.paths, ctx.config.merge
    model_meta = json.loads(paths.model_config.read_text())
    threshold = cfg.threshold if cfg.threshold is not None else float(model_meta["threshold"])
    run_id = F.lit(paths.run_id)

    scores = spark.read.parquet(str(paths.scores))
    alignment = (resolve(scores, threshold).withColumn("run_id", run_id)
                 .withColumn("closed_in_run", F.lit(None).cast("string")).select(*ALIGNMENT.fieldNames()))
    alignment = alignment.cache()
    nodes = spark.read.parquet(str(paths.nodes))
    nodes_u = unified_nodes(nodes, alignment).withColumn("run_id", run_id).cache()
    edges_u = unified_edges(spark.read.parquet(str(paths.edges)), nodes_u).withColumn("run_id", run_id)

    ops = {
        "alignment": merge_into(spark, paths.alignment, alignment, ALIGNMENT, ["id_a", "id_b", "type"],
                                close_in_run=paths.run_id),
        "unified_nodes": merge_into(spark, paths.unified_nodes, nodes_u.select(*UNIFIED_NODES.fieldNames()),
                                    UNIFIED_NODES, ["uid"]),
        "unified_edges": merge_into(spark, paths.unified_edges, edges_u.select(*UNIFIED_EDGES.fieldNames()),
                                    UNIFIED_EDGES, ["src_uid", "rel", "dst_uid"]),
    }
    log_merge(spark, paths.merge_log, paths.run_id, {name: op["version"] for name, op in ops.items()})
    n_aligned = alignment.count()
    n_nodes_u = nodes_u.count()
    alignment.unpersist()
    nodes_u.unpersist()
    return StageResult(
        rows_in=scores.count(), rows_out=n_aligned,
        details={"threshold": round(threshold, 4), "aligned": n_aligned, "unified_nodes": n_nodes_u,
                 "merge": ops},
    )

"""ingest: a source folder -> the pipeline's input tables (NODES, EDGES, GOLD, LABELLED) as Parquet.

Edges whose ends are not nodes of their graph are dropped and counted (``dangling_edges``).
"""
from __future__ import annotations

import shutil

from pyspark.sql import functions as F

from pipeline.schema import EDGES, GOLD, LABELLED, NODES
from pipeline.sources import adapter
from pipeline.stage import StageContext, StageResult


def _conform(df, schema):
    return df.select([F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields])


def run(ctx: StageContext) -> StageResult:
    spark, ds, paths = ctx.spark, ctx.config.dataset, ctx.paths
    tables = adapter(ds.format).read(spark, ds, ds.adapter_options())
    nodes = _conform(tables.nodes, NODES)
    edges = _conform(tables.edges, EDGES)
    keys = nodes.select("kg", "id")
    kept = (
        edges.join(keys.withColumnRenamed("id", "src"), ["kg", "src"], "left_semi")
        .join(keys.withColumnRenamed("id", "dst"), ["kg", "dst"], "left_semi")
        .select(*EDGES.fieldNames())
    )
    nodes.write.mode("overwrite").parquet(str(paths.nodes))
    kept.write.mode("overwrite").parquet(str(paths.edges))
    _conform(tables.gold, GOLD).write.mode("overwrite").parquet(str(paths.gold))
    if tables.labelled is not None:
        _conform(tables.labelled, LABELLED).write.mode("overwrite").parquet(str(paths.labelled))
    else:
        shutil.rmtree(paths.labelled, ignore_errors=True)

    nodes = spark.read.parquet(str(paths.nodes))
    n_nodes = nodes.count()
    n_edges_in, n_edges = edges.count(), spark.read.parquet(str(paths.edges)).count()
    gold = spark.read.parquet(str(paths.gold))
    by_type = {r["type"]: r["count"] for r in nodes.groupBy("type").count().collect()}
    splits = {str(r["split"]): r["count"] for r in gold.groupBy("split").count().collect()}
    labelled = {}
    if tables.labelled is not None:
        rows = spark.read.parquet(str(paths.labelled)).groupBy("split", "label").count().collect()
        labelled = {f"{r['split']}/{r['label']}": r["count"] for r in rows}
    return StageResult(
        rows_in=n_nodes + n_edges_in,
        rows_out=n_nodes + n_edges,
        details={"nodes": n_nodes, "edges": n_edges, "dangling_edges": n_edges_in - n_edges,
                 "gold": sum(splits.values()), "nodes_by_type": by_type, "gold_by_split": splits,
                 "labelled_by_split_label": labelled},
    )

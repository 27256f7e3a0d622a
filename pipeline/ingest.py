"""ingest: a source folder -> the pipeline's input tables (NODES, EDGES, GOLD) as Parquet.

Edges whose ends are not nodes of their graph are dropped and counted (``dangling_edges``).
"""
from __future__ import annotations

from pyspark.sql import functions as F

from pipeline.schema import EDGES, GOLD, NODES
from pipeline.sources import reader
from pipeline.stage import StageContext, StageResult


def _conform(df, schema):
    return df.select([F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields])


def run(ctx: StageContext) -> StageResult:
    spark, ds, paths = ctx.spark, ctx.config.dataset, ctx.paths
    tables = reader(ds.format)(spark, ds)
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

    nodes = spark.read.parquet(str(paths.nodes))
    n_nodes = nodes.count()
    n_edges_in, n_edges = edges.count(), spark.read.parquet(str(paths.edges)).count()
    gold = spark.read.parquet(str(paths.gold))
    by_type = {r["type"]: r["count"] for r in nodes.groupBy("type").count().collect()}
    splits = {str(r["split"]): r["count"] for r in gold.groupBy("split").count().collect()}
    return StageResult(
        rows_in=n_nodes + n_edges_in,
        rows_out=n_nodes + n_edges,
        details={"nodes": n_nodes, "edges": n_edges, "dangling_edges": n_edges_in - n_edges,
                 "gold": sum(splits.values()), "nodes_by_type": by_type, "gold_by_split": splits},
    )

"""extract: each candidate node's sampled two-hop neighbourhood, and the pair shards.

Graph work is done as Spark DataFrame joins over the edge table: the two-hop motif
(c)-[e1]->(n); (n)-[e2]->(m) is a self-join of the sampled adjacency. (GraphFrames would
compile the same motif to the same joins; its jar is not served by the package registry this
project can reach, see README "Why no GraphFrames jar".)

Sampling (model/README.md, "Sampling"): every edge is used in both directions (relation id r, and r + R read
backwards). Each node keeps at most ``cap`` neighbours, drawn without replacement with
probability proportional to w = 1 / avg_N(type, relation): the mean number of neighbours via
that relation among nodes of the source's type that have any (so the one director outweighs
each of fifty actors). Draws use the Efraimidis-Spirakis key u^(1/w), with u a hash of
(seed, edge): seeded, deterministic, no state. A node's sample is drawn once and reused
wherever it appears, so hop 2 of a centre is the samples of its hop-1 nodes.
"""
from __future__ import annotations

import json
import logging

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from pipeline.config import ExtractConfig
from pipeline.evidence import pair_rows, read_pair_evidence
from pipeline.schema import NEIGHBOURHOOD
from pipeline.stage import StageContext, StageResult

log = logging.getLogger("kgmerge")
_HASH_RANGE = float(2**52)


def relation_vocabulary(edges: DataFrame) -> dict[str, int]:
    names = sorted(r["rel"] for r in edges.select("rel").distinct().collect())
    return {name: i for i, name in enumerate(names)}


def directed_edges(edges: DataFrame, index: DataFrame, relations: dict[str, int]) -> DataFrame:
    """(src, dst, rel, src_type, edge_key) in node ids, each edge once forwards and once backwards.
    ``edge_key`` hashes the edge's source ids (kg, src, rel, dst, direction), not the node ids,
    which shift when nodes arrive: the sampler draws from it, so a node whose edges did not
    change keeps its sample from one load to the next (incremental runs rely on that)."""
    rel_ids = (F.create_map(*[x for name, i in relations.items() for x in (F.lit(name), F.lit(i))])
               if relations else F.create_map().cast("map<string,int>"))  # a graph without edges
    ids = index.select("kg", "id", "nid", "type")
    e = (
        edges.join(ids.withColumnRenamed("id", "src").withColumnRenamed("nid", "s")
                   .withColumnRenamed("type", "s_type"), ["kg", "src"])
        .join(ids.withColumnRenamed("id", "dst").withColumnRenamed("nid", "d")
              .withColumnRenamed("type", "d_type"), ["kg", "dst"])
        .withColumn("r", rel_ids[F.col("rel")])
    )
    fwd = e.select(F.col("s").alias("src"), F.col("d").alias("dst"), F.col("r").alias("rel"),
                   F.col("s_type").alias("src_type"), F.xxhash64("kg", "src", "rel", "dst").alias("edge_key"))
    bwd = e.select(F.col("d").alias("src"), F.col("s").alias("dst"),
                   (F.col("r") + len(relations)).alias("rel"), F.col("d_type").alias("src_type"),
                   F.xxhash64("kg", "dst", "rel", "src", F.lit(1)).alias("edge_key"))
    return fwd.unionByName(bwd).distinct()


def sample_neighbours(directed: DataFrame, cfg: ExtractConfig) -> DataFrame:
    """(src, rank, dst, rel): at most ``cap`` neighbours per node, weighted by relation rarity."""
    if cfg.sampling == "relation_aware":
        per_node = directed.groupBy("src", "src_type", "rel").agg(F.count("*").alias("n"))
        avg = per_node.groupBy("src_type", "rel").agg(F.mean("n").alias("avg_n"))
        weighted = directed.join(F.broadcast(avg), ["src_type", "rel"]).withColumn("w", 1.0 / F.col("avg_n"))
    else:
        weighted = directed.withColumn("w", F.lit(1.0))
    u = (F.pmod(F.xxhash64(F.lit(cfg.seed), "edge_key"), F.lit(2**52)) + 0.5) / _HASH_RANGE
    keyed = weighted.withColumn("key", F.log(u) / F.col("w"))  # log of u^(1/w): larger wins
    rank = F.row_number().over(Window.partitionBy("src").orderBy(F.desc("key"), "dst", "rel"))
    return keyed.withColumn("rank", rank).where(F.col("rank") <= cfg.cap).select("src", "rank", "dst", "rel")


def neighbour_lists(sampled: DataFrame) -> DataFrame:
    """(nid, nbrs: array<struct<rank, dst, rel>> in rank order)."""
    return sampled.groupBy(F.col("src").alias("nid")).agg(
        F.sort_array(F.collect_list(F.struct("rank", "dst", "rel"))).alias("nbrs")
    )


def two_hop(centres: DataFrame, lists: DataFrame) -> DataFrame:
    """NEIGHBOURHOOD rows for the given centres (column nid): hop 1 and, under it, hop 2."""
    hop1 = centres.join(lists, "nid", "left").select(
        "nid", F.coalesce("nbrs", F.array().cast(lists.schema["nbrs"].dataType)).alias("nbrs")
    )
    # the motif (c)-[e1]->(n); (n)-[e2]->(m): explode hop 1 with its position, join n's sample
    via = hop1.select("nid", F.posexplode("nbrs").alias("parent", "n")).select(
        "nid", "parent", F.col("n.dst").alias("n"))
    hop2 = (
        via.join(lists.withColumnRenamed("nid", "n").withColumnRenamed("nbrs", "children"), "n")
        .select("nid", "parent", F.explode("children").alias("m"))
        .groupBy("nid")
        .agg(F.sort_array(F.collect_list(F.struct("parent", F.col("m.rank").alias("rank"),
                                                  F.col("m.dst").alias("dst"), F.col("m.rel").alias("rel"))))
             .alias("h2"))
    )
    empty = F.array().cast("array<int>")
    out = hop1.join(hop2, "nid", "left").select(
        F.col("nid").cast("int"),
        F.transform("nbrs", lambda x: x["dst"].cast("int")).alias("hop1"),
        F.transform("nbrs", lambda x: x["rel"].cast("int")).alias("hop1_rel"),
        F.coalesce(F.transform("h2", lambda x: x["parent"].cast("int")), empty).alias("hop2_parent"),
        F.coalesce(F.transform("h2", lambda x: x["dst"].cast("int")), empty).alias("hop2"),
        F.coalesce(F.transform("h2", lambda x: x["rel"].cast("int")), empty).alias("hop2_rel"),
    )
    return out.select(*NEIGHBOURHOOD.fieldNames())


def run(ctx: StageContext) -> StageResult:
    spark, paths, cfg = ctx.spark, ctx.paths, ctx.config.extract
    index = spark.read.parquet(str(paths.node_index))
    edges = spark.read.parquet(str(paths.edges))
    cands = spark.read.parquet(str(paths.candidates))
    gold = spark.read.parquet(str(paths.gold))
    labelled = spark.read.parquet(str(paths.labelled)) if paths.labelled.exists() else None

    relations = relation_vocabulary(edges)
    sampled = sample_neighbours(directed_edges(edges, index, relations), cfg)
    if cfg.relations == "merged":  # keep only the direction: 0 forwards, 1 backwards
        sampled = sampled.withColumn("rel", (F.col("rel") >= len(relations)).cast("int"))
        relations = {"*": 0}
    paths.relations.write_text(json.dumps(relations, indent=2))
    lists = neighbour_lists(sampled).cache()

    # centres: every node of a candidate pair, of a gold link (training draws from these) or
    # of a labelled pair
    pairs = [cands, gold] + ([labelled] if labelled is not None else [])
    ends = None
    for df in pairs:
        both = df.select(F.lit("A").alias("kg"), F.col("id_a").alias("id")).union(df.select(F.lit("B"), "id_b"))
        ends = both if ends is None else ends.union(both)
    ends = ends.distinct()
    centres = index.join(ends, ["kg", "id"]).select("nid")
    two_hop(centres, lists).write.mode("overwrite").parquet(str(paths.neighbourhoods))
    hoods = spark.read.parquet(str(paths.neighbourhoods))

    evidence = read_pair_evidence(spark, paths)
    shards = pair_rows(cands.select("id_a", "id_b", "type"), index, hoods, evidence)
    shard_of = F.pmod(F.xxhash64("id_a", "id_b"), F.lit(cfg.shards))
    (shards.withColumn("shard", shard_of).repartition(cfg.shards, "shard")
     .sortWithinPartitions("id_a", "id_b")  # the same batches on every run
     .write.mode("overwrite").partitionBy("shard").parquet(str(paths.shards)))
    lists.unpersist()
    if labelled is not None:  # the benchmark's own pairs, scored apart (evaluation protocol (a))
        (pair_rows(labelled.select("id_a", "id_b", "type", "label", "split"), index, hoods, evidence)
         .repartition(1).sortWithinPartitions("split", "id_a", "id_b")
         .write.mode("overwrite").parquet(str(paths.labelled_shards)))

    n_hoods = hoods.count()
    graph = ("none: no edges, the model compares level-0 features and pair evidence" if not relations
             else f"{len(relations)} relations")
    if not relations:
        log.warning("extract: the graphs have no edges; every neighbourhood is empty and the model compares "
                    "level-0 features and pair evidence only")
    sizes = hoods.select(F.size("hop1").alias("h1"), F.size("hop2").alias("h2")).agg(
        F.mean("h1"), F.max("h1"), F.mean("h2"), F.max("h2")).first()
    return StageResult(
        rows_in=cands.count(),
        rows_out=spark.read.parquet(str(paths.shards)).count(),
        details={"neighbourhoods": n_hoods, "relations": len(relations) * 2, "graph": graph,
                 "hop1_mean": round(sizes[0] or 0, 2), "hop1_max": sizes[1],
                 "hop2_mean": round(sizes[2] or 0, 2), "hop2_max": sizes[3]},
    )

"""block.method ``anchors``, for graphs without names (structure-only benchmarks): an A node
and a B node are candidates when seed links (the train split of the gold links) join their
neighbours (``anchor_sims``); nodes with no linked neighbour get no candidates, which pair
completeness then shows.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipeline.blocking import BlockInputs, Found, keep_top_k
from pipeline.schema import KG_A, KG_B

if TYPE_CHECKING:
    from pipeline.config import BlockConfig

NEEDS_NAMES = False


def candidates(inputs: BlockInputs) -> Found:
    return Found(anchor_candidates(inputs.nodes, inputs.edges, inputs.gold, inputs.cfg, sorted(inputs.names_per_type)))


def anchor_sims(edges: DataFrame, seeds: DataFrame, max_degree: int) -> DataFrame:
    """(id_a, id_b, sim) for graphs without names: A node and B node score by the seed links
    among their neighbours, sim = sum over linked neighbour pairs (n, n') of
    1 / log(2 + deg(n) + deg(n')), so that a shared rare neighbour counts more than a shared
    hub. Neighbours of degree above ``max_degree`` are skipped (each would pair all of its
    neighbours with all of its partner's)."""
    both = edges.select("kg", "src", "dst").union(edges.select("kg", F.col("dst").alias("src"), F.col("src").alias("dst")))
    adj = both.where(F.col("src") != F.col("dst")).distinct()
    degree = adj.groupBy("kg", F.col("src").alias("n")).agg(F.count("*").alias("deg"))
    links = (seeds.select("id_a", "id_b")
             .join(degree.where("kg = 'A'").select(F.col("n").alias("id_a"), F.col("deg").alias("deg_a")), "id_a")
             .join(degree.where("kg = 'B'").select(F.col("n").alias("id_b"), F.col("deg").alias("deg_b")), "id_b")
             .where((F.col("deg_a") <= max_degree) & (F.col("deg_b") <= max_degree))
             .select("id_a", "id_b", (1 / F.log(2 + F.col("deg_a") + F.col("deg_b"))).alias("w")))
    side_a = adj.where("kg = 'A'").select(F.col("src").alias("a"), F.col("dst").alias("id_a"))
    side_b = adj.where("kg = 'B'").select(F.col("src").alias("b"), F.col("dst").alias("id_b"))
    return (side_a.join(links, "id_a").join(side_b, "id_b")
            .groupBy(F.col("a").alias("id_a"), F.col("b").alias("id_b"))
            .agg(F.round(F.sum("w"), 9).alias("sim")))

def anchor_candidates(nodes: DataFrame, edges: DataFrame, gold: DataFrame, cfg: BlockConfig,
                      types: list[str]) -> DataFrame:
    """block.method anchors: the top_k partners by ``anchor_sims`` over the train links, per type."""
    seeds = gold.where("split = 'train'")
    if seeds.isEmpty():
        raise ValueError("block.method 'anchors' needs gold links with split 'train' (the seed links)")
    type_a = nodes.where(F.col("kg") == KG_A).select(F.col("id").alias("id_a"), "type")
    type_b = nodes.where(F.col("kg") == KG_B).select(F.col("id").alias("id_b"), "type")
    sims = anchor_sims(edges, seeds, cfg.max_anchor_degree).join(type_a, "id_a").join(type_b, ["id_b", "type"])
    return keep_top_k(sims, cfg, types)

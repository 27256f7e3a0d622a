"""The graph add-on (``block.graph_proposals``): after the method's candidates, the pairs
proposed through the graph: the neighbours of each confidently matched pair (mutual best, sim
>= ``graph_min_sim``) under the same relation and direction, of the same type, scored by their
name cosine (``names.pair_cosine``); for names too common for any term to block (author names
at a million per side). Nodes with more than ``graph_max_degree`` neighbours by a relation
propose none by it, which bounds the join by confident pairs x graph_max_degree^2 per relation.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from pipeline.pairs import mutual_best
from pipeline.schema import KG_A, KG_B

if TYPE_CHECKING:
    from pipeline.config import BlockConfig


def neighbours_by_relation(edges: DataFrame, max_degree: int) -> DataFrame:
    """(kg, node, rel, forward, nbr): every edge from both ends, without the nodes that have more
    than ``max_degree`` neighbours by that relation and direction."""
    both = edges.select("kg", F.col("src").alias("node"), "rel", F.lit(True).alias("forward"),
                        F.col("dst").alias("nbr")).unionByName(
        edges.select("kg", F.col("dst").alias("node"), "rel", F.lit(False).alias("forward"), F.col("src").alias("nbr")))
    degree = F.count("*").over(Window.partitionBy("kg", "node", "rel", "forward"))
    return both.withColumn("_deg", degree).where(F.col("_deg") <= max_degree).drop("_deg")

def graph_proposals(cands: DataFrame, edges: DataFrame, nodes: DataFrame, cfg: BlockConfig) -> DataFrame:
    """(id_a, id_b, type): for each confident pair (mutual best, sim >= graph_min_sim), every A
    neighbour paired with every B neighbour reached by the same relation and direction, of the
    same type (``block.graph_proposals``). Bounded by confident pairs x graph_max_degree^2 per
    relation."""
    nbrs = neighbours_by_relation(edges, cfg.graph_max_degree)
    side_a = nbrs.where(F.col("kg") == KG_A).select(F.col("node").alias("id_a"), "rel", "forward",
                                                    F.col("nbr").alias("nbr_a"))
    side_b = nbrs.where(F.col("kg") == KG_B).select(F.col("node").alias("id_b"), "rel", "forward",
                                                    F.col("nbr").alias("nbr_b"))
    type_a = nodes.where(F.col("kg") == KG_A).select(F.col("id").alias("nbr_a"), "type")
    type_b = nodes.where(F.col("kg") == KG_B).select(F.col("id").alias("nbr_b"), "type")
    confident = mutual_best(cands, "sim", cfg.graph_min_sim).select("id_a", "id_b")
    return (confident.join(side_a, "id_a").join(side_b, ["id_b", "rel", "forward"])
            .join(type_a, "nbr_a").join(type_b, ["nbr_b", "type"])
            .select(F.col("nbr_a").alias("id_a"), F.col("nbr_b").alias("id_b"), "type").distinct())

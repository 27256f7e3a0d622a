"""Candidate pairs (id_a, id_b, type, ...): the logic every stage that handles them shares.

Spark functions take and return DataFrames; ``touching_rows`` is the same rule on a pandas
frame, for the figures computed on the driver.

    >>> aligned = mutual_best(scores, "score", threshold=0.5)
    >>> near_valid = touching(scores, gold.where("split = 'valid'"))
    >>> with_rows = with_node_rows(aligned, node_index)   # adds nid_a, nid_b
"""
from __future__ import annotations

import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from pipeline.schema import KG_A, KG_B


def mutual_best(pairs: DataFrame, score: str, threshold: float) -> DataFrame:
    """(id_a, id_b, type, ``score``): the pairs that are each other's best partner within their
    type (ties broken by the other id) and score at least ``threshold``.

    Example: ``mutual_best(scores, "score", 0.5)`` is merge's one-to-one alignment;
    ``mutual_best(candidates, "sim", 0.5)`` block's confidently matched names."""
    best_a = Window.partitionBy("type", "id_a").orderBy(F.desc(score), "id_b")
    best_b = Window.partitionBy("type", "id_b").orderBy(F.desc(score), "id_a")
    ranked = pairs.withColumn("_ra", F.row_number().over(best_a)).withColumn("_rb", F.row_number().over(best_b))
    return ranked.where((F.col("_ra") == 1) & (F.col("_rb") == 1) & (F.col(score) >= threshold)).select(
        "id_a", "id_b", "type", score)


def touching(pairs: DataFrame, links: DataFrame) -> DataFrame:
    """The distinct ``pairs`` with an end among the ``links``' A or B ends, of the same type:
    the pairs whose scores a split's links (valid, test) judge.

    Example: ``touching(scores, gold.where("split = 'test'"))`` is what evaluate ranks."""
    return pairs.join(links.select("id_a", "type"), ["id_a", "type"], "left_semi").unionByName(
        pairs.join(links.select("id_b", "type"), ["id_b", "type"], "left_semi")).distinct()


def touching_rows(pairs: pd.DataFrame, links: pd.DataFrame) -> pd.DataFrame:
    """``touching`` on pandas frames (any type): the rows of ``pairs`` with an end among the
    ``links``' ends."""
    return pairs[pairs.id_a.isin(set(links.id_a)) | pairs.id_b.isin(set(links.id_b))]


def with_node_rows(pairs: DataFrame, index: DataFrame) -> DataFrame:
    """``pairs`` (id_a, id_b, ...) with nid_a and nid_b, their ends' rows of the node index
    (the features stage's ``node_index``: kg, id, nid); pairs with an end not in it drop out."""
    ids = index.select("kg", "id", "nid")
    a = ids.where(F.col("kg") == KG_A).select(F.col("id").alias("id_a"), F.col("nid").alias("nid_a"))
    b = ids.where(F.col("kg") == KG_B).select(F.col("id").alias("id_b"), F.col("nid").alias("nid_b"))
    return pairs.join(a, "id_a").join(b, "id_b")

"""Pair logic shared by stages (a stage never imports another stage)."""
from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F


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

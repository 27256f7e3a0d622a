"""Pair evidence, the Spark half: how each piece declared in ``model/shard_layout.py``
``PAIR_EVIDENCE`` is computed for candidate pairs from what the features stage wrote, and the
pair-shard rows that carry it (the extract stage writes them for the candidates, the train
stage for its train and valid pairs).

Adding a piece of pair evidence: its entry in ``PAIR_EVIDENCE`` (model side), its function
here ``(pairs with nid_a, nid_b; its input or None) -> pairs plus its float column`` and an
entry in ``SPARK_EVIDENCE`` naming the ``Paths`` property of its input. Nothing else changes:
the shard schema, the batch, the signature, the distance and the train stage's switches all
iterate over the two registries.

    >>> inputs = read_pair_evidence(spark, paths)
    >>> rows = pair_rows(candidates, node_index, neighbourhoods, inputs)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from model.shard_layout import PAIR_EVIDENCE, SUBGRAPH_COLUMNS
from pipeline.pairs import with_node_rows
from pipeline.schema import Paths
from pipeline.text import sparse_cosine


def lexical_similarity(pairs: DataFrame, terms: DataFrame | None) -> DataFrame:
    """(nid_a, nid_b, ...) -> the same plus ``lex_sim``, the cosine of the two nodes' lexical
    terms (pipeline/features.py); 0 where a node has none or there are no terms at all."""
    if terms is None:
        return pairs.withColumn("lex_sim", F.lit(0.0).cast("float"))
    ta = terms.select(F.col("nid").alias("nid_a"), "term", F.col("w").alias("wa"))
    tb = terms.select(F.col("nid").alias("nid_b"), "term", F.col("w").alias("wb"))
    sims = sparse_cosine(pairs, ta, tb, pair=["nid_a", "nid_b"], term="term")
    return pairs.join(sims.withColumnRenamed("sim", "lex_sim"), ["nid_a", "nid_b"], "left").withColumn(
        "lex_sim", F.least(F.coalesce("lex_sim", F.lit(0.0)), F.lit(1.0)).cast("float"))


def code_conflict(pairs: DataFrame, codes: DataFrame | None) -> DataFrame:
    """(nid_a, nid_b, ...) -> the same plus ``code_conflict``: 1 where both records have
    identifier codes (pipeline/features.py ``identifier_codes``) and no code of either is found
    in the other's squeezed text, else 0."""
    if codes is None:
        return pairs.withColumn("code_conflict", F.lit(0.0).cast("float"))
    ca = codes.select(F.col("nid").alias("nid_a"), F.col("codes").alias("_codes_a"), F.col("squeezed").alias("_text_a"))
    cb = codes.select(F.col("nid").alias("nid_b"), F.col("codes").alias("_codes_b"), F.col("squeezed").alias("_text_b"))
    found = (F.exists("_codes_a", lambda c: F.instr(F.col("_text_b"), c) > 0)
             | F.exists("_codes_b", lambda c: F.instr(F.col("_text_a"), c) > 0))
    conflict = F.when(F.col("_codes_a").isNotNull() & F.col("_codes_b").isNotNull() & ~found, 1.0).otherwise(0.0)
    return (pairs.join(ca, "nid_a", "left").join(cb, "nid_b", "left")
            .withColumn("code_conflict", conflict.cast("float"))
            .drop("_codes_a", "_codes_b", "_text_a", "_text_b"))


@dataclass(frozen=True)
class SparkEvidence:
    """How one ``PAIR_EVIDENCE`` column is computed: ``compute(pairs, input)`` with ``input`` the
    Parquet table at ``Paths.<source>`` (None where the features stage did not write it, the
    evidence's switch being off: the column is then 0)."""

    column: str
    source: str
    compute: Callable[[DataFrame, DataFrame | None], DataFrame]


SPARK_EVIDENCE = (
    SparkEvidence("lex_sim", source="lexical_terms", compute=lexical_similarity),
    SparkEvidence("code_conflict", source="record_codes", compute=code_conflict),
)
_by_column = {e.column: e for e in SPARK_EVIDENCE}
if set(_by_column) != {e.column for e in PAIR_EVIDENCE}:
    raise ImportError("pipeline/evidence.py SPARK_EVIDENCE must compute every PAIR_EVIDENCE column "
                      "of model/shard_layout.py, and no other")


def read_pair_evidence(spark, paths: Paths) -> dict[str, DataFrame | None]:
    """Each evidence's input as the features stage wrote it, None where it did not (its switch off)."""
    return {e.column: (spark.read.parquet(str(p)) if (p := getattr(paths, e.source)).exists() else None)
            for e in SPARK_EVIDENCE}


def evidence_switches(paths: Paths) -> dict[str, bool]:
    """``ModelConfig`` switch -> whether the features stage wrote the evidence's input: the
    model reads a piece of evidence exactly where it was computed."""
    return {e.switch: getattr(paths, _by_column[e.column].source).exists() for e in PAIR_EVIDENCE}


def pair_rows(pairs: DataFrame, index: DataFrame, neighbourhoods: DataFrame,
              inputs: dict[str, DataFrame | None] | None = None) -> DataFrame:
    """Pairs (id_a, id_b, type, ...) -> PAIR_SHARD rows (plus the pairs' other columns).
    ``inputs``: ``read_pair_evidence``'s; an evidence without input is 0."""
    inputs = inputs or {}
    hood_a = neighbourhoods.select(F.col("nid").alias("nid_a"), *[F.col(c).alias(f"a_{c}") for c in SUBGRAPH_COLUMNS])
    hood_b = neighbourhoods.select(F.col("nid").alias("nid_b"), *[F.col(c).alias(f"b_{c}") for c in SUBGRAPH_COLUMNS])
    # the pair evidence joins on node ids before the wide neighbourhood lists are attached
    rows = with_node_rows(pairs, index)
    for evidence in SPARK_EVIDENCE:
        rows = evidence.compute(rows, inputs.get(evidence.column))
    return rows.join(hood_a, "nid_a").join(hood_b, "nid_b")

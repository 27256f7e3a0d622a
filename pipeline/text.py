"""Text shared by the stages: the name key, and sparse TF-IDF vectors with their cosine.

The features stage encodes and caches names under their ``name_key`` and weighs each record's
lexical terms; the block stage weighs each name's n-grams to find candidates; the extract
stage takes each candidate pair's lexical cosine. All three go through the functions here, so
a name is normalised one way and a TF-IDF weight means one thing.

    >>> weights = unit_tfidf(grams, node=["kg", "type", "id"], term="gram", documents=nodes, corpus=["type"])
    >>> sims = sparse_cosine(pairs, weights_a, weights_b, pair=["id_a", "id_b", "type"], term="gram")
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def name_key(col: Column) -> Column:
    """The form a name is compared, encoded and cached under: lower case, runs of white space
    as one space, trimmed; null as the empty string."""
    return F.lower(F.trim(F.regexp_replace(F.coalesce(col, F.lit("")), r"\s+", " ")))


def squeezed(col: Column) -> Column:
    """The text lower-cased with everything but letters and digits dropped."""
    return F.regexp_replace(F.lower(col), r"[^\p{L}\p{N}]", "")


def words(text: Column) -> Column:
    """The text's runs of letters and digits, as an array (no empty strings)."""
    return F.filter(F.split(text, r"[^\p{L}\p{N}]+"), lambda w: F.length(w) > 0)


def unit_tfidf(terms: DataFrame, node: list[str], term: str, documents: DataFrame,
               corpus: list[str] | None = None) -> DataFrame:
    """TF-IDF weights scaled to unit length per node.

    Args:
        terms: one row per occurrence, columns ``node`` + [``term``].
        node: the columns that name a node (a document).
        term: the term column.
        documents: one row per document (nodes without terms count too), with ``corpus``.
        corpus: the columns that split the documents into corpora, each with its own document
            frequencies (e.g. ``["type"]``); all documents form one corpus when empty.

    Returns:
        ``node`` + [``term``, ``df``, ``n_docs``, ``w``]: w = tf · log((n_docs + 1) / (df + 1)),
        divided by the node's norm (a node whose every term is in every document keeps w = 0).
    """
    corpus = list(corpus or [])
    tf = terms.groupBy(*node, term).agg(F.count("*").alias("tf"))
    n_docs = documents.groupBy(*corpus).agg(F.count("*").alias("n_docs"))
    df = tf.groupBy(*corpus, term).agg(F.count("*").alias("df"))
    idf = (df.join(n_docs, corpus) if corpus else df.crossJoin(n_docs)).withColumn(
        "idf", F.log((F.col("n_docs") + 1) / (F.col("df") + 1)))
    w = tf.join(idf, [*corpus, term]).withColumn("w", F.col("tf") * F.col("idf"))
    norm = w.groupBy(*node).agg(F.sqrt(F.sum(F.col("w") ** 2)).alias("norm"))
    return w.join(norm, node).select(*node, term, "df", "n_docs",
                                     (F.col("w") / F.greatest("norm", F.lit(1e-12))).alias("w"))


def sparse_cosine(pairs: DataFrame, weights_a: DataFrame, weights_b: DataFrame, pair: list[str],
                  term: str) -> DataFrame:
    """(``pair`` columns) -> the distinct pairs and ``sim``, the dot product of the two sides'
    unit weights over the terms they share; pairs that share none are left out.

    ``weights_a`` holds the A side's columns of ``pair`` it joins on, ``term`` and ``wa``;
    ``weights_b`` likewise with ``wb``."""
    on_a = [c for c in pair if c in weights_a.columns]
    on_b = [c for c in pair if c in weights_b.columns]
    return (pairs.select(*pair).distinct().join(weights_a, on_a).join(weights_b, on_b + [term])
            .groupBy(*pair).agg(F.sum(F.col("wa") * F.col("wb")).alias("sim")))

"""block.method ``names``: TF-IDF over character n-grams of the normalised name (robust to
typos, abbreviations and reordered tokens), cosine similarity computed by an inverted-index join
on shared n-grams, then the ``top_k`` best partners of each entity, from each side. n-grams
found in more than ``max_df`` of a type's names are dropped before the join: they carry almost
no weight and would make the join quadratic.

For large graphs (docs/scaling.md): ``unit: words`` joins on words instead of n-grams
(``word_pairs``: and on pairs of adjacent words), ``max_postings`` drops any term more than
that many names of a side hold (at most max_postings² pairs per term), ``max_pairs_per_name``
drops the most crowded terms until the join makes at most that many rows per name (a bound on
the whole join, not on one term), and ``prefix`` finds pairs only through each name's rarest
terms (prefix filtering), still scoring them on every shared term.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from pipeline.blocking import BlockInputs, Found, keep_top_k
from pipeline.schema import KG_A, KG_B
from pipeline.text import name_key, sparse_cosine, unit_tfidf, words

if TYPE_CHECKING:
    from pipeline.config import BlockConfig

log = logging.getLogger("kgmerge")
NEEDS_NAMES = True


def candidates(inputs: BlockInputs) -> Found:
    cfg = inputs.cfg
    # computed once: the crowded-gram counts, the budget, the join and the graph add-on read it
    weights = ngram_weights(inputs.nodes, cfg.ngram, cfg.max_df, cfg.unit).persist(StorageLevel.MEMORY_AND_DISK)
    return Found(top_k_pairs(weights, cfg, inputs.names_per_type), name_weights=weights)


def ngram_weights(nodes: DataFrame, n: int, max_df: float, unit: str = "chars") -> DataFrame:
    """(kg, type, id, gram, w): L2-normalised TF-IDF weights of each node's character n-grams
    (``unit`` "chars"), words ("words"), or words and adjacent word pairs ("word_pairs"), the
    document frequencies counted within the node's type."""
    if unit in ("words", "word_pairs"):
        name_words = words(name_key(F.col("name")))
        terms = name_words if unit == "words" else F.concat(name_words, adjacent_word_pairs(name_words))
        grams = nodes.select("kg", "type", "id", F.explode(terms).alias("gram"))
    else:
        padded = F.concat(F.lit(" "), name_key(F.col("name")), F.lit(" "))
        grams = nodes.select("kg", "type", "id", padded.alias("s")).select(
            "kg", "type", "id",
            F.explode(F.expr(f"transform(sequence(1, greatest(length(s) - {n - 1}, 1)), i -> substring(s, i, {n}))"))
            .alias("gram"),
        )
    w = unit_tfidf(grams, node=["kg", "type", "id"], term="gram", documents=nodes, corpus=["type"])
    # a small type (ten years) keeps all its grams; otherwise the very common ones go
    frequent = (F.col("df") > F.col("n_docs") * max_df) & (F.col("df") > 20)
    return w.where(~frequent).select("kg", "type", "id", "gram", "w")

def adjacent_word_pairs(words: Column) -> Column:
    """["deep", "graph", "networks"] -> ["deep graph", "graph networks"]. On a large graph every
    common word is crowded (held by more names than ``max_postings``) and dropped; the pairs of
    words next to each other are far rarer and still find the names that share them."""
    rest = F.greatest(F.size(words) - 1, F.lit(0))
    return F.zip_with(F.slice(words, 1, rest), F.slice(words, 2, rest), lambda x, y: F.concat_ws(" ", x, y))

def rarest_grams(weights: DataFrame, prefix: int) -> DataFrame:
    """Each node's ``prefix`` heaviest grams (highest TF-IDF: its rarest)."""
    rank = F.row_number().over(Window.partitionBy("kg", "id").orderBy(F.desc("w"), "gram"))
    return weights.withColumn("rank", rank).where(F.col("rank") <= prefix).drop("rank")

def gram_sizes(weights: DataFrame) -> DataFrame:
    """(type, gram, n_a, n_b, size): how many names of each side hold each gram; its size (how
    crowded it is) is the larger of the two."""
    return (weights.groupBy("type", "gram")
            .agg(F.count_if(F.col("kg") == KG_A).alias("n_a"), F.count_if(F.col("kg") == KG_B).alias("n_b"))
            .withColumn("size", F.greatest("n_a", "n_b")))

def keep_grams(weights: DataFrame, sizes: DataFrame, limit: Column) -> DataFrame:
    """The weights of the grams whose size (``gram_sizes``) is at most ``limit``."""
    return weights.join(sizes.where(F.col("size") <= limit).select("type", "gram"), ["type", "gram"], "left_semi")

def without_crowded_grams(weights: DataFrame, max_postings: int) -> DataFrame:
    """Drops the grams that more than ``max_postings`` names of one side and type hold."""
    return keep_grams(weights, gram_sizes(weights), F.lit(max_postings))

def posting_limit(rows_by_size: list[tuple[int, int]], budget: float) -> int:
    """The largest posting size s such that the terms no side of which more than s names hold
    join into at most ``budget`` rows. ``rows_by_size``: (s, rows the terms of size s make)."""
    limit, rows = 0, 0
    for size, n in sorted(rows_by_size):
        rows += n
        if rows > budget:
            break
        limit = size
    return limit

def within_pair_budget(weights: DataFrame, rows_per_name: float, names_per_type: dict[str, int],
                       max_postings: int | None = None) -> DataFrame:
    """Drops the most crowded grams of each type until its join makes at most ``rows_per_name``
    rows per name of the type (one (A name, B name, gram) row per pair of names sharing a gram),
    and any gram larger than ``max_postings``: one size limit per type for both settings."""
    sizes = gram_sizes(weights)
    shared = sizes.where((F.col("n_a") > 0) & (F.col("n_b") > 0))
    if max_postings:
        shared = shared.where(F.col("size") <= max_postings)
    rows_by_size = shared.groupBy("type", "size").agg(F.sum(F.col("n_a") * F.col("n_b")).alias("rows")).collect()
    limits = {
        t: posting_limit([(r["size"], r["rows"]) for r in rows_by_size if r["type"] == t], rows_per_name * n)
        for t, n in names_per_type.items()
    }
    if max_postings:
        limits = {t: min(k, max_postings) for t, k in limits.items()}
    log.info("block: a budget of %s rows per name keeps the grams held by at most %s names of a side",
             rows_per_name, dict(sorted(limits.items())))
    limit = F.create_map(*[x for t, k in limits.items() for x in (F.lit(t), F.lit(k))])
    return keep_grams(weights, sizes, limit[F.col("type")])

def top_k_pairs(weights: DataFrame, cfg: BlockConfig, names_per_type: dict[str, int]) -> DataFrame:
    """The ``top_k`` best partners of each name by the TF-IDF cosine over shared grams.
    ``weights`` is read more than once: pass it persisted."""
    # The join multiplies rows (every A and B name sharing a gram), while its inputs are small:
    # adaptive execution would coalesce them into one partition and run the whole join on one
    # core. An explicit repartition by gram is never coalesced, so the join stays spread.
    parts = int(weights.sparkSession.conf.get("spark.sql.shuffle.partitions"))
    if cfg.max_pairs_per_name:
        weights = within_pair_budget(weights, cfg.max_pairs_per_name, names_per_type, cfg.max_postings)
    elif cfg.max_postings:
        weights = without_crowded_grams(weights, cfg.max_postings)

    def side(kg: str, df: DataFrame) -> DataFrame:
        suffix = kg.lower()
        return df.where(F.col("kg") == kg).select(
            "type", "gram", F.col("id").alias(f"id_{suffix}"), F.col("w").alias(f"w{suffix}")
        ).repartition(parts, "gram")

    a, b = side(KG_A, weights), side(KG_B, weights)
    if cfg.prefix:
        # prefix filtering: a pair is found through a gram that is among the rarest of at least
        # one of its names; its score still sums every gram the two names share
        rare = rarest_grams(weights, cfg.prefix)
        found = (side(KG_A, rare).join(b, ["type", "gram"]).select("type", "id_a", "id_b")
                 .union(a.join(side(KG_B, rare), ["type", "gram"]).select("type", "id_a", "id_b"))
                 .distinct())
        shared = (found.join(a, ["type", "id_a"]).join(b, ["type", "id_b", "gram"]))
    else:
        shared = a.join(b, ["type", "gram"])
    sims = (
        shared
        .groupBy("type", "id_a", "id_b")
        # rounded: Spark sums in no fixed order, and the last bits must not change the top k
        .agg(F.round(F.sum(F.col("wa") * F.col("wb")), 9).alias("sim"))
        .where(F.col("sim") >= cfg.min_sim)
    )
    return keep_top_k(sims, cfg, sorted(names_per_type))

def pair_cosine(pairs: DataFrame, weights: DataFrame) -> DataFrame:
    """(id_a, id_b, type) -> (id_a, id_b, type, sim): the TF-IDF cosine of the two names over
    the ``weights`` (``ngram_weights``) they share, 0 where they share none."""
    wa = weights.where(F.col("kg") == KG_A).select(F.col("id").alias("id_a"), "type", "gram", F.col("w").alias("wa"))
    wb = weights.where(F.col("kg") == KG_B).select(F.col("id").alias("id_b"), "type", "gram", F.col("w").alias("wb"))
    sims = sparse_cosine(pairs, wa, wb, pair=["id_a", "id_b", "type"], term="gram")
    return pairs.join(sims, ["id_a", "id_b", "type"], "left").select(
        "id_a", "id_b", "type", F.coalesce(F.round("sim", 9), F.lit(0.0)).alias("sim"))

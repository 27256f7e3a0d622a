"""block.method ``names``: TF-IDF over character n-grams of the normalised name (robust to
typos, abbreviations and reordered tokens), the cosine of every two names of a type that share
an n-gram (sparse products in the Python workers, ``sparse_top_k``), then the ``top_k`` best
partners of each entity, from each side. n-grams found in more than ``max_df`` of a type's
names are dropped first: they carry almost no weight and would make the products quadratic.

For large graphs (docs/scaling.md): ``unit: words`` compares words instead of n-grams
(``word_pairs``: and pairs of adjacent words), ``max_postings`` drops any term more than
that many names of a side hold (at most max_postings² pairs per term), ``max_pairs_per_name``
drops the most crowded terms until the products make at most that many (A name, B name, term)
products per name (a bound on the whole, not on one term), and ``prefix`` keeps only pairs
that share one of either name's rarest terms (prefix filtering), still scored on every shared
term.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from pipeline.blocking import BlockInputs, Found, k_of_type
from pipeline.blocking.sparse_top_k import FOUND, top_k_tasks
from pipeline.schema import CANDIDATE, KG_A, KG_B
from pipeline.text import name_key, sparse_cosine, unit_tfidf, words

if TYPE_CHECKING:
    from pipeline.config import BlockConfig

log = logging.getLogger("kgmerge")
NEEDS_NAMES = True


def candidates(inputs: BlockInputs) -> Found:
    cfg = inputs.cfg
    # computed once: the crowded-gram counts, the budget, the products and the graph add-on read it
    weights = ngram_weights(inputs.nodes, cfg.ngram, cfg.max_df, cfg.unit).persist(StorageLevel.MEMORY_AND_DISK)
    return Found(top_k_pairs(weights, cfg, inputs.names_per_type, inputs.scratch), name_weights=weights)


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

def top_k_pairs(weights: DataFrame, cfg: BlockConfig, names_per_type: dict[str, int], scratch: Path) -> DataFrame:
    """The ``top_k`` best partners of each name by the TF-IDF cosine over shared grams, from
    each side: sparse products in the Python workers (``sparse_top_k``), the B names' weights
    written to the folder ``scratch`` (on the warehouse: every worker reads it) for them.
    ``weights`` is read more than once: pass it persisted."""
    if cfg.max_pairs_per_name:
        weights = within_pair_budget(weights, cfg.max_pairs_per_name, names_per_type, cfg.max_postings)
    elif cfg.max_postings:
        weights = without_crowded_grams(weights, cfg.max_postings)
    if cfg.prefix:  # prefix filtering: pairs found only through a gram among the rarest (heaviest) of one name
        rank = F.row_number().over(Window.partitionBy("kg", "id").orderBy(F.desc("w"), "gram"))
        weights = weights.withColumn("rare", rank <= cfg.prefix)
    terms = weights.select("kg", "type", "id", F.xxhash64("gram").alias("term"), "w",
                           *(["rare"] if cfg.prefix else []))
    terms.where(F.col("kg") == KG_B).drop("kg").write.mode("overwrite").parquet(str(scratch))
    # every term of an A name in one task; a repartition, never coalesced by adaptive execution
    parts = int(weights.sparkSession.conf.get("spark.sql.shuffle.partitions"))
    names_a = terms.where(F.col("kg") == KG_A).drop("kg").repartition(parts, "type", "id")
    types = sorted(names_per_type)
    found = names_a.mapInArrow(
        top_k_tasks(str(scratch), {t: cfg.k_for(t) for t in types}, cfg.k_for("default"), cfg.min_sim,
                    bool(cfg.prefix)), FOUND)
    # each A name's top k is exact already (a task sees all of B); each B name's: its best k of
    # the pairs the tasks kept for it
    rank_b = F.row_number().over(Window.partitionBy("type", "id_b").orderBy(F.desc("sim"), "id_a"))
    return (found.withColumn("rank_b", rank_b).where(F.col("a_top") | (F.col("rank_b") <= k_of_type(cfg, types)))
            .select(*CANDIDATE.fieldNames()))

def pair_cosine(pairs: DataFrame, weights: DataFrame) -> DataFrame:
    """(id_a, id_b, type) -> (id_a, id_b, type, sim): the TF-IDF cosine of the two names over
    the ``weights`` (``ngram_weights``) they share, 0 where they share none."""
    wa = weights.where(F.col("kg") == KG_A).select(F.col("id").alias("id_a"), "type", "gram", F.col("w").alias("wa"))
    wb = weights.where(F.col("kg") == KG_B).select(F.col("id").alias("id_b"), "type", "gram", F.col("w").alias("wb"))
    sims = sparse_cosine(pairs, wa, wb, pair=["id_a", "id_b", "type"], term="gram")
    return pairs.join(sims, ["id_a", "id_b", "type"], "left").select(
        "id_a", "id_b", "type", F.coalesce(F.round("sim", 9), F.lit(0.0)).alias("sim"))

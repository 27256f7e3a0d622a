"""block: candidate pairs per node type by name similarity, never all pairs.

``block.method: anchors`` is for graphs without names (structure-only benchmarks): an A node
and a B node are candidates when seed links join their neighbours (``anchor_sims``); nodes with
no linked neighbour get no candidates, which pair completeness then shows.

Method: TF-IDF over character n-grams of the normalised name (robust to typos, abbreviations
and reordered tokens), cosine similarity computed by an inverted-index join on shared n-grams,
then the ``top_k`` best partners of each entity, from each side. n-grams found in more than
``max_df`` of a type's names are dropped before the join: they carry almost no weight and
would make the join quadratic. For large graphs (docs/scaling.md): ``unit: words`` joins on
words instead of n-grams (``word_pairs``: and on pairs of adjacent words), ``max_postings``
drops any term more than that many names of a side hold (at most max_postings² pairs per
term), ``max_pairs_per_name`` drops the most crowded terms until the join makes at most that
many rows per name (a bound on the whole join, not on one term), and ``prefix`` finds pairs
only through each name's rarest terms (prefix filtering), still scoring them on every shared
term.

``vector_top_k`` adds, per type, each name's k nearest names of the other side by the level-0
name vector (the features stage's MiniLM vectors, cosine; ``nearest_names``), for what shares
no n-gram: names in two languages, reworded titles. Exact (every A name against every B name
of the type, in chunks), so bounded by ``vector_max_products``; a pair both methods find keeps
the higher of its two similarities. ``vector_blocks`` names the level-0 blocks compared, each on
its own: ``name``, and/or ``anchor_profile`` (where the seed links lie around each node;
pipeline/anchor_profile.py), for graphs without names or with names in two languages.

``graph_proposals`` adds, after the name candidates, the pairs proposed through the graph
(``graph_proposals``): the neighbours of each confidently matched pair (mutual best, sim >=
``graph_min_sim``) under the same relation and direction, of the same type, scored by their
name cosine (``pair_cosine``); for names too common for any term to block (author names at a
million per side). Nodes with more than ``graph_max_degree`` neighbours by a relation propose
none by it, which bounds the join by confident pairs x graph_max_degree^2 per relation.

Writes ``candidates`` (CANDIDATE) and ``blocking.json``: candidate count, reduction ratio,
pair completeness against the gold links (per split, and per type), candidates per entity,
and with graph proposals how many they added.
"""
from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from model.level0 import block_columns, feature_blocks, load_feature_matrix
from pipeline.config import BlockConfig
from pipeline.pairs import mutual_best
from pipeline.schema import CANDIDATE, KG_A, KG_B
from pipeline.stage import StageContext, StageResult
from pipeline.text import name_key, sparse_cosine, unit_tfidf, words

log = logging.getLogger("kgmerge")


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


def keep_top_k(sims: DataFrame, cfg: BlockConfig, types: list[str]) -> DataFrame:
    """(type, id_a, id_b, sim) -> the ``top_k`` best partners of each entity, from each side."""
    k = F.create_map(*[x for t in types for x in (F.lit(t), F.lit(cfg.k_for(t)))])
    k_of_type = F.coalesce(k[F.col("type")], F.lit(cfg.k_for("default")))
    rank_a = F.row_number().over(Window.partitionBy("type", "id_a").orderBy(F.desc("sim"), "id_b"))
    rank_b = F.row_number().over(Window.partitionBy("type", "id_b").orderBy(F.desc("sim"), "id_a"))
    ranked = sims.withColumn("rank_a", rank_a).withColumn("rank_b", rank_b)
    return ranked.where((F.col("rank_a") <= k_of_type) | (F.col("rank_b") <= k_of_type)).select(
        *CANDIDATE.fieldNames()
    )


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


def pair_cosine(pairs: DataFrame, weights: DataFrame) -> DataFrame:
    """(id_a, id_b, type) -> (id_a, id_b, type, sim): the TF-IDF cosine of the two names over
    the ``weights`` (``ngram_weights``) they share, 0 where they share none."""
    wa = weights.where(F.col("kg") == KG_A).select(F.col("id").alias("id_a"), "type", "gram", F.col("w").alias("wa"))
    wb = weights.where(F.col("kg") == KG_B).select(F.col("id").alias("id_b"), "type", "gram", F.col("w").alias("wb"))
    sims = sparse_cosine(pairs, wa, wb, pair=["id_a", "id_b", "type"], term="gram")
    return pairs.join(sims, ["id_a", "id_b", "type"], "left").select(
        "id_a", "id_b", "type", F.coalesce(F.round("sim", 9), F.lit(0.0)).alias("sim"))


def diagnostics(nodes: DataFrame, cands: DataFrame, gold: DataFrame) -> dict:
    sizes = {(r["kg"], r["type"]): r["count"] for r in nodes.groupBy("kg", "type").count().collect()}
    types = {t for _, t in sizes}
    all_pairs = sum(sizes.get((KG_A, t), 0) * sizes.get((KG_B, t), 0) for t in types)
    per_type = {
        r["type"]: {"candidates": r["n"], "entities_a": r["ents"], "mean_per_entity": round(r["mean"], 2),
                    "max_per_entity": r["max"]}
        for r in cands.groupBy("type", "id_a").count().groupBy("type").agg(
            F.sum("count").alias("n"), F.count("*").alias("ents"), F.mean("count").alias("mean"),
            F.max("count").alias("max")).collect()
    }
    n_cands = sum(t["candidates"] for t in per_type.values())
    # one pass over the gold links: found or not, per split and type
    hit = cands.select("id_a", "id_b", "type", F.lit(1).alias("found"))
    counts = gold.join(hit, ["id_a", "id_b", "type"], "left").groupBy("split", "type").agg(
        F.count("*").alias("total"), F.count("found").alias("found")).collect()
    by_split: dict = {}
    for r in counts:
        total, found = by_split.get(r["split"], (0, 0))
        by_split[r["split"]] = (total + r["total"], found + r["found"])
        per_type.setdefault(r["type"], {}).setdefault("gold_links", 0)
        per_type[r["type"]]["gold_links"] += r["total"]
        per_type[r["type"]]["gold_found"] = per_type[r["type"]].get("gold_found", 0) + r["found"]
    for figures in per_type.values():
        if figures.get("gold_links"):
            figures["pair_completeness"] = round(figures.pop("gold_found") / figures["gold_links"], 5)
    completeness = {}
    total, found = sum(t for t, _ in by_split.values()), sum(f for _, f in by_split.values())
    if total:
        completeness["all"] = round(found / total, 5)
    for split in ("train", "valid", "test"):
        if by_split.get(split, (0, 0))[0]:
            completeness[split] = round(by_split[split][1] / by_split[split][0], 5)
    return {
        "candidates": n_cands,
        "comparisons_without_blocking": all_pairs,
        "reduction_ratio": round(1 - n_cands / all_pairs, 6) if all_pairs else None,
        "pair_completeness": completeness,
        "per_type": per_type,
    }


def nearest_names(vec_a: np.ndarray, vec_b: np.ndarray, k: int,
                  chunk: int = 2048) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row of ``vec_a``'s k most similar rows of ``vec_b`` and each row of ``vec_b``'s k
    most similar rows of ``vec_a``, by cosine. Returns (row in a, row in b, cosine), every pair
    once, sorted by (row in a, row in b). Memory: one chunk of rows times the other side."""
    unit_a, unit_b = (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12) for v in (vec_a, vec_b))

    def best(query: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        top = min(k, len(base))
        rows, cols = [], []
        for start in range(0, len(query), chunk):
            sims = query[start:start + chunk] @ base.T
            cols.append(np.argpartition(-sims, top - 1, axis=1)[:, :top].ravel())
            rows.append(np.repeat(np.arange(start, start + len(sims)), top))
        return np.concatenate(rows), np.concatenate(cols)

    if not len(unit_a) or not len(unit_b) or k == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, np.float32)
    a_rows, b_of_a = best(unit_a, unit_b)
    b_rows, a_of_b = best(unit_b, unit_a)
    keys = np.unique(np.concatenate([a_rows * len(unit_b) + b_of_a, a_of_b * len(unit_b) + b_rows]))
    rows_a, rows_b = keys // len(unit_b), keys % len(unit_b)
    return rows_a, rows_b, np.einsum("ij,ij->i", unit_a[rows_a], unit_b[rows_b])


def vector_candidates(ctx: StageContext) -> DataFrame:
    """(id_a, id_b, type, sim): ``nearest_names`` over each level-0 block of
    ``block.vector_blocks`` (name vectors, anchor profiles), per type, on the driver (the vectors
    are one local Arrow file, as the model reads them); a pair found by two blocks keeps the
    higher similarity."""
    cfg, paths = ctx.config.block, ctx.paths
    index = pq.read_table(str(paths.node_index), columns=["nid", "kg", "id", "type"]).to_pandas()
    names = index.groupby(["type", "kg"]).size()
    for node_type in sorted(index["type"].unique()):
        n_a, n_b = names.get((node_type, KG_A), 0), names.get((node_type, KG_B), 0)
        if n_a * n_b > cfg.vector_max_products:
            raise ValueError(
                f"block.vector_top_k compares every name of a type with every name of the other side: type "
                f"{node_type!r} has {n_a:,} x {n_b:,} names, above block.vector_max_products "
                f"({cfg.vector_max_products:.3g}). Set block.vector_top_k: 0 for graphs this large "
                f"(docs/scaling.md), or raise the limit if the driver can afford it")
    blocks = feature_blocks(paths.node_features)
    held = [name for name, _ in blocks]
    missing = [name for name in cfg.vector_blocks if name not in held]
    if missing:
        raise ValueError(f"block.vector_blocks asks for {missing} but the level-0 features hold only {held}: "
                         f"set features.anchor_hops (> 0) to make anchor profiles, or drop it from vector_blocks")
    matrix = load_feature_matrix(paths.node_features)
    found = []
    for block in cfg.vector_blocks:
        vectors = matrix[:, block_columns(blocks, block)]
        by_block = []
        for node_type, nodes in index.groupby("type", sort=True):
            a = nodes[nodes["kg"] == KG_A].sort_values("id")
            b = nodes[nodes["kg"] == KG_B].sort_values("id")
            rows_a, rows_b, sims = nearest_names(vectors[a["nid"].to_numpy()], vectors[b["nid"].to_numpy()],
                                                 cfg.vector_top_k)
            by_block.append(pd.DataFrame({"id_a": a["id"].to_numpy()[rows_a], "id_b": b["id"].to_numpy()[rows_b],
                                          "type": node_type, "sim": sims.astype(np.float64).round(9)}))
        log.info("block: %d pairs by the %s block (%d nearest per node, both sides)",
                 sum(len(f) for f in by_block), block, cfg.vector_top_k)
        found += by_block
    pairs = pd.concat(found, ignore_index=True) if found else pd.DataFrame(columns=CANDIDATE.fieldNames())
    pairs = pairs.groupby(["id_a", "id_b", "type"], as_index=False, sort=False)["sim"].max()
    return ctx.spark.createDataFrame(pairs[CANDIDATE.fieldNames()], CANDIDATE)


def with_vector_candidates(cands: DataFrame, by_vector: DataFrame) -> DataFrame:
    """The union of both candidate sets; a pair both found keeps the higher similarity."""
    return (cands.unionByName(by_vector).groupBy("id_a", "id_b", "type").agg(F.max("sim").alias("sim"))
            .select(*CANDIDATE.fieldNames()))


def run(ctx: StageContext) -> StageResult:
    spark, paths, cfg = ctx.spark, ctx.paths, ctx.config.block
    nodes = spark.read.parquet(str(paths.nodes))
    gold = spark.read.parquet(str(paths.gold))
    names_per_type = {r["type"]: r["count"] for r in nodes.groupBy("type").count().collect()}
    weights = None
    if cfg.method == "names":
        # computed once: the crowded-gram counts, the budget and the join each read it
        weights = ngram_weights(nodes, cfg.ngram, cfg.max_df, cfg.unit).persist(StorageLevel.MEMORY_AND_DISK)
        cands = top_k_pairs(weights, cfg, names_per_type)
    else:
        cands = anchor_candidates(nodes, spark.read.parquet(str(paths.edges)), gold, cfg, sorted(names_per_type))
    if cfg.vector_top_k:
        cands = with_vector_candidates(cands, vector_candidates(ctx))
    n_by_name = None
    if cfg.graph_proposals:
        # the name candidates are read twice (their confident pairs, then the union): once to disk
        cands.write.mode("overwrite").parquet(str(paths.name_candidates))
        cands = spark.read.parquet(str(paths.name_candidates))
        n_by_name = cands.count()
        proposed = graph_proposals(cands, spark.read.parquet(str(paths.edges)), nodes, cfg)
        proposed = proposed.join(cands.select("id_a", "id_b", "type"), ["id_a", "id_b", "type"], "left_anti")
        proposed = pair_cosine(proposed, weights) if weights is not None else proposed.withColumn("sim", F.lit(0.0))
        cands = cands.unionByName(proposed.select(*CANDIDATE.fieldNames()))
    cands.write.mode("overwrite").parquet(str(paths.candidates))
    if weights is not None:
        weights.unpersist()
    shutil.rmtree(paths.name_candidates, ignore_errors=True)
    cands = spark.read.parquet(str(paths.candidates))
    report = diagnostics(nodes, cands, gold)
    if n_by_name is not None:
        report["graph_proposed"] = report["candidates"] - n_by_name
        log.info("block: %d candidates by name, %d more proposed through the graph (neighbours of matched pairs)",
                 n_by_name, report["graph_proposed"])
    paths.blocking_report.write_text(json.dumps(report, indent=2))
    return StageResult(
        rows_in=nodes.count(), rows_out=report["candidates"],
        details={"reduction_ratio": report["reduction_ratio"],
                 **({"graph_proposed": report["graph_proposed"]} if "graph_proposed" in report else {}),
                 "pair_completeness": report["pair_completeness"].get("all"),
                 "per_type": report["per_type"]},
    )

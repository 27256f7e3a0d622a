"""Level-0 features beyond the MiniLM name vector (numbers, lexical terms, identity vectors)
and structure-only blocking, on real Spark."""
from __future__ import annotations

import numpy as np
import pytest

from pyspark.sql import functions as F

from pipeline.blocking.seed_links import anchor_sims
from pipeline.evidence import code_conflict, lexical_similarity
from pipeline.features import identifier_codes, identity_vector, lexical_terms, lexical_text, parse_number


def test_numbers_money_durations_and_dates_parse(spark):
    values = ["$ 1,299.00", "7.50 %", "3:01", "2015-03-31", "31-Mar-15", "n/a", None]
    df = spark.createDataFrame([(v,) for v in values], "v string")
    got = [r.x for r in df.select(parse_number(df.v).alias("x")).collect()]
    assert got[0] == pytest.approx(1299.0)
    assert got[1] == pytest.approx(7.5)
    assert got[2] == pytest.approx(181.0)  # m:ss as seconds
    assert got[3] == pytest.approx(2015 + 89 / 366)  # a date as a fractional year
    assert got[4] == pytest.approx(got[3])
    assert got[5] is None and got[6] is None


def test_lexical_terms_are_unit_length_and_favour_shared_codes(spark):
    texts = ["sony cyber-shot dsc-w55 camera", "sony dsc-w55 7.2mp digital camera",
             "sony cyber-shot dsc-w35 camera", "", "東京 タワー"]
    df = spark.createDataFrame([("A", str(i), t) for i, t in enumerate(texts)], "kg string, id string, text string")
    terms = lexical_terms(df).withColumn("nid", F.col("id").cast("int")).select("nid", "term", "w")
    norms = {r.nid: r.n for r in terms.groupBy("nid").agg(F.sqrt(F.sum(F.col("w") ** 2)).alias("n")).collect()}
    assert norms[0] == pytest.approx(1.0, abs=1e-5) and norms[4] == pytest.approx(1.0, abs=1e-5)  # any script
    assert 3 not in norms  # nothing to weigh: no terms, not NaN
    pairs = spark.createDataFrame([(0, 1), (2, 1), (3, 1), (9, 9)], "nid_a int, nid_b int")
    sim = {(r.nid_a, r.nid_b): r.lex_sim for r in lexical_similarity(pairs, terms).collect()}
    assert sim[(0, 1)] > sim[(2, 1)] > 0  # "dsc-w55" shared beats "cyber-shot ... camera" shared
    assert sim[(3, 1)] == 0.0 and sim[(9, 9)] == 0.0  # a node without terms: 0, the row kept
    same = lexical_similarity(spark.createDataFrame([(0, 0)], "nid_a int, nid_b int"), terms).first()
    assert same.lex_sim == pytest.approx(1.0, abs=1e-5)


def test_squeezed_grams_bridge_word_boundaries(spark):
    texts = ["adobe photoshop cs2 upgrade", "adobe photoshopcs2 upgrade", "adobe illustrator cs2 upgrade", ""]
    df = spark.createDataFrame([("A", str(i), t) for i, t in enumerate(texts)], "kg string, id string, text string")
    pairs = spark.createDataFrame([(0, 1), (2, 1)], "nid_a int, nid_b int")

    def sims(squeezed_grams):
        terms = (lexical_terms(df, squeezed_grams).withColumn("nid", F.col("id").cast("int"))
                 .select("nid", "term", "w"))
        return terms, {(r.nid_a, r.nid_b): r.lex_sim for r in lexical_similarity(pairs, terms).collect()}

    plain_terms, plain = sims(False)
    terms, bridged = sims(True)
    assert plain_terms.where(F.col("term").startswith("q:")).count() == 0  # off: the old terms
    assert terms.where("nid = 0 and term = 'q:pcs2'").count() == 1  # across "photoshop cs2"
    assert terms.where("nid = 3").count() == 0  # an empty text still has no terms
    assert bridged[(0, 1)] > plain[(0, 1)]  # the squeezed grams bring the split title closer
    assert bridged[(0, 1)] - bridged[(2, 1)] > plain[(0, 1)] - plain[(2, 1)]


def test_identifier_codes_conflict_only_where_both_records_have_codes_and_none_agrees(spark):
    texts = ["vantec nexstar se sata rack mrk-515st",       # 0
             "vantec nexstar se dual sata rack mrk-525st",  # 1: another model number
             "vantec nexstar rack mrk515st",                # 2: the same, punctuation aside
             "digipower tripod tp-tr47dbl",                 # 3
             "digipower tp tr47dbl tripod dark blue",       # 4: the code split in two words
             "vantec sata rack 2.5 inch 500gb",             # 5: "500gb" is a code, "2.5" not
             "a plain title with no codes"]                 # 6
    df = spark.createDataFrame([("A", str(i), t) for i, t in enumerate(texts)], "kg string, id string, text string")
    codes = identifier_codes(df).withColumn("nid", F.col("id").cast("int"))
    got = {r.nid: (sorted(r.codes), r.squeezed) for r in codes.collect()}
    assert got[0] == (["mrk515st"], "vantecnexstarsesatarackmrk515st")
    assert got[5][0] == ["500gb"] and 6 not in got  # no codes, no row
    pairs = spark.createDataFrame([(0, 1), (0, 2), (3, 4), (0, 6), (9, 0)], "nid_a int, nid_b int")
    conflict = {(r.nid_a, r.nid_b): r.code_conflict for r in code_conflict(pairs, codes).collect()}
    assert conflict == {(0, 1): 1.0, (0, 2): 0.0, (3, 4): 0.0, (0, 6): 0.0, (9, 0): 0.0}
    assert code_conflict(pairs, None).where("code_conflict != 0").count() == 0  # switched off


def test_record_text_joins_the_linked_values(spark):
    nodes = spark.createDataFrame(
        [("A", "p1", "sony camera"), ("A", "m1", "dscw55"), ("A", "c1", "cameras"), ("A", "b1", "sony")],
        "kg string, id string, name_key string")
    edges = spark.createDataFrame([("A", "p1", "has_model", "m1"), ("A", "p1", "in_category", "c1"),
                                   ("A", "p1", "has_brand", "b1")], "kg string, src string, rel string, dst string")
    text = {r.id: r.text for r in lexical_text(nodes, edges, ["has_model", "has_brand"]).collect()}
    assert text["p1"] == "sony camera dscw55 sony"  # the name, then the linked names sorted
    assert text["m1"] == "dscw55"


def test_anchor_blocking_pairs_nodes_whose_neighbours_are_linked(spark):
    """Structure-only blocking: x and x' share two seed-linked neighbours, y and y' one, z has none."""
    edges = spark.createDataFrame(
        [("A", "x", "r", "s1"), ("A", "x", "r", "s2"), ("A", "y", "r", "s2"), ("A", "z", "r", "w"),
         ("B", "x'", "r", "t1"), ("B", "t2", "r", "x'"), ("B", "y'", "r", "t2")],
        "kg string, src string, rel string, dst string")
    seeds = spark.createDataFrame([("s1", "t1"), ("s2", "t2")], "id_a string, id_b string")
    sim = {(r.id_a, r.id_b): r.sim for r in anchor_sims(edges, seeds, max_degree=10).collect()}
    assert sim[("x", "x'")] > sim[("x", "y'")] > 0  # two shared anchors beat one (edges either way)
    assert ("y", "y'") in sim and not any(a == "z" for a, _ in sim)
    # a hub anchor (degree above the cap) is skipped
    assert ("y", "y'") not in {(r.id_a, r.id_b) for r in anchor_sims(edges, seeds, max_degree=1).collect()}


def test_graph_proposals_pair_the_neighbours_of_confidently_matched_pairs(spark):
    """Papers p/q match by name (mutual best, sim 0.95); their authors share no name term, so
    only the graph proposes them, and only under the same relation and direction: the authors
    of p and q, not p's author with q's venue, nor the authors of the unsure pair r/s. A node
    with more neighbours by a relation than graph_max_degree proposes none by it."""
    from pipeline.blocking.graph import graph_proposals
    from pipeline.blocking.names import pair_cosine
    from pipeline.config import BlockConfig

    nodes = spark.createDataFrame(
        [("A", "p", "paper"), ("A", "r", "paper"), ("A", "a1", "author"), ("A", "a2", "author"),
         ("A", "a3", "author"), ("A", "v", "venue"),
         ("B", "q", "paper"), ("B", "s", "paper"), ("B", "b1", "author"), ("B", "b3", "author"),
         ("B", "w", "venue")], "kg string, id string, type string")
    edges = spark.createDataFrame(
        [("A", "p", "written_by", "a1"), ("A", "p", "written_by", "a2"), ("A", "r", "written_by", "a3"),
         ("A", "p", "published_in", "v"), ("A", "r", "published_in", "v"),
         ("B", "q", "written_by", "b1"), ("B", "s", "written_by", "b3"),
         ("B", "q", "published_in", "w"), ("B", "s", "published_in", "w")],
        "kg string, src string, rel string, dst string")
    cands = spark.createDataFrame(
        [("p", "q", "paper", 0.95), ("p", "s", "paper", 0.30), ("r", "s", "paper", 0.50)],
        "id_a string, id_b string, type string, sim double")
    cfg = BlockConfig(graph_proposals=True, graph_min_sim=0.8, graph_max_degree=2)
    proposed = {(r.id_a, r.id_b, r.type) for r in graph_proposals(cands, edges, nodes, cfg).collect()}
    assert proposed == {("a1", "b1", "author"), ("a2", "b1", "author"), ("v", "w", "venue")}
    capped = BlockConfig(graph_proposals=True, graph_min_sim=0.8, graph_max_degree=1)  # p has two authors: above the cap
    assert {r.type for r in graph_proposals(cands, edges, nodes, capped).collect()} == {"venue"}
    # the proposals' similarity: the cosine over the name terms they share, 0 where none
    weights = spark.createDataFrame(
        [("A", "author", "a1", "smi", 0.6), ("A", "author", "a1", "jon", 0.8),
         ("B", "author", "b1", "smi", 1.0)], "kg string, type string, id string, gram string, w double")
    pairs = spark.createDataFrame([("a1", "b1", "author"), ("a2", "b1", "author")], "id_a string, id_b string, type string")
    sims = {(r.id_a, r.id_b): r.sim for r in pair_cosine(pairs, weights).collect()}
    assert sims == {("a1", "b1"): pytest.approx(0.6), ("a2", "b1"): 0.0}
    # matched venues propose their papers, {p, r} x {q, s}, unless they hold more than the cap
    venues = spark.createDataFrame([("v", "w", "venue", 0.99)], "id_a string, id_b string, type string, sim double")
    assert graph_proposals(venues, edges, nodes, cfg).count() == 4
    assert graph_proposals(venues, edges, nodes, capped).count() == 0


def test_word_blocking_caps_crowded_terms_and_prefix_finds_the_same_best_pairs(spark, tmp_path):
    """block.unit words, max_postings and prefix (the settings for large graphs)."""
    from pipeline.blocking.names import ngram_weights, top_k_pairs, without_crowded_grams
    from pipeline.config import BlockConfig

    titles = ["graph alignment of knowledge bases", "deep graph networks", "graph queries over streams",
              "graph partitioning heuristics", "entity resolution with graph rules"]
    rows = [(kg, "paper", f"{kg}{i}", (t if kg == "A" else t.replace("graph", "graphs", 1)) + " revisited" * (i < 4))
            for kg in ("A", "B") for i, t in enumerate(titles)]
    nodes = spark.createDataFrame(rows, "kg string, type string, id string, name string")

    def best(cfg: BlockConfig) -> dict[str, str]:
        weights = ngram_weights(nodes, cfg.ngram, cfg.max_df, cfg.unit)
        pairs = top_k_pairs(weights, cfg, {"paper": 10}, tmp_path / "terms").collect()
        return {a: max((p for p in pairs if p.id_a == a), key=lambda p: p.sim).id_b
                for a in {p.id_a for p in pairs}}, len(pairs)

    base = dict(unit="words", max_df=1.0, min_sim=0.01, top_k={"default": 2})
    found, n_all = best(BlockConfig(**base))
    assert found == {f"A{i}": f"B{i}" for i in range(5)}
    weights = ngram_weights(nodes, 3, 1.0, "words")
    assert "graph" in {r.gram for r in weights.collect()}  # words, not character n-grams
    # "revisited" is in four names of each side: capped at three postings it is dropped, and the
    # pairs that only it joined go
    assert "revisited" not in {r.gram for r in without_crowded_grams(weights, 3).collect()}
    capped, n_capped = best(BlockConfig(**base, max_postings=3))
    assert capped == found and n_capped < n_all
    # through each name's two rarest words only: the same best partner for every paper
    assert best(BlockConfig(**base, prefix=2))[0] == found


def test_posting_limit_is_the_largest_size_within_the_budget():
    from pipeline.blocking.names import posting_limit

    rows_by_size = [(3, 90), (1, 10), (2, 40)]  # (size, rows), in any order
    assert posting_limit(rows_by_size, 50) == 2  # 10 + 40 rows fit; the size-3 terms' 90 do not
    assert posting_limit(rows_by_size, 140) == 3
    assert posting_limit(rows_by_size, 49) == 1
    assert posting_limit(rows_by_size, 5) == 0  # not even the single-name terms fit


def test_pair_budget_drops_the_most_crowded_words_first(spark, tmp_path):
    """block.max_pairs_per_name bounds the whole join: the words most names share go first,
    the rare words that tell the names apart stay, and the best partners do not change."""
    from pipeline.blocking.names import ngram_weights, top_k_pairs, within_pair_budget
    from pipeline.config import BlockConfig

    # "of" and "data" in all six names of a side (36 rows each), "graph" in four (16), each
    # topic word in one (1)
    topics = ["alignment", "streams", "queries", "rules", "partitioning", "embedding"]
    rows = [(kg, "paper", f"{kg}{i}", f"{'graph ' if i < 4 else ''}{t} of data")
            for kg in ("A", "B") for i, t in enumerate(topics)]
    nodes = spark.createDataFrame(rows, "kg string, type string, id string, name string")
    weights = ngram_weights(nodes, 3, 1.0, "words").cache()
    kept = {r.gram for r in within_pair_budget(weights, 4.0, {"paper": 12}).collect()}
    # 4 rows per name x 12 names = 48 rows: the topic words (6) and "graph" (16) fit, "of" and
    # "data" (72 more) do not
    assert kept == set(topics) | {"graph"}
    cfg = BlockConfig(unit="words", max_df=1.0, min_sim=0.01, top_k={"default": 1}, max_pairs_per_name=4.0)
    pairs = {(p.id_a, p.id_b) for p in top_k_pairs(weights, cfg, {"paper": 12}, tmp_path / "terms").collect()}
    assert pairs == {(f"A{i}", f"B{i}") for i in range(6)}


def test_word_pairs_find_names_whose_every_word_is_crowded(spark, tmp_path):
    """On a large graph every common word is held by more names than max_postings and dropped;
    block.unit word_pairs still joins names through their adjacent word pairs."""
    from pipeline.blocking.names import ngram_weights, top_k_pairs
    from pipeline.config import BlockConfig

    titles = ["alpha beta gamma", "beta gamma alpha", "gamma alpha beta", "alpha gamma beta"]
    nodes = spark.createDataFrame([(kg, "paper", f"{kg}{i}", t) for kg in ("A", "B") for i, t in enumerate(titles)],
                                  "kg string, type string, id string, name string")

    def pairs(unit: str) -> set[tuple[str, str]]:
        cfg = BlockConfig(unit=unit, max_df=1.0, min_sim=0.01, top_k={"default": 1}, max_postings=3)
        return {(p.id_a, p.id_b) for p in
                top_k_pairs(ngram_weights(nodes, cfg.ngram, cfg.max_df, cfg.unit), cfg, {"paper": 8},
                            tmp_path / "terms").collect()}

    assert pairs("words") == set()  # each word is in all four names of a side: every one is dropped
    terms = {r.gram for r in ngram_weights(nodes, 3, 1.0, "word_pairs").where("id = 'A0'").collect()}
    assert terms == {"alpha", "beta", "gamma", "alpha beta", "beta gamma"}
    # A0 shares both its pairs with B0, one with B1 and B2: each name's best partner is its copy
    assert pairs("word_pairs") == {(f"A{i}", f"B{i}") for i in range(4)}


def test_identity_vectors_are_fixed_per_node_and_differ_between_nodes(spark):
    df = spark.createDataFrame([("A", "n1"), ("B", "n1"), ("A", "n2")], "kg string, id string")
    first = [np.array(r.v) for r in df.select(identity_vector(16).alias("v")).collect()]
    again = [np.array(r.v) for r in df.select(identity_vector(16).alias("v")).collect()]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.allclose(first[0], first[1]) and not np.allclose(first[0], first[2])
    assert 0.3 < np.linalg.norm(first[0]) < 2.0


def test_dense_index_numbers_rows_in_order_without_gaps(spark):
    from pipeline.features import with_dense_index

    df = spark.range(0, 1001).select(F.when(F.col("id") % 3 == 0, "B").otherwise("A").alias("kg"),
                                     (F.col("id") * 617 % 1001).cast("string").alias("id")).repartition(7)
    rows = sorted(with_dense_index(df, ["kg", "id"], "nid").collect(), key=lambda r: r.nid)
    assert [r.nid for r in rows] == list(range(1001))
    assert [(r.kg, r.id) for r in rows] == sorted((r.kg, r.id) for r in df.collect())


def test_nearest_names_takes_each_names_best_partners_from_both_sides():
    """block.vector_top_k: a's rows find their nearest b rows and b's rows theirs; a pair found
    from both sides comes once, with its cosine (vectors need not be unit length)."""
    from pipeline.blocking.vectors import nearest_names

    vec_a = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]], np.float32)
    vec_b = np.array([[3.0, 0.1], [0.1, 1.0], [-1.0, 0.0], [-1.0, -0.1]], np.float32)
    rows_a, rows_b, cos = nearest_names(vec_a, vec_b, k=1)
    # from a: a0 -> b0, a1 -> b1, a2 -> b1 (cos 0.77 beats b0's 0.74); from b: b0 -> a0, b1 -> a1,
    # and b2, b3, which point away from every a, -> their least bad partner, a1
    assert list(zip(rows_a.tolist(), rows_b.tolist())) == [(0, 0), (1, 1), (1, 2), (1, 3), (2, 1)]
    unit_a = vec_a / np.linalg.norm(vec_a, axis=1, keepdims=True)
    unit_b = vec_b / np.linalg.norm(vec_b, axis=1, keepdims=True)
    np.testing.assert_allclose(cos, (unit_a[rows_a] * unit_b[rows_b]).sum(1), rtol=1e-6)
    # k=2 keeps a superset
    pairs = set(zip(rows_a.tolist(), rows_b.tolist()))
    wider = set(zip(*[r.tolist() for r in nearest_names(vec_a, vec_b, k=2)[:2]]))
    assert pairs < wider


def test_anchor_profiles_match_nodes_placed_alike_around_the_seed_links():
    from pipeline.anchor_profile import anchor_profiles, seed_vectors

    # A: s1 - x - s2 - y, and w alone; B: the same shape (rows 5..9), edges listed in another
    # order and direction; seed links s1-s1', s2-s2'
    s1, x, s2, y, w = range(5)
    s1b, xb, s2b, yb, wb = range(5, 10)
    src = np.array([s1, x, s2, s2b, xb, xb, yb])
    dst = np.array([x, s2, y, xb, s1b, s2b, s2b])
    vectors = seed_vectors(2, 16, seed=0)
    profiles = anchor_profiles(10, src, dst, seed_nodes=np.array([s1, s2, s1b, s2b]),
                               seed_links=np.array([0, 1, 0, 1]), vectors=vectors, hops=3)
    assert profiles.shape == (10, 48)
    np.testing.assert_allclose(profiles[[s1, x, s2, y]], profiles[[s1b, xb, s2b, yb]], atol=1e-6)
    assert abs(float(profiles[x] @ profiles[y])) < 0.99  # placed differently: told apart
    assert not profiles[w].any() and not profiles[wb].any()  # no seed link within reach
    np.testing.assert_allclose(np.linalg.norm(profiles[:4], axis=1), 1, atol=1e-6)
    # a seed node's own vector is taken out of every hop (the walks that come back to it)
    own = vectors[0] / np.linalg.norm(vectors[0])
    for hop in range(3):
        assert abs(float(profiles[s1, hop * 16:(hop + 1) * 16] @ own)) < 1e-6


@pytest.mark.parametrize("prefix", [False, True])
def test_sparse_top_k_equals_ranking_every_pair(prefix):
    """block's top k by sparse products, a few A names at a time (pipeline/blocking/sparse_top_k.py),
    against every pair's cosine ranked by brute force: the same pairs, sims and a_top flags,
    ties broken by the other side's id, with prefix filtering a pair kept only where one of
    its names holds a shared term among its rarest."""
    from pipeline.blocking.sparse_top_k import chunk_top_k, side_matrix

    rng = np.random.default_rng(7)
    n_a, n_b, n_terms, k, min_sim = 40, 30, 25, 3, 0.05

    def rows(n: int, side: str):
        ids, terms, w, rare = [], [], [], []
        for i in range(n):
            held = rng.choice(n_terms, size=rng.integers(1, 6), replace=False)
            weights = rng.choice([0.5, 1.0, 2.0], size=len(held))  # repeats: tied sims
            weights = weights / np.linalg.norm(weights)
            order = np.argsort(-weights, kind="stable")
            ids += [f"{side}{i:02d}"] * len(held)
            terms += list(held * 7919 - 4000)  # hash-like: negative and positive, unsorted
            w += list(weights)
            rare += list(np.isin(np.arange(len(held)), order[:2]))
        return np.array(ids, dtype=object), np.array(terms, dtype=np.int64), np.array(w), np.array(rare)

    a_rows, b_rows = rows(n_a, "a"), rows(n_b, "b")
    b = side_matrix(*b_rows[:3], b_rows[3] if prefix else None)
    a = side_matrix(*a_rows[:3], a_rows[3] if prefix else None, columns=b.terms)
    ra, rb, sim, a_top = chunk_top_k(a, b, k, min_sim, rows_per_step=7, rank_every=5)
    got = {(a.ids[i], b.ids[j]): (s, t) for i, j, s, t in zip(ra, rb, sim, a_top)}
    assert len(got) == len(ra)

    dense = {}
    for ids, terms, w, rare in (a_rows, b_rows):
        for i, t, x, r in zip(ids, terms, w, rare):
            dense.setdefault(i, {})[t] = (x, r)
    sims = {}
    for i in sorted({x for x in a_rows[0]}):
        for j in sorted({x for x in b_rows[0]}):
            shared = dense[i].keys() & dense[j].keys()
            if prefix and not any(dense[i][t][1] or dense[j][t][1] for t in shared):
                continue
            s = round(sum(dense[i][t][0] * dense[j][t][0] for t in shared), 9)
            if shared and s >= min_sim:
                sims[(i, j)] = s
    best_a = {p for i in {p[0] for p in sims} for p in sorted((p for p in sims if p[0] == i),
                                                               key=lambda p: (-sims[p], p[1]))[:k]}
    best_b = {p for j in {p[1] for p in sims} for p in sorted((p for p in sims if p[1] == j),
                                                               key=lambda p: (-sims[p], p[0]))[:k]}
    assert set(got) == best_a | best_b
    assert {p for p, (_, top) in got.items() if top} == best_a
    assert all(got[p][0] == pytest.approx(sims[p], abs=1e-9) for p in got)

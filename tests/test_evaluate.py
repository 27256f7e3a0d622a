"""The evaluate stage's figures on hand-made scores (pandas; Spark for the valid links): ranks
among every candidate, and among the test targets only (the KG-alignment literature's protocol)."""
import itertools
import random

import pandas as pd

from pipeline.evaluate import figures, greedy_one_to_one, one_to_one_matching, optimal_one_to_one, valid_ranking


def frame(rows, columns=("id_a", "id_b", "score")):
    return pd.DataFrame(rows, columns=list(columns))


def test_ranks_among_test_targets_drop_the_candidates_no_test_link_ends_at():
    # test links a1-b1, a2-b2; bt is a train-linked target, bx an unlinked one
    test = frame([("a1", "b1"), ("a2", "b2")], ("id_a", "id_b"))
    gold = frame([("a1", "b1"), ("a2", "b2"), ("at", "bt")], ("id_a", "id_b"))
    scored = frame([
        ("a1", "bt", 0.9), ("a1", "b1", 0.8), ("a1", "b2", 0.1),  # a train target outranks b1
        ("a2", "bx", 0.7), ("a2", "b1", 0.6), ("a2", "b2", 0.5),  # so do an unlinked one and b1
        ("at", "b2", 0.95),  # a train entity's candidate: touches test entity b2
    ])
    aligned = frame([("a1", "b1", 0.8), ("a2", "bx", 0.7), ("at", "bt", 0.9)])

    got = figures(test, gold, aligned, scored)

    assert (got["hits_at_1"], got["hits_at_10"]) == (0.0, 1.0)
    assert got["mrr"] == round((1 / 2 + 1 / 3) / 2, 4)
    among = got["among_test_targets"]
    # a1: b1 first once bt is gone; a2: b1 still outranks b2
    assert (among["hits_at_1"], among["hits_at_10"], among["mrr"]) == (0.5, 1.0, 0.75)
    # one-to-one over the test entities only: a1 takes b1, so a2 gets b2; over every candidate,
    # at takes b2 and a1 takes bt, so no test link is kept
    assert among["hits_at_1_one_to_one"] == 1.0
    assert got["hits_at_1_one_to_one"] == 0.0
    # end-to-end precision and recall count the aligned pairs touching a test entity only
    assert (got["precision"], got["recall"], got["aligned_touching_test"]) == (0.5, 0.5, 2)


def test_optimal_one_to_one_gives_up_the_best_pair_when_two_others_weigh_more():
    # greedy takes a1-b1 (0.9) and leaves a2 with nothing; 0.8 + 0.7 beats 0.9
    scored = frame([("a1", "b1", 0.9), ("a1", "b2", 0.8), ("a2", "b1", 0.7), ("a3", "b3", 0.1)])
    assert greedy_one_to_one(scored) == {("a1", "b1"), ("a3", "b3")}
    assert optimal_one_to_one(scored) == {("a1", "b2"), ("a2", "b1"), ("a3", "b3")}
    assert optimal_one_to_one(scored.iloc[:0]) == set()

    test = frame([("a1", "b2"), ("a2", "b1")], ("id_a", "id_b"))
    among = figures(test, test, frame([], ("id_a", "id_b", "score")), scored)["among_test_targets"]
    assert (among["hits_at_1_one_to_one"], among["hits_at_1_optimal_one_to_one"]) == (0.0, 1.0)


def test_optimal_one_to_one_matches_brute_force_on_small_random_graphs():
    rng = random.Random(7)
    for _ in range(40):
        pairs = {(f"a{i}", f"b{j}"): rng.random() for i in range(4) for j in range(4) if rng.random() < 0.5}
        if not pairs:
            continue
        scored = frame([(a, b, s) for (a, b), s in pairs.items()])

        def weight(matching):
            return sum(pairs[p] for p in matching)

        best = 0.0
        for k in range(1, 5):
            for chosen in itertools.combinations(pairs, k):
                if len({a for a, _ in chosen}) == k == len({b for _, b in chosen}):
                    best = max(best, weight(chosen))
        got = optimal_one_to_one(scored)
        assert len({a for a, _ in got}) == len(got) == len({b for _, b in got})
        assert abs(weight(got) - best) < 1e-9


def test_valid_ranking_reads_the_valid_links_only(spark):
    gold = spark.createDataFrame(
        [("a1", "b1", "paper", "valid"), ("a2", "b2", "paper", "valid"), ("a3", "b3", "paper", "test")],
        "id_a string, id_b string, type string, split string")
    scores = spark.createDataFrame([
        ("a1", "b1", "paper", 0.9), ("a1", "b3", "paper", 0.95),  # a test target outranks b1
        ("a2", "b2", "paper", 0.8), ("a2", "b1", "paper", 0.1),
        ("a3", "b3", "paper", 0.2),  # touches no valid entity
    ], "id_a string, id_b string, type string, score double")

    got = valid_ranking(scores, gold)

    assert got["valid_links"] == 2
    assert (got["hits_at_1"], got["mrr"]) == (0.5, 0.75)
    # among the valid targets b3 is gone: both links rank first
    assert got["among_valid_targets"]["hits_at_1"] == 1.0
    assert got["among_valid_targets"]["hits_at_1_optimal_one_to_one"] == 1.0
    assert valid_ranking(scores, gold.where("split = 'test'")) is None


def test_a_component_above_the_limit_is_matched_greedily_and_counted():
    scored = frame([("a1", "b1", 0.9), ("a1", "b2", 0.8), ("a2", "b1", 0.7), ("a3", "b3", 0.5), ("a4", "b3", 0.4)])
    taken, greedy_pairs = one_to_one_matching(scored, max_component_pairs=2)
    # the three-pair component goes greedy (a1-b1 alone), the two-pair one stays exact (a3-b3)
    assert taken == {("a1", "b1"), ("a3", "b3")} and greedy_pairs == 3
    assert one_to_one_matching(scored) == ({("a1", "b2"), ("a2", "b1"), ("a3", "b3")}, 0)

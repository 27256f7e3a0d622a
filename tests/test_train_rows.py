"""How the train stage draws random negatives (pure pandas, no Spark)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.train import random_negatives


def test_random_negatives_keep_one_end_and_draw_the_other_from_its_graph():
    pos = pd.DataFrame({"id_a": ["a1", "a2"], "id_b": ["b1", "b2"], "type": "t", "group": np.array([5, 6])})
    pool = pd.DataFrame({"kg": ["A"] * 4 + ["B"] * 4, "type": "t",
                         "id": ["a1", "a2", "a3", "a4", "b1", "b2", "b3", "b4"]})
    neg = random_negatives(pos, pool, k=4, seed=0)
    assert list(neg.columns) == ["id_a", "id_b", "type", "group"]
    assert neg.id_a.str.startswith("a").all() and neg.id_b.str.startswith("b").all()
    gold = {5: ("a1", "b1"), 6: ("a2", "b2")}
    for row in neg.itertuples():
        a, b = gold[row.group]
        assert (row.id_a == a) != (row.id_b == b)  # exactly one end is the positive's
    # both kinds are drawn: (a, random b') and (random a', b)
    assert (neg.id_a.isin(["a1", "a2"]) & ~neg.id_b.isin(["b1", "b2"])).any()
    assert (neg.id_b.isin(["b1", "b2"]) & ~neg.id_a.isin(["a1", "a2"])).any()


def test_max_valid_links_keeps_a_seeded_sample_of_the_trained_types(spark):
    from pipeline.config import TrainConfig
    from pipeline.train import valid_links

    rows = [(f"a{i}", f"b{i}", "paper" if i % 2 else "author", "valid" if i < 16 else "train") for i in range(20)]
    gold = spark.createDataFrame(rows, "id_a string, id_b string, type string, split string")

    def sample(**kw) -> list[tuple]:
        return sorted(tuple(r) for r in valid_links(gold, TrainConfig(train_types=["paper"], **kw)).collect())

    everything = sample()
    assert len(everything) == 8 and all(t == "paper" for _, _, t in everything)  # valid papers only
    first = sample(max_valid_links=3)
    assert len(first) == 3 and set(first) <= set(everything)
    assert sample(max_valid_links=3) == first  # the same links on every run with this seed
    assert any(sample(max_valid_links=3, seed=s) != first for s in range(2, 6))  # the seed draws them


def test_neighbour_negatives_pair_each_end_with_the_other_ends_same_type_neighbours(spark):
    from pipeline.train import neighbour_negatives

    pos = spark.createDataFrame([("a1", "b1", "city", 7)], "id_a string, id_b string, type string, group long")
    # b1 (a state) borders b2 and b3 (cities) and has a capital b4 (a city) but also a
    # person b5; a1 has a single city neighbour a2
    edges = spark.createDataFrame(
        [("B", "b1", "r", "b2"), ("B", "b3", "r", "b1"), ("B", "b1", "r", "b4"), ("B", "b1", "r", "b5"),
         ("B", "b2", "r", "b6"), ("A", "a1", "r", "a2")],
        "kg string, src string, rel string, dst string")
    nodes = spark.createDataFrame(
        [("A", "a1", "city"), ("A", "a2", "city"), ("B", "b1", "city"), ("B", "b2", "city"),
         ("B", "b3", "city"), ("B", "b4", "city"), ("B", "b5", "person"), ("B", "b6", "city")],
        "kg string, id string, type string")

    def pairs(k: int, seed: int = 1) -> set[tuple]:
        return {tuple(r) for r in neighbour_negatives(pos, edges, nodes, k, seed).collect()}

    every = pairs(k=5)
    # both directions of an edge count; other types and two-hop nodes (b6) do not
    assert every == {("a1", "b2", "city", 7), ("a1", "b3", "city", 7), ("a1", "b4", "city", 7),
                     ("a2", "b1", "city", 7)}
    two = pairs(k=2)
    assert len([p for p in two if p[0] == "a1"]) == 2 and ("a2", "b1", "city", 7) in two
    assert two <= every and pairs(k=2) == two  # a seeded draw: the same on every run

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

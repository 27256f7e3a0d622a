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

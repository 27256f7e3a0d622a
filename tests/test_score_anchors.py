"""Which of a collective round's matches become anchors (pipeline/score.py): the model's
threshold, or with collective.anchor_precision a threshold per type chosen on the valid links."""
import math

import pandas as pd

from pipeline.score import anchor_matches, anchor_thresholds

SCORES = [  # mutual best pairs; valid links p1-q1, p2-q2, p3-q3 (papers), none for authors
    ("p1", "q1", "paper", 0.90), ("p2", "qx", "paper", 0.60), ("p3", "q3", "paper", 0.40),
    ("p4", "q4", "paper", 0.30), ("px", "q2", "paper", 0.20), ("p5", "q5", "paper", 0.10),
    ("a1", "b1", "author", 0.50), ("a2", "b2", "author", 0.05),
]
VALID = [("p1", "q1", "paper"), ("p2", "q2", "paper"), ("p3", "q3", "paper")]


def test_each_type_goes_down_to_the_lowest_score_still_right_often_enough():
    touching = pd.DataFrame([s for s in SCORES if s[0] in "p1 p2 p3" or s[1] in "q1 q2 q3"],
                            columns=["id_a", "id_b", "type", "score"])
    valid = pd.DataFrame(VALID, columns=["id_a", "id_b", "type"])
    # from the top: right, wrong, right, wrong -> 1, 1/2, 2/3, 1/2
    assert anchor_thresholds(touching, valid, 0.6) == {"paper": 0.40}
    assert anchor_thresholds(touching, valid, 0.5) == {"paper": 0.20}
    assert anchor_thresholds(touching, valid, 1.0) == {"paper": 0.90}
    wrong_first = touching.assign(score=touching["score"].where(touching["id_a"] != "p2", 0.95))
    assert math.isinf(anchor_thresholds(wrong_first, valid, 0.9)["paper"])  # none is good enough


def test_the_gate_replaces_the_model_threshold_only_for_types_with_valid_links(spark):
    scores = spark.createDataFrame(SCORES, "id_a string, id_b string, type string, score double")
    valid = spark.createDataFrame(VALID, "id_a string, id_b string, type string")

    plain, none = anchor_matches(scores, 0.35, valid, None)
    assert none == {} and sorted(r.id_a for r in plain.collect()) == ["a1", "p1", "p2", "p3"]

    gated, cuts = anchor_matches(scores, 0.35, valid, 0.5)
    assert cuts == {"paper": 0.20}
    # papers down to 0.20 (p4 and px join, p5 does not); authors keep the model's 0.35
    assert sorted(r.id_a for r in gated.collect()) == ["a1", "p1", "p2", "p3", "p4", "px"]

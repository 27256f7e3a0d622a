"""Ranking and classification figures from scores and labels (pure numpy, used everywhere).

Every function takes ``n_gold``, the number of true pairs that exist, which may exceed the
positives among the scored pairs: a gold pair that blocking never proposed still counts as
missed, so recall and PR-AUC are end to end.
"""
from __future__ import annotations

import numpy as np


def _ranked(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order].astype(bool)
    tp = np.cumsum(y)
    k = np.arange(1, len(y) + 1)
    return s, tp, k


def best_f1(scores: np.ndarray, labels: np.ndarray, n_gold: int) -> tuple[float, float]:
    """(best F1 over all thresholds, the threshold that reaches it)."""
    if len(scores) == 0 or n_gold == 0:
        return 0.0, 1.0
    s, tp, k = _ranked(scores, labels)
    # only cut between distinct scores
    last = np.r_[s[1:] != s[:-1], True]
    f1 = 2 * tp / (k + n_gold)
    f1 = np.where(last, f1, -1)
    i = int(np.argmax(f1))
    return float(f1[i]), float(s[i])


def average_precision(scores: np.ndarray, labels: np.ndarray, n_gold: int) -> float:
    """PR-AUC as average precision: mean precision at each true pair's rank, missed ones as 0."""
    if n_gold == 0:
        return 0.0
    _, tp, k = _ranked(scores, labels)
    hits = np.diff(np.r_[0, tp]) > 0
    return float((tp[hits] / k[hits]).sum() / n_gold)


def recall_at_precision(
    scores: np.ndarray, labels: np.ndarray, n_gold: int, precision: float = 0.95
) -> float:
    """Largest recall at any threshold whose precision is at least ``precision`` (Rec@P.95)."""
    if len(scores) == 0 or n_gold == 0:
        return 0.0
    s, tp, k = _ranked(scores, labels)
    last = np.r_[s[1:] != s[:-1], True]
    ok = last & (tp / k >= precision)
    return float(tp[ok].max() / n_gold) if ok.any() else 0.0

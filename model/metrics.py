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


def pr_curve(scores: np.ndarray, labels: np.ndarray, n_gold: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, score) at each cut between distinct scores, best score first."""
    s, tp, k = _ranked(np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool))
    last = np.r_[s[1:] != s[:-1], True] if len(s) else np.zeros(0, dtype=bool)
    return (tp / k)[last], (tp / max(n_gold, 1))[last], s[last]


def precision_recall_f1(true_positives: int, predicted: int, n_gold: int) -> tuple[float, float, float]:
    """(precision, recall, F1) of ``predicted`` calls of which ``true_positives`` are right,
    against ``n_gold`` true pairs; 0 where a ratio has nothing to count."""
    precision = true_positives / predicted if predicted else 0.0
    recall = true_positives / n_gold if n_gold else 0.0
    return float(precision), float(recall), f1_score(precision, recall)


def f1_score(precision: float, recall: float) -> float:
    """The harmonic mean of precision and recall (0 where both are 0)."""
    return float(2 * precision * recall / (precision + recall)) if precision + recall else 0.0


def at_threshold(scores: np.ndarray, labels: np.ndarray, n_gold: int, threshold: float) -> tuple[float, float, float]:
    """(precision, recall, F1) when every pair scoring at or above ``threshold`` is called a match."""
    called = np.asarray(scores, dtype=float) >= threshold
    true_positives = int((called & np.asarray(labels, dtype=bool)).sum())
    return precision_recall_f1(true_positives, int(called.sum()), n_gold)

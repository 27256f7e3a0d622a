"""Fit CG-MuAlign with the paper's margin ranking loss (model/README.md §4).

Rows come in groups: one labelled positive pair and its negatives (hard ones from the
blocking candidates, random ones of the same type). For a positive (a, b) a negative is
(a, b') or (a', b), and each negative pair is encoded conditioned on its own partner, so the
positive's partner never leaks into a negative (model/README.md §4).
Loss = mean over negatives of max(0, d(a, b) - d(neg) + margin).
The few scalars that weigh the distance's parts (model/network.py ``mixing_parameters``) get
their own, larger learning rate ``mixing_lr``.
Early stopping and the decision threshold both come from the valid split.
"""
from __future__ import annotations

import copy
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from model.config import ModelConfig
from model.infer import score_table
from model.metrics import best_f1
from model.network import CGMuAlign
from model.shards import PairBatch

log = logging.getLogger("kgmerge.train")


@dataclass
class FitResult:
    model: CGMuAlign
    threshold: float
    valid_f1: float
    best_epoch: int
    history: list[dict]


def _group_slices(groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows must be sorted by group; returns (start, end) row offsets of each group."""
    change = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1], True])
    return change[:-1], change[1:]


def margin_loss(distance: torch.Tensor, group: torch.Tensor, label: torch.Tensor, margin: float,
                pointwise: bool = False):
    """Each negative against the positive of its own group: max(0, d_pos - d_neg + margin).

    pointwise: also pull positives inside distance 1 and push negatives that have no positive
    in their group (a benchmark's labelled negatives that share no entity with a positive)
    beyond 1 + margin, as the reference code's second loss term does (model/README.md §4).
    """
    is_pos = label == 1
    pos_of_group = torch.full((int(group.max()) + 1,), float("nan"), dtype=distance.dtype)
    pos_of_group = pos_of_group.to(distance.device).index_put((group[is_pos],), distance[is_pos])
    d_pos = pos_of_group[group[~is_pos]]
    keep = ~torch.isnan(d_pos)
    terms = [torch.relu(d_pos[keep] - distance[~is_pos][keep] + margin)]
    if pointwise:
        terms.append(torch.relu(distance[is_pos] - 1.0))
        terms.append(torch.relu(1.0 + margin - distance[~is_pos][~keep]))
    return torch.cat(terms).mean()


def fit(
    train_rows: pa.Table,
    valid_rows: pa.Table,
    valid_gold: int,
    features: torch.Tensor,
    num_relations: int,
    config: ModelConfig,
    *,
    epochs: int = 30,
    batch_size: int = 32,
    lr: float = 0.003,
    weight_decay: float = 0.0,
    margin: float = 1.0,
    patience: int = 5,
    seed: int = 1,
    anchored: torch.Tensor | None = None,
    mixing_lr: float = 0.1,
) -> FitResult:
    """train_rows: pair-shard rows plus ``group`` and ``label``; valid_rows: plus ``label``.
    anchored: the features with the seed links merged, for neighbours (model/network.py).

    Same rows and seed give the same weights: deterministic kernels are switched on for the
    fit (on CPU the backward of PyG's scatter otherwise sums in a varying order).
    """
    with deterministic_kernels():
        return _fit(train_rows, valid_rows, valid_gold, features, num_relations, config, epochs=epochs,
                    batch_size=batch_size, lr=lr, weight_decay=weight_decay, margin=margin,
                    patience=patience, seed=seed, anchored=anchored,
                    mixing_lr=mixing_lr)


@contextmanager
def deterministic_kernels():
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was)


def _fit(train_rows, valid_rows, valid_gold, features, num_relations, config, *, epochs, batch_size, lr,
         weight_decay, margin, patience, seed, anchored, mixing_lr) -> FitResult:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = CGMuAlign(config, features.shape[1], num_relations).to(features.device)
    mixing = model.mixing_parameters()
    rest = [p for p in model.parameters() if all(p is not m for m in mixing)]
    opt = torch.optim.Adam([{"params": rest},
                            {"params": mixing, "lr": mixing_lr, "weight_decay": 0.0}],
                           lr=lr, weight_decay=weight_decay)

    # a total order, so that batches are the same on every run whatever order Spark wrote rows in
    train_rows = train_rows.sort_by([("group", "ascending"), ("label", "descending"), ("id_a", "ascending"), ("id_b", "ascending")])
    groups = train_rows.column("group").to_numpy()
    starts, ends = _group_slices(groups)
    has_pos = np.zeros(len(starts), dtype=bool)
    pos_rows = np.flatnonzero(train_rows.column("label").to_numpy() == 1)
    has_pos[np.searchsorted(starts, pos_rows, side="right") - 1] = True
    pointwise = not has_pos.all()  # some negatives have no positive to be ranked against
    valid_labels = valid_rows.column("label").to_numpy()

    best = (-1.0, 0.5, -1, None)  # f1, threshold, epoch, state
    history, since_best, t0 = [], 0, time.time()
    for epoch in range(1, epochs + 1):
        model.train()
        order = rng.permutation(len(starts))
        losses = []
        for i in range(0, len(order), batch_size):
            pick = order[i : i + batch_size]
            idx = np.concatenate([np.arange(starts[g], ends[g]) for g in pick])
            rows = train_rows.take(pa.array(idx))
            batch = PairBatch.from_arrow(rows).to(features.device)
            grp = torch.from_numpy(np.unique(rows.column("group").to_numpy(), return_inverse=True)[1])
            lab = torch.from_numpy(rows.column("label").to_numpy().astype(np.int64))
            out = model(batch, features, anchored)
            loss = margin_loss(out.distance, grp.to(features.device), lab.to(features.device), margin, pointwise)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.detach().item())
        model.eval()
        f1, threshold = best_f1(score_table(valid_rows, model, features, anchored=anchored), valid_labels, valid_gold)
        elapsed = time.time() - t0
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "valid_f1": f1})
        log.info(
            "epoch %d/%d loss %.4f valid F1 %.4f (best %.4f) elapsed %.0fs, at most %.0fs left",
            epoch, epochs, np.mean(losses), f1, max(f1, best[0]), elapsed,
            elapsed / epoch * (epochs - epoch),
        )
        if f1 > best[0]:
            best = (f1, threshold, epoch, copy.deepcopy(model.state_dict()))
            since_best = 0
        else:
            since_best += 1
            if since_best >= patience:
                log.info("early stop: no better valid F1 for %d epochs", patience)
                break
    model.load_state_dict(best[3])
    model.eval()
    return FitResult(model, best[1], best[0], best[2], history)

"""Why did the model score one pair as it did? The attention of its last layer, per neighbour.

Spark-free, like ``model.infer``: the checkpoint, the feature matrix and the scoring round's
anchors are loaded the way the score stage's workers load them (``pipeline/score.py``), the
pair's shard row goes through the model once, and ``PairOutput.weights_a`` / ``weights_b``
(the weight each one-hop neighbour got in CollectiveAgg, model/layers.py) are read back.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from model import checkpoint
from model.level0 import anchored_features, load_feature_matrix
from model.shards import PairBatch


@dataclass(frozen=True)
class Neighbour:
    nid: int  # node id (row of the feature matrix)
    rel: int  # relation id as the shard holds it (>= R: the edge read backwards)
    weight: float  # attention in the last layer; a side's weights add up to 1


@dataclass(frozen=True)
class Explanation:
    nid_a: int
    nid_b: int
    score: float  # exp(-distance), as the score stage computes it with the same anchors
    threshold: float
    side_a: list[Neighbour]  # in the order of the shard row's hop1 list
    side_b: list[Neighbour]
    anchors: np.ndarray  # int [K, 2] (nid_a, nid_b): the aligned pairs the model read


def read_anchor_pairs(path: str | Path) -> np.ndarray:
    """anchors/round=<k>.parquet -> int [K, 2]; no file, no anchors."""
    if not Path(path).exists():
        return np.zeros((0, 2), dtype=np.int64)
    return pd.read_parquet(path)[["nid_a", "nid_b"]].to_numpy(dtype=np.int64)


@torch.inference_mode()
def explain_row(model_dir: str | Path, features_path: str | Path, anchors_path: str | Path | None,
                row: pa.Table) -> Explanation:
    """One pair-shard row (a one-row Arrow table) -> its score and per-neighbour attention."""
    if row.num_rows != 1:
        raise ValueError(f"explain_row takes one shard row, got {row.num_rows}")
    ckpt = checkpoint.load(Path(model_dir))
    features = torch.from_numpy(load_feature_matrix(features_path))
    if features.shape[1] != ckpt.model.in_dim:
        raise ValueError(f"model in {model_dir} expects {ckpt.model.in_dim}-d features, "
                         f"{features_path} has {features.shape[1]}")
    anchors = read_anchor_pairs(anchors_path) if anchors_path else np.zeros((0, 2), dtype=np.int64)
    anchored = anchored_features(features, anchors) if len(anchors) else None
    out = ckpt.model(PairBatch.from_arrow(row), features, anchored)
    sides = []
    for side, weights in (("a", out.weights_a[0]), ("b", out.weights_b[0])):
        nids = row.column(f"{side}_hop1")[0].as_py()
        rels = row.column(f"{side}_hop1_rel")[0].as_py()
        # the hop1 list is padded to the wider side; slot k is the list's k-th neighbour
        sides.append([Neighbour(int(n), int(r), float(w)) for n, r, w in zip(nids, rels, weights.tolist())])
    return Explanation(
        nid_a=int(row.column("nid_a")[0].as_py()), nid_b=int(row.column("nid_b")[0].as_py()),
        score=float(out.score[0]), threshold=ckpt.threshold,
        side_a=sides[0], side_b=sides[1], anchors=anchors,
    )

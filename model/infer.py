"""Score pairs: Arrow rows of a pair shard in, one score per row out. No Spark.

``score_table`` is what the Spark score stage calls inside each worker, what a unit test
calls, and what bench/ times alone on a GPU.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pyarrow as pa
import torch

from model.network import CGMuAlign
from model.shards import PairBatch, node_edges


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


@torch.inference_mode()
def score_table(
    rows: pa.Table | pa.RecordBatch,
    model: CGMuAlign,
    features: torch.Tensor,
    batch_size: int = 1024,
    anchored: torch.Tensor | None = None,
    messages: torch.Tensor | None = None,
) -> np.ndarray:
    """exp(-distance) for every row, in row order. ``features`` (and ``anchored``, the features
    with aligned pairs merged, see model/network.py) live on the model's device; ``messages``,
    every node's first-layer message (``node_messages``), saves recomputing them per batch."""
    if isinstance(rows, pa.RecordBatch):
        rows = pa.Table.from_batches([rows])
    device = features.device
    out = np.empty(rows.num_rows, dtype=np.float64)
    for start in range(0, rows.num_rows, batch_size):
        batch = PairBatch.from_arrow(rows.slice(start, batch_size), with_edges=messages is None).to(device)
        out[start : start + batch.num_pairs] = model(batch, features, anchored, messages).score.double().cpu().numpy()
    return out


@torch.inference_mode()
def node_messages(neighbourhoods: pa.Table | Iterable[pa.RecordBatch], model: CGMuAlign, features: torch.Tensor,
                  anchored: torch.Tensor | None = None) -> torch.Tensor:
    """Every node's first-layer message for ``score_table``, from the run's neighbourhoods
    (extract's NEIGHBOURHOOD rows, a table or its record batches: ``node_edges``), with these
    features and anchors: once per scoring round."""
    edges = torch.from_numpy(node_edges(neighbourhoods)).to(features.device)
    return model.node_messages(features, edges, anchored)

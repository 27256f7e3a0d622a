"""Everything a pair's score depends on, as one 64-bit number (no Spark, no torch).

A pair's score is a function of the model, the pair's shard row (both sampled two-hop
neighbourhoods, with relation ids and positions, and the pair evidence: lexical similarity, code
conflict) and the level-0 vector of every node in it (after the round's anchors are folded
in). ``pair_signatures`` hashes exactly that, with each node named by its stable (kg, id) key,
not by its node id, which shifts when nodes arrive. Two runs that give a pair the same
signature and use the same model give it the same score, so an incremental run scores only
the pairs whose signature changed.

The hashes are sums of mixed 64-bit words (wrapping arithmetic, splitmix64 finaliser): cheap,
vectorised, and with ~2^-64 odds of two different inputs colliding.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from model.shard_layout import PAIR_EVIDENCE, SUBGRAPH_COLUMNS
from model.shards import _list_column

_C1, _C2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, elementwise on uint64."""
    with np.errstate(over="ignore"):
        x = x.astype(np.uint64, copy=True)
        x ^= x >> np.uint64(30)
        x *= _C1
        x ^= x >> np.uint64(27)
        x *= _C2
        x ^= x >> np.uint64(31)
    return x


def node_hashes(keys: np.ndarray, features: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """uint64 per node: its stable key (int64 hash of (kg, id)) and the exact bits of its vector."""
    keys = np.asarray(keys).astype(np.int64).view(np.uint64)
    out = np.empty(len(keys), np.uint64)
    coeffs = mix(np.arange(1, features.shape[1] + 1, dtype=np.uint64))  # one odd-ish word per column
    with np.errstate(over="ignore"):
        for start in range(0, len(keys), chunk):
            bits = np.ascontiguousarray(features[start:start + chunk], np.float32).view(np.uint32)
            words = mix(bits.astype(np.uint64) ^ coeffs[None, :]).sum(axis=1, dtype=np.uint64)
            out[start:start + chunk] = mix(words ^ mix(keys[start:start + chunk]))
    return out


def _row_sums(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        total = np.concatenate([np.zeros(1, np.uint64), np.cumsum(values, dtype=np.uint64)])
        return total[offsets[1:]] - total[offsets[:-1]]


def pair_signatures(rows: pa.RecordBatch | pa.Table, node_hash: np.ndarray) -> np.ndarray:
    """int64 per shard row (see the module docstring); ``node_hash`` from ``node_hashes``, by nid."""
    if isinstance(rows, pa.RecordBatch):
        rows = pa.Table.from_batches([rows])
    n = rows.num_rows
    with np.errstate(over="ignore"):
        sig = mix(np.full(n, 0x5EED, np.uint64))
        for slot, side in enumerate("ab"):
            centre = rows.column(f"nid_{side}").to_numpy(zero_copy_only=False).astype(np.int64)
            sig += mix(node_hash[centre] + np.uint64(slot + 1))
            for col_no, name in enumerate(SUBGRAPH_COLUMNS):
                offsets, values = _list_column(rows, f"{side}_{name}")
                words = node_hash[values] if name in ("hop1", "hop2") else values.astype(np.uint64)
                row = np.repeat(np.arange(n), np.diff(offsets))
                position = (np.arange(len(values)) - offsets[row]).astype(np.uint64)
                tag = np.uint64((slot * 8 + col_no + 1) << 56)
                sig += _row_sums(mix(mix(words ^ tag) + position), offsets)
        for evidence in PAIR_EVIDENCE:
            if evidence.column in rows.schema.names:
                value = rows.column(evidence.column).to_numpy(zero_copy_only=False).astype(np.float64).view(np.uint64)
                sig += mix(value ^ np.uint64(evidence.tag))
    return mix(sig).view(np.int64)

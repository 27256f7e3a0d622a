"""Rows of a pair shard (Arrow) -> the tensors one forward pass needs.

A shard row holds both sampled two-hop neighbourhoods of a candidate pair as node ids
(``pipeline/schema.py`` documents the columns). The sampler draws each node's neighbours
once, so a node's children are the same wherever it appears; the first layer therefore runs
once per distinct node of a batch (``edge_index``), and only the last layer runs per pair.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Iterable

import numpy as np
import pyarrow as pa
import torch
from torch import Tensor

from model.shard_layout import PAIR_EVIDENCE, SUBGRAPH_COLUMNS


@dataclass
class PairBatch:
    node_ids: Tensor  # [L] global node ids (rows of the feature matrix) of the batch's nodes
    edge_index: Tensor  # [2, E] local child -> local target, first layer
    edge_type: Tensor  # [E]
    centre_a: Tensor  # [P] local index
    centre_b: Tensor
    hop1_a: Tensor  # [P, N] local index (0 in padding)
    hop1_b: Tensor
    rel_a: Tensor  # [P, N]
    rel_b: Tensor
    mask_a: Tensor  # [P, N] bool
    mask_b: Tensor
    # [P] float per piece of pair evidence (model/shard_layout.py PAIR_EVIDENCE), by column;
    # zeros where the rows lack it
    evidence: dict[str, Tensor]
    # the pair's own centre met again as a two-hop node (paper -> author -> the same paper):
    # one row per meeting, (pair, one-hop slot, relation, the one-hop node's child count)
    returns_a: Tensor  # [K, 4] long
    returns_b: Tensor

    def to(self, device: torch.device | str) -> "PairBatch":
        def move(value):
            return {k: v.to(device) for k, v in value.items()} if isinstance(value, dict) else value.to(device)

        return PairBatch(**{f.name: move(getattr(self, f.name)) for f in fields(self)})

    @property
    def num_pairs(self) -> int:
        return int(self.centre_a.shape[0])

    @classmethod
    def from_arrow(cls, rows: pa.Table | pa.RecordBatch, with_edges: bool = True) -> "PairBatch":
        """``with_edges`` False: no first-layer edges (and no two-hop nodes), for a forward pass
        given every node's precomputed first layer (``model.infer.node_first_layer``)."""
        if isinstance(rows, pa.RecordBatch):
            rows = pa.Table.from_batches([rows])
        sides = {s: _side_arrays(rows, s, with_edges) for s in ("a", "b")}
        edges = _edges_once(list(sides.values())) if with_edges else np.empty((0, 3), np.int64)
        n_pairs = rows.num_rows
        hop1_ids = [sides[s]["hop1"][sides[s]["mask"]] for s in ("a", "b")]  # in the edges too, if any
        all_ids = np.concatenate(
            [edges[:, 0], edges[:, 1], sides["a"]["centre"], sides["b"]["centre"], *hop1_ids]
        )
        node_ids, inverse = np.unique(all_ids, return_inverse=True)
        n_edges = edges.shape[0]
        local_target, local_child = inverse[:n_edges], inverse[n_edges : 2 * n_edges]
        local_centre = inverse[2 * n_edges : 2 * n_edges + 2 * n_pairs]

        def local(ids: np.ndarray) -> np.ndarray:
            return np.searchsorted(node_ids, ids)

        width = max(1, sides["a"]["hop1"].shape[1], sides["b"]["hop1"].shape[1])
        out = {}
        for s in ("a", "b"):
            hop1, rel, mask = sides[s]["hop1"], sides[s]["hop1_rel"], sides[s]["mask"]
            pad = width - hop1.shape[1]
            hop1 = np.pad(local(hop1) * mask, ((0, 0), (0, pad)))
            out[f"hop1_{s}"] = torch.from_numpy(hop1.astype(np.int64))
            out[f"rel_{s}"] = torch.from_numpy(np.pad(rel, ((0, 0), (0, pad))).astype(np.int64))
            out[f"mask_{s}"] = torch.from_numpy(np.pad(mask, ((0, 0), (0, pad))))
            out[f"returns_{s}"] = torch.from_numpy(sides[s]["returns"])
        return cls(
            node_ids=torch.from_numpy(node_ids.astype(np.int64)),
            edge_index=torch.from_numpy(np.stack([local_child, local_target]).astype(np.int64)),
            edge_type=torch.from_numpy(edges[:, 2].astype(np.int64)),
            centre_a=torch.from_numpy(local_centre[:n_pairs].astype(np.int64)),
            centre_b=torch.from_numpy(local_centre[n_pairs:].astype(np.int64)),
            evidence={e.column: _pair_column(rows, e.column) for e in PAIR_EVIDENCE},
            **out,
        )


def _pair_column(rows: pa.Table, name: str) -> Tensor:
    """[P] float32: a per-pair evidence column of the rows, zeros where they lack it."""
    if name not in rows.column_names:
        return torch.zeros(rows.num_rows, dtype=torch.float32)
    return torch.from_numpy(rows.column(name).to_numpy(zero_copy_only=False).astype(np.float32))


def _edges_once(sides: list[dict[str, np.ndarray]]) -> np.ndarray:
    """[E, 3] (target, child, relation) first-layer edges of ``_side_arrays`` outputs. A node
    met several times (as a centre, as someone's neighbour) brings the same neighbour list each
    time: only the edges of its first occurrence are kept."""
    occ_target = np.concatenate([s["occ_target"] for s in sides])
    offsets = np.cumsum([0] + [len(s["occ_target"]) for s in sides[:-1]])
    edge_occ = np.concatenate([s["edge_occ"] + off for s, off in zip(sides, offsets)])
    first = np.zeros(len(occ_target), dtype=bool)
    first[np.unique(occ_target, return_index=True)[1]] = True
    keep = first[edge_occ]
    return np.stack([np.concatenate([s[f"edge_{k}"] for s in sides])[keep] for k in ("target", "child", "rel")],
                    axis=1)


def node_edges(neighbourhoods: pa.Table | Iterable[pa.RecordBatch], chunk_rows: int = 65_536) -> np.ndarray:
    """[E, 3] (target, child, relation) as global node ids: every node's sampled neighbour list
    that the ``neighbourhoods`` (extract's NEIGHBOURHOOD rows: a table, or its record batches as
    a Parquet reader streams them) hold, as a centre's one hop or as a one-hop node's two hops,
    each node's once. What the first layer reads of every node it can meet in a pair shard.

    Read a batch (of ``chunk_rows`` rows of a table) at a time, keeping the edges of targets no
    earlier batch had: the same edges, each target's in the same order, as all rows at once
    (``node_first_layer`` sorts them by target), without every row's two-hop arrays in memory
    together: at 100k nodes per side 0.03 GiB above the table instead of 0.41, at 1M 0.26 GiB
    (bench/RESULTS.md 2026-12-07)."""
    if isinstance(neighbourhoods, pa.Table):
        neighbourhoods = neighbourhoods.to_batches(max_chunksize=chunk_rows)
    parts, seen = [], np.zeros(0, dtype=bool)  # seen[node id]: its edges are kept already
    for batch in neighbourhoods:
        side = pa.Table.from_batches([batch]).select(["nid", *SUBGRAPH_COLUMNS]).rename_columns(
            ["nid_x", *(f"x_{c}" for c in SUBGRAPH_COLUMNS)])
        edges = _edges_once([_side_arrays(side, "x")])
        if len(edges) and edges[:, 0].max() >= len(seen):
            seen = np.concatenate([seen, np.zeros(int(edges[:, 0].max()) + 1 - len(seen), dtype=bool)])
        edges = edges[~seen[edges[:, 0]]]
        seen[edges[:, 0]] = True
        parts.append(edges)
    return np.concatenate(parts) if parts else np.empty((0, 3), dtype=np.int64)


def _list_column(rows: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, values) of a list<int> column, without copying through Python objects."""
    col = rows.column(name).combine_chunks()
    offsets = col.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
    values = col.values.to_numpy(zero_copy_only=False).astype(np.int64)
    return offsets - offsets[0], values[offsets[0] : offsets[-1]] if len(offsets) else values


def _side_arrays(rows: pa.Table, side: str, with_edges: bool = True) -> dict[str, np.ndarray]:
    """One side's centres, padded one-hop slots and returns; with ``with_edges``, also its
    first-layer edges and their occurrences (``_edges_once`` reads them)."""
    centre = rows.column(f"nid_{side}").to_numpy(zero_copy_only=False).astype(np.int64)
    off1, hop1 = _list_column(rows, f"{side}_hop1")
    _, rel1 = _list_column(rows, f"{side}_hop1_rel")
    off2, parent = _list_column(rows, f"{side}_hop2_parent")
    _, hop2 = _list_column(rows, f"{side}_hop2")
    _, rel2 = _list_column(rows, f"{side}_hop2_rel")
    n = len(centre)
    len1 = np.diff(off1)
    row1 = np.repeat(np.arange(n), len1)
    pos1 = np.arange(len(hop1)) - off1[row1]
    row2 = np.repeat(np.arange(n), np.diff(off2))
    under = off1[row2] + parent  # the one-hop entry each two-hop node hangs from, as an index
    child_count = np.bincount(under, minlength=len(hop1))
    back = hop2 == centre[row2]
    returns = np.stack([row2[back], parent[back], rel2[back], child_count[under[back]]], axis=1)

    width = int(len1.max()) if n and len(hop1) else 0
    padded = np.zeros((n, width), dtype=np.int64)
    padded_rel = np.zeros((n, width), dtype=np.int64)
    mask = np.zeros((n, width), dtype=bool)
    padded[row1, pos1], padded_rel[row1, pos1], mask[row1, pos1] = hop1, rel1, True
    arrays = {
        "centre": centre,
        "hop1": padded,
        "hop1_rel": padded_rel,
        "mask": mask,
        "returns": returns.astype(np.int64).reshape(-1, 4),
    }
    if not with_edges:
        return arrays
    return arrays | {
        # first-layer edges: centre <- its one-hop nodes, one-hop node <- its two-hop nodes
        "edge_target": np.concatenate([np.repeat(centre, len1), hop1[under]]),
        "edge_child": np.concatenate([hop1, hop2]),
        "edge_rel": np.concatenate([rel1, rel2]),
        # occurrences of first-layer targets (each centre, each one-hop entry) and, per edge,
        # the occurrence whose neighbour list it belongs to
        "occ_target": np.concatenate([centre, hop1]),
        "edge_occ": np.concatenate([row1, n + off1[row2] + parent]),
    }

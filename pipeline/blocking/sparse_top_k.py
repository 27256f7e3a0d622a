"""The names method's top k (``names.top_k_pairs``) as sparse matrix products in the Python
workers: each task holds one share of the A names (all terms of each), every B name of their
types (a file the driver wrote, read once per worker), and computes the TF-IDF cosine of each
of its A names with every B name that shares a term, ``A_share @ B.T`` with scipy, a few
thousand A names at a time. The same pairs, similarities and ranks as an inverted-index join
on the terms followed by a sum per pair and a window per name, without the join's rows: on
DBLP-ACM's titles that join made 16.8M (A name, B name, 3-gram) rows that Spark shuffled,
summed and ranked in ~50 s; here they are multiply-adds in C.

Ties are broken as the windows broke them (by the other side's id, in Spark's string order,
which for UTF-8 is Python's code-point order), sims are rounded to 9 decimals before ranking
(sums in another order must not change the top k), and terms are 64-bit hashes of the grams
(``xxhash64``: with a million distinct grams in a type, the chance that any two share a
hash is about 3 in 10^8; two that did would count as one term).

A task keeps each of its A names' top k (exact: it sees all of B) and each B name's top k
among its A names; the caller ranks the B names' kept pairs across tasks (``names.top_k_pairs``):
a B name's true top k is among them, each task having kept its best k.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
from pyspark.sql import types as T

# one row per kept pair of a task: a_top marks the pairs among their A name's top k
FOUND = T.StructType([
    T.StructField("type", T.StringType(), False),
    T.StructField("id_a", T.StringType(), False),
    T.StructField("id_b", T.StringType(), False),
    T.StructField("sim", T.DoubleType(), False),
    T.StructField("a_top", T.BooleanType(), False),
])


@dataclass(frozen=True)
class Side:
    """One side's names of one type as a sparse matrix: ``ids`` sorted (row i is ``ids[i]``),
    ``terms`` the sorted term hashes (column j is ``terms[j]``), ``weights`` [names, terms] and,
    with prefix filtering, ``rare`` the same restricted to each name's rarest terms."""

    ids: np.ndarray
    terms: np.ndarray
    weights: "sparse.csr_matrix"  # noqa: F821
    rare: "sparse.csr_matrix | None"  # noqa: F821


def side_matrix(ids: np.ndarray, terms: np.ndarray, w: np.ndarray, rare: np.ndarray | None,
                columns: np.ndarray | None = None) -> Side:
    """Rows (id, term hash, weight[, rare]) -> ``Side``. ``columns``: the term hashes to index
    by (the other side's; terms it lacks are dropped, they add nothing to a product), else
    this side's own."""
    from scipy import sparse

    names, row = np.unique(ids, return_inverse=True)
    if columns is None:
        columns, col = np.unique(terms, return_inverse=True)
        known = np.ones(len(terms), dtype=bool)
    else:
        col = np.searchsorted(columns, terms)
        known = col < len(columns)
        known[known] = columns[col[known]] == terms[known]
    shape = (len(names), len(columns))

    def matrix(keep: np.ndarray) -> sparse.csr_matrix:
        return sparse.csr_matrix((w[keep], (row[keep], col[keep])), shape=shape)

    return Side(names, columns, matrix(known), None if rare is None else matrix(known & rare))


def chunk_top_k(a: Side, b: Side, k: int, min_sim: float, rows_per_step: int = 2048, rank_every: int = 1_000_000
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(row of a, row of b, sim, a_top) of the pairs among an A name's top k (a_top) or a B name's
    top k among ``a``'s names: sim = the dot product of the two unit weight rows, rounded to 9
    decimals, at least ``min_sim``; with ``rare`` matrices only pairs that share a term rare for
    one of the two (prefix filtering), still summed over every shared term. ``a`` must be
    indexed by ``b.terms``. ``rows_per_step`` A names at a time bounds the product's memory; the
    B names' pairs are ranked when more than ``rank_every`` (and than those kept) wait."""
    b_t = b.weights.T.tocsr()
    b_rare_t = b.rare.T.tocsr() if b.rare is not None else None
    tops, best = [], (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0))
    pending, n_pending = [], 0  # the B names' pairs of the steps since the last ranking
    for start in range(0, a.weights.shape[0], rows_per_step):
        step = a.weights[start:start + rows_per_step]
        product = step @ b_t
        if b_rare_t is not None:  # found through a rare term of either name
            found = a.rare[start:start + rows_per_step] @ b_t + step @ b_rare_t
            product = product.multiply(found != 0).tocsr()
        product = product.tocoo()
        sim = np.round(product.data, 9)
        keep = sim >= min_sim
        rows, cols, sim = product.row[keep].astype(np.int64) + start, product.col[keep].astype(np.int64), sim[keep]
        tops.append(_first_k(rows, cols, sim, k))
        pending.append(_first_k(cols, rows, sim, k))
        n_pending += len(pending[-1][0])
        if n_pending > max(len(best[0]), rank_every):  # amortised: each ranking at least doubles what it sorts
            best = _first_k(*(np.concatenate(p) for p in zip(best, *pending)), k)
            pending, n_pending = [], 0
    best = _first_k(*(np.concatenate(p) for p in zip(best, *pending)), k)
    top_a = tuple(np.concatenate(p) for p in zip(*tops)) if tops else best
    top_b_cols, top_b_rows, top_b_sim = best
    n_b = max(len(b.ids), 1)
    in_top_a = np.isin(top_b_rows * n_b + top_b_cols, top_a[0] * n_b + top_a[1])
    rows = np.concatenate([top_a[0], top_b_rows[~in_top_a]])
    cols = np.concatenate([top_a[1], top_b_cols[~in_top_a]])
    sims = np.concatenate([top_a[2], top_b_sim[~in_top_a]])
    a_top = np.concatenate([np.ones(len(top_a[0]), bool), np.zeros(int((~in_top_a).sum()), bool)])
    return rows, cols, sims, a_top


def _first_k(keys: np.ndarray, others: np.ndarray, sim: np.ndarray, k: int):
    """Of (key, other, sim) triples, each key's k of highest sim (ties: lowest other)."""
    order = np.lexsort((others, -sim, keys))
    keys, others, sim = keys[order], others[order], sim[order]
    rank = np.arange(len(keys)) - np.searchsorted(keys, keys)
    first = rank < k
    return keys[first], others[first], sim[first]


def _stamp(folder: str) -> tuple:
    return tuple(sorted((p.name, p.stat().st_mtime_ns) for p in Path(folder).glob("*.parquet")))


_b_sides: dict[tuple, Side] = {}


def _b_side(folder: str, node_type: str, prefix: bool) -> Side:
    """The B names of one type as a ``Side``, kept for the worker's later tasks."""
    import pyarrow.dataset as pads

    key = (folder, _stamp(folder), node_type)  # a rewritten folder is read anew
    if key not in _b_sides:
        if any(k[:2] != key[:2] for k in _b_sides):
            _b_sides.clear()
        rows = pads.dataset(folder, format="parquet").to_table(filter=pads.field("type") == node_type)
        _b_sides[key] = side_matrix(rows["id"].to_numpy(zero_copy_only=False), rows["term"].to_numpy(),
                                    rows["w"].to_numpy(), rows["rare"].to_numpy() if prefix else None)
    return _b_sides[key]


def top_k_tasks(b_folder: str, k_by_type: dict[str, int], default_k: int, min_sim: float, prefix: bool):
    """A mapInArrow function: one task's A rows (type, id, term, w[, rare]; every row of each of
    its names) in, FOUND rows out. ``b_folder``: the B rows, as Parquet, readable by every worker."""

    def fn(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow.compute as pc

        batches = list(batches)
        if not batches:  # a task without A names
            return
        table = pa.Table.from_batches(batches)
        for node_type in pc.unique(table["type"]).to_pylist():
            rows = table.filter(pc.equal(table["type"], node_type))
            b = _b_side(b_folder, node_type, prefix)
            if len(b.ids) == 0:
                continue
            a = side_matrix(rows["id"].to_numpy(zero_copy_only=False), rows["term"].to_numpy(),
                            rows["w"].to_numpy(), rows["rare"].to_numpy() if prefix else None, columns=b.terms)
            ra, rb, sim, a_top = chunk_top_k(a, b, k_by_type.get(node_type, default_k), min_sim)
            yield pa.RecordBatch.from_arrays(
                [pa.array(np.full(len(ra), node_type, dtype=object), pa.string()),
                 pa.array(a.ids[ra], pa.string()), pa.array(b.ids[rb], pa.string()),
                 pa.array(sim, pa.float64()), pa.array(a_top, pa.bool_())],
                names=FOUND.fieldNames())
    return fn

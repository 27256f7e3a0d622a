"""The vector add-on (``block.vector_top_k``): per type, each name's k nearest names of the
other side by level-0 vector (cosine; ``nearest_names``), for what shares no n-gram: names in
two languages, reworded titles. Exact (every A name against every B name of the type, in
chunks), so bounded by ``vector_max_products``; a pair both the method and this add-on find
keeps the higher similarity. ``vector_blocks`` names the level-0 blocks compared, each on its
own: ``name`` (the configured name encoder's vectors), and/or ``anchor_profile`` (where the
seed links lie around each node; pipeline/anchor_profile.py), for graphs without names or with
names in two languages.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from model.level0 import block_columns, feature_blocks, load_feature_matrix
from pipeline.schema import CANDIDATE, KG_A, KG_B, Paths

if TYPE_CHECKING:
    from pipeline.config import BlockConfig

log = logging.getLogger("kgmerge")


def nearest_names(vec_a: np.ndarray, vec_b: np.ndarray, k: int,
                  chunk: int = 2048) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row of ``vec_a``'s k most similar rows of ``vec_b`` and each row of ``vec_b``'s k
    most similar rows of ``vec_a``, by cosine. Returns (row in a, row in b, cosine), every pair
    once, sorted by (row in a, row in b). Memory: one chunk of rows times the other side."""
    unit_a, unit_b = (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12) for v in (vec_a, vec_b))

    def best(query: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        top = min(k, len(base))
        rows, cols = [], []
        for start in range(0, len(query), chunk):
            sims = query[start:start + chunk] @ base.T
            cols.append(np.argpartition(-sims, top - 1, axis=1)[:, :top].ravel())
            rows.append(np.repeat(np.arange(start, start + len(sims)), top))
        return np.concatenate(rows), np.concatenate(cols)

    if not len(unit_a) or not len(unit_b) or k == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, np.float32)
    a_rows, b_of_a = best(unit_a, unit_b)
    b_rows, a_of_b = best(unit_b, unit_a)
    keys = np.unique(np.concatenate([a_rows * len(unit_b) + b_of_a, a_of_b * len(unit_b) + b_rows]))
    rows_a, rows_b = keys // len(unit_b), keys % len(unit_b)
    return rows_a, rows_b, np.einsum("ij,ij->i", unit_a[rows_a], unit_b[rows_b])

def vector_candidates(spark: SparkSession, paths: Paths, cfg: "BlockConfig") -> DataFrame:
    """(id_a, id_b, type, sim): ``nearest_names`` over each level-0 block of
    ``block.vector_blocks`` (name vectors, anchor profiles), per type, on the driver (the vectors
    are one local Arrow file, as the model reads them); a pair found by two blocks keeps the
    higher similarity."""
    index = pq.read_table(str(paths.node_index), columns=["nid", "kg", "id", "type"]).to_pandas()
    names = index.groupby(["type", "kg"]).size()
    for node_type in sorted(index["type"].unique()):
        n_a, n_b = names.get((node_type, KG_A), 0), names.get((node_type, KG_B), 0)
        if n_a * n_b > cfg.vector_max_products:
            raise ValueError(
                f"block.vector_top_k compares every name of a type with every name of the other side: type "
                f"{node_type!r} has {n_a:,} x {n_b:,} names, above block.vector_max_products "
                f"({cfg.vector_max_products:.3g}). Set block.vector_top_k: 0 for graphs this large "
                f"(docs/scaling.md), or raise the limit if the driver can afford it")
    blocks = feature_blocks(paths.node_features)
    held = [name for name, _ in blocks]
    missing = [name for name in cfg.vector_blocks if name not in held]
    if missing:
        raise ValueError(f"block.vector_blocks asks for {missing} but the level-0 features hold only {held}: "
                         f"set features.anchor_hops (> 0) to make anchor profiles, or drop it from vector_blocks")
    matrix = load_feature_matrix(paths.node_features)
    found = []
    for block in cfg.vector_blocks:
        vectors = matrix[:, block_columns(blocks, block)]
        by_block = []
        for node_type, nodes in index.groupby("type", sort=True):
            a = nodes[nodes["kg"] == KG_A].sort_values("id")
            b = nodes[nodes["kg"] == KG_B].sort_values("id")
            rows_a, rows_b, sims = nearest_names(vectors[a["nid"].to_numpy()], vectors[b["nid"].to_numpy()],
                                                 cfg.vector_top_k)
            by_block.append(pd.DataFrame({"id_a": a["id"].to_numpy()[rows_a], "id_b": b["id"].to_numpy()[rows_b],
                                          "type": node_type, "sim": sims.astype(np.float64).round(9)}))
        log.info("block: %d pairs by the %s block (%d nearest per node, both sides)",
                 sum(len(f) for f in by_block), block, cfg.vector_top_k)
        found += by_block
    pairs = pd.concat(found, ignore_index=True) if found else pd.DataFrame(columns=CANDIDATE.fieldNames())
    pairs = pairs.groupby(["id_a", "id_b", "type"], as_index=False, sort=False)["sim"].max()
    return spark.createDataFrame(pairs[CANDIDATE.fieldNames()], CANDIDATE)

def with_vector_candidates(cands: DataFrame, by_vector: DataFrame) -> DataFrame:
    """The union of both candidate sets; a pair both found keeps the higher similarity."""
    return (cands.unionByName(by_vector).groupBy("id_a", "id_b", "type").agg(F.max("sim").alias("sim"))
            .select(*CANDIDATE.fieldNames()))

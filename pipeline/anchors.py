"""Anchors: the aligned pairs (nid_a, nid_b) a scoring round reads, so that cross-graph
attention knows which neighbours already have a counterpart. Round 1 reads the seed links (the
gold links of split ``train``); each later round adds the round before's confident matches.

The train stage writes round 0's file, the score stage each later one (``Paths.anchors``);
the report reads the last. A file holds node rows of the node index, sorted.

    >>> seeds = seed_anchor_pairs(gold, node_index)
    >>> write_anchors(seeds, paths.anchors(0))
    >>> read_anchors(paths.anchors(0))        # int64 [n, 2]
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipeline.pairs import with_node_rows


def seed_anchor_pairs(gold: DataFrame, index: DataFrame) -> pd.DataFrame:
    """The train (seed) links as node rows of the node index (nid_a, nid_b), sorted."""
    links = with_node_rows(gold.where(F.col("split") == "train"), index)
    return links.select("nid_a", "nid_b").toPandas().sort_values(["nid_a", "nid_b"], ignore_index=True)


def write_anchors(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame[["nid_a", "nid_b"]].astype("int64").to_parquet(path, index=False)


def read_anchors(path: Path) -> np.ndarray:
    """[n, 2] int64: (nid_a, nid_b) per anchor."""
    return pd.read_parquet(path)[["nid_a", "nid_b"]].to_numpy(dtype=np.int64)


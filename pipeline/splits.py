"""The splits of the gold links: ``train`` (the seed links the model learns from), ``valid``
(where thresholds and configs are chosen) and ``test`` (read once, by evaluate).

Where a source ships no split, one is drawn with the config's ``dataset.seed``,
``train_fraction`` and ``valid_fraction_of_train``, by one of two rules:

- ``split_by_permutation`` (the graph benchmarks, which ship their links as one list): a seeded
  permutation, so the counts are exact (30% of DBP15K's 15,000 links is 4,500 seed links, as in
  the published protocols);
- ``split_by_hash`` (user tables, in Spark): each link's split from a seeded hash of its two
  ids, so a link keeps its split when links are added or removed between loads (incremental
  runs), at the price of counts that are right only on average.

    >>> gold = split_by_hash(gold, ds)                       # rows whose split is null get one
    >>> links = split_by_permutation(links, ds)              # pandas, every row gets one
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

if TYPE_CHECKING:
    from pipeline.config import DatasetConfig

SPLITS = ("train", "valid", "test")


def split_by_permutation(links: pd.DataFrame, ds: "DatasetConfig") -> pd.DataFrame:
    """``links`` with a ``split`` column: a seeded permutation's first train_fraction train (the
    last valid_fraction_of_train of those valid), the rest test."""
    order = np.random.default_rng(ds.seed).permutation(len(links))
    n_train = int(round(len(links) * ds.train_fraction))
    n_valid = int(round(n_train * ds.valid_fraction_of_train))
    split = np.full(len(links), "test", dtype=object)
    split[order[: n_train - n_valid]] = "train"
    split[order[n_train - n_valid : n_train]] = "valid"
    return links.assign(split=split)


def split_by_hash(gold: DataFrame, ds: "DatasetConfig") -> DataFrame:
    """Gold links without a split get one from a seeded hash of (id_a, id_b)."""
    u = F.pmod(F.xxhash64("id_a", "id_b", F.lit(ds.seed)), F.lit(1_000_000)) / 1_000_000.0
    n_valid = ds.train_fraction * ds.valid_fraction_of_train
    hashed = F.when(u < n_valid, "valid").when(u < ds.train_fraction, "train").otherwise("test")
    return gold.withColumn("split", F.coalesce(F.col("split"), hashed))

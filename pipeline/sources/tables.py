"""Two graphs already in the pipeline's own schema (``pipeline/schema.py``), as Parquet: the
format for bringing your own graphs, and what ``bench/synth.py`` writes.

Folder layout (each a Parquet file or a folder of Parquet files)::

    nodes/   kg ("A" or "B"), id, type, name, attrs (map<string,string>, may be null)
    edges/   kg, src, rel, dst
    gold/    id_a, id_b, type, split (train / valid / test, or null)

A gold link without a split is put in one by a seeded hash of its two ids: ``train_fraction``
of them train (``valid_fraction_of_train`` of those valid), the rest test, the same way on every
run and on any number of machines.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.config import DatasetConfig
from pipeline.schema import EDGES, GOLD, NODES
from pipeline.sources import SourceTables

TABLES = {"nodes": NODES, "edges": EDGES, "gold": GOLD}


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


def read_table(spark: SparkSession, folder, name: str) -> DataFrame:
    path = folder / name
    if not path.exists():
        raise FileNotFoundError(f"dataset folder {folder} lacks {name}/ (Parquet with columns "
                                f"{', '.join(TABLES[name].fieldNames())}); check dataset.path in the config")
    df = spark.read.parquet(str(path))
    optional = {"attrs", "split"}
    missing = [c for c in TABLES[name].fieldNames() if c not in df.columns and c not in optional]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; it has {', '.join(df.columns)} "
                         f"and needs {', '.join(TABLES[name].fieldNames())}")
    for column in optional & set(TABLES[name].fieldNames()) - set(df.columns):
        df = df.withColumn(column, F.lit(None).cast(TABLES[name][column].dataType))
    return df


def assign_splits(gold: DataFrame, ds: DatasetConfig) -> DataFrame:
    """Gold links without a split get one from a seeded hash of (id_a, id_b)."""
    u = F.pmod(F.xxhash64("id_a", "id_b", F.lit(ds.seed)), F.lit(1_000_000)) / 1_000_000.0
    n_valid = ds.train_fraction * ds.valid_fraction_of_train
    hashed = F.when(u < n_valid, "valid").when(u < ds.train_fraction, "train").otherwise("test")
    return gold.withColumn("split", F.coalesce(F.col("split"), hashed))


def read(spark: SparkSession, ds: DatasetConfig, options: Options) -> SourceTables:
    nodes, edges, gold = (read_table(spark, ds.path, name) for name in TABLES)
    bad_kg = nodes.where(~F.col("kg").isin("A", "B")).select("kg", "id").limit(1).collect()
    if bad_kg:
        raise ValueError(f"{ds.path / 'nodes'}: node {bad_kg[0]['id']!r} has kg {bad_kg[0]['kg']!r}; "
                         "kg must be 'A' or 'B'")
    return SourceTables(nodes, edges, assign_splits(gold, ds))

"""One small adapter per input format. Each turns a source folder into the pipeline's tables
(``pipeline/schema.py``: NODES, EDGES, GOLD and, where the benchmark has them, LABELLED) as
Spark DataFrames.

An adapter is a module ``pipeline/sources/<format>.py`` with:

- ``Options``: a pydantic model of its settings (``dataset.options`` in the YAML config),
  validated when the config is loaded, so a bad option stops the run before any work;
- ``read(spark, ds, options) -> SourceTables``.

``dataset.format`` in the config is the module's name.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


@dataclass
class SourceTables:
    """An adapter's output. A table may carry a ``_row`` column (the input row number, for
    messages and the rejected table); ingest drops it."""

    nodes: DataFrame
    edges: DataFrame
    gold: DataFrame
    # the benchmark's own labelled pairs (positives and negatives), where it has them
    labelled: DataFrame | None = None
    # rows the adapter could not read but the rest can go on without (pipeline/schema.py
    # REJECTED_INPUT), e.g. malformed CSV records
    rejected: DataFrame | None = None


def rejected_rows(df: DataFrame, source: str, record: Column, reason: str | Column) -> DataFrame:
    """Rows of ``df`` as REJECTED_INPUT rows: the table they came from, their graph and row
    number where ``df`` has them, the record as text, and why."""
    return df.select(
        F.lit(source).alias("source"),
        (F.col("kg") if "kg" in df.columns else F.lit(None)).cast("string").alias("kg"),
        (F.col("_row") if "_row" in df.columns else F.lit(None)).cast("long").alias("row"),
        record.cast("string").alias("record"),
        (F.lit(reason) if isinstance(reason, str) else reason).alias("reason"),
    )


FORMATS = ("magellan", "dbp15k", "openea", "tables", "records")


def adapter(fmt: str) -> ModuleType:
    if fmt not in FORMATS:
        raise ValueError(f"unknown dataset format {fmt!r}; use one of {', '.join(FORMATS)}")
    return importlib.import_module(f"pipeline.sources.{fmt}")


def require_files(folder: Path, names: list[str]) -> None:
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"dataset folder {folder} lacks {', '.join(missing)}; check dataset.path in the config"
        )

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

from pyspark.sql import DataFrame


@dataclass
class SourceTables:
    nodes: DataFrame
    edges: DataFrame
    gold: DataFrame
    # the benchmark's own labelled pairs (positives and negatives), where it has them
    labelled: DataFrame | None = None


FORMATS = ("magellan", "dbp15k", "openea", "tables")


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

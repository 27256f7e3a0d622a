"""One small adapter per input format. Each turns a source folder into the pipeline's tables
(``pipeline/schema.py``: NODES, EDGES, GOLD) as Spark DataFrames."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pyspark.sql import DataFrame, SparkSession

from pipeline.config import DatasetConfig


@dataclass
class SourceTables:
    nodes: DataFrame
    edges: DataFrame
    gold: DataFrame


def require_files(folder: Path, names: list[str]) -> None:
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"dataset folder {folder} lacks {', '.join(missing)}; check dataset.path in the config"
        )


def reader(fmt: str) -> Callable[[SparkSession, DatasetConfig], SourceTables]:
    from pipeline.sources import dblp_acm, dbp15k

    return {"dblp_acm": dblp_acm.read, "dbp15k": dbp15k.read}[fmt]

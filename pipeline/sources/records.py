"""Two tables of records, wherever they are: the generic input for the common case (two product
catalogues, two customer lists) without writing graph files.

Each side (``a``, ``b``) is a CSV file, a Parquet folder, a Delta table path, or a table of the
Spark catalog; one column mapping says which column is the id, which the name, which are plain
``attributes`` (kept in ``attrs``; list number columns in ``features.numeric`` too) and which are
``linked``: values that become nodes of their own type, linked from the record, so that two
records sharing a brand share its node (``pipeline/sources/recordgraph.py``). Known matches and
labelled pairs are optional, each a file or table of (a id, b id[, label][, split]); a pair
without a split gets one from a seeded hash (``pipeline/splits.py``). With no matches at all,
run with ``train.labels: none``.

    dataset:
      name: my_products
      format: records
      path: /data/my_products            # relative paths below are read from here
      options:
        a: {path: shop_a.csv}
        b: {path: /lake/shop_b, file_format: delta}     # or parquet, or {table: sales.shop_b}
        id_column: id
        name_column: title
        entity_type: product
        attributes: [price]
        linked: [{column: brand, type: brand, rel: has_brand}]
        matches: {path: known_matches.csv, a_column: a_id, b_column: b_id}

CSV files go through the same checks as every adapter (``pipeline/sources/csvfile.py``): text
valid in its encoding, the header, and malformed records rejected with their row.
"""
from __future__ import annotations

from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.schema import GOLD, KG_A, KG_B, LABELLED
from pipeline.settings import Settings
from pipeline.sources import SourceTables
from pipeline.sources.csvfile import ROW, check_encoding, read_header, read_rows, split_malformed
from pipeline.sources.recordgraph import NAME_PATTERN, Linked, record_graph
from pipeline.splits import split_by_hash

if TYPE_CHECKING:  # the config imports the adapters to check their options
    from pipeline.config import DatasetConfig


class Table(Settings):
    """Where one table is: ``path`` (a CSV file, a Parquet folder or a Delta table; relative to
    ``dataset.path``) in ``file_format``, or ``table``, a table of the Spark catalog."""

    path: str | None = None
    file_format: Literal["csv", "parquet", "delta"] = "csv"
    table: str | None = None
    delimiter: str = Field(",", min_length=1, max_length=1)
    encoding: str = "utf-8"

    @model_validator(mode="after")
    def _one_place(self) -> "Table":
        if (self.path is None) == (self.table is None):
            raise ValueError("give a table's path (with file_format) or its catalog table, one of them")
        return self

    def where(self) -> str:
        return self.table if self.table is not None else self.path


class Pairs(Table):
    """Known matches or labelled pairs: a table of (a id, b id[, label][, split])."""

    a_column: str = "id_a"
    b_column: str = "id_b"
    label_column: str = "label"  # labelled pairs only: 1 a match, 0 not
    split_column: str | None = None  # train / valid / test; None or empty: a seeded hash


class Options(Settings):
    a: Table
    b: Table
    id_column: str = "id"
    name_column: str
    entity_type: str = Field("record", pattern=NAME_PATTERN)
    attributes: list[str] = []
    linked: list[Linked] = []
    matches: Pairs | None = None
    labelled: Pairs | None = None

    def columns(self) -> dict[str, str]:
        """Every column a side must have -> why (for error messages)."""
        need = {self.id_column: "id_column", self.name_column: "name_column"}
        for link in self.linked:
            need.setdefault(link.column, f"linked ({link.type})")
        for a in self.attributes:
            need.setdefault(a, "attributes")
        return need


def read_table(spark: SparkSession, folder: Path, where: Table, label: str) -> tuple[DataFrame, DataFrame | None]:
    """(the table's rows with every column as text and ``_row`` where it is a CSV file, its
    malformed records as rejected rows or None)."""
    if where.table is not None:
        return _text(spark.table(where.table)), None
    path = Path(where.path) if Path(where.path).is_absolute() else folder / where.path
    if not path.exists():
        raise FileNotFoundError(f"{label}: {path} does not exist; check dataset.path and options.{label}.path")
    if where.file_format == "parquet":
        return _text(spark.read.parquet(str(path))), None
    if where.file_format == "delta":
        return _text(spark.read.format("delta").load(str(path))), None
    check_encoding(path, where.encoding)
    header = read_header(path, where.delimiter, where.encoding)
    rows, rejected = split_malformed(read_rows(spark, path, header, where.delimiter, where.encoding),
                                     path, header, where.delimiter)
    return rows, rejected


def _text(df: DataFrame) -> DataFrame:
    return df.select(*[F.col(f"`{c}`").cast("string").alias(c) for c in df.columns])


def _require(df: DataFrame, need: dict[str, str], label: str, where: Table) -> None:
    missing = [f"{c!r} (needed by options.{why})" for c, why in need.items() if c not in df.columns]
    if missing:
        raise ValueError(f"options.{label} ({where.where()}): no column {', '.join(missing)}; it has "
                         f"{', '.join(c for c in df.columns if c != ROW)}")


def _pairs(spark, folder: Path, pairs: Pairs, label: str, o: Options, labelled: bool) -> tuple[DataFrame, DataFrame | None]:
    df, rejected = read_table(spark, folder, pairs, label)
    need = {pairs.a_column: f"{label}.a_column", pairs.b_column: f"{label}.b_column"}
    if labelled:
        need[pairs.label_column] = f"{label}.label_column"
    if pairs.split_column:
        need[pairs.split_column] = f"{label}.split_column"
    _require(df, need, label, pairs)
    t = o.entity_type
    split = F.lower(F.trim(F.col(pairs.split_column))) if pairs.split_column else F.lit(None).cast("string")
    out = df.select(F.concat(F.lit(f"{t}/"), F.trim(pairs.a_column)).alias("id_a"),
                    F.concat(F.lit(f"{t}/"), F.trim(pairs.b_column)).alias("id_b"),
                    F.lit(t).alias("type"), F.when(split != "", split).alias("split"),
                    *([F.trim(pairs.label_column).cast("int").alias("label")] if labelled else []))
    return out, rejected


def read(spark: SparkSession, ds: DatasetConfig, options: Options) -> SourceTables:
    o, folder = options, Path(ds.path)
    nodes, edges, rejected = [], [], []
    for kg, label, where in ((KG_A, "a", o.a), (KG_B, "b", o.b)):
        df, bad = read_table(spark, folder, where, label)
        _require(df, o.columns(), label, where)
        rows = df.select(
            F.trim(o.id_column).alias("id"), F.col(o.name_column).alias("name"),  # record_graph prefixes the type
            *[F.col(link.column).alias(f"l{i}") for i, link in enumerate(o.linked)],
            *[F.col(a).alias(f"a{j}") for j, a in enumerate(o.attributes)],
        )
        side_nodes, side_edges = record_graph(rows, kg, o)
        nodes.append(side_nodes)
        edges.append(side_edges)
        rejected.append(bad)
    gold = spark.createDataFrame([], GOLD)
    if o.matches is not None:
        gold, bad = _pairs(spark, folder, o.matches, "matches", o, labelled=False)
        rejected.append(bad)
    labelled = None
    if o.labelled is not None:
        labelled, bad = _pairs(spark, folder, o.labelled, "labelled", o, labelled=True)
        labelled = split_by_hash(labelled, ds).select(*LABELLED.fieldNames())
        rejected.append(bad)
    read_rejected = [bad for bad in rejected if bad is not None]  # CSV sources only
    union = reduce(DataFrame.unionByName, read_rejected) if read_rejected else None
    return SourceTables(nodes[0].unionByName(nodes[1]), edges[0].unionByName(edges[1]),
                        split_by_hash(gold.select(*GOLD.fieldNames()), ds), labelled, union)

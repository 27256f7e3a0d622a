"""Two graphs already in the pipeline's own schema (``pipeline/schema.py``): the format for
bringing your own graphs, and what ``bench/synth.py`` writes.

Folder layout, Parquet (``file_format: parquet``, the default; each a file or a folder of files)::

    nodes/   kg ("A" or "B"), id, type, name, attrs (map<string,string>, may be null)
    edges/   kg, src, rel, dst
    gold/    id_a, id_b, type, split (train / valid / test, or null)

or CSV with a header line (``file_format: csv``): ``nodes.csv`` (kg, id, type, name, and any other
column, which goes into ``attrs`` under its own name when not empty), ``edges.csv`` and
``gold.csv`` (``split`` optional). ``delimiter`` and ``encoding`` are options; a file that is
not valid text in its encoding, or whose header only splits on another delimiter, stops the run
naming the line. A malformed record (wrong number of fields, broken quoting) is rejected with
its row number (ingest's ``rejected`` table) and the rest goes on.

A gold link without a split is put in one by a seeded hash of its two ids: ``train_fraction``
of them train (``valid_fraction_of_train`` of those valid), the rest test, the same way on every
run and on any number of machines.
"""
from __future__ import annotations

import codecs
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.schema import EDGES, GOLD, NODES
from pipeline.sources import SourceTables
from pipeline.sources.csvfile import ROW, check_encoding, read_header, read_rows, require_columns, split_malformed
from pipeline.splits import split_by_hash

if TYPE_CHECKING:  # the config imports the adapters to check their options
    from pipeline.config import DatasetConfig

TABLES = {"nodes": NODES, "edges": EDGES, "gold": GOLD}
OPTIONAL = {"attrs", "split"}


# Python's codec name -> the name Spark's CSV reader accepts
SPARK_CHARSETS = {"utf-8": "utf-8", "iso8859-1": "iso-8859-1", "ascii": "us-ascii", "utf-16": "utf-16",
                  "utf-16-be": "utf-16be", "utf-16-le": "utf-16le", "utf-32": "utf-32"}


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file_format: Literal["parquet", "csv"] = "parquet"
    delimiter: str = Field(",", min_length=1, max_length=1)
    encoding: str = "utf-8"

    @field_validator("encoding")
    @classmethod
    def _spark_charset(cls, value: str) -> str:
        """Spark's CSV reader knows only a few charsets; accept any Python alias of one of them."""
        try:
            name = codecs.lookup(value).name
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}") from None
        if name not in SPARK_CHARSETS:
            raise ValueError(f"Spark's CSV reader cannot read {value!r}; re-encode the files to UTF-8 "
                             f"(iconv -f {value} -t utf-8) or use one of {', '.join(sorted(set(SPARK_CHARSETS.values())))}")
        return SPARK_CHARSETS[name]


def _needed(name: str) -> list[str]:
    return [c for c in TABLES[name].fieldNames() if c not in OPTIONAL]


def read_parquet_table(spark: SparkSession, folder, name: str) -> DataFrame:
    path = folder / name
    if not path.exists():
        raise FileNotFoundError(f"dataset folder {folder} lacks {name}/ (Parquet with columns "
                                f"{', '.join(TABLES[name].fieldNames())}); check dataset.path in the config")
    df = spark.read.parquet(str(path))
    require_columns(path, df.columns, _needed(name))
    for column in OPTIONAL & set(TABLES[name].fieldNames()) - set(df.columns):
        df = df.withColumn(column, F.lit(None).cast(TABLES[name][column].dataType))
    return df


def read_csv_table(spark: SparkSession, folder, name: str, options: Options) -> tuple[DataFrame, DataFrame]:
    """(rows in the table's schema plus ``_row``, malformed records as rejected rows)."""
    path = folder / f"{name}.csv"
    if not path.is_file():
        raise FileNotFoundError(f"dataset folder {folder} lacks {name}.csv (CSV with a header: "
                                f"{', '.join(TABLES[name].fieldNames())}); check dataset.path in the config")
    check_encoding(path, options.encoding)
    header = read_header(path, options.delimiter, options.encoding)
    require_columns(path, header, _needed(name))
    df = read_rows(spark, path, header, options.delimiter, options.encoding)
    good, bad = split_malformed(df, path, header, options.delimiter, source=name)
    if name == "nodes":
        extra = [c for c in header if c not in TABLES["nodes"].fieldNames()]
        pairs = [x for c in extra for x in (F.lit(c), F.col(f"`{c}`"))]
        attrs = F.map_filter(F.create_map(*pairs), lambda k, v: v.isNotNull()) if extra else F.lit(None)
        good = good.withColumn("attrs", attrs.cast("map<string,string>"))
    for column in OPTIONAL & set(TABLES[name].fieldNames()) - set(good.columns):
        good = good.withColumn(column, F.lit(None).cast(TABLES[name][column].dataType))
    return good.select(*TABLES[name].fieldNames(), ROW), bad


def read(spark: SparkSession, ds: DatasetConfig, options: Options) -> SourceTables:
    if options.file_format == "parquet":
        nodes, edges, gold = (read_parquet_table(spark, ds.path, name) for name in TABLES)
        return SourceTables(nodes, edges, split_by_hash(gold, ds))
    (nodes, bad_nodes), (edges, bad_edges), (gold, bad_gold) = (
        read_csv_table(spark, ds.path, name, options) for name in TABLES)
    return SourceTables(nodes, edges, split_by_hash(gold, ds),
                        rejected=bad_nodes.unionByName(bad_edges).unionByName(bad_gold))

"""Two-table entity-resolution benchmarks (Magellan / DeepMatcher, Ditto) as multi-type graphs.

One adapter for DBLP-ACM, Walmart-Amazon, Amazon-Google, Beer, iTunes-Amazon, Fodors-Zagats and
their kin, driven by ``Options`` (``dataset.options`` in the config).

Graph. Each row of table A (graph "A") or table B (graph "B") is an entity of type
``entity_type`` with id ``<entity_type>/<row id>`` and name ``name_column``. Each ``linked``
column gives nodes of its own type, keyed by type and normalised text (lower-cased, spaces
collapsed) so that every row of one graph with the same value shares one node (two products of
brand "sony" point to ``brand/sony``); a ``separator`` (a regex) splits a cell into several
values first (authors on ``\\s*,\\s*``). The row links to each value by the column's ``rel``.
``attributes`` go into the row node's ``attrs`` map as raw strings, keyed by the column name in
lower case (numbers, prices and dates are encoded elsewhere).

Where rows, labelled pairs and gold come from (``tables``, ``splits``, ``matches``):

- id-level CSVs (``splits.format: ids``, the DeepMatcher layout): ``tableA.csv`` / ``tableB.csv``
  (``id,<attributes>``), ``train/valid/test.csv`` (``ltable_id,rtable_id,label``; extra columns
  such as Amazon-Google's ``ambiguous,n_candidates`` are ignored), and optionally a ``matches``
  file (``ltable_id,rtable_id``, the full gold). File names are options (Amazon-Google:
  ``*_reconstructed.csv``, ``matches_1300.csv``). The labelled split files are optional where
  ``matches`` is given: without any of them the matches get splits by the seeded hash
  (``pipeline/splits.py``) and there are no labelled pairs.
- Ditto pair files (``splits.format: ditto``): one pair a line, ``<left>\\t<right>\\t<label>``,
  a record serialised as ``COL <attr> VAL <value> ...``; ``splits.folder`` may point elsewhere
  (Beer: tables under magellan-deepmatcher, pairs under ditto-er-magellan).
  - With tables (Beer, which ships tables and matches.csv but no id-level splits): each record is
    mapped to the one table row whose attribute values equal it exactly (after stripping outer
    whitespace; empty = missing). A record matching no row or several rows stops the read. On
    the Beer data every one of the 450 pairs' records maps to exactly one row of its table, and
    the 68 mapped positives are exactly matches.csv, so no Ditto-derived fallback is needed.
  - Without tables (``tables: null``; Fodors-Zagats, which has no tables at all): each distinct
    left record becomes a row of A, each distinct right record a row of B, numbered 0, 1, ... in
    order of first appearance over train, valid, test. Rows never named by a pair are unknown,
    so the tables are the records of the labelled pairs only.

Outputs: nodes and edges of both graphs; ``labelled``: every labelled pair (duplicates kept as
the files have them), label 0/1, split train/valid/test; ``gold``: the ``matches`` file where one
is given, else the distinct positives of the labelled pairs, each with the split of the labelled
positive it appears in (the first of train, valid, test), else null.

Data caveats: iTunes-Amazon's tableB (``tableB_partial.csv``) holds only the 484 Amazon records
named by the labelled pairs (the real one has 55,923 rows), so ingest and pair scoring work but
blocking and end-to-end evaluation over the full tables are impossible for it: any figure over B
measures a graph in which every B entity is a labelled one. Fodors-Zagats' ``class`` column is
the match id (a positive pair always shares it, a negative never): keep it out of ``attributes``.

A malformed CSV record (the wrong number of fields, broken quoting) is rejected into ingest's
``rejected`` table with its file and row, and the run goes on without it, as in every adapter
(``csvfile.split_malformed``); a pair or link that points at it is rejected in turn by ingest's
checks. Files that disagree stop the read with the file, the row (data rows counted from 1 after
the header; lines of a pair file from 1) and the field: an empty id, a label other than 0/1, an
id that is no row of its table, a duplicate row id, a labelled positive absent from ``matches``,
a Ditto record that maps to no row or several. A missing file or column is reported before any
Spark work.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pandas as pd
from pydantic import Field, field_validator, model_validator
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipeline.schema import KG_A, KG_B
from pipeline.settings import Settings
from pipeline.sources import SourceTables, require_files
from pipeline.sources.csvfile import CORRUPT, ROW, read_header, read_rows, split_malformed
from pipeline.sources.recordgraph import NAME_PATTERN, Linked, record_graph
from pipeline.splits import SPLITS, split_by_hash

if TYPE_CHECKING:  # the config imports the adapters to check their options
    from pipeline.config import DatasetConfig



class Tables(Settings):
    """The two id-level tables, in ``dataset.path``."""

    a: str = "tableA.csv"
    b: str = "tableB.csv"
    id_column: str = "id"


class Splits(Settings):
    """The labelled pairs: one file per split."""

    # ids: CSV ltable_id,rtable_id,label (DeepMatcher); ditto: Ditto's serialised pair lines
    format: Literal["ids", "ditto"] = "ids"
    # folder of the split files; default dataset.path. Read like dataset.path: relative to the
    # directory the job runs in, with ${DATA_DIR} replaced.
    folder: str | None = None
    # file names; default <split>.csv (ids) or <split>.txt (ditto)
    train: str | None = None
    valid: str | None = None
    test: str | None = None

    @field_validator("folder")
    @classmethod
    def _expand(cls, v: str | None) -> str | None:
        return None if v is None else v.replace("${DATA_DIR}", os.environ.get("DATA_DIR", "../shared/data"))

    def file(self, split: str) -> str:
        return getattr(self, split) or f"{split}.{'csv' if self.format == 'ids' else 'txt'}"


class Options(Settings):
    entity_type: str = Field(pattern=NAME_PATTERN)
    name_column: str
    linked: list[Linked] = []
    attributes: list[str] = []
    # None: no tables; the rows are the distinct records of the Ditto pair files
    tables: Tables | None = Tables()
    # full gold (ltable_id,rtable_id) in dataset.path; None: the positives of the labelled pairs
    matches: str | None = None
    splits: Splits = Splits()

    @model_validator(mode="after")
    def _consistent(self) -> Options:
        if self.tables is None and self.splits.format != "ditto":
            raise ValueError("tables: null (rows taken from the pair files) needs splits.format: ditto")
        if self.matches is not None and self.tables is None:
            raise ValueError("matches names table ids, so it needs tables")
        for link in self.linked:
            if link.type == self.entity_type:
                raise ValueError(f"linked column {link.column!r}: its type must differ from entity_type")
        keys = [a.lower() for a in self.attributes]
        dups = sorted({k for k in keys if keys.count(k) > 1})
        if dups:
            raise ValueError(f"attributes repeat {', '.join(dups)} (keys are lower-cased)")
        return self

    def columns(self) -> dict[str, str]:
        """Every column the graph reads -> why (for error messages)."""
        need = {self.name_column: "name_column"}
        for link in self.linked:
            need.setdefault(link.column, f"linked ({link.type})")
        for a in self.attributes:
            need.setdefault(a, "attributes")
        return need


# ---------------------------------------------------------------------------------------------
# reading


def _strip(col: Column) -> Column:
    """Outer whitespace off, empty -> null (the same as ``_py_strip``)."""
    s = F.regexp_replace(col, r"^\s+|\s+$", "")
    return F.when(F.length(s) > 0, s)


def _py_strip(v: str) -> str | None:
    return v.strip(" \t\n\r\f\v") or None


@dataclass
class _Frame:
    """A table as Spark columns c0..c<n-1> (all strings) plus ``_row`` (data row, from 1)."""

    df: DataFrame
    header: list[str]
    label: str  # file name for messages
    parsed: DataFrame  # df and the malformed rows (their fields as far as they parsed)

    def col(self, name: str) -> Column:
        return F.col(f"c{self.header.index(name)}")


class _Problems(list):
    """What the checks found: the list holds what stops the run (``_raise_problems``: a benchmark
    whose files disagree); ``rejected`` the malformed records, rejected into ingest's rejected
    table while the run goes on (csvfile.split_malformed, the same policy as every adapter);
    ``references`` the table ids each pair file names (file, _row, lid, rid), checked against
    the tables in one join per side (``_unknown_ids``) rather than one per file."""

    def __init__(self) -> None:
        super().__init__()
        self.rejected: list[DataFrame] = []
        self.references: list[DataFrame] = []


def _open_csv(spark: SparkSession, path: Path, need: dict[str, str], problems: _Problems) -> _Frame:
    """Reads a CSV with a header (``csvfile.read_rows``: parsed once, cached); missing columns
    fail here, malformed rows go to ``problems.rejected``."""
    header = read_header(path)
    _require_columns(header, need, str(path))
    rows = read_rows(spark, path, header)
    rows.count()  # parsed now, once: the checks below then read the cached rows, not the file
    good, rejected = split_malformed(rows, path, header)
    problems.rejected.append(rejected)
    # typed by the header's own names (Spark checks them), then renamed by position; ``parsed``
    # keeps the malformed rows' ids too, so that what points at them is rejected with them
    # (ingest's checks) rather than taken for an unknown id
    rename = [f"c{i}" for i in range(len(header))]
    return _Frame(good.toDF(*rename, ROW), header, str(path), rows.drop(CORRUPT).toDF(*rename, ROW))


def _problem(df: DataFrame, file: str, cond: Column, text: Column) -> DataFrame:
    return df.where(cond).select(
        F.lit(file).alias("file"), F.lit("row").alias("unit"), F.col("_row").alias("row"), text.alias("problem")
    )


def _empty(frame: _Frame, column: str) -> DataFrame:
    return _problem(frame.df, frame.label, frame.col(column).isNull(), F.lit(f"field {column!r} is empty"))


def _raise_problems(problems: list[DataFrame], limit: int = 10) -> None:
    if not problems:
        return
    union = problems[0]
    for p in problems[1:]:
        union = union.unionByName(p)
    rows = union.orderBy("file", "row").limit(limit + 1).collect()
    if rows:
        lines = [
            f"  {r['file']}" + (f" {r['unit']} {r['row']}" if r["row"] is not None else "") + f": {r['problem']}"
            for r in rows[:limit]
        ]
        more = "\n  ..." if len(rows) > limit else ""
        raise ValueError("malformed benchmark input:\n" + "\n".join(lines) + more)


# --- Ditto pair files -------------------------------------------------------------------------

_FIELD = re.compile(r"(?:^|(?<=\s))COL (\S+) VAL(?=\s|$)")


def _parse_record(text: str, where: str) -> tuple[tuple[str, ...], tuple[str | None, ...]]:
    text = text.strip()
    marks = list(_FIELD.finditer(text))
    if not marks or marks[0].start() != 0:
        raise ValueError(f"{where}: record does not start with 'COL <attr> VAL': {text[:120]!r}")
    names, values = [], []
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        names.append(m.group(1))
        values.append(_py_strip(text[m.end():end]))
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: record repeats an attribute: {', '.join(names)}")
    return tuple(names), tuple(values)


@dataclass
class _DittoSide:
    header: tuple[str, ...] | None = None
    records: dict | None = None  # values -> index, in order of first appearance
    first: list | None = None  # index -> (file, line)

    def add(self, names, values, file: str, line: int) -> int:
        if self.header is None:
            self.header, self.records, self.first = names, {}, []
        elif names != self.header:
            raise ValueError(
                f"{file} line {line}: record attributes {', '.join(names)} differ from "
                f"{', '.join(self.header)} (first record of this side)"
            )
        if values not in self.records:
            self.records[values] = len(self.first)
            self.first.append((file, line))
        return self.records[values]


def _read_ditto(folder: Path, splits: Splits) -> tuple[_DittoSide, _DittoSide, pd.DataFrame]:
    left, right, pairs = _DittoSide(), _DittoSide(), []
    for split in SPLITS:
        path = folder / splits.file(split)
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                parts = line.rstrip("\r\n").split("\t")
                where = f"{path} line {n}"
                if len(parts) != 3:
                    raise ValueError(
                        f"{where}: expected 3 TAB-separated fields (left, right, label), found {len(parts)}"
                    )
                label = parts[2].strip()
                if label not in ("0", "1"):
                    raise ValueError(f"{where}: field 'label' is {parts[2]!r}, expected 0 or 1")
                ka = left.add(*_parse_record(parts[0], f"{where} (left record)"), str(path), n)
                kb = right.add(*_parse_record(parts[1], f"{where} (right record)"), str(path), n)
                pairs.append((ka, kb, int(label), split))
    if left.header is None:
        raise ValueError(f"{folder}: the pair files hold no pairs")
    return left, right, pd.DataFrame(pairs, columns=["ka", "kb", "label", "split"])


def _side_frame(spark: SparkSession, side: _DittoSide, label: str) -> _Frame:
    """The distinct records of one side: ``id`` = the record's index, c0.. its values."""
    n = len(side.header)
    rows = [
        (str(k), side.first[k][0], side.first[k][1], *values)
        for values, k in side.records.items()
    ]
    schema = T.StructType(
        [T.StructField("id", T.StringType()), T.StructField("_file", T.StringType()),
         T.StructField("_row", T.LongType())]
        + [T.StructField(f"c{i}", T.StringType()) for i in range(n)]
    )
    df = spark.createDataFrame(rows, schema)
    return _Frame(df, list(side.header), label, df)


def _require_columns(header, need: dict[str, str], label: str) -> None:
    for column, why in need.items():
        if column not in header:
            raise ValueError(
                f"{label}: no column {column!r} (needed by options.{why}); its columns are {', '.join(header)}"
            )


# ---------------------------------------------------------------------------------------------
# graph


def _rows(frame: _Frame, id_col: Column, o: Options) -> DataFrame:
    return frame.df.select(
        id_col.alias("id"), frame.col(o.name_column).alias("name"),
        *[frame.col(link.column).alias(f"l{i}") for i, link in enumerate(o.linked)],
        *[frame.col(a).alias(f"a{j}") for j, a in enumerate(o.attributes)],
    )


# ---------------------------------------------------------------------------------------------


def _id_tables(spark, folder: Path, o: Options, problems) -> dict[str, _Frame]:
    """Tables A and B from CSV, checked: ids present and unique."""
    frames = {}
    for kg, name in ((KG_A, o.tables.a), (KG_B, o.tables.b)):
        need = {o.tables.id_column: "tables.id_column", **o.columns()}
        frame = _open_csv(spark, folder / name, need, problems)
        ident = frame.col(o.tables.id_column)
        problems.append(_empty(frame, o.tables.id_column))
        first = F.min("_row").over(Window.partitionBy(ident))
        dups = frame.df.where(ident.isNotNull()).withColumn("_first", first).where(F.col("_row") > F.col("_first"))
        problems.append(_problem(
            dups, frame.label, F.lit(True),
            F.format_string(f"field {o.tables.id_column!r}: id %s repeats row %d", ident, F.col("_first")),
        ))
        frames[kg] = frame
    return frames


def _references(pairs: DataFrame, file: str) -> DataFrame:
    """pairs: lid, rid, _row -> the ids they name, with their file, for ``_unknown_ids``."""
    return pairs.select(F.lit(file).alias("file"), "_row", "lid", "rid")


def _unknown_ids(references: list[DataFrame], tables: dict[str, _Frame], o: Options) -> list[DataFrame]:
    """``_references`` of every pair file -> problems for ids that are no row of their table."""
    if not references:
        return []
    named = reduce(DataFrame.unionByName, references)
    out = []
    for side, field, kg in (("lid", "ltable_id", KG_A), ("rid", "rtable_id", KG_B)):
        known = tables[kg].parsed.select(tables[kg].col(o.tables.id_column).alias(side))
        missing = named.where(F.col(side).isNotNull()).join(known, side, "left_anti")
        out.append(missing.select(
            "file", F.lit("row").alias("unit"), F.col("_row").alias("row"),
            F.format_string(f"field {field!r}: %s is no id of {tables[kg].label}", F.col(side)).alias("problem"),
        ))
    return out


def _id_pairs(spark, folder: Path, o: Options, tables, problems) -> DataFrame:
    """The labelled pairs from id-level CSVs: lid, rid, label, split."""
    out = None
    need = {"ltable_id": "splits", "rtable_id": "splits", "label": "splits"}
    for split in SPLITS:
        frame = _open_csv(spark, folder / o.splits.file(split), need, problems)
        label = _strip(frame.col("label"))
        problems.append(_empty(frame, "ltable_id"))
        problems.append(_empty(frame, "rtable_id"))
        problems.append(_problem(
            frame.df, frame.label, label.isNull() | ~label.isin("0", "1"),
            F.format_string("field 'label' is '%s', expected 0 or 1", F.coalesce(label, F.lit(""))),
        ))
        part = frame.df.select(
            frame.col("ltable_id").alias("lid"), frame.col("rtable_id").alias("rid"),
            # no cast: under ANSI mode a bad label would fail the check query itself
            F.when(label == "1", F.lit(1)).when(label == "0", F.lit(0)).alias("label"),
            F.lit(split).alias("split"), "_row",
        )
        problems.references.append(_references(part, frame.label))
        out = part if out is None else out.unionByName(part)
    return out.drop("_row")


def _ditto_pairs(spark, folder: Path, o: Options, ds: DatasetConfig, problems) -> tuple[dict, DataFrame]:
    """Tables and labelled pairs from Ditto pair files: mapped to table rows, or the records
    themselves as the rows."""
    left, right, pairs = _read_ditto(folder, o.splits)
    pair_df = spark.createDataFrame(
        pairs.astype({"ka": str, "kb": str}),
        "ka STRING, kb STRING, label INT, split STRING",
    )
    sides = {KG_A: (left, "ka"), KG_B: (right, "kb")}
    if o.tables is None:
        tables = {}
        for kg, (side, _) in sides.items():
            frame = _side_frame(spark, side, f"{folder} ({'left' if kg == KG_A else 'right'} records)")
            _require_columns(frame.header, o.columns(), frame.label)
            tables[kg] = frame
        pairs_out = pair_df.select(F.col("ka").alias("lid"), F.col("kb").alias("rid"), "label", "split")
        return tables, pairs_out

    tables = _id_tables(spark, ds.path, o, problems)
    ids = {}
    for kg, (side, key) in sides.items():
        table = tables[kg]
        extra = [c for c in side.header if c not in table.header]
        if extra:
            raise ValueError(
                f"{side.first[0][0]}: records name attribute(s) {', '.join(extra)} that {table.label} lacks"
            )
        records = _side_frame(spark, side, "")
        on = None
        for i, name in enumerate(side.header):
            cond = F.col(f"r.c{i}").eqNullSafe(_strip(F.col(f"t.c{table.header.index(name)}")))
            on = cond if on is None else on & cond
        matched = records.df.alias("r").join(table.df.alias("t"), on, "left").groupBy(
            F.col("r.id").alias(key), F.col("r._file").alias("_file"), F.col("r._row").alias("_row")
        ).agg(
            F.count(F.col(f"t.c{table.header.index(o.tables.id_column)}")).alias("n"),
            F.sort_array(F.collect_list(F.col(f"t.c{table.header.index(o.tables.id_column)}"))).alias("tids"),
        )
        problems.append(matched.where("n != 1").select(
            F.col("_file").alias("file"), F.lit("line").alias("unit"), F.col("_row").alias("row"),
            F.format_string(
                f"the {'left' if kg == KG_A else 'right'} record matches %d rows of {table.label} "
                "on every attribute (ids: %s); need exactly one",
                F.col("n"), F.array_join(F.slice("tids", 1, 5), ", "),
            ).alias("problem"),
        ))
        ids[kg] = matched.where("n = 1").select(key, F.col("tids")[0].alias("lid" if kg == KG_A else "rid"))
    pairs_out = pair_df.join(ids[KG_A], "ka").join(ids[KG_B], "kb").select("lid", "rid", "label", "split")
    return tables, pairs_out


def read(spark: SparkSession, ds: DatasetConfig, options: Options) -> SourceTables:
    o = options
    folder = ds.path
    pair_folder = Path(o.splits.folder) if o.splits.folder is not None else folder
    if o.tables is not None:
        require_files(folder, [o.tables.a, o.tables.b] + ([o.matches] if o.matches else []))
    split_files = [o.splits.file(s) for s in SPLITS]
    # without labelled split files, tables and matches are enough: the matches get splits by the
    # seeded hash, and there are no labelled pairs
    unlabelled = (o.splits.format == "ids" and o.matches is not None
                  and not any((pair_folder / f).is_file() for f in split_files))
    if not unlabelled:
        require_files(pair_folder, split_files)
    problems = _Problems()

    if unlabelled:
        tables = _id_tables(spark, folder, o, problems)
        pairs = spark.createDataFrame([], "lid string, rid string, label int, split string")
    elif o.splits.format == "ids":
        tables = _id_tables(spark, folder, o, problems)
        pairs = _id_pairs(spark, pair_folder, o, tables, problems)
    else:
        tables, pairs = _ditto_pairs(spark, pair_folder, o, ds, problems)

    graphs = {}
    for kg in (KG_A, KG_B):
        ident = tables[kg].col(o.tables.id_column) if o.tables is not None else F.col("id")
        graphs[kg] = record_graph(_rows(tables[kg], ident, o), kg, o)
    (nodes_a, edges_a), (nodes_b, edges_b) = graphs[KG_A], graphs[KG_B]

    rank = F.when(F.col("split") == "train", 0).when(F.col("split") == "valid", 1).otherwise(2)
    positives = pairs.where("label = 1").groupBy("lid", "rid").agg(F.min(rank).alias("_rank")).select(
        "lid", "rid", F.element_at(F.array(*[F.lit(s) for s in SPLITS]), F.col("_rank") + 1).alias("split")
    )
    if o.matches is not None:
        frame = _open_csv(spark, folder / o.matches, {"ltable_id": "matches", "rtable_id": "matches"}, problems)
        problems.append(_empty(frame, "ltable_id"))
        problems.append(_empty(frame, "rtable_id"))
        links = frame.df.select(frame.col("ltable_id").alias("lid"), frame.col("rtable_id").alias("rid"), "_row")
        problems.references.append(_references(links, frame.label))
        links = links.drop("_row").distinct()
        # a labelled positive must be a known link
        absent = positives.where("lid IS NOT NULL AND rid IS NOT NULL").join(links, ["lid", "rid"], "left_anti")
        problems.append(absent.select(
            F.lit(str(folder / o.matches)).alias("file"), F.lit("row").alias("unit"),
            F.lit(None).cast("long").alias("row"),
            F.format_string("lacks the labelled positive (%s, %s) of the %s split",
                            "lid", "rid", "split").alias("problem"),
        ))
    else:
        links = positives.select("lid", "rid")
    if o.tables is not None:
        problems.extend(_unknown_ids(problems.references, tables, o))
    _raise_problems(problems)

    t = o.entity_type
    gold = links.join(positives, ["lid", "rid"], "left").select(
        F.concat(F.lit(f"{t}/"), "lid").alias("id_a"), F.concat(F.lit(f"{t}/"), "rid").alias("id_b"),
        F.lit(t).alias("type"), "split",
    )
    labelled = None if unlabelled else pairs.select(
        F.concat(F.lit(f"{t}/"), "lid").alias("id_a"), F.concat(F.lit(f"{t}/"), "rid").alias("id_b"),
        F.lit(t).alias("type"), "label", "split",
    )
    if unlabelled:
        gold = split_by_hash(gold, ds)
    rejected = reduce(DataFrame.unionByName, problems.rejected) if problems.rejected else None
    return SourceTables(nodes_a.unionByName(nodes_b), edges_a.unionByName(edges_b), gold, labelled, rejected)

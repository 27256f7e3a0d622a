"""Reading a CSV file with a header, the way every adapter needs it: checked to be valid text in
its encoding, its header checked against the delimiter, and each data row numbered (from 1, after
the header) so that a message can name the row.

Malformed records (wrong number of fields, broken quoting) are not dropped: they come back with
``_corrupt`` set to the raw record. The policy, the same for every adapter: ``split_malformed``
rejects them (ingest's ``rejected`` table: file, row, record, why) and the run goes on without
them; whatever pointed at a rejected record is rejected by ingest's checks in turn.
"""
from __future__ import annotations

import codecs
import csv
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

CORRUPT = "_corrupt"
ROW = "_row"
_OTHER_DELIMITERS = (";", "\t", "|", ",")


def check_encoding(path: Path, encoding: str = "utf-8", chunk: int = 1 << 20) -> None:
    """Raises with the line and column of the first byte sequence that is not valid ``encoding``."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0  # bytes decoded before the current block
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                _raise_bad_bytes(path, offset + max(exc.start, 0), encoding)
            if not block:
                return
            offset += len(block)


def _raise_bad_bytes(path: Path, at: int, encoding: str) -> None:
    with open(path, "rb") as fh:
        head = fh.read(at + 1)
    line = head.count(b"\n", 0, at) + 1
    column = at - (head.rfind(b"\n", 0, at) + 1) + 1
    if encoding.replace("-", "").lower() in ("utf8", "utf8sig"):
        hint = ("it looks like Latin-1 / Windows-1252: re-encode the file (iconv -f latin1 -t utf-8) "
                "or set dataset.options.encoding: iso-8859-1")
    else:
        hint = "check the file's encoding and set dataset.options.encoding to it"
    raise ValueError(f"{path} line {line}: byte 0x{head[at:at + 1].hex()} (byte {column} of the line) is not "
                     f"valid {encoding}; {hint}")


def read_header(path: Path, delimiter: str = ",", encoding: str = "utf-8") -> list[str]:
    """The header's column names; a header that only splits on another delimiter is reported."""
    with open(path, newline="", encoding="utf-8-sig" if encoding.lower() in ("utf-8", "utf8") else encoding) as fh:
        header = next(csv.reader(fh, delimiter=delimiter), None)
    if not header or header == [""]:
        raise ValueError(f"{path}: empty file, expected a header line")
    if len(header) == 1:
        for other in _OTHER_DELIMITERS:
            if other != delimiter and other in header[0]:
                raise ValueError(
                    f"{path}: the header {header[0]!r} has one column when split on {delimiter!r} but "
                    f"several on {other!r}: set dataset.options.delimiter: {other!r} (or fix the file)")
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise ValueError(f"{path}: header repeats column {', '.join(map(repr, dup))}")
    return [h.strip() for h in header]


def require_columns(path: Path, header: list[str], needed: list[str], what: str = "") -> None:
    missing = [c for c in needed if c not in header]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}{what}; the file has "
                         f"{', '.join(header)}; rename its columns or point the config at the right file")


def read_rows(spark: SparkSession, path: Path, header: list[str], delimiter: str = ",",
              encoding: str = "utf-8") -> DataFrame:
    """Every data row as strings, columns named by the header, plus ``_row`` (data row number,
    from 1) and ``_corrupt`` (the raw record where it is malformed, else null). Empty fields are null."""
    schema = T.StructType([T.StructField(h, T.StringType()) for h in header]
                          + [T.StructField(CORRUPT, T.StringType())])
    df = spark.read.csv(
        str(path), header=True, schema=schema, sep=delimiter, encoding=encoding, multiLine=True, escape='"',
        mode="PERMISSIVE", columnNameOfCorruptRecord=CORRUPT, enforceSchema=True,
    )
    # a multi-line CSV file is read whole by one task, so this numbers its rows in order
    df = df.withColumn(ROW, F.monotonically_increasing_id() + 1)
    # cached: Spark refuses a query over the corrupt-record column alone on the raw file, and
    # the rows are read several times (counts, checks, the write)
    return df.cache()


def split_malformed(rows: DataFrame, path: Path, header: list[str], delimiter: str = ",",
                    source: str | None = None) -> tuple[DataFrame, DataFrame]:
    """``read_rows``'s rows -> (the well-formed rows, without ``_corrupt``; the malformed ones as
    REJECTED_INPUT rows, ``source`` naming the table, the file's name by default)."""
    from pipeline.sources import rejected_rows

    malformed = rows.where(F.col(CORRUPT).isNotNull())
    reason = (f"malformed record: {path.name} row is not {len(header)} fields ({delimiter.join(header)}) "
              "or broken quoting")
    rejected = rejected_rows(malformed, source or path.name, F.col(CORRUPT), reason)
    return rows.where(F.col(CORRUPT).isNull()).drop(CORRUPT), rejected

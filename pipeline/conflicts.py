"""Delta writes that survive other writers and kills.

Delta's optimistic concurrency: a transaction that another writer's commit beat (two runs
merging into one warehouse, an Airflow retry while the first attempt still runs) fails with one
of Delta's conflict exceptions and nothing of it is committed; it is rerun on the new version of
the table until it commits.

    >>> version = retry_on_conflict(lambda: merge_rows(...), f"MERGE into {path}")

Every writer of a shared Delta table recomputes what it writes from the table as it then is, so a
retry is the whole read-modify-write, never a replay of an old plan. A table is made by
``create_table_if_missing``, which also takes the folder a creation killed midway leaves.
"""
from __future__ import annotations

import contextlib
import logging
import random
import time
import uuid
from typing import Callable, Iterator, TypeVar

from delta.exceptions import (
    ConcurrentAppendException,
    ConcurrentDeleteDeleteException,
    ConcurrentDeleteReadException,
    ConcurrentTransactionException,
    ConcurrentWriteException,
    DeltaConcurrentModificationException,
    MetadataChangedException,
    ProtocolChangedException,
)
from delta.tables import DeltaTable
from pyspark.errors import PySparkException
from pyspark.sql import Row, SparkSession
from pyspark.sql import functions as F

log = logging.getLogger("kgmerge")
# Delta writes this session setting into the commit's ``userMetadata``
COMMIT_METADATA = "spark.databricks.delta.commitInfo.userMetadata"
T = TypeVar("T")

# Delta's Python conflict exceptions share no base class of their own
CONFLICTS = (ConcurrentAppendException, ConcurrentDeleteDeleteException, ConcurrentDeleteReadException,
             ConcurrentTransactionException, ConcurrentWriteException, DeltaConcurrentModificationException,
             MetadataChangedException, ProtocolChangedException)
# and two writers that both found no table and both create it: the second's createIfNotExists
# finds the first's files (found by tests/faults.py's two merges at once)
CONFLICT_CONDITIONS = {"DELTA_CREATE_TABLE_WITH_NON_EMPTY_LOCATION"}


def is_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` is another writer's commit beating this one (a rerun would succeed)."""
    if isinstance(exc, CONFLICTS):
        return True
    condition = getattr(exc, "getCondition", None) or getattr(exc, "getErrorClass", None)
    return isinstance(exc, PySparkException) and condition is not None and condition() in CONFLICT_CONDITIONS


class ConflictError(RuntimeError):
    """A transaction that kept losing to other writers; the message says what to do."""


def retry_on_conflict(transaction: Callable[[], T], what: str, attempts: int = 8,
                      first_wait_s: float = 0.5, max_wait_s: float = 15.0) -> T:
    """``transaction()``'s result, rerun after each Delta conflict with a random, doubling wait
    (two writers do not retry in step); after ``attempts`` conflicts, a ``ConflictError``."""
    for attempt in range(1, attempts + 1):
        try:
            return transaction()
        except PySparkException as exc:
            if not is_conflict(exc):
                raise
            if attempt == attempts:
                raise ConflictError(
                    f"{what} lost to another writer's commit {attempts} times ({type(exc).__name__}): another "
                    "run keeps writing this warehouse; let it finish, then rerun this stage (it is idempotent)"
                ) from exc
            wait = random.uniform(first_wait_s, min(max_wait_s, first_wait_s * 2 ** attempt))
            log.warning("%s lost to a concurrent commit (%s); retry %d of %d in %.1fs",
                        what, type(exc).__name__, attempt, attempts - 1, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


@contextlib.contextmanager
def tagged_commit(spark: SparkSession) -> Iterator[str]:
    """Delta commits made inside carry a fresh tag as their ``userMetadata``: with other writers
    committing too, the newest version of a table need not be the one this writer made.

    >>> with tagged_commit(spark) as tag:
    ...     merge.execute()
    >>> version = own_commit(table, tag)["version"]
    """
    tag = f"kgmerge-{uuid.uuid4().hex}"
    spark.conf.set(COMMIT_METADATA, tag)
    try:
        yield tag
    finally:
        spark.conf.unset(COMMIT_METADATA)


COMMIT_COLUMNS = ("version", "operation", "operationMetrics")  # what a caller reads of a commit


def own_commit(table: DeltaTable, tag: str, search: int = 100) -> Row | None:
    """The history row (``COMMIT_COLUMNS``) of the commit ``tagged_commit`` tagged; None where
    the operation committed nothing (a MERGE that changed no row)."""
    return table.history(search).where(F.col("userMetadata") == tag).select(*COMMIT_COLUMNS).first()


def latest_commit(table: DeltaTable) -> Row:
    """The table's newest history row (``COMMIT_COLUMNS``)."""
    return table.history(1).select(*COMMIT_COLUMNS).first()


def create_table_if_missing(spark: SparkSession, path, schema, properties: dict[str, str] | None = None) -> None:
    """An empty Delta table at ``path`` where none is. Not ``DeltaTable.createIfNotExists``: that
    refuses a folder holding the files of a creation killed before its first commit (a merge
    killed there could never be rerun: bench/faults.py's kill matrix found it); an empty append
    makes version 0 in such a folder too. Two writers making it at once conflict, and the
    caller's ``retry_on_conflict`` then finds the other's table.

    >>> create_table_if_missing(spark, "wh/delta/alignment", ALIGNMENT, {"delta.enableChangeDataFeed": "true"})
    """
    if DeltaTable.isDeltaTable(spark, str(path)):
        return
    writer = spark.createDataFrame([], schema).write.format("delta").mode("append")
    for key, value in (properties or {}).items():
        writer = writer.option(key, value)
    writer.save(str(path))

"""Two runs merging into one warehouse at once while a reader reads, a job killed and rerun
(tests/faults.py; the full forms are ``bench/faults.py``)."""
from __future__ import annotations

import pytest
from delta.exceptions import ConcurrentAppendException, ProtocolChangedException
from delta.tables import DeltaTable
from faults import kill_cell, two_merges_at_once, write_conf
from pyspark.errors import AnalysisException

from pipeline import conflicts
from pipeline.stage import read_stage_log, record_stage


def test_two_merges_at_once_both_complete_and_a_reader_meanwhile_sees_one_merge(dblp_run, spark, tmp_path):
    """The cheap form of bench/faults.py's rounds of two merges (which also start with no Delta
    table, both writers creating it) and of its reader during merges, in one."""
    config, paths, _ = dblp_run
    result = two_merges_at_once(spark, config, paths, tmp_path, fresh_delta=False, read_meanwhile=True)
    assert result["problems"] == [], result
    assert result["exit_codes"] == [0, 0] and set(result["logged_runs"]) == {"first", "second", paths.run_id}
    assert result["reads"] >= 2, result  # it did read while they wrote


def test_a_score_job_killed_mid_write_reruns_to_the_same_scores(dblp_run, spark, tmp_path):
    """The cheap form of bench/faults.py's kill matrix: one cell, the score stage killed once its
    last output (the scores) began to be written, rerun with the same run id."""
    config, paths, _ = dblp_run

    def conf_of(warehouse):
        return write_conf(config, warehouse, warehouse.with_suffix(".yaml"))

    cell = kill_cell(spark, paths, conf_of, tmp_path, "score", "last")
    assert cell["kill"] == "killed" and cell["rerun_exit"] == 0, cell
    assert cell["differences"] == [] and cell["pass"], cell


def test_a_transaction_beaten_by_another_writer_is_rerun_then_given_up_with_a_clear_message(monkeypatch):
    monkeypatch.setattr(conflicts.time, "sleep", lambda s: None)
    calls = []

    def beaten_twice():
        calls.append(1)
        if len(calls) <= 2:
            raise ConcurrentAppendException(message="a concurrent MERGE added data")
        return "committed"

    assert conflicts.retry_on_conflict(beaten_twice, "MERGE into t") == "committed" and len(calls) == 3

    created_by_another = []

    def created_meanwhile():  # two writers found no table and both create it
        created_by_another.append(1)
        if len(created_by_another) == 1:
            raise AnalysisException(message="Cannot create table: location is not empty",
                                    errorClass="DELTA_CREATE_TABLE_WITH_NON_EMPTY_LOCATION")
        return "found the other's table"

    assert conflicts.retry_on_conflict(created_meanwhile, "create t") == "found the other's table"

    def always_beaten():
        raise ProtocolChangedException(message="two first writes")

    with pytest.raises(conflicts.ConflictError, match="MERGE into t lost to another writer's commit 3 times"):
        conflicts.retry_on_conflict(always_beaten, "MERGE into t", attempts=3)
    with pytest.raises(ValueError):  # anything else is no conflict: raised at once
        conflicts.retry_on_conflict(lambda: int("x"), "MERGE into t")
    calls.clear()

    def missing_table():
        calls.append(1)
        raise AnalysisException(message="no such table", errorClass="TABLE_OR_VIEW_NOT_FOUND")

    with pytest.raises(AnalysisException):
        conflicts.retry_on_conflict(missing_table, "MERGE into t")
    assert len(calls) == 1


def test_the_stage_log_is_replaced_whole(tmp_path):
    """A job killed while it records its stage leaves the old log or the new, never half a line
    that the rerun could not read."""
    log = tmp_path / "stages.jsonl"
    record_stage(log, {"stage": "ingest", "seconds": 1.0})
    record_stage(log, {"stage": "features", "seconds": 2.0})
    record_stage(log, {"stage": "ingest", "seconds": 3.0})  # a rerun replaces its line
    assert read_stage_log(log) == {"ingest": {"stage": "ingest", "seconds": 3.0},
                                   "features": {"stage": "features", "seconds": 2.0}}
    assert [p.name for p in tmp_path.iterdir()] == ["stages.jsonl"]  # no partial file left beside it


def test_a_table_whose_creation_was_killed_before_its_first_commit_is_made_anew(spark, tmp_path):
    """What a merge killed while creating a table leaves: a folder with a log entry in progress
    and no commit. DeltaTable.createIfNotExists refuses it; the pipeline's creation does not."""
    from pyspark.sql import types as T

    path = tmp_path / "alignment"
    (path / "_delta_log").mkdir(parents=True)
    (path / "_delta_log" / ".00000000000000000000.json.killed.tmp").write_text("{")
    schema = T.StructType([T.StructField("x", T.IntegerType())])
    conflicts.create_table_if_missing(spark, path, schema, {"delta.enableChangeDataFeed": "true"})
    table = DeltaTable.forPath(spark, str(path))
    assert table.detail().first()["properties"] == {"delta.enableChangeDataFeed": "true"}
    conflicts.create_table_if_missing(spark, path, schema)  # there now: nothing more is committed
    assert table.history().count() == 1 and spark.read.format("delta").load(str(path)).count() == 0

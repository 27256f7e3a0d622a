"""Two runs merging into one warehouse at once, and a reader during merges (tests/faults.py; the
ten-round form is ``bench/faults.py``)."""
from __future__ import annotations

from faults import read_while_merging, two_merges_at_once


def test_two_merges_at_once_both_complete_and_neither_loses_a_row(dblp_run, spark, tmp_path):
    config, paths, _ = dblp_run
    result = two_merges_at_once(spark, config, paths, tmp_path, fresh_delta=True)
    assert result["problems"] == [], result
    assert result["exit_codes"] == [0, 0] and result["logged_runs"] == ["first", "second"]


def test_a_reader_always_sees_the_three_tables_of_one_merge(dblp_run, spark, tmp_path):
    config, paths, _ = dblp_run
    result = read_while_merging(spark, config, paths, tmp_path)
    assert result["problems"] == [], result
    assert result["reads"] >= 3 and result["merges_seen"] >= 2, result  # it did read during the merges

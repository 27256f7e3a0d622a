"""The bad-input corpus (tests/data/bad/, built by its make_bad.py): each case either stops the
run before anything is written, with a message naming the file, row or key and what to do, or
goes on with the bad rows in the ``rejected`` Delta table — and rows in = rows kept + rows rejected."""
from __future__ import annotations

import ast
import csv
import math
import re
import shutil
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from pipeline import features, ingest, runner
from pipeline.config import ConfigError, load_config
from pipeline.schema import REJECTED_INPUT, Paths, check_run_id
from pipeline.stage import StageContext, run_stage
from pipeline.validate import InputError

from conftest import DATA, write_config
from faults import hub_case, hub_sampling

BAD = DATA / "bad"
REPO = Path(__file__).resolve().parents[1]


def _config(tmp: Path, case: str | Path, **sections):
    path = case if isinstance(case, Path) else BAD / case
    options = sections.pop("options", {})
    return write_config(tmp, {"name": path.name, "format": "tables", "path": str(path),
                              "options": {"file_format": "csv", **options}}, **sections)


def ingest_case(spark, tmp: Path, case: str | Path, **sections) -> tuple[dict, list[dict], Paths]:
    """Runs ingest; returns its summary, this run's rejected rows and the paths. Checks the
    row accounting on the way."""
    cfg = _config(tmp, case, **sections)
    paths = Paths(cfg.warehouse.resolve(), "t")
    summary = run_stage("ingest", ingest.run, StageContext(spark, cfg, paths))
    rejected = [r.asDict() for r in spark.read.format("delta").load(str(paths.rejected))
                .where("run_id = 't' AND stage = 'ingest'").orderBy("source", "row", "record").collect()]
    kept = sum(spark.read.parquet(str(p)).count() for p in (paths.nodes, paths.edges, paths.gold))
    assert summary["rows_in"] == summary["rows_out"] + summary["rejected"]
    assert summary["rows_out"] == kept and summary["rejected"] == len(rejected)
    return summary, rejected, paths


def stops(spark, tmp: Path, case: str | Path, error=ValueError, **sections) -> str:
    """Runs ingest expecting it to stop; checks nothing was written; returns the message."""
    cfg = _config(tmp, case, **sections)
    paths = Paths(cfg.warehouse.resolve(), "t")
    with pytest.raises(error) as err:
        ingest.run(StageContext(spark, cfg, paths))
    assert not paths.input.exists() and not paths.delta.exists(), "a stopped ingest wrote something"
    return str(err.value)


def reasons(rejected: list[dict]) -> list[tuple[str, str]]:
    return sorted((r["source"], r["reason"].split(":")[0]) for r in rejected)


def test_good_case_keeps_every_row(spark, tmp_path):
    summary, rejected, _ = ingest_case(spark, tmp_path, "good")
    assert rejected == [] and summary["rows_in"] == 58 + 52 + 8
    assert summary["nodes_by_type"] == {"paper": 16, "author": 36, "venue": 6}


def test_malformed_rows_are_rejected_with_file_and_row(spark, tmp_path):
    summary, rejected, _ = ingest_case(spark, tmp_path, "malformed_rows")
    assert reasons(rejected) == [("nodes", "malformed record")] * 2
    # data rows 3 and 5 of nodes.csv (after the header), raw text kept
    assert [r["row"] for r in rejected] == [3, 5]
    assert "unquoted, comma" in rejected[0]["record"] and rejected[1]["record"].startswith("A,author/too few")
    assert "nodes.csv" in rejected[0]["reason"] and summary["rows_out"] == 58 + 52 + 8


def test_wrong_delimiter_stops_and_says_which(spark, tmp_path):
    message = stops(spark, tmp_path, "wrong_delimiter")
    assert "wrong_delimiter/nodes.csv" in message and "dataset.options.delimiter: ';'" in message
    # and with the delimiter set, the same files ingest whole
    summary, rejected, _ = ingest_case(spark, tmp_path / "ok", "wrong_delimiter", options={"delimiter": ";"})
    assert rejected == [] and summary["rows_out"] == 58 + 52 + 8


def test_missing_names_are_rejected_and_their_edges_and_links_follow(spark, tmp_path):
    summary, rejected, paths = ingest_case(spark, tmp_path, "missing_names")
    # the paper with an empty name and the author with a blank one; the paper's two edges and its
    # gold link point at a rejected node, so they go too
    assert reasons(rejected) == [("edges", "unknown src"), ("edges", "unknown src"),
                                 ("gold", "unknown id_a"), ("nodes", "no name"), ("nodes", "no name")]
    names = [r for r in rejected if r["source"] == "nodes"]
    assert {r["kg"] for r in names} == {"A"} and "block.method" in names[0]["reason"]
    # under anchor blocking a node needs no name: nothing is rejected
    summary, rejected, _ = ingest_case(spark, tmp_path / "anchors", "missing_names", block={"method": "anchors"})
    assert rejected == []
    nameless = spark.read.parquet(str(_ingested_nodes(tmp_path / "anchors"))).where("name IS NULL").count()
    assert nameless == 2  # empty and blank both become null


def _ingested_nodes(tmp: Path) -> Path:
    return Paths((tmp / "warehouse").resolve(), "t").nodes


def test_duplicate_ids_reject_every_copy(spark, tmp_path):
    _, rejected, paths = ingest_case(spark, tmp_path, "duplicate_ids")
    dups = [r for r in rejected if r["source"] == "nodes"]
    assert len(dups) == 2 and all("2 rows of graph A have id 'paper/1821'" in r["reason"] for r in dups)
    assert {r["source"] for r in rejected} == {"nodes", "edges", "gold"}
    assert spark.read.parquet(str(paths.nodes)).where("id = 'paper/1821'").count() == 0  # neither copy is guessed at


def test_edges_and_links_to_unknown_nodes_are_rejected(spark, tmp_path):
    _, rejected, paths = ingest_case(spark, tmp_path, "unknown_ends")
    assert reasons(rejected) == [("edges", "unknown dst"), ("edges", "unknown src"),
                                 ("gold", "bad split"), ("gold", "unknown id_a")]
    by = {r["reason"].split(":")[0]: r for r in rejected}
    assert "'paper/999999' is not a kept node of graph A" in by["unknown src"]["reason"]
    assert by["unknown src"]["kg"] == "A" and '"src":"paper/999999"' in by["unknown src"]["record"]
    assert "'tset'" in by["bad split"]["reason"]


def test_self_loops_and_repeated_edges_are_rejected(spark, tmp_path):
    _, rejected, paths = ingest_case(spark, tmp_path, "self_loops")
    assert reasons(rejected) == [("edges", "duplicate edge"), ("edges", "self-loop")]
    assert spark.read.parquet(str(paths.edges)).where("src = dst").count() == 0
    assert spark.read.parquet(str(paths.edges)).count() == 52  # the repeated edge is kept once


def test_unknown_node_type_in_config_stops(spark, tmp_path):
    message = stops(spark, tmp_path, "good", error=InputError,
                    block={"top_k": {"papr": 5}}, train={"train_types": ["paper", "athor"]})
    assert "block.top_k.papr = 'papr'" in message and "train.train_types[1] = 'athor'" in message
    assert "author, paper, venue" in message


def test_non_utf8_stops_with_line_then_reads_with_its_encoding(spark, tmp_path):
    message = stops(spark, tmp_path, "non_utf8")
    assert "non_utf8/nodes.csv line 4" in message and "0xe9" in message and "encoding: iso-8859-1" in message
    _, rejected, paths = ingest_case(spark, tmp_path / "latin1", "non_utf8", options={"encoding": "latin1"})
    assert rejected == []
    names = {r["name"] for r in spark.read.parquet(str(paths.nodes)).collect()}
    assert "josé blakeley" in names


def test_mixed_script_names_are_kept_as_they_are(spark, tmp_path):
    _, rejected, paths = ingest_case(spark, tmp_path, "mixed_script")
    assert rejected == []
    names = {r["name"] for r in spark.read.parquet(str(paths.nodes)).where("type = 'author'").collect()}
    assert {"jürgen müller", "Юрген Мюллер", "山田太郎", "Yamada Tarō", "Αλέξανδρος Παπαδόπουλος", "محمد علي"} <= names


def test_empty_graph_stops(spark, tmp_path):
    message = stops(spark, tmp_path, "empty_graph", error=InputError)
    assert "graph A has no nodes" in message and "empty_graph" in message


def test_wrong_column_set_stops_naming_the_columns(spark, tmp_path):
    message = stops(spark, tmp_path, "wrong_columns")
    assert "wrong_columns/nodes.csv: missing column(s) id, name" in message
    assert "kg, identifier, type, label" in message


def test_config_with_unknown_key_or_bad_value_stops_at_load(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(f"dataset: {{name: x, format: tables, path: {BAD / 'good'}, options: {{file_format: xlsx}}}}\n"
                    "warehouse: w\nblock: {top_k: {paper: 5}, topk: 3}\ntrain: {epochs: -1}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message and "block.topk" in message and "train.epochs" in message
    assert "file_format" in message


@pytest.mark.parametrize("where", ["a_file/warehouse", "odd`name/warehouse"])
def test_a_warehouse_that_cannot_be_written_stops_at_load(tmp_path, where):
    (tmp_path / "a_file").write_text("not a folder")
    path = tmp_path / "bad.yaml"
    path.write_text(f"dataset: {{name: x, format: tables, path: {BAD / 'good'}}}\nwarehouse: {tmp_path / where}\n")
    with pytest.raises(ConfigError, match="warehouse: .*(is a file, not a folder|backtick)"):
        load_config(path)


def test_a_node_with_100000_neighbours_is_kept_and_sampled_to_the_cap(spark, tmp_path):
    """A venue with 100,000 papers: ingest keeps it all, extract's sampler keeps `cap` of them
    (bench/faults.py has the same at two million)."""
    summary, rejected, paths = ingest_case(spark, tmp_path, hub_case(tmp_path / "hub", 100_000))
    assert rejected == [] and summary["rows_out"] == 58 + 52 + 8 + 200_000
    assert hub_sampling(spark, paths, cap=10) == (100_000 + 6, 10)  # and the six VLDB papers of the slice


@pytest.mark.parametrize("run_id", ["a'b", "../elsewhere", "a/b", "", " x", "x..y", "a" * 129, "x;DROP"])
def test_run_ids_that_cannot_name_a_folder_are_refused(run_id, tmp_path, capsys):
    with pytest.raises(ValueError, match="run id .* cannot be used"):
        Paths(tmp_path, run_id)
    with pytest.raises(SystemExit) as exit_:
        runner.parse_args("pipeline", [str(tmp_path / "conf.yaml"), "--run-id", run_id])
    assert exit_.value.code == 2 and "cannot be used" in capsys.readouterr().err


def test_the_airflow_run_id_made_folder_safe_is_a_run_id():
    """dags/kgmerge_dag.py cannot import pipeline (a scheduler has only Airflow), so its own
    ``folder_safe`` must land inside the rule ``check_run_id`` holds run ids to."""
    tree = ast.parse((REPO / "dags" / "kgmerge_dag.py").read_text())
    source = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "folder_safe")
    namespace = {"re": re}
    exec(compile(ast.Module([source], []), "kgmerge_dag.py", "exec"), namespace)
    for airflow_id in ["manual__2026-01-01T00:00:00.123456+00:00", "scheduled__2026-12-07T00:00:00+00:00",
                       "a'b", "../../etc", "x..y", "...", "é" * 300, "a" * 400 + "."]:
        assert check_run_id(namespace["folder_safe"](airflow_id))


def test_rejected_rows_are_replaced_under_a_column_condition(spark, tmp_path):
    """write_rejected replaces one run's and stage's rows in one commit, whatever the run id and
    the path hold: the condition is built from Columns, not spelt as SQL."""
    path = tmp_path / "odd 'wh" / "rejected"
    row = {"source": "nodes", "kg": "A", "row": 1, "record": "{}", "reason": "missing name"}

    def rejected(n: int):
        return spark.createDataFrame([{**row, "row": i} for i in range(n)], REJECTED_INPUT)

    ingest.write_rejected(spark, path, rejected(3), "it's", "ingest")
    ingest.write_rejected(spark, path, rejected(2), "other", "ingest")
    ingest.write_rejected(spark, path, rejected(1), "it's", "ingest")  # a rerun replaces its 3 rows
    table = spark.read.format("delta").load(str(path))
    assert {(r["run_id"], r["n"]) for r in table.groupBy("run_id").agg(F.count("*").alias("n")).collect()} \
        == {("it's", 1), ("other", 2)}
    history = DeltaTable.forPath(spark, str(path)).history().orderBy("version").collect()
    assert [h["operation"] for h in history] == ["WRITE"] * 4  # the empty table, then one commit each


def test_a_byte_order_mark_and_windows_line_ends_read_as_the_good_case(spark, tmp_path):
    summary, rejected, paths = ingest_case(spark, tmp_path / "bom", "bom_crlf")
    good, _, good_paths = ingest_case(spark, tmp_path / "good", "good")
    assert rejected == [] and summary["rows_out"] == good["rows_out"]
    for table in ("nodes", "edges", "gold"):
        def rows(p):
            return sorted(map(str, spark.read.parquet(str(getattr(p, table))).collect()))
        assert rows(paths) == rows(good_paths), table  # no '\ufeff' in the first column, no '\r' in the last


def test_odd_values_are_rejected_with_their_reason_or_read_as_numbers(spark, tmp_path):
    summary, rejected, paths = ingest_case(spark, tmp_path, "odd_values")
    assert reasons(rejected) == [("gold", "unknown id_a"), ("nodes", "empty id"), ("nodes", "no name")]
    assert "or in graph B" in next(r["reason"] for r in rejected if r["source"] == "gold")
    years = [r["attrs"]["year"] for r in spark.read.parquet(str(paths.nodes))
             .where("type = 'paper' AND attrs['year'] IS NOT NULL").collect()]
    parsed = spark.createDataFrame([(y,) for y in years], "year string").select(
        "year", features.parse_number(F.col("year")).alias("value")).collect()
    values = {r["year"]: r["value"] for r in parsed}
    assert all(values[y] is None for y in ("NaN", "Infinity", "-inf"))  # no number, not NaN
    assert values["1e308"] == 1e308
    for date in ("2001-05-03", "2001/05/03", "May 3, 2001", "3-May-01", "2001-05-03T10:00:00Z"):
        assert values[date] == pytest.approx(2001 + 122 / 366), date  # the 3rd of May, 2001
    nodes = spark.read.parquet(str(paths.nodes))
    num = [x for r in features.numeric_features(nodes, ["year"]).collect() for x in r["num"]]
    assert num and all(math.isfinite(x) for x in num)


def test_a_name_of_a_megabyte_is_rejected_and_its_edges_follow(spark, tmp_path):
    case = tmp_path / "long_name"
    shutil.copytree(BAD / "good", case)
    with open(case / "nodes.csv", "a", newline="") as nodes, open(case / "edges.csv", "a", newline="") as edges:
        csv.writer(nodes, lineterminator="\n").writerow(["A", "paper/huge", "paper", "word " * 200_000, "2001"])
        csv.writer(edges, lineterminator="\n").writerow(["A", "paper/huge", "published_in", "venue/vldb"])
    summary, rejected, _ = ingest_case(spark, tmp_path, case)
    assert reasons(rejected) == [("edges", "unknown src"), ("nodes", "name too long")]
    assert "999999 characters, at most 10000" in next(r["reason"] for r in rejected if r["source"] == "nodes")

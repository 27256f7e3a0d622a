"""An incremental load equals a full run: the DBLP-ACM slice arrives in two loads (the first 240
papers of each side, then all 320); the second load, run with --incremental on top of the first,
gives the alignment a full run on all the data with the same model gives, while the model runs
only on the pairs whose inputs changed."""
from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest
from conftest import DATA, DBLP_OPTIONS, DEMO, write_config
from pyspark.sql import functions as F

from pipeline.unified import current_links, read_changes, read_merged
from pipeline.runner import STAGES, run_pipeline
from pipeline.schema import Paths

FIRST = 240  # papers per side in the first load
UNTIL_MERGE = list(STAGES)[: list(STAGES).index("merge") + 1]


def first_load(full: Path, out: Path) -> Path:
    """The first FIRST rows of each table, and the gold and labelled pairs among them."""
    out.mkdir(parents=True)
    kept = {}
    for side in ("tableA", "tableB"):
        with open(full / f"{side}.csv", newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        (out / f"{side}.csv").write_text("".join(_line(r) for r in rows[: FIRST + 1]), encoding="utf-8")
        kept[side] = {r[0] for r in rows[1: FIRST + 1]}
    for name in ("matches_2224", "train", "valid", "test"):
        with open(full / f"{name}.csv", newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        body = [r for r in rows[1:] if r[0] in kept["tableA"] and r[1] in kept["tableB"]]
        (out / f"{name}.csv").write_text("".join(_line(r) for r in [rows[0], *body]), encoding="utf-8")
    return out


def _line(row: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(row)
    return buf.getvalue()


def _config(tmp: Path, data: Path):
    return write_config(
        tmp, {"name": "dblp_acm_loads", "format": "magellan", "path": str(data), "options": DBLP_OPTIONS},
        features=DEMO["features"], block={"top_k": {"paper": 5, "author": 5, "venue": 3, "year": 1}},
        extract={"cap": 10, "shards": 2}, train={"epochs": 2, "patience": 1})


@pytest.fixture(scope="module")
def loads(spark, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("loads")
    full = DATA / "dblp_acm_small"
    load1 = first_load(full, tmp / "load1")
    # warehouse 1: the first load trained and merged, then the second load incrementally
    cfg1 = _config(tmp / "first", load1)
    first = run_pipeline(cfg1, "load-1", list(STAGES), spark=spark)
    cfg2 = _config(tmp / "first", full)  # same warehouse, all the data
    incremental = run_pipeline(cfg2, "load-2", UNTIL_MERGE, spark=spark, incremental=True)
    # warehouse 2: all the data at once, scored by the first load's model
    cfg_full = _config(tmp / "full", full)
    model = Paths(cfg_full.warehouse.resolve(), "load-1").model_dir
    shutil.copytree(Paths(cfg1.warehouse.resolve(), "load-1").model_dir, model)
    complete = run_pipeline(cfg_full, "all", UNTIL_MERGE, spark=spark, base_run="load-1")
    return {"first": (cfg1, first), "incremental": (cfg2, incremental), "full": (cfg_full, complete)}


def _paths(cfg, run_id):
    return Paths(cfg.warehouse.resolve(), run_id)


def test_incremental_alignment_equals_a_full_run(loads, spark):
    cfg_inc, _ = loads["incremental"]
    cfg_full, _ = loads["full"]
    inc, full = _paths(cfg_inc, "load-2"), _paths(cfg_full, "all")
    got = current_links(spark.read.format("delta").load(str(inc.alignment))).select("id_a", "id_b", "type")
    want = current_links(spark.read.format("delta").load(str(full.alignment))).select("id_a", "id_b", "type")
    assert sorted(got.collect()) == sorted(want.collect()) != []
    # and the same scores on the same candidate pairs
    a = spark.read.parquet(str(inc.scores)).select("id_a", "id_b", "type", "score")
    b = spark.read.parquet(str(full.scores)).select("id_a", "id_b", "type", F.col("score").alias("full"))
    joined = a.join(b, ["id_a", "id_b", "type"], "full_outer")
    assert joined.where("score IS NULL OR full IS NULL").count() == 0
    assert joined.agg(F.max(F.abs(F.col("score") - F.col("full")))).first()[0] < 1e-5
    # unified nodes: the same entities under the same uids
    nodes = [sorted((r["uid"], r["type"], str(sorted((m["kg"], m["id"]) for m in r["members"])))
                    for r in spark.read.format("delta").load(str(p.unified_nodes)).collect()) for p in (inc, full)]
    assert nodes[0] == nodes[1]


def test_incremental_run_scores_only_changed_pairs(loads):
    _, first = loads["first"]
    _, incremental = loads["incremental"]
    assert incremental["train"]["model_from_run"] == "load-1"
    assert incremental["train"]["model_version"] == first["train"]["model_version"]
    score = incremental["score"]
    assert score["base_run"] == "load-1"
    total = incremental["score"]["rows_out"]
    # some pairs are new or changed, and many are not
    assert all(0 < n < total for n in score["rescored_per_round"]), score
    # the full run used the first load's model (--base-run) but scored every pair itself
    _, complete = loads["full"]
    assert complete["train"]["model_from_run"] == "load-1" and "rescored_per_round" not in complete["score"]


def test_uids_of_unchanged_entities_stay_and_moved_links_are_closed(loads, spark):
    cfg, _ = loads["incremental"]
    paths = _paths(cfg, "load-2")
    history = read_merged(spark, paths.delta, "load-1")["unified_nodes"]
    now = spark.read.format("delta").load(str(paths.unified_nodes))
    first_uids = {r["uid"] for r in history.select("uid").collect()}
    now_uids = {r["uid"] for r in now.select("uid").collect()}
    # every A node of the first load keeps its uid (the uid hashes the A member)
    a_members = {r["uid"] for r in history.where(F.exists("members", lambda m: m["kg"] == "A")).collect()}
    assert a_members <= now_uids and len(now_uids) > len(first_uids)
    links = spark.read.format("delta").load(str(paths.alignment))
    closed = links.where("closed_in_run IS NOT NULL")
    # a closed link was opened by the first load and closed by the second
    assert {r["closed_in_run"] for r in closed.collect()} <= {"load-2"}
    assert closed.where("run_id != 'load-1'").count() == 0
    assert links.groupBy("id_a", "id_b", "type").count().where("count > 1").count() == 0


def test_evaluate_reads_its_own_runs_merge_after_another_run_merged(loads, spark):
    """Rerunning evaluate for load-1 after load-2 merged into the same warehouse scores load-1's
    links (as its merge left them), not the links the shared alignment table holds now."""
    cfg, first = loads["first"]
    paths = _paths(cfg, "load-1")
    key = ["id_a", "id_b", "type"]
    then = current_links(read_merged(spark, paths.delta, "load-1")["alignment"]).select(*key).collect()
    now = current_links(spark.read.format("delta").load(str(paths.alignment))).select(*key).collect()
    assert sorted(then) != sorted(now)  # load-2 changed the shared table
    again = run_pipeline(cfg, "load-1", ["evaluate"], spark=spark)["evaluate"]["metrics"]
    before = first["evaluate"]["metrics"]
    figures = ("precision", "recall", "f1", "aligned_touching_test", "hits_at_1")
    assert {k: again[k] for k in figures} == {k: before[k] for k in figures}
    # the first evaluate's own log line is no stage of the figures (the kill matrix's evaluate cell)
    assert set(again["stages"]) == set(before["stages"]) and "evaluate" not in again["stages"]


def test_a_consumer_reads_what_one_run_changed(loads, spark):
    """The change data feed of load-2's merge: its new entities are inserts, the links it no
    longer produces are updates that close them, and nothing of load-1's merge is in it."""
    cfg, _ = loads["incremental"]
    paths = _paths(cfg, "load-2")
    changes = read_changes(spark, paths.delta, "load-2")
    kinds = {r["_change_type"] for r in changes["unified_nodes"].select("_change_type").distinct().collect()}
    assert "insert" in kinds
    closed = changes["alignment"].where("_change_type = 'update_postimage' AND closed_in_run = 'load-2'").count()
    now_closed = spark.read.format("delta").load(str(paths.alignment)).where("closed_in_run = 'load-2'").count()
    assert closed == now_closed
    first = read_changes(spark, paths.delta, "load-1")["alignment"]
    assert {r["_change_type"] for r in first.select("_change_type").distinct().collect()} == {"insert"}
    assert first.count() == read_merged(spark, paths.delta, "load-1")["alignment"].count()


def test_incremental_needs_a_finished_run(spark, tmp_path):
    cfg = _config(tmp_path, DATA / "dblp_acm_small")
    with pytest.raises(FileNotFoundError, match="run the pipeline once without --incremental first"):
        run_pipeline(cfg, "x", UNTIL_MERGE, spark=spark, incremental=True)

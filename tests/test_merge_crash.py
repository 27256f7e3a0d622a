"""The merge job killed with SIGKILL while it writes a Delta table: every table stays at a committed
version, a reader of the last completed merge sees the old tables whole, and the rerun completes
with no duplicates."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml
from delta.tables import DeltaTable
from faults import kill_when, spark_job
from pyspark.sql import functions as F

from pipeline import merge
from pipeline.unified import read_merged
from pipeline.config import load_config
from pipeline.schema import Paths
from pipeline.stage import StageContext, run_stage



def data_files(table: Path) -> set[str]:
    return {p.name for p in table.glob("*.parquet")}


def committed_files(spark, table: Path) -> set[str]:
    return {Path(f).name for f in spark.read.format("delta").load(str(table)).inputFiles()}


def snapshot(tables: dict) -> dict[str, list[tuple]]:
    return {name: sorted(tuple(str(v) for v in row) for row in df.collect()) for name, df in tables.items()}


def test_merge_killed_mid_write_leaves_committed_tables_and_reruns_cleanly(dblp_run, spark, tmp_path):
    cfg, paths, _ = dblp_run
    warehouse = tmp_path / "warehouse"
    shutil.copytree(paths.warehouse, warehouse, ignore=shutil.ignore_patterns("reports"))
    raw = json.loads(cfg.model_dump_json())
    # a lower threshold than training chose, so that this merge changes every table
    raw["warehouse"], raw["merge"] = str(warehouse), {**raw["merge"], "threshold": 0.05}
    conf = tmp_path / "conf.yaml"
    conf.write_text(yaml.safe_dump(raw))
    copy = Paths(warehouse.resolve(), paths.run_id)
    before = snapshot(read_merged(spark, copy.delta))
    merges_logged = spark.read.format("delta").load(str(copy.merge_log)).count()
    versions = {name: DeltaTable.forPath(spark, str(getattr(copy, name))).history(1).first()["version"]
                for name in ("alignment", "unified_nodes", "unified_edges")}

    # killed as soon as a new data file appears in unified_nodes: its MERGE has started, not committed
    written_before = data_files(copy.unified_nodes)
    outcome = kill_when(spark_job("merge", conf, paths.run_id),
                        lambda: bool(data_files(copy.unified_nodes) - written_before), timeout=300)
    assert outcome == "killed", outcome

    # unified_nodes: the killed transaction's files are on disk but in no version
    nodes_table = DeltaTable.forPath(spark, str(copy.unified_nodes))
    assert nodes_table.history(1).first()["version"] == versions["unified_nodes"]
    orphans = data_files(copy.unified_nodes) - committed_files(spark, copy.unified_nodes)
    assert orphans, "expected the killed MERGE to have written files it never committed"
    # alignment was merged before the kill, but the merge log, written last, still names the old
    # versions: a reader of the last completed merge sees the tables exactly as they were
    assert spark.read.format("delta").load(str(copy.merge_log)).count() == merges_logged
    assert snapshot(read_merged(spark, copy.delta)) == before

    summary = run_stage("merge", merge.run, StageContext(spark, load_config(conf), copy))
    assert summary["threshold"] == 0.05
    after = read_merged(spark, copy.delta, paths.run_id)
    alignment, nodes = after["alignment"], after["unified_nodes"]
    open_links = alignment.where("closed_in_run IS NULL")
    for keys, df in ((["id_a", "id_b", "type"], alignment), (["uid"], nodes),
                     (["src_uid", "rel", "dst_uid"], after["unified_edges"])):
        assert df.groupBy(*keys).count().where("count > 1").count() == 0, f"duplicate {keys}"
    # the rerun's result is what a merge at this threshold must give
    expected = merge.resolve(spark.read.parquet(str(copy.scores)), 0.05).select("id_a", "id_b")
    assert sorted(open_links.select("id_a", "id_b").collect()) == sorted(expected.collect())
    assert open_links.count() > len([r for r in before["alignment"] if r[-1] == "None"])
    source_nodes = spark.read.parquet(str(copy.nodes)).count()
    assert nodes.count() == source_nodes - open_links.count()
    assert nodes.select(F.explode("members")).count() == source_nodes

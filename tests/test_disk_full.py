"""The warehouse's disk fills up in the middle of the merge stage: the stage stops with a message
that says so, no Delta version holds part of what it wrote, a reader still sees the last completed
merge, and once space is freed the rerun completes with what an uninterrupted merge writes.

The Delta folder is a small tmpfs mounted for the test (root only, as on CI and this project's
machines), with a ballast file that leaves half the space the merge needs."""
from __future__ import annotations

import shutil
import subprocess

import pytest
from delta.tables import DeltaTable

from faults import merged_problems
from pipeline import merge
from pipeline.schema import UNIFIED_TABLES, Paths
from pipeline.stage import DiskFullError, StageContext, run_stage
from pipeline.unified import read_merged

MERGED = (*UNIFIED_TABLES, "merge_log")


def bytes_under(path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small_disk"
    mount.mkdir()
    size_kib = 64 * 1024
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    yield mount, size_kib * 1024
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_stops_merge_cleanly_and_the_rerun_completes(dblp_run, spark, tmp_path, small_disk):
    config, source, _ = dblp_run
    mount, size = small_disk
    needed = sum(bytes_under(getattr(source, name)) for name in MERGED)  # a first merge writes this much
    assert needed < size / 2, f"the merge needs {needed} bytes: make the tmpfs bigger"
    warehouse = tmp_path / "warehouse"
    shutil.copytree(source.warehouse, warehouse, ignore=shutil.ignore_patterns("reports", "delta"))
    (warehouse / "delta").symlink_to(mount)  # the Delta tables on the small disk, the rest as it was
    paths = Paths(warehouse, source.run_id)
    shutil.copytree(source.alignment, paths.alignment)  # an earlier merge's tables, as a reader knows them
    for name in MERGED[1:]:
        shutil.copytree(getattr(source, name), getattr(paths, name))
    before = {name: DeltaTable.forPath(spark, str(getattr(paths, name))).history(1).first()["version"]
              for name in MERGED}
    ballast = mount / "ballast"
    free = shutil.disk_usage(mount).free
    with open(ballast, "wb") as fh:
        fh.write(b"\0" * (free - needed // 2))  # room for half of what the merge writes

    lower = config.model_copy(update={"merge": config.merge.model_copy(update={"threshold": 0.05})})
    with pytest.raises(DiskFullError, match="no space left on the disk of .* rerun merge with the same --run-id"):
        run_stage("merge", merge.run, StageContext(spark, lower, paths))
    after = {name: DeltaTable.forPath(spark, str(getattr(paths, name))).history(1).first()["version"]
             for name in MERGED}
    assert after["merge_log"] == before["merge_log"]  # the failed merge never completed
    assert all(after[n] in (before[n], before[n] + 1) for n in UNIFIED_TABLES)  # whole commits or none
    source_nodes = spark.read.parquet(str(paths.nodes)).count()
    assert merged_problems(spark, read_merged(spark, paths.delta), source_nodes) == []

    ballast.unlink()
    summary = run_stage("merge", merge.run, StageContext(spark, lower, paths))
    assert summary["threshold"] == 0.05
    expected = {(r["id_a"], r["id_b"]) for r in merge.resolve(spark.read.parquet(str(paths.scores)), 0.05).collect()}
    assert merged_problems(spark, read_merged(spark, paths.delta, paths.run_id), source_nodes, expected) == []

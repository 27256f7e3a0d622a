"""Faults, measured the same way by the tests (one round each, in ``make test``) and by
``bench/faults.py`` (every stage, several kill points, ten rounds): two merges into one warehouse
at once, a reader during merges, a job killed inside a stage and rerun.

Each check copies a finished run's warehouse (the ``dblp_run`` fixture's, or the script's own),
does the damage with real processes, and returns what it saw; ``problems`` empty means it held.

Run as a script, it is the merging process of ``read_while_merging``:
``python tests/faults.py merge-loop <config.yaml> <run_id> <threshold> [<threshold> ...]``.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script
    sys.path.insert(0, str(REPO))

from pipeline import merge  # noqa: E402
from pipeline.runner import STAGES  # noqa: E402
from pipeline.schema import UNIFIED_TABLES, Paths  # noqa: E402
from pipeline.unified import current_links, read_merged  # noqa: E402

CONFLICT_RETRY = "lost to a concurrent commit"  # what pipeline/conflicts.py logs on a retry
VOLATILE = ("seconds", "time", "date", "started", "finished", "path", "report")  # JSON keys whose values vary


def copy_warehouse(source: Paths, to: Path, run_ids: list[str], fresh_delta: bool = False) -> Path:
    """``source``'s warehouse at ``to``, its run folder also under each of ``run_ids``; with
    ``fresh_delta`` the Delta tables of earlier merges are left out (the writers then race to
    create them)."""
    ignore = ["reports"] + (["delta"] if fresh_delta else [])
    shutil.copytree(source.warehouse, to, ignore=shutil.ignore_patterns(*ignore))
    if fresh_delta:
        rejected = source.rejected
        shutil.copytree(rejected, Paths(to, source.run_id).rejected)
    for run_id in run_ids:
        if run_id != source.run_id:
            shutil.copytree(source.run, Paths(to, run_id).run)
    return to


def write_conf(config, warehouse: Path, path: Path, threshold: float | None = None) -> Path:
    raw = json.loads(config.model_dump_json())
    raw["warehouse"] = str(warehouse)
    if threshold is not None:
        raw["merge"] = {**raw["merge"], "threshold": threshold}
    path.write_text(yaml.safe_dump(raw))
    return path


def spark_job(stage: str, conf: Path, run_id: str, *extra: str) -> subprocess.Popen:
    """``./spark-submit.sh <stage>`` in its own process group (so a kill reaches its JVM), its
    output into a file beside ``conf`` (a pipe nobody reads while waiting to kill could fill and
    stall the job): read it with ``output_of``."""
    log = conf.with_name(f"{conf.stem}-{stage}-{time.time_ns()}.log")
    with open(log, "w") as sink:
        proc = subprocess.Popen([str(REPO / "spark-submit.sh"), "--driver-memory", "1g", stage, str(conf),
                                 "--run-id", run_id, *extra], cwd=REPO, stdout=sink,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
    proc.log = log
    return proc


def output_of(proc: subprocess.Popen, timeout: float = 1200) -> str:
    """What the job printed, once it has ended."""
    proc.wait(timeout)
    return proc.log.read_text(errors="replace")


def merged_problems(spark, tables: dict, source_nodes: int, expected_links=None) -> list[str]:
    """What is wrong with one merge's three tables: duplicate keys, a node count that does not
    follow from the open links, a source node in no or two unified nodes, an edge to no node,
    and (given ``expected_links``, a set of (id_a, id_b)) open links other than those."""
    from pyspark.sql import functions as F

    problems = []
    for name, keys in (("alignment", ["id_a", "id_b", "type"]), ("unified_nodes", ["uid"]),
                       ("unified_edges", ["src_uid", "rel", "dst_uid"])):
        if tables[name].groupBy(*keys).count().where("count > 1").count():
            problems.append(f"{name}: duplicate {keys}")
    links = current_links(tables["alignment"])
    n_links, nodes = links.count(), tables["unified_nodes"]
    if nodes.count() != source_nodes - n_links:
        problems.append(f"unified_nodes: {nodes.count()} rows, but {source_nodes} source nodes and "
                        f"{n_links} open links make {source_nodes - n_links}")
    members = nodes.select(F.explode("members").alias("m")).select("m.kg", "m.id")
    if members.count() != source_nodes or members.distinct().count() != source_nodes:
        problems.append("unified_nodes: a source node is in no unified node, or in two")
    uids = nodes.select("uid")
    edges = tables["unified_edges"]
    dangling = (edges.select(F.col("src_uid").alias("uid")).union(edges.select(F.col("dst_uid").alias("uid")))
                .distinct().join(uids, "uid", "left_anti").count())
    if dangling:
        problems.append(f"unified_edges: {dangling} uids that are no unified node")
    if expected_links is not None:
        got = {(r["id_a"], r["id_b"]) for r in links.select("id_a", "id_b").collect()}
        if got != expected_links:
            problems.append(f"alignment: {len(got ^ expected_links)} open links differ from the run's own resolution")
    return problems


def two_merges_at_once(spark, config, source: Paths, tmp: Path, fresh_delta: bool,
                       thresholds: tuple[float, float] = (0.05, 0.5), read_meanwhile: bool = False) -> dict:
    """Two runs (same inputs, different merge thresholds, so different alignments) merge into one
    warehouse at the same moment, each its own spark-submit. Both must complete (a MERGE that
    loses the race retries), the merge log must name both, and each run's logged merge must be
    exactly its own resolution with no duplicate. With ``read_meanwhile`` (and not
    ``fresh_delta``: there must be a merge to read) this process reads the last completed merge
    while they write, as ``read_while_merging`` does."""
    if read_meanwhile and fresh_delta:
        raise ValueError("read_meanwhile needs a completed merge to read: fresh_delta leaves none")
    runs = ["first", "second"]
    warehouse = copy_warehouse(source, tmp / "warehouse", runs, fresh_delta)
    confs = [write_conf(config, warehouse, tmp / f"{run}.yaml", t) for run, t in zip(runs, thresholds)]
    paths = {run: Paths(warehouse, run) for run in runs}
    source_nodes = spark.read.parquet(str(paths["first"].nodes)).count()
    start = time.time()
    jobs = [spark_job("merge", conf, run) for run, conf in zip(runs, confs)]
    reading = read_until(spark, paths["first"], source_nodes, lambda: all(j.poll() is not None for j in jobs)) \
        if read_meanwhile else {}
    outputs = [output_of(job, timeout=600) for job in jobs]
    result = {"seconds": round(time.time() - start, 1), "exit_codes": [job.returncode for job in jobs],
              "retries": sum(out.count(CONFLICT_RETRY) for out in outputs), "problems": [], **reading}
    for run, job, out in zip(runs, jobs, outputs):
        if job.returncode != 0:
            result["problems"].append(f"run {run} exited {job.returncode}: {out[-1500:]}")
    logged = [r["run_id"] for r in spark.read.format("delta").load(str(paths["first"].merge_log)).collect()]
    result["logged_runs"] = sorted(logged)
    if sorted(set(logged) & set(runs)) != runs:
        result["problems"].append(f"merge_log names {sorted(logged)}, not both runs")
        return result
    for run, threshold in zip(runs, thresholds):
        scores = spark.read.parquet(str(paths[run].scores))
        expected = {(r["id_a"], r["id_b"]) for r in merge.resolve(scores, threshold).collect()}
        tables = read_merged(spark, paths[run].delta, run)
        result["problems"] += [f"run {run}: {p}" for p in merged_problems(spark, tables, source_nodes, expected)]
    return result


def read_while_merging(spark, config, source: Paths, tmp: Path, thresholds=(0.05, 0.9)) -> dict:
    """One process merges again and again (alternating thresholds: every merge changes all three
    tables) while this one reads the last completed merge through ``read_merged`` as fast as it
    can; every read must be the three tables of one merge."""
    warehouse = copy_warehouse(source, tmp / "warehouse", [source.run_id])
    conf = write_conf(config, warehouse, tmp / "merge.yaml")
    paths = Paths(warehouse, source.run_id)
    source_nodes = spark.read.parquet(str(paths.nodes)).count()
    with open(tmp / "merge-loop.log", "w") as sink:
        merger = subprocess.Popen([sys.executable, __file__, "merge-loop", str(conf), source.run_id,
                                   *map(str, thresholds)], cwd=REPO, stdout=sink, stderr=subprocess.STDOUT, text=True)
    result = read_until(spark, paths, source_nodes, lambda: merger.poll() is not None)
    out = (tmp / "merge-loop.log").read_text(errors="replace")
    if merger.returncode != 0:
        result["problems"].append(f"the merging process exited {merger.returncode}: {out[-1500:]}")
    return result


def read_until(spark, paths: Paths, source_nodes: int, done) -> dict:
    """Reads the last completed merge of ``paths``' warehouse through ``read_merged`` as fast as
    it can until ``done()``, then once more; each read must be the three tables of one merge.
    Returns the reads made while writers ran, how many merge-log states they saw, the problems."""
    reads, seen_versions, problems = 0, set(), []
    while True:
        last = done()
        log_rows = spark.read.format("delta").load(str(paths.merge_log)).count()
        found = merged_problems(spark, read_merged(spark, paths.delta), source_nodes)
        seen_versions.add(log_rows)
        problems += [f"read {reads + 1}: {p}" for p in found]
        if last:
            return {"reads": reads, "merges_seen": len(seen_versions), "problems": problems}
        reads += 1


def kill_when(proc: subprocess.Popen, ready, timeout: float = 600) -> str:
    """SIGKILLs ``proc``'s process group (its JVM and Python workers) once ``ready()`` holds;
    'killed', or why not."""
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            if ready():
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
                return "killed"
            if proc.poll() is not None:
                return f"finished first (exit {proc.returncode}) {output_of(proc)[-3000:]}"
            time.sleep(0.01)
        return "timed out"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


def stage_outputs(paths: Paths, stage: str) -> list[Path]:
    """What ``stage`` writes, in the order it writes it (existing in the uninterrupted run)."""
    if stage == "ingest":
        found = [paths.nodes, paths.edges, paths.gold, paths.labelled, paths.rejected]
    elif stage == "merge":
        found = [getattr(paths, name) for name in UNIFIED_TABLES] + [paths.merge_log]
    elif stage == "evaluate":
        found = [paths.metrics]
    elif stage == "features":  # the name-vector cache first (shared by runs, appended to)
        found = [paths.warehouse / "cache"] + paths.outputs(stage)
    else:
        found = paths.outputs(stage)
    return [p for p in found if p.exists()]


def before_stage(base: Paths, to: Path, stage: str) -> Paths:
    """A copy of the base warehouse as it was before ``stage`` ran."""
    shutil.copytree(base.warehouse, to, ignore=shutil.ignore_patterns("reports"))
    copy = Paths(to, base.run_id)
    later = list(STAGES)[list(STAGES).index(stage):]
    for name in later:
        for out in stage_outputs(copy, name):
            shutil.rmtree(out) if out.is_dir() else out.unlink()
    if copy.stage_log.is_file():  # and the log lines of the stages not run yet
        lines = copy.stage_log.read_text().splitlines()
        copy.stage_log.write_text("".join(f"{line}\n" for line in lines
                                          if line.strip() and json.loads(line)["stage"] not in later))
    return copy


def parquet_content(path: Path) -> pa.Table:
    table = pads.dataset(str(path), format="parquet", exclude_invalid_files=True,
                         ignore_prefixes=["_", "."]).to_table()
    keys = [(c, "ascending") for c in table.column_names
            if not pa.types.is_nested(table.schema.field(c).type)]
    return table.sort_by(keys) if keys else table


def _stable(value):
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if not any(w in k for w in VOLATILE)}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def differences(spark, base: Paths, copy: Paths, stage: str) -> list[str]:
    """Where ``stage``'s outputs in ``copy`` differ from the uninterrupted run's."""
    found = []
    if stage == "merge":
        from pipeline.unified import read_merged
        mine, theirs = read_merged(spark, copy.delta, base.run_id), read_merged(spark, base.delta, base.run_id)
        for name in UNIFIED_TABLES:
            a = sorted(map(str, mine[name].collect()))
            if a != sorted(map(str, theirs[name].collect())):
                found.append(f"{name}: content differs")
        return found
    if stage == "ingest":
        a = spark.read.format("delta").load(str(copy.rejected)).collect()
        if sorted(map(str, a)) != sorted(map(str, spark.read.format("delta").load(str(base.rejected)).collect())):
            found.append("rejected: content differs")
    for out in stage_outputs(base, stage):
        if out in (base.rejected, base.warehouse / "cache"):  # compared above / read through its outputs
            continue
        twin = copy.run / out.relative_to(base.run)
        files = [out] if out.is_file() else sorted(p for p in out.rglob("*") if p.is_file())
        if any(p.suffix == ".parquet" for p in files):
            if not twin.exists() or not parquet_content(out).equals(parquet_content(twin)):
                found.append(f"{out.name}: Parquet content differs")
            continue
        for f in files:
            g = twin / f.relative_to(out) if out.is_dir() else twin
            if f.name.startswith((".", "_")):
                continue
            if not g.exists():
                found.append(f"{g.name}: missing")
            elif f.suffix == ".json":
                if _stable(json.loads(f.read_text())) != _stable(json.loads(g.read_text())):
                    found.append(f"{f.name}: JSON differs")
            elif f.read_bytes() != g.read_bytes():
                found.append(f"{f.name}: bytes differ")
    return found


def first_file_under(path: Path):
    def ready() -> bool:
        if path.is_file():
            return True
        return path.is_dir() and any(p.is_file() for p in path.rglob("*"))
    return ready


def kill_cell(spark, base: Paths, conf_of, tmp: Path, stage: str, point: str) -> dict:
    """One cell of the kill matrix: ``stage``'s job on a copy of the finished run ``base`` as it
    was before the stage, SIGKILLed at ``point`` ("first": the first file under the stage's first
    output; "last": under its last), rerun with the same run id, and its outputs compared with
    ``base``'s. ``conf_of(warehouse)`` writes the run's config for another warehouse."""
    copy = before_stage(base, tmp / f"{stage}-{point}", stage)
    conf = conf_of(copy.warehouse)
    outs = stage_outputs(base, stage)
    target = outs[0] if point == "first" else outs[-1]
    watched = copy.run / target.relative_to(base.run) if target.is_relative_to(base.run) else \
        copy.warehouse / target.relative_to(base.warehouse)
    start = time.time()
    outcome = kill_when(spark_job(stage, conf, base.run_id), first_file_under(watched))
    killed_at = round(time.time() - start, 1)
    cell = {"stage": stage, "point": point, "watched": str(watched.relative_to(copy.warehouse)),
            "kill": outcome, "killed_after_s": killed_at}
    rerun = spark_job(stage, conf, base.run_id)
    out = output_of(rerun)
    cell["rerun_exit"] = rerun.returncode
    cell["differences"] = differences(spark, base, copy, stage) if rerun.returncode == 0 else [out[-800:]]
    cell["pass"] = outcome == "killed" and rerun.returncode == 0 and not cell["differences"]
    shutil.rmtree(copy.warehouse, ignore_errors=True)
    return cell


def _merge_loop(conf: str, run_id: str, thresholds: list[str]) -> None:
    from pipeline.config import load_config
    from pipeline.runner import run_pipeline, setup_logging
    from pipeline.spark import get_spark

    setup_logging("WARNING")
    config = load_config(conf)
    spark = get_spark(config.spark, "kgmerge-merge-loop")
    for t in thresholds:
        update = {"merge": config.merge.model_copy(update={"threshold": float(t)})}
        run_pipeline(config.model_copy(update=update), run_id, ["merge"], spark=spark)


if __name__ == "__main__":
    if sys.argv[1:2] == ["merge-loop"]:
        _merge_loop(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        raise SystemExit(__doc__)


# --- the bad-input corpus's hub: one node with very many edges -----------------------------------

HUB = "venue/vldb"  # of graph A; the slice has six papers in it


def hub_case(to: Path, edges: int) -> Path:
    """A copy of the bad-input corpus's good case (tests/data/bad/good) at ``to`` with ``edges``
    more papers, each published in the hub ``HUB``; ``edges`` + 6 edges then end at it."""
    import csv

    shutil.copytree(REPO / "tests" / "data" / "bad" / "good", to)
    with open(to / "nodes.csv", "a", newline="") as nodes, open(to / "edges.csv", "a", newline="") as out:
        n, e = csv.writer(nodes, lineterminator="\n"), csv.writer(out, lineterminator="\n")
        for i in range(edges):
            n.writerow(["A", f"paper/hub{i}", "paper", f"proceedings paper number {i}", "2001"])
            e.writerow(["A", f"paper/hub{i}", "published_in", HUB])
    return to


def hub_sampling(spark, paths: Paths, cap: int = 10) -> tuple[int, int]:
    """After ingest of a ``hub_case``: (the hub's directed edges, the distinct neighbours extract's
    sampler keeps of them at ``cap``)."""
    from pyspark.sql import functions as F

    from pipeline import extract
    from pipeline.config import ExtractConfig

    edges, nodes = spark.read.parquet(str(paths.edges)), spark.read.parquet(str(paths.nodes))
    index = nodes.select("kg", "id", "type", F.xxhash64("kg", "id").alias("nid"))
    directed = extract.directed_edges(edges, index, extract.relation_vocabulary(edges))
    hub = index.where(F.col("kg") == "A").where(F.col("id") == HUB).first()["nid"]
    sampled = extract.sample_neighbours(directed, ExtractConfig(cap=cap)).where(F.col("src") == hub)
    return directed.where(F.col("src") == hub).count(), sampled.select("dst").distinct().count()

"""A real Spark standalone cluster on localhost (one master, two workers, started with the
daemon script that ships inside pyspark), the pipeline submitted to it through ./spark-submit.sh,
and its result compared with the local-mode run of the same config: the same inputs and seed
must give the same model, scores, alignment and uids to the bit (this is also the pipeline's
determinism test).

The cluster's run starts at ``features``, from the local run's ingested input: ingest is Spark
SQL over the input files alone (no Python worker, no file a worker caches), and as a cold JVM's
first stage on a cluster it took 130 of the test's 300 seconds. Every stage that runs Python on
the executors (features, block, score) or commits to Delta (merge) runs there."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pyspark
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SPARK_HOME = Path(pyspark.__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def daemon(action: str, cls: str, instance: int, env: dict, *args: str) -> None:
    subprocess.run(["bash", str(SPARK_HOME / "sbin" / "spark-daemon.sh"), action, cls, str(instance), *args],
                   env=env, check=True, capture_output=True, timeout=120)


def wait_for_workers(log_dir: Path, count: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        logs = "".join(p.read_text(errors="replace") for p in log_dir.glob("*Master*.out"))
        if logs.count("Registering worker") >= count:
            return
        time.sleep(1)
    raise AssertionError(f"{count} workers did not register within {timeout}s; see {log_dir}")


@pytest.fixture
def standalone_cluster(tmp_path):
    """spark://127.0.0.1:<port> with two one-core workers; stopped afterwards whatever happens."""
    port = free_port()
    env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOG_DIR": str(tmp_path / "logs"),
           "SPARK_PID_DIR": str(tmp_path / "pids"), "SPARK_WORKER_DIR": str(tmp_path / "work"),
           "PYSPARK_PYTHON": str(REPO / ".venv" / "bin" / "python")}
    master = f"spark://127.0.0.1:{port}"
    workers = [(i, "org.apache.spark.deploy.worker.Worker") for i in (1, 2)]
    try:
        daemon("start", "org.apache.spark.deploy.master.Master", 1, env,
               "--host", "127.0.0.1", "--port", str(port), "--webui-port", "0")
        for i, cls in workers:
            daemon("start", cls, i, env, "--host", "127.0.0.1", "--webui-port", "0",
                   "--cores", "1", "--memory", "1500m", master)
        wait_for_workers(tmp_path / "logs", 2)
        yield master
    finally:
        for i, cls in workers:
            daemon("stop", cls, i, env)
        daemon("stop", "org.apache.spark.deploy.master.Master", 1, env)


def _content(spark, path: Path, keys: list[str]) -> pa.Table:
    """A table's rows as Arrow, in key order: equal tables give equal bytes whatever the files."""
    df = spark.read.format("delta").load(str(path)) if (path / "_delta_log").exists() else spark.read.parquet(str(path))
    return df.toArrow().sort_by([(k, "ascending") for k in keys])


def test_pipeline_on_a_standalone_cluster_equals_local_mode(dblp_run, spark, standalone_cluster, tmp_path):
    cfg, paths, _ = dblp_run
    raw = json.loads(cfg.model_dump_json())
    raw["warehouse"] = str(tmp_path / "cluster-warehouse")
    conf = tmp_path / "conf.yaml"
    conf.write_text(yaml.safe_dump(raw))

    from pipeline.schema import Paths

    remote = Paths((tmp_path / "cluster-warehouse").resolve(), paths.run_id)
    shutil.copytree(paths.input, remote.input)  # what ingest wrote: the cluster's run starts after it
    out = subprocess.run(
        [str(REPO / "spark-submit.sh"), "--master", standalone_cluster, "--driver-memory", "2g",
         "--executor-memory", "1g", "--total-executor-cores", "2",
         "pipeline", str(conf), "--run-id", paths.run_id, "--from-stage", "features"],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    assert f"run '{paths.run_id}' finished" in out.stdout
    # the work ran on the cluster's executors, not in the driver
    app_logs = list((tmp_path / "work").glob("app-*/*/stderr"))
    assert len({p.parent.name for p in app_logs}) >= 2, "expected executors on both workers"

    # same inputs and seed: the same model, scores, alignment and uids, to the bit
    assert (remote.model_dir / "weights.safetensors").read_bytes() == (paths.model_dir / "weights.safetensors").read_bytes()
    for name, keys in (("scores", ["id_a", "id_b", "type"]), ("alignment", ["id_a", "id_b", "type"]),
                       ("unified_nodes", ["uid"]), ("unified_edges", ["src_uid", "rel", "dst_uid"])):
        local, there = (_content(spark, getattr(p, name), keys) for p in (paths, remote))
        assert local.num_rows > 0 and local.equals(there), f"{name} differs between the two runs"
    local_metrics = json.loads(paths.metrics.read_text())
    remote_metrics = json.loads(remote.metrics.read_text())
    assert remote_metrics["f1"] == local_metrics["f1"]

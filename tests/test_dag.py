"""dags/kgmerge_dag.py, loaded by real Airflow's DagBag in .venv-airflow (``make airflow-setup``; ``make
test`` makes it): it parses with none of kgmerge's packages, has one SparkSubmitOperator per stage in
the pipeline's order, and its templates render to the spark-submit.sh command with the DAG run's id.

Airflow runs in a subprocess (its pins clash with .venv's), with AIRFLOW_HOME in a temp folder: DagBag
parsing and template rendering need no metadata database, so nothing is migrated or written to ~/airflow.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
AIRFLOW_PY = REPO / ".venv-airflow" / "bin" / "python"
STAGES = ["ingest", "features", "block", "extract", "train", "score", "merge", "evaluate"]
RUN_ID = "manual__2026-01-01T00:00:00.123456+00:00"
SAFE_RUN_ID = "manual__2026-01-01T00-00-00.123456-00-00"
PACKAGES = "io.delta:delta-spark_4.2_2.13:4.4.0"

# Runs in .venv-airflow: loads dags/ and prints what the tests check, as JSON on its last line.
PROBE = r"""
import copy, importlib.abc, inspect, json, sys, warnings

BLOCKED = ("pyspark", "torch", "delta", "pipeline", "model", "jobs")  # the scheduler has none of them

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"the DAG file imported {name}; a scheduler has only Airflow")

sys.meta_path.insert(0, Block())
dag_folder, run_id, packages = sys.argv[1:4]

from airflow.models import DagBag

kwargs = {"include_examples": False} if "include_examples" in inspect.signature(DagBag).parameters else {}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    bag = DagBag(dag_folder=dag_folder, **kwargs)
out = {
    "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
    "dag_ids": sorted(bag.dags),
    "warnings": sorted({str(w.message) for w in caught if "kgmerge_dag" in str(w.filename)}),
}
dag = bag.dags.get("kgmerge")
if dag is not None:
    try:
        from airflow.serialization.serialized_objects import DagSerialization as Ser
    except ImportError:
        from airflow.serialization.serialized_objects import SerializedDAG as Ser
    out["serialized_tasks"] = sorted(t.task_id for t in Ser.from_dict(Ser.to_dict(dag)).tasks)
    out["timetable"] = type(dag.timetable).__name__
    out["catchup"] = dag.catchup
    out["tags"] = sorted(dag.tags)
    out["params"] = dag.params.dump()
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    def rendered(task, params):
        task = copy.deepcopy(task)  # rendering replaces the templates in place
        task.render_template_fields({"params": params, "run_id": run_id, "dag": dag, "task": task})
        hook = task._get_hook()  # the master comes from AIRFLOW_CONN_SPARK_DEFAULT
        return {
            "application": task.application,
            "application_args": list(task.application_args),
            "jars": task.jars,
            "packages": task.packages,
            "conf": task.conf,
            "env_vars": task.env_vars,
            "command": hook._build_spark_submit_command(task.application),
        }

    out["tasks"] = {}
    for task in dag.tasks:
        out["tasks"][task.task_id] = {
            "spark_submit": isinstance(task, SparkSubmitOperator),
            "retries": task.retries,
            "retry_delay_s": task.retry_delay.total_seconds(),
            "upstream": sorted(task.upstream_task_ids),
            "downstream": sorted(task.downstream_task_ids),
            "conn_id": task._conn_id,
            "raw_args": list(task.application_args),
        }
    params = dag.params.dump()
    out["rendered"] = {t.task_id: rendered(t, params) for t in dag.tasks}
    # with the spark_packages param: --packages and no --jars
    out["rendered_packages"] = rendered(dag.get_task("merge"), {**params, "spark_packages": packages})
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    if not AIRFLOW_PY.exists():
        pytest.fail(f"{AIRFLOW_PY} is missing: run `make airflow-setup` (`make test` runs it)")
    home = tmp_path_factory.mktemp("airflow_home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "KGMERGE_", "PYTHON"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
        AIRFLOW__LOGGING__BASE_LOG_FOLDER=str(home / "logs"),
        AIRFLOW_CONN_SPARK_DEFAULT=json.dumps({"conn_type": "spark", "host": "local[*]"}),
    )
    proc = subprocess.run(
        [str(AIRFLOW_PY), "-c", PROBE, str(REPO / "dags"), RUN_ID, PACKAGES],
        cwd=home, env=env, capture_output=True, text=True, timeout=180,
    )
    detail = (f"exit {proc.returncode}\n--- stderr ---\n{proc.stderr[-6000:]}"
              f"\n--- stdout ---\n{proc.stdout[-3000:]}")
    assert proc.returncode == 0, detail
    lines = proc.stdout.strip().splitlines()
    assert lines, detail
    out = json.loads(lines[-1])
    out["detail"] = detail
    return out


def test_dag_parses_without_kgmerge_packages(probe):
    assert probe["import_errors"] == {}, probe["detail"]
    assert "kgmerge" in probe["dag_ids"], probe["detail"]
    assert probe["warnings"] == [], probe["detail"]
    assert probe["serialized_tasks"] == sorted(STAGES)  # what the scheduler stores round-trips


def test_dag_settings(probe):
    assert probe["catchup"] is False
    assert probe["timetable"] == "NullTimetable"  # schedule=None: runs are triggered
    assert "kgmerge" in probe["tags"]
    assert probe["params"] == {
        "kgmerge_home": str(REPO), "config": "conf/dblp_acm.yaml", "spark_packages": ""
    }


def test_one_spark_submit_task_per_stage_in_order(probe):
    tasks = probe["tasks"]
    assert set(tasks) == set(STAGES)
    for i, stage in enumerate(STAGES):
        task = tasks[stage]
        assert task["spark_submit"], f"{stage} is no SparkSubmitOperator"
        assert task["retries"] >= 1 and task["retry_delay_s"] > 0, stage
        assert task["conn_id"] == "spark_default", stage
        assert task["downstream"] == STAGES[i + 1:i + 2], stage
        assert task["upstream"] == STAGES[max(i - 1, 0):i], stage


def test_tasks_render_to_the_stage_jobs_with_one_run_id(probe):
    jars = ",".join(str(p) for p in sorted((REPO / "jars").glob("*.jar")))
    for stage in STAGES:
        assert "run_id" in "".join(probe["tasks"][stage]["raw_args"]), stage
        r = probe["rendered"][stage]
        app = Path(r["application"])
        assert app == REPO / "jobs" / f"{stage}.py" and app.is_file(), r["application"]
        config = REPO / "conf" / "dblp_acm.yaml"
        assert r["application_args"] == [str(config), "--run-id", SAFE_RUN_ID], stage
        log4j = f"-Dlog4j2.configurationFile={REPO}/conf/log4j2.properties"
        archive = f"-XX:SharedArchiveFile={REPO}/jars/driver-classes.jsa -Xlog:cds*=off"
        assert r["conf"] == {"spark.ui.showConsoleProgress": "false",
                             "spark.driver.defaultJavaOptions": f"{log4j} {archive}",
                             "spark.executor.defaultJavaOptions": log4j}
        assert r["env_vars"]["PYTHONPATH"] == str(REPO)
        assert r["packages"] == ""
        if jars:  # jars/ is fetched by `make jars` (part of `make setup`)
            assert r["jars"] == jars
        cmd = r["command"]
        assert cmd[cmd.index("--master") + 1] == "local[*]"
        assert cmd[cmd.index("--jars") + 1] == r["jars"]
        assert "spark.ui.showConsoleProgress=false" in cmd
        assert cmd[-4:] == [str(app), str(config), "--run-id", SAFE_RUN_ID]


def test_spark_packages_param_replaces_the_jars(probe):
    r = probe["rendered_packages"]
    assert r["jars"] == "" and r["packages"] == PACKAGES
    cmd = r["command"]
    assert "--jars" not in cmd and cmd[cmd.index("--packages") + 1] == PACKAGES

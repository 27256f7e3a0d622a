"""Airflow DAG ``kgmerge``: the pipeline's stages as one SparkSubmitOperator task each.

    ingest -> features -> block -> extract -> train -> score -> merge -> evaluate

Each task does what ``./spark-submit.sh <stage> <config> --run-id ID`` does: it submits
``jobs/<stage>.py <config> --run-id ID`` with the jars of the repo's ``jars/`` folder (or
``--packages``), ``spark.ui.showConsoleProgress=false``, Spark's logs at WARN
(conf/log4j2.properties), PYTHONPATH = the repo root, the repo's ``.venv`` Python and
spark-submit when they exist, and it runs from the repo root (relative paths in a config are
read from there). The DAG needs only Airflow and apache-airflow-providers-apache-spark
to parse: nothing of kgmerge, pyspark or torch is imported here (``make airflow-setup``).

Run id: every task of one DAG run gets ``--run-id`` = that DAG run's ``run_id`` made folder-safe
(``manual__2026-01-01T00:00:00+00:00`` -> ``manual__2026-01-01T00-00-00-00-00``), so the stages
of a run share ``<warehouse>/runs/<run id>`` and a retried or cleared task finds its inputs.

Params (set when triggering, e.g. ``airflow dags trigger kgmerge -c '{"config": "conf/beer.yaml"}'``):
  kgmerge_home    the repo checkout on the workers; default $KGMERGE_HOME, else the folder above dags/
  config          the YAML config, relative to kgmerge_home or absolute; default $KGMERGE_CONF,
                  else conf/dblp_acm.yaml
  spark_packages  Maven coordinates for ``--packages`` instead of ``jars/*.jar`` (a cluster whose
                  workers have no jars/ folder), e.g. io.delta:delta-spark_4.2_2.13:4.4.0;
                  default $KGMERGE_SPARK_PACKAGES, else empty (use jars/, fetched by ``make jars``)

Read when the file is parsed (environment of the scheduler and the workers):
  KGMERGE_SPARK_CONN_ID   the Airflow connection that names the Spark master; default spark_default
  KGMERGE_SPARK_SUBMIT    the spark-submit to run; default <KGMERGE_HOME>/.venv/bin/spark-submit if it
                          exists, else the connection's spark-binary (spark-submit on PATH)
  KGMERGE_DRIVER_MEMORY   --driver-memory; default 4g, as spark-submit.sh

The Spark connection gives the master (the operator has no --master of its own), e.g. for the
connection id spark_default:
  local[*], as spark-submit.sh:  airflow connections add spark_default --conn-type spark \\
                                     --conn-host 'local[*]'
                                 or, in the environment of the workers,
                                 AIRFLOW_CONN_SPARK_DEFAULT='{"conn_type": "spark", "host": "local[*]"}'
  a standalone master:           airflow connections add spark_default --conn-type spark \\
                                     --conn-host spark://master-host --conn-port 7077
  YARN or Kubernetes:            --conn-host yarn, or --conn-host k8s://https://api-host:6443, and
                                 --conn-extra '{"deploy-mode": "cluster"}' where wanted
A standalone master takes client mode only here: the provider refuses env_vars (PYTHONPATH) in its
cluster mode. Airflow's own spark_default (``airflow connections create-default-connections``) and a
missing connection both mean YARN: set the connection before the first run. On a cluster in client
mode, kgmerge_home is the checkout on the workers that run the Airflow tasks; the executors need the
code too (``make dist`` and --py-files, README "Running on a cluster") and, without jars/, the
spark_packages param.
"""
from __future__ import annotations

import glob
import os
import re
from datetime import datetime, timedelta, timezone

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import DAG, Param

STAGES = ["ingest", "features", "block", "extract", "train", "score", "merge", "evaluate"]

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KGMERGE_HOME = os.environ.get("KGMERGE_HOME") or REPO_ROOT
KGMERGE_CONF = os.environ.get("KGMERGE_CONF") or "conf/dblp_acm.yaml"
SPARK_CONN_ID = os.environ.get("KGMERGE_SPARK_CONN_ID") or "spark_default"
SPARK_PACKAGES = os.environ.get("KGMERGE_SPARK_PACKAGES", "")
DRIVER_MEMORY = os.environ.get("KGMERGE_DRIVER_MEMORY") or "4g"


def _venv_file(home: str, name: str) -> str | None:
    path = os.path.join(home, ".venv", "bin", name)
    return path if os.access(path, os.X_OK) else None


SPARK_SUBMIT = os.environ.get("KGMERGE_SPARK_SUBMIT") or _venv_file(KGMERGE_HOME, "spark-submit")


# --- used in the templates (rendered on the worker, just before the task runs) ---

def folder_safe(value: str) -> str:
    """A run id as a folder name, as pipeline/schema.py ``check_run_id`` accepts it: runs of
    characters other than letters, digits, '_' and '.' (and runs of dots) become '-', at most
    128 characters."""
    safe = re.sub(r"[^A-Za-z0-9_.]+|\.{2,}", "-", str(value)).strip("._-")[:128].rstrip("._-")
    return safe or "run"


def kgmerge_path(home: str, path: str) -> str:
    """``path`` if absolute, else ``path`` under ``home``."""
    return path if os.path.isabs(path) else os.path.join(home, path)


def kgmerge_jars(home: str) -> str:
    """The jars of <home>/jars, comma-separated, as spark-submit.sh passes them to --jars."""
    jars = sorted(glob.glob(os.path.join(home, "jars", "*.jar")))
    if not jars:
        raise ValueError(
            f"no jars in {home}/jars: run 'make jars' there, or set the spark_packages param"
        )
    return ",".join(jars)


def kgmerge_python(home: str) -> str:
    """The Python for the driver and the executors: $PYSPARK_PYTHON, else <home>/.venv's, else python3."""
    return os.environ.get("PYSPARK_PYTHON") or _venv_file(home, "python") or "python3"


RUN_ID = "{{ run_id | folder_safe }}"
HOME = "{{ params.kgmerge_home }}"


class KgmergeSparkSubmitOperator(SparkSubmitOperator):
    """SparkSubmitOperator that runs spark-submit from the repo root, as spark-submit.sh does (cd "$here"):
    the configs' relative paths (data/..., warehouse/...) are read from the directory the job runs in."""

    def execute(self, context):
        os.chdir(context["params"]["kgmerge_home"])
        return super().execute(context)


with DAG(
    dag_id="kgmerge",
    description="kgmerge: merge two knowledge graphs, one spark-submit per pipeline stage",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,  # runs share the warehouse's Delta tables (merge updates them)
    tags=["kgmerge", "spark"],
    params={
        "kgmerge_home": Param(KGMERGE_HOME, type="string", description="repo checkout on the workers"),
        "config": Param(KGMERGE_CONF, type="string", description="YAML config, relative to kgmerge_home"),
        "spark_packages": Param(
            SPARK_PACKAGES, type="string", description="--packages instead of the jars/ folder if set"
        ),
    },
    user_defined_filters={"folder_safe": folder_safe},
    user_defined_macros={
        "kgmerge_path": kgmerge_path,
        "kgmerge_jars": kgmerge_jars,
        "kgmerge_python": kgmerge_python,
    },
    default_args={
        "owner": "kgmerge",
        "retries": 2,
        "retry_delay": timedelta(minutes=5),
    },
    doc_md=__doc__,
) as dag:
    previous = None
    for stage in STAGES:
        task = KgmergeSparkSubmitOperator(
            task_id=stage,
            conn_id=SPARK_CONN_ID,
            spark_binary=SPARK_SUBMIT,
            application=f"{HOME}/jobs/{stage}.py",
            application_args=[
                f"{{{{ kgmerge_path(params.kgmerge_home, params.config) }}}}",
                "--run-id",
                RUN_ID,
            ],
            jars="{{ '' if params.spark_packages else kgmerge_jars(params.kgmerge_home) }}",
            packages="{{ params.spark_packages }}",
            # Spark's own logs at WARN, as spark-submit.sh sets them (conf/log4j2.properties says
            # how to turn them back on); the stage lines stay. Each task starts a JVM: it maps its
            # classes from the archive `make setup` built, where there is one (the JVM skips a
            # missing or stale one, silently)
            conf={"spark.ui.showConsoleProgress": "false",
                  "spark.driver.defaultJavaOptions": f"-Dlog4j2.configurationFile={HOME}/conf/log4j2.properties "
                                                     f"-XX:SharedArchiveFile={HOME}/jars/driver-classes.jsa "
                                                     "-Xlog:cds*=off",
                  "spark.executor.defaultJavaOptions": f"-Dlog4j2.configurationFile={HOME}/conf/log4j2.properties"},
            driver_memory=DRIVER_MEMORY,
            env_vars={
                "PYTHONPATH": HOME,
                "PYSPARK_PYTHON": f"{{{{ kgmerge_python(params.kgmerge_home) }}}}",
            },
            name=f"kgmerge {stage} {RUN_ID}",
        )
        if previous is not None:
            previous >> task
        previous = task

"""The one SparkSession: Delta extensions, the jars from jars/, sensible local defaults.

Under spark-submit (``./spark-submit.sh``) the master and jars come from the command line and
are left alone; in tests, benchmarks and notebooks this module sets them.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from pipeline.config import SparkConfig

REPO = Path(__file__).resolve().parents[1]
JARS_DIR = Path(os.environ.get("KGMERGE_JARS", REPO / "jars"))


def local_jars() -> list[str]:
    jars = sorted(str(p) for p in JARS_DIR.glob("*.jar"))
    if not jars:
        raise RuntimeError(
            f"no jars in {JARS_DIR}: run `make jars` (mvn -q dependency:copy-dependencies "
            "-DoutputDirectory=jars) to fetch the Delta jars, or launch through ./spark-submit.sh "
            "with --packages"
        )
    return jars


def get_spark(conf: SparkConfig | None = None, app_name: str = "kgmerge") -> SparkSession:
    conf = conf or SparkConfig()
    builder = (
        SparkSession.builder.appName(app_name)
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.sql.shuffle.partitions", str(conf.shuffle_partitions))
        .config("spark.sql.adaptive.enabled", "true")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.databricks.delta.snapshotPartitions", "2")
        .config("spark.ui.showConsoleProgress", "false")
    )
    launched_by_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    if not launched_by_submit:
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = (
            builder.master(conf.master)
            .config("spark.jars", ",".join(local_jars()))
            .config("spark.driver.memory", conf.driver_memory)
        )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark

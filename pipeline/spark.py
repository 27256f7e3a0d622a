"""The one SparkSession: Delta extensions, the jars from jars/, sensible local defaults.

Under spark-submit (``./spark-submit.sh``) the master, jars and Java options come from the command
line and are left alone; in tests, benchmarks and notebooks this module sets them.

The driver's JVM maps the classes Spark loads from a class-data archive where ``make setup``
built one (``CLASS_ARCHIVE``, ``pipeline.runner.build_class_archive``): a cold JVM then starts
each stage's first queries sooner. An archive that does not fit the JVM or the jars is skipped.

Spark's own log output is WARN by default (conf/log4j2.properties, which says how to turn it back
on: ``KGMERGE_SPARK_LOG=INFO``); the product's ``kgmerge`` log lines are not Spark's and stay.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from pipeline.config import SparkConfig

REPO = Path(__file__).resolve().parents[1]
JARS_DIR = Path(os.environ.get("KGMERGE_JARS", REPO / "jars"))
LOG4J2_CONF = REPO / "conf" / "log4j2.properties"
# the driver JVM's class-data archive (AppCDS), built for these jars by `make setup`
CLASS_ARCHIVE = JARS_DIR / "driver-classes.jsa"
SPARK_LOG_ENV = "KGMERGE_SPARK_LOG"  # Spark's log level (log4j's names), default WARN


def log4j2_java_options() -> str:
    """The JVM option that points log4j2 at conf/log4j2.properties (quoted for Spark's option
    parser, so a path with spaces survives). spark-submit.sh passes the same."""
    return f"'-Dlog4j2.configurationFile={LOG4J2_CONF}'"


def driver_java_options(archive_classes_to: Path | None = None) -> str:
    """The driver JVM's default options: log4j2's file, and the class-data archive, read where
    it exists, or written at the JVM's exit to ``archive_classes_to``. spark-submit.sh passes
    the same. A stale archive (another JDK, other jars) is skipped, silently (``-Xlog:cds``)."""
    options = [log4j2_java_options()]
    if archive_classes_to is not None:
        options += [f"'-XX:ArchiveClassesAtExit={archive_classes_to}'", "'-Xlog:cds*=off'"]
    elif CLASS_ARCHIVE.is_file():
        options += [f"'-XX:SharedArchiveFile={CLASS_ARCHIVE}'", "'-Xlog:cds*=off'"]
    return " ".join(options)


def local_jars() -> list[str]:
    jars = sorted(str(p) for p in JARS_DIR.glob("*.jar"))
    if not jars:
        raise RuntimeError(
            f"no jars in {JARS_DIR}: run `make jars` (mvn -q dependency:copy-dependencies "
            "-DoutputDirectory=jars) to fetch the Delta jars, or launch through ./spark-submit.sh "
            "with --packages"
        )
    return jars


def get_spark(conf: SparkConfig | None = None, app_name: str = "kgmerge",
              archive_classes_to: Path | None = None) -> SparkSession:
    """The session (``getOrCreate``). ``archive_classes_to``: the JVM, started here, writes the
    classes it loaded to that archive when it exits (runner.build_class_archive)."""
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
            # Spark's logging quiet from the JVM's first line on; "default" options come before
            # spark.{driver,executor}.extraJavaOptions, which stay the user's
            .config("spark.driver.defaultJavaOptions", driver_java_options(archive_classes_to))
            .config("spark.executor.defaultJavaOptions", log4j2_java_options())
        )
    spark = builder.getOrCreate()
    if spark.sparkContext._jvm.java.lang.System.getProperty("log4j2.configurationFile") is None:
        # started without a log4j2 file (a plain spark-submit, the Airflow DAG): Spark's default
        # profile logs INFO; from here on at least, WARN (or $KGMERGE_SPARK_LOG)
        spark.sparkContext.setLogLevel(os.environ.get(SPARK_LOG_ENV, "WARN").upper())
    if SPARK_LOG_ENV not in os.environ and logging.getLogger("py4j").level == logging.NOTSET:
        # py4j's INFO lines (e.g. "Closing down clientserver connection" at exit) are Spark's too
        logging.getLogger("py4j").setLevel(logging.WARNING)
    return spark

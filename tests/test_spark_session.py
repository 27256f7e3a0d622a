"""The driver JVM's options: log4j2's file always, the class-data archive where `make setup` built
one (pipeline/spark.py, spark-submit.sh)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pipeline import spark as spark_module

REPO = Path(__file__).resolve().parents[1]


def test_the_archive_is_read_only_where_it_exists(tmp_path, monkeypatch):
    archive = tmp_path / "driver-classes.jsa"
    monkeypatch.setattr(spark_module, "CLASS_ARCHIVE", archive)
    assert "SharedArchiveFile" not in spark_module.driver_java_options()
    archive.write_bytes(b"")
    options = spark_module.driver_java_options()
    assert f"'-XX:SharedArchiveFile={archive}'" in options and "log4j2.configurationFile" in options
    # building one: written at exit, never read at the same time
    building = spark_module.driver_java_options(archive_classes_to=tmp_path / "new.jsa")
    assert f"-XX:ArchiveClassesAtExit={tmp_path / 'new.jsa'}" in building and "SharedArchiveFile" not in building


def test_the_test_session_maps_the_archive(spark):
    if not spark_module.CLASS_ARCHIVE.is_file():
        pytest.skip(f"no {spark_module.CLASS_ARCHIVE}: `make setup` builds it")
    jvm = spark.sparkContext._jvm
    arguments = list(jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
    assert f"-XX:SharedArchiveFile={spark_module.CLASS_ARCHIVE}" in arguments, arguments


def test_spark_submit_sh_passes_the_archive_to_the_driver(tmp_path):
    """spark-submit.sh's own driver options (SPARK_PRINT_LAUNCH_COMMAND shows the JVM's command)."""
    if not spark_module.CLASS_ARCHIVE.is_file():
        pytest.skip(f"no {spark_module.CLASS_ARCHIVE}: `make setup` builds it")
    proc = subprocess.run([str(REPO / "spark-submit.sh"), "report", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "SPARK_PRINT_LAUNCH_COMMAND": "1"})
    launch = next((line for line in proc.stderr.splitlines() if line.startswith("Spark Command:")), "")
    assert f"-XX:SharedArchiveFile={spark_module.CLASS_ARCHIVE}" in launch, proc.stderr[-3000:]

"""Every spark-submit entry point (jobs/*.py) and ./spark-submit.sh answer --help with their options.

A job's --help imports pipeline.runner, and with it torch and pyspark (about 10 s), so the jobs run in
one .venv process, each as `python jobs/<job>.py --help` would run it (runpy as __main__, jobs/ first
on sys.path, the repo root not on it); jobs/run_all.py also runs alone, beside it, as a subprocess.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PY = REPO / ".venv" / "bin" / "python"
STAGES = ["ingest", "features", "block", "extract", "train", "score", "merge", "evaluate"]
JOBS = sorted(p.name for p in (REPO / "jobs").glob("*.py") if p.name != "__init__.py")

# Runs each job file as __main__ with --help; prints {job: [exit code, stdout, stderr]} as JSON.
DRIVER = r"""
import contextlib, io, json, runpy, sys
jobs_dir, names = sys.argv[1], sys.argv[2:]
sys.path[0] = jobs_dir  # as for `python jobs/<job>.py`: the script's folder, not the working directory
out = {}
for name in names:
    path = f"{jobs_dir}/{name}"
    sys.argv = [path, "--help"]
    stdout, stderr = io.StringIO(), io.StringIO()
    code = None
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            runpy.run_path(path, run_name="__main__")
        except SystemExit as exc:
            code = exc.code
    out[name] = [code, stdout.getvalue(), stderr.getvalue()]
print(json.dumps(out))
"""


def _env():
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KGMERGE_RUN_ID")}


@pytest.fixture(scope="module")
def helps(tmp_path_factory):
    assert PY.exists(), f"{PY} is missing: run `make setup`"
    cwd = tmp_path_factory.mktemp("jobs_help")  # not the repo root: the jobs find pipeline as installed
    alone = subprocess.Popen(
        [str(PY), str(REPO / "jobs" / "run_all.py"), "--help"],
        cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    together = subprocess.run(
        [str(PY), "-c", DRIVER, str(REPO / "jobs"), *JOBS],
        cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300,
    )
    out, err = alone.communicate(timeout=300)
    assert together.returncode == 0, together.stderr[-4000:]
    results = json.loads(together.stdout.strip().splitlines()[-1])
    results["run_all.py (own process)"] = [alone.returncode, out, err]
    return results


def test_every_stage_has_a_job():
    assert set(JOBS) == {f"{s}.py" for s in STAGES} | {"run_all.py", "label.py", "report.py"}


@pytest.mark.parametrize("job", JOBS + ["run_all.py (own process)"])
def test_job_help_lists_its_options(helps, job):
    code, out, err = helps[job]
    assert code in (0, None), f"{job} --help exited {code}\n{err[-3000:]}"
    assert out.startswith("usage:"), f"{job}:\n{out}\n{err[-3000:]}"
    assert "--run-id" in out and "config" in out, out
    if job.startswith("run_all.py"):
        assert "--from-stage" in out and all(s in out for s in STAGES), out
        assert "whole pipeline" in out, out
    elif job == "label.py":
        assert "--user" in out and "--limit" in out and "next train run learns" in out, out
    elif job == "report.py":
        assert "--pair" in out and "report" in out, out
    else:
        assert "--from-stage" not in out, out
        assert f"the {job[:-3]} stage" in out, out


def test_run_all_usage_names_its_file(helps):
    assert helps["run_all.py"][1].startswith("usage: jobs/run_all.py"), helps["run_all.py"][1]


def _submit_help():
    return subprocess.run(
        [str(REPO / "spark-submit.sh"), "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
    )


def test_spark_submit_sh_help():
    proc = _submit_help()
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "./spark-submit.sh" in out and "--run-id" in out and "--from-stage" in out, out
    assert all(s in out for s in STAGES + ["pipeline"]), out
    assert "--master" in out and "--jars" in out and "--packages" in out, out


def test_spark_submit_sh_help_is_only_the_header():
    out = _submit_help().stdout
    assert "set -euo" not in out and "here=" not in out, out

# make demo  - set up if needed, then the whole pipeline on the bundled DBLP-ACM data
# make test  - set up if needed (Debian's chromium included), then the test suite
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
# Airflow and its Spark provider, in a venv of their own (their pins clash with ours): dags/
AIRFLOW_VENV    := .venv-airflow
AIRFLOW_VERSION := 3.3.2
AIRFLOW_SPARK   := 6.3.4

.PHONY: demo test setup static-encoder airflow-setup chromium jars bench bench-setup dist clean

demo: setup
	./spark-submit.sh pipeline conf/dblp_acm.yaml

# chromium first: a machine that cannot have it stops before minutes of set-up
test: chromium setup airflow-setup
	$(PY) -m pytest -q --durations=20 tests

setup: $(VENV)/.installed jars/.fetched static-encoder jars/driver-classes.jsa

# the driver JVM's class-data archive (pipeline/runner.py build_class_archive): the classes a run
# loads, mapped by every later JVM instead of loaded one by one (a JVM starts a stage ~10% sooner);
# built once per set of jars, by one pipeline run on the bundled slice (about 4 minutes on 2 cores)
jars/driver-classes.jsa: jars/.fetched $(VENV)/.installed
	@echo "archiving the Spark driver's classes into $@ (one pipeline run on the bundled slice)"
	@$(PY) -c "from pipeline.runner import build_class_archive, setup_logging; \
	    setup_logging('WARNING'); print('wrote', build_class_archive())"

# the static name encoder's word-piece table (features.encoder: static), distilled once per
# machine from the bundled MiniLM weights into ~/.cache/kgmerge (about a minute on 2 cores)
static-encoder: $(VENV)/.installed
	@$(PY) -c "from model.level0 import STATIC_TABLE, static_token_table; \
	    STATIC_TABLE.is_file() or print('distilling the static name encoder into', STATIC_TABLE); static_token_table()"

# pip keeps its wheel cache (~/.cache/pip), so a rebuilt venv reinstalls torch in seconds.
$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need Python 3.11 ($(PYTHON)) on PATH"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[test]'
	touch $@

# tests/test_dag.py loads dags/ with this venv's Airflow; the pins are exact (no constraints file)
airflow-setup: $(AIRFLOW_VENV)/.installed
$(AIRFLOW_VENV)/.installed: Makefile
	@command -v $(PYTHON) >/dev/null || { echo "need Python 3.11 ($(PYTHON)) on PATH"; exit 1; }
	test -x $(AIRFLOW_VENV)/bin/python || $(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --upgrade pip
	$(AIRFLOW_VENV)/bin/python -m pip install 'apache-airflow==$(AIRFLOW_VERSION)' \
	    'apache-airflow-providers-apache-spark==$(AIRFLOW_SPARK)'
	touch $@

# tests/test_report.py renders the run report in headless Chromium, Debian's `chromium` package:
# installed with apt-get when missing, as root or through sudo without a password; else this stops
# with the command to run. (.ci/run relies on this.)
CHROMIUM_HINT := install Debian's chromium package, e.g. 'sudo apt-get install chromium', then rerun make test
chromium:
	@command -v chromium >/dev/null || { \
	    echo "tests/test_report.py needs headless Chromium (Debian's chromium package), and chromium is not on PATH"; \
	    command -v apt-get >/dev/null || { echo "no apt-get here: $(CHROMIUM_HINT) (or your system's Chromium as 'chromium' on PATH)"; exit 1; }; \
	    if [ "$$(id -u)" = 0 ]; then sudo=; \
	    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo=sudo; \
	    else echo "not root and no password-less sudo: $(CHROMIUM_HINT)"; exit 1; fi; \
	    echo "installing it: $${sudo:+sudo }apt-get update && $${sudo:+sudo }apt-get install -y chromium"; \
	    $$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium \
	        || { echo "apt-get could not install chromium: $(CHROMIUM_HINT)"; exit 1; }; }

jars: jars/.fetched
jars/.fetched: pom.xml
	@command -v mvn >/dev/null || { echo "need Maven (mvn) on PATH to fetch the Delta jars"; exit 1; }
	@command -v java >/dev/null || { echo "need Java 17 on PATH to run Spark"; exit 1; }
	rm -rf jars && mvn -q dependency:copy-dependencies -DoutputDirectory=jars
	touch $@

bench: setup
	$(PY) bench/pipeline.py

# the optional `bench` extra (Splink) for bench/compare_splink.py
bench-setup: setup
	$(PY) -m pip install -e '.[bench]'

clean:
	rm -rf warehouse

# the project's packages for --py-files on a cluster (README "Running on a cluster")
dist: setup
	mkdir -p dist && rm -f dist/kgmerge.zip
	cd . && $(PY) -m zipfile -c dist/kgmerge.zip pipeline model

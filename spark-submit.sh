#!/usr/bin/env bash
# Run one stage, or the whole pipeline, through spark-submit.
#
#   ./spark-submit.sh [spark-submit options] <stage> <config.yaml> [--run-id ID] [--from-stage S] [--incremental]
#
#   stage: ingest | features | block | extract | train | score | merge | evaluate | pipeline | label (a person answers pairs in the terminal) | report (rewrite a run's report)
#
# Defaults: --master local[*] and --jars jars/*.jar (fetched by `make jars`). Any spark-submit
# option passes through, e.g. on a cluster:
#   ./spark-submit.sh --master spark://host:7077 --packages io.delta:delta-spark_4.2_2.13:4.4.0 \
#       --conf spark.executor.resource.gpu.amount=1 score conf/dblp_acm.yaml --run-id nightly
# With --packages or --jars given, jars/ is not added.
#
# Spark's own log lines are off below WARN (conf/log4j2.properties, given to the driver and the
# executors as spark.{driver,executor}.defaultJavaOptions; your --driver-java-options add to it).
# The stage lines, training progress and errors with their stack traces stay. Spark's logs back on:
#   KGMERGE_SPARK_LOG=INFO ./spark-submit.sh pipeline conf/dblp_acm.yaml     (or DEBUG, ...)
# or your own log4j2 file:
#   ./spark-submit.sh --driver-java-options "-Dlog4j2.configurationFile=my-log4j2.properties" ...
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
stages=" ingest features block extract train score merge evaluate pipeline label report "

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" || $# -eq 0 ]]; then
  sed -n '2,/^[^#]/p' "$0" | sed '$d; s/^# \{0,1\}//'  # the comment block above
  exit 0
fi

spark_opts=()
while [[ $# -gt 0 && "$stages" != *" $1 "* ]]; do
  spark_opts+=("$1"); shift
done
[[ $# -gt 0 ]] || { echo "error: no stage given; one of:$stages" >&2; exit 2; }
stage="$1"; shift

has() { local o; for o in "${spark_opts[@]+"${spark_opts[@]}"}"; do [[ "$o" == "$1" || "$o" == "$1="* ]] && return 0; done; return 1; }
has_conf() { local o; for o in "${spark_opts[@]+"${spark_opts[@]}"}"; do [[ "$o" == "$1="* || "$o" == "--conf=$1="* ]] && return 0; done; return 1; }
has --master || spark_opts+=(--master "local[*]")
if ! has --packages && ! has --jars; then
  jars=$(ls "$here"/jars/*.jar 2>/dev/null | paste -sd, -)
  [[ -n "$jars" ]] || { echo "error: no jars in $here/jars; run 'make jars' or pass --packages" >&2; exit 2; }
  spark_opts+=(--jars "$jars")
fi
has --driver-memory || spark_opts+=(--driver-memory 4g)
# quoted for Spark's option parser (a path with spaces); as pipeline/spark.py's get_spark
log4j2="'-Dlog4j2.configurationFile=$here/conf/log4j2.properties'"
# and the driver JVM maps its classes from the archive `make setup` built (pipeline/runner.py build_class_archive)
driver_opts="$log4j2"
archive="${KGMERGE_JARS:-$here/jars}/driver-classes.jsa"
[[ -f "$archive" ]] && driver_opts+=" '-XX:SharedArchiveFile=$archive' '-Xlog:cds*=off'"
has_conf spark.driver.defaultJavaOptions || spark_opts+=(--conf "spark.driver.defaultJavaOptions=$driver_opts")
has_conf spark.executor.defaultJavaOptions || spark_opts+=(--conf "spark.executor.defaultJavaOptions=$log4j2")

python="$here/.venv/bin/python"
[[ -x "$python" ]] || python="$(command -v python3)"
submit="$here/.venv/bin/spark-submit"
[[ -x "$submit" ]] || submit="$(command -v spark-submit)"
export PYSPARK_PYTHON="${PYSPARK_PYTHON:-$python}"
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
cd "$here"
job="jobs/$stage.py"
[[ "$stage" == "pipeline" ]] && job="jobs/run_all.py"  # a jobs/pipeline.py would shadow the package
exec "$submit" --conf spark.ui.showConsoleProgress=false "${spark_opts[@]}" "$job" "$@"

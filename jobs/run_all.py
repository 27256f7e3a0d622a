"""spark-submit entry point for the whole pipeline: ./spark-submit.sh pipeline conf/<file>.yaml [--run-id ID]
(named run_all, not pipeline, so that it does not shadow the pipeline package)"""
import sys

from pipeline.runner import main

if __name__ == "__main__":
    sys.exit(main("pipeline"))

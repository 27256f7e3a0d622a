"""spark-submit entry point: ./spark-submit.sh pipeline conf/<file>.yaml [--run-id ID]"""
import sys

from pipeline.runner import main

if __name__ == "__main__":
    sys.exit(main("pipeline"))

"""Entry point: .venv/bin/python jobs/report.py conf/<file>.yaml [--run-id ID] [--pair ID_A ID_B]
(no Spark; ./spark-submit.sh report ... works too)"""
import sys

from pipeline.runner import main

if __name__ == "__main__":
    sys.exit(main("report"))

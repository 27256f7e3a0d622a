"""spark-submit entry point: ./spark-submit.sh label conf/<file>.yaml [--run-id ID] [--user NAME] [--limit N]"""
import sys

from pipeline.runner import main

if __name__ == "__main__":
    sys.exit(main("label"))

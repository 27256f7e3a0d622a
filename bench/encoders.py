"""Name-encoder speed: the full MiniLM transformer vs the static word-piece vectors distilled
from it (``features.encoder``), on the distinct names of real datasets, in one process.

    DATA_DIR=../shared/data .venv/bin/python bench/encoders.py [--datasets dblp_acm,dbp15k_fr_en]

Reads each dataset's ingested nodes (run the pipeline's ingest stage, or bench/quality.py,
first), encodes the same names with both encoders (one torch thread each, as a Spark worker
runs them) and prints names per second and the speed-up. The accuracy side of the comparison is
``bench/quality.py --ablation --variants full,static``: the whole pipeline with each encoder.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow.dataset as pads  # noqa: E402

from model.level0 import NameEncoder, StaticEncoder, static_token_table  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.schema import Paths  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def distinct_names(nodes_path: Path) -> list[str]:
    names = pads.dataset(str(nodes_path)).to_table(columns=["name"]).column("name").to_pylist()
    return sorted({" ".join((n or "").split()).lower() for n in names} - {""})


def names_per_second(encode, names: list[str]) -> float:
    encode(names[:64])  # warm-up: first-call allocations
    start = time.perf_counter()
    encode(names)
    return len(names) / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="dblp_acm,dbp15k_fr_en")
    p.add_argument("--minilm-sample", type=int, default=2000,
                   help="names timed with MiniLM (it is slow; a random sample)")
    args = p.parse_args()
    minilm = NameEncoder(threads=1)
    static = StaticEncoder(static_token_table(), threads=1)
    rows = {}
    for name in args.datasets.split(","):
        cfg = load_config(f"conf/{name}.yaml")
        paths = Paths(cfg.warehouse.resolve(), "bench")
        names = distinct_names(paths.nodes)
        sample = random.Random(0).sample(names, min(args.minilm_sample, len(names)))
        row = {"distinct_names": len(names),
               "minilm_names_per_s": round(names_per_second(minilm.encode, sample)),
               "static_names_per_s": round(names_per_second(static.encode, names))}
        row["speedup"] = round(row["static_names_per_s"] / row["minilm_names_per_s"], 1)
        rows[name] = row
        print(f"{name}: {json.dumps(row)}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "encoders.json"
    out.write_text(json.dumps(rows, indent=2))
    print(f"written: {out}")


if __name__ == "__main__":
    main()

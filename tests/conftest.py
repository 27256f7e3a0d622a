"""One SparkSession for the whole test run, and one pipeline run on the bundled DBLP-ACM slice
that several tests read."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.config import PipelineConfig, SparkConfig, load_config
from pipeline.runner import STAGES, run_pipeline
from pipeline.schema import Paths
from pipeline.spark import get_spark

DATA = Path(__file__).resolve().parent / "data"
REPO = Path(__file__).resolve().parents[1]
# the demo's config: its adapter options (format "magellan"), so the tests build the demo's graph
DEMO = yaml.safe_load((REPO / "conf" / "dblp_acm.yaml").read_text(encoding="utf-8"))
DBLP_OPTIONS = DEMO["dataset"]["options"]


@pytest.fixture(scope="session")
def spark():
    session = get_spark(SparkConfig(master="local[2]", shuffle_partitions=4, driver_memory="2g"), "kgmerge-tests")
    yield session
    session.stop()


def write_config(tmp: Path, dataset: dict, **sections) -> PipelineConfig:
    tmp.mkdir(parents=True, exist_ok=True)
    raw = {"dataset": dataset, "warehouse": str(tmp / "warehouse"), **sections}
    path = tmp / "conf.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


@pytest.fixture(scope="session")
def dblp_run(spark, tmp_path_factory):
    """The whole pipeline on tests/data/dblp_acm_small; returns (config, paths, stage summaries)."""
    tmp = tmp_path_factory.mktemp("dblp")
    cfg = write_config(
        tmp,
        {"name": "dblp_acm_small", "format": "magellan", "path": str(DATA / "dblp_acm_small"),
         "options": DBLP_OPTIONS},
        features=DEMO["features"],  # the demo's level-0 features, lexical terms included
        block={"top_k": {"paper": 5, "author": 5, "venue": 3, "year": 1}},
        extract={"cap": 10, "shards": 2},
        train={"epochs": 12, "patience": 4},
    )
    summaries = run_pipeline(cfg, "test-run", list(STAGES), spark=spark)
    return cfg, Paths(cfg.warehouse.resolve(), "test-run"), summaries

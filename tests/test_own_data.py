"""A user's own data: two flat product tables (the Walmart-Amazon slice as plain records in the
``tables`` CSV format, no edge at all), gold links without a split. The whole pipeline runs:
the model compares level-0 features and the pair evidence only, and the stages say so."""
from __future__ import annotations

import pytest
from conftest import DATA, write_config

from pipeline.runner import STAGES, run_pipeline
from pipeline.schema import Paths


@pytest.fixture(scope="module")
def flat_run(spark, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("flat")
    cfg = write_config(
        tmp, {"name": "flat_products", "format": "tables", "path": str(DATA / "flat_products_small"),
              "options": {"file_format": "csv"}, "train_fraction": 0.5, "valid_fraction_of_train": 0.3},
        features={"encoder": "static", "numeric": ["price"], "lexical": True, "identifier_codes": True},
        block={"top_k": {"product": 10}}, extract={"shards": 2}, train={"epochs": 6, "patience": 2})
    return cfg, Paths(cfg.warehouse.resolve(), "flat"), run_pipeline(cfg, "flat", list(STAGES), spark=spark)


def test_a_graph_without_edges_runs_end_to_end_on_level0_features(flat_run, spark):
    cfg, paths, summaries = flat_run
    assert summaries["ingest"]["rows_out"] > 0 and summaries["extract"]["relations"] == 0
    assert summaries["extract"]["graph"] == "none: no edges, the model compares level-0 features and pair evidence"
    hoods = spark.read.parquet(str(paths.neighbourhoods))
    assert hoods.where("size(hop1) > 0").count() == 0  # nobody has a neighbour
    metrics = summaries["evaluate"]["metrics"]
    # the lexical cosine and the names alone find most of these products
    assert metrics["f1"] > 0.5, metrics
    assert spark.read.format("delta").load(str(paths.alignment)).count() > 0

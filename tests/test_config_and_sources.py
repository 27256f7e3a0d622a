"""Config validation and the DBP15K adapter on its bundled slice."""
from __future__ import annotations

import pytest

from pipeline import ingest
from pipeline.config import ConfigError, load_config
from pipeline.schema import Paths
from pipeline.stage import StageContext

from conftest import DATA, write_config


def test_unknown_key_and_bad_value_are_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: {name: x, format: dblp_acm, path: data}\nwarehouse: w\nextract: {cap: 0, capp: 3}\n")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert "extract.cap" in str(err.value) and "extract.capp" in str(err.value)
    bad.write_text("dataset: {name: x, format: dblp_acm, path: data}\nwarehouse: w\nmodel: {hidden: 7}\n")
    with pytest.raises(ConfigError, match="even"):
        load_config(bad)


def test_missing_dataset_file_names_the_file(spark, tmp_path):
    cfg = write_config(tmp_path, {"name": "x", "format": "dbp15k", "path": str(tmp_path)})
    with pytest.raises(FileNotFoundError, match="ent_ids_1"):
        ingest.run(StageContext(spark, cfg, Paths(cfg.warehouse, "t")))


def test_dbp15k_ingest_splits_links_and_keeps_relations(spark, tmp_path):
    cfg = write_config(tmp_path, {"name": "fr_en", "format": "dbp15k", "path": str(DATA / "dbp15k_fr_en_small"), "seed": 7})
    result = ingest.run(StageContext(spark, cfg, Paths(cfg.warehouse, "t")))
    assert result.details["nodes"] == 800
    assert result.details["gold_by_split"] == {"train": 108, "valid": 12, "test": 280}
    paths = Paths(cfg.warehouse, "t")
    nodes = spark.read.parquet(str(paths.nodes))
    assert nodes.where("name IS NULL OR name = ''").count() == 0
    edges = spark.read.parquet(str(paths.edges))
    assert edges.where("rel NOT LIKE 'r%'").count() == 0
    assert result.details["edges"] == 60 + 63  # lines of triples_1 and triples_2

"""Config validation, and the DBLP-ACM (magellan) and DBP15K adapters on their bundled slices."""
from __future__ import annotations

import pytest

from pipeline import ingest
from pipeline.config import ConfigError, load_config
from pipeline.schema import Paths
from pipeline.stage import StageContext

from conftest import DATA, DBLP_OPTIONS, write_config


def test_unknown_key_and_bad_value_are_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: {name: x, format: magellan, path: data, options: {entity_type: paper, name_column: title}}\nwarehouse: w\nextract: {cap: 0, capp: 3}\n")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert "extract.cap" in str(err.value) and "extract.capp" in str(err.value)
    bad.write_text("dataset: {name: x, format: magellan, path: data, options: {entity_type: paper, name_column: title}}\nwarehouse: w\nmodel: {hidden: 7}\n")
    with pytest.raises(ConfigError, match="even"):
        load_config(bad)
    for features in ("{lexical_context: [written_by]}", "{identifier_codes: true}", "{lexical_squeezed: true}"):
        bad.write_text("dataset: {name: x, format: magellan, path: data, options: {entity_type: paper, name_column: title}}\n"
                       f"warehouse: w\nfeatures: {features}\n")
        with pytest.raises(ConfigError, match="lexical: true"):
            load_config(bad)
    # a blocking method is checked against the registry of methods (pipeline/blocking)
    bad.write_text("dataset: {name: x, format: magellan, path: data, options: {entity_type: paper, name_column: title}}\n"
                   "warehouse: w\nblock: {method: soundex}\n")
    with pytest.raises(ConfigError, match="block.method 'soundex'; use one of names, anchors"):
        load_config(bad)


def test_dblp_acm_ingest_builds_the_demo_graph(spark, tmp_path):
    """The magellan adapter with the demo's options: the graph of the former DBLP-ACM adapter
    (counts taken from it on this slice), plus the labelled pairs."""
    cfg = write_config(tmp_path, {"name": "dblp", "format": "magellan", "path": str(DATA / "dblp_acm_small"),
                                  "options": DBLP_OPTIONS})
    paths = Paths(cfg.warehouse, "t")
    result = ingest.run(StageContext(spark, cfg, paths))
    assert result.details["nodes_by_type"] == {"paper": 640, "author": 1426, "venue": 10, "year": 20}
    assert result.details["edges"] == 3126 and result.rejected == 0
    assert result.details["gold_by_split"] == {"train": 160, "valid": 50, "test": 50}
    assert result.details["labelled_by_split_label"] == {
        "train/1": 160, "train/0": 90, "valid/1": 50, "valid/0": 21, "test/1": 50, "test/0": 35}
    edges = {r["rel"]: r["count"] for r in spark.read.parquet(str(paths.edges)).groupBy("rel").count().collect()}
    assert edges == {"written_by": 1846, "published_in": 640, "in_year": 640}
    paper = spark.read.parquet(str(paths.nodes)).where("kg = 'A' AND id = 'paper/1054'").first()
    assert paper["name"] == "concurrency and recovery for index trees"
    assert paper["attrs"] == {"authors": "david b. lomet , betty salzberg", "venue": "vldb j.", "year": "1997"}
    authors = spark.read.parquet(str(paths.edges)).where("kg = 'A' AND src = 'paper/1054' AND rel = 'written_by'")
    assert sorted(r["dst"] for r in authors.collect()) == ["author/betty salzberg", "author/david b. lomet"]


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
    # lines of triples_1 and triples_2, less the ten self-loops the slice has (to `rejected`)
    assert result.details["edges"] == 60 + 63 - 10
    assert result.rejected == 10 and result.details["rejected_by_reason"] == {"edges: self-loop": 10}

"""The magellan adapter (two-table ER benchmarks as multi-type graphs) on its bundled slices:
Walmart-Amazon (id-level CSVs) and Fodors-Zagats (Ditto pair files, no tables), plus a tiny
Beer-like set (tables + Ditto pairs mapped to table ids) written by the test."""
from __future__ import annotations

import csv
import shutil

import pytest
import yaml

from pipeline import ingest
from pipeline.config import ConfigError
from pipeline.schema import Paths
from pipeline.sources import magellan
from pipeline.stage import StageContext

from conftest import DATA, REPO, write_config


def conf_options(name: str) -> dict:
    """The adapter options of conf/<name>.yaml, so the slices are read as the benchmark is."""
    return yaml.safe_load((REPO / "conf" / f"{name}.yaml").read_text(encoding="utf-8"))["dataset"]["options"]


def ingested(spark, tmp, name: str, path, options: dict):
    cfg = write_config(tmp, {"name": name, "format": "magellan", "path": str(path), "options": options})
    paths = Paths(cfg.warehouse, "t")
    result = ingest.run(StageContext(spark, cfg, paths))
    return result.details, paths


@pytest.fixture(scope="module")
def walmart(spark, tmp_path_factory):
    return ingested(spark, tmp_path_factory.mktemp("walmart"), "walmart_amazon_small",
                    DATA / "walmart_amazon_small", conf_options("walmart_amazon"))


@pytest.fixture(scope="module")
def fodors(spark, tmp_path_factory):
    return ingested(spark, tmp_path_factory.mktemp("fodors"), "fodors_zagats_small",
                    DATA / "fodors_zagats_small", conf_options("fodors_zagats"))


def test_walmart_amazon_counts(walmart):
    details, _ = walmart
    # 218 + 227 products; brand/category/modelno nodes keyed by normalised text, per graph
    assert details["nodes_by_type"] == {"product": 445, "brand": 242, "category": 143, "modelno": 375}
    assert details["edges"] == 1253 and details["read"]["edges"] == details["edges"]
    # matches.csv is the split positives: every gold link has a split
    assert details["gold_by_split"] == {"train": 60, "valid": 20, "test": 20}
    assert details["labelled_by_split_label"] == {
        "train/1": 60, "train/0": 109, "valid/1": 20, "valid/0": 44, "test/1": 20, "test/0": 41}


def test_walmart_amazon_pairs_attrs_and_shared_nodes(spark, walmart):
    _, paths = walmart
    labelled = spark.read.parquet(str(paths.labelled))
    pos = labelled.where("id_a = 'product/1186' AND id_b = 'product/16092'").collect()  # valid.csv row 1
    assert [(r["type"], r["label"], r["split"]) for r in pos] == [("product", 1, "valid")]
    neg = labelled.where("id_a = 'product/978' AND id_b = 'product/2340'").collect()  # train.csv row 1
    assert [(r["label"], r["split"]) for r in neg] == [(0, "train")]
    gold = spark.read.parquet(str(paths.gold))
    assert gold.where("id_a = 'product/1186' AND id_b = 'product/16092' AND split = 'valid'").count() == 1

    # every A product of brand "da-lite" points to the one node brand/da-lite
    with open(DATA / "walmart_amazon_small" / "tableA.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    da_lite = {f"product/{r['id']}" for r in rows if (r["brand"] or "").strip().lower() == "da-lite"}
    assert len(da_lite) >= 2
    edges = spark.read.parquet(str(paths.edges))
    to_brand = edges.where("kg = 'A' AND rel = 'has_brand' AND dst = 'brand/da-lite'").collect()
    assert {r["src"] for r in to_brand} == da_lite
    nodes = spark.read.parquet(str(paths.nodes))
    assert nodes.where("kg = 'A' AND id = 'brand/da-lite'").count() == 1

    row = next(r for r in rows if r["id"] == "1186")
    node = nodes.where("kg = 'A' AND id = 'product/1186'").first()
    assert node["type"] == "product" and node["name"] == row["title"]
    assert node["attrs"] == {"price": row["price"] or None}  # raw string, key lower-cased


def test_fodors_zagats_from_pair_files(spark, fodors):
    details, paths = fodors
    # 149 distinct left records (A) and 148 right ones (B) of the sliced pair files
    assert details["nodes_by_type"] == {"restaurant": 297, "address": 282, "city": 27, "cuisine": 65, "phone": 290}
    assert details["edges"] == 4 * 297 and details["read"]["edges"] == details["edges"]
    assert details["gold_by_split"] == {"train": 40, "valid": 12, "test": 11}
    assert details["labelled_by_split_label"] == {
        "train/1": 40, "train/0": 327, "valid/1": 12, "valid/0": 103, "test/1": 11, "test/0": 110}
    # ids by first appearance: line 1 of train.txt is (A restaurant/0, B restaurant/0), label 0
    nodes = spark.read.parquet(str(paths.nodes))
    first = {r["kg"]: r["name"] for r in nodes.where("id = 'restaurant/0'").collect()}
    assert first == {"A": "toulouse", "B": "` white house restaurant '"}
    labelled = spark.read.parquet(str(paths.labelled))
    first_pair = "id_a = 'restaurant/0' AND id_b = 'restaurant/0' AND label = 0 AND split = 'train'"
    assert labelled.where(first_pair).count() == 1
    # class (the match id) is not an attribute; the row's city is a shared node
    assert nodes.where("type = 'restaurant' AND size(attrs) > 0").count() == 0
    edges = spark.read.parquet(str(paths.edges))
    assert edges.where("kg = 'A' AND src = 'restaurant/0' AND rel = 'in_city'").first()["dst"] == "city/atlanta"
    assert edges.where("kg = 'A' AND rel = 'in_city' AND dst = 'city/atlanta'").count() > 1


def copy_slice(tmp_path, name="walmart_amazon_small"):
    dst = tmp_path / name
    shutil.copytree(DATA / name, dst)
    return dst


def read(spark, tmp_path, path, options):
    cfg = write_config(tmp_path, {"name": "x", "format": "magellan", "path": str(path), "options": options})
    return magellan.read(spark, cfg.dataset, cfg.dataset.adapter_options())


def test_missing_column_names_file_and_column(spark, tmp_path):
    folder = copy_slice(tmp_path)
    path = folder / "tableB.csv"
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.DictWriter(fh, ["id", "title", "category", "modelno", "price"], extrasaction="ignore")
        out.writeheader()
        out.writerows(rows)
    with pytest.raises(ValueError, match=r"tableB\.csv: no column 'brand' \(needed by options\.linked \(brand\)\)"):
        read(spark, tmp_path, folder, conf_options("walmart_amazon"))


def data_rows(path) -> int:
    with open(path, newline="", encoding="utf-8") as fh:
        return sum(1 for _ in csv.reader(fh)) - 1


def test_files_that_disagree_stop_with_file_row_and_field(spark, tmp_path):
    folder = copy_slice(tmp_path)
    with open(folder / "train.csv", "a", encoding="utf-8") as fh:
        fh.write("1186,16092,yes\n")
    with open(folder / "valid.csv", "a", encoding="utf-8") as fh:
        fh.write("1186,424242,0\n")
    # data rows (after the header); the appended rows are the last of their files
    n_train, n_valid = (data_rows(folder / f) for f in ("train.csv", "valid.csv"))
    with pytest.raises(ValueError) as err:
        read(spark, tmp_path, folder, conf_options("walmart_amazon"))
    msg = str(err.value)
    assert f"train.csv row {n_train}: field 'label' is 'yes', expected 0 or 1" in msg
    assert f"valid.csv row {n_valid}: field 'rtable_id': 424242 is no id of" in msg


def test_a_malformed_record_is_rejected_and_the_run_goes_on(spark, tmp_path):
    """The one CSV policy (as the tables adapter): a malformed record goes to the rejected table
    with its file and row; a labelled pair pointing at it is rejected with it."""
    folder = copy_slice(tmp_path)
    with open(folder / "tableA.csv", encoding="utf-8") as fh:
        first_id = list(csv.reader(fh))[1][0]
    with open(folder / "tableA.csv", "a", encoding="utf-8") as fh:
        fh.write("99999,a title with too few fields\n")
    with open(folder / "valid.csv", "a", encoding="utf-8") as fh:
        fh.write("99999,16092,0\n")
    n_a = data_rows(folder / "tableA.csv")
    details, paths = ingested(spark, tmp_path / "run", "walmart_malformed", folder, conf_options("walmart_amazon"))
    rejected = spark.read.format("delta").load(str(paths.rejected)).collect()
    malformed = [r for r in rejected if r["reason"].startswith("malformed record")]
    assert [(r["source"], r["row"]) for r in malformed] == [("tableA.csv", n_a)]
    assert "99999,a title with too few fields" in malformed[0]["record"]
    assert any(r["source"] == "labelled" and "99999" in r["record"] for r in rejected)
    nodes = spark.read.parquet(str(paths.nodes))
    assert nodes.where("id = 'product/99999'").count() == 0
    assert nodes.where(f"id = 'product/{first_id}'").count() == 1  # the rest is read


def test_unknown_or_inconsistent_options_are_refused_at_config_load(tmp_path):
    opts = {**conf_options("walmart_amazon"), "entity_tipe": "product"}
    with pytest.raises(ConfigError, match="entity_tipe"):
        write_config(tmp_path, {"name": "x", "format": "magellan", "path": "p", "options": opts})
    opts = {**conf_options("walmart_amazon"), "linked": [{"column": "brand", "type": "brand", "rel": "r", "sep": ","}]}
    with pytest.raises(ConfigError, match="sep"):
        write_config(tmp_path, {"name": "x", "format": "magellan", "path": "p", "options": opts})
    opts = {**conf_options("walmart_amazon"), "tables": None}
    with pytest.raises(ConfigError, match=r"splits\.format: ditto"):
        write_config(tmp_path, {"name": "x", "format": "magellan", "path": "p", "options": opts})


BEER_OPTIONS = {
    "entity_type": "beer", "name_column": "Beer_Name",
    "linked": [{"column": "Brew_Factory_Name", "type": "brewery", "rel": "brewed_by"}],
    "attributes": ["ABV"], "matches": "matches.csv", "splits": {"format": "ditto"},
}


def beer_like(folder, extra_test_line: str = ""):
    """Tables + matches.csv + Ditto pair files (no id-level split), as Beer ships."""
    folder.mkdir()
    (folder / "tableA.csv").write_text(
        "id,Beer_Name,Brew_Factory_Name,Style,ABV\n0,Red Ale,Alpha Brewing,Amber,5 %\n"
        "1,Stout One,Beta Brewery,Stout,\n2,Pale,Alpha Brewing,IPA,6 %\n", encoding="utf-8")
    (folder / "tableB.csv").write_text(
        "id,Beer_Name,Brew_Factory_Name,Style,ABV\n7,Alpha Red Ale,Alpha Brewing Co,Amber Ale,5 %\n"
        "8,Stout 1,Beta,Stout,7 %\n", encoding="utf-8")
    (folder / "matches.csv").write_text("ltable_id,rtable_id\n0,7\n1,8\n", encoding="utf-8")

    def rec(name, brewery, style, abv):
        return f"COL Beer_Name VAL {name} COL Brew_Factory_Name VAL {brewery} COL Style VAL {style} COL ABV VAL {abv} "

    a0, a1, a2 = rec("Red Ale", "Alpha Brewing", "Amber", "5 %"), rec("Stout One", "Beta Brewery", "Stout", ""), \
        rec("Pale", "Alpha Brewing", "IPA", "6 %")
    b7, b8 = rec("Alpha Red Ale", "Alpha Brewing Co", "Amber Ale", "5 %"), rec("Stout 1", "Beta", "Stout", "7 %")
    (folder / "train.txt").write_text(f"{a0}\t{b7}\t1\n{a2}\t{b7}\t0\n", encoding="utf-8")
    (folder / "valid.txt").write_text(f"{a1}\t{b8}\t1\n", encoding="utf-8")
    (folder / "test.txt").write_text(f"{a1}\t{b7}\t0\n{extra_test_line}", encoding="utf-8")


def test_ditto_pairs_map_to_table_ids(spark, tmp_path):
    beer_like(tmp_path / "beer")
    tables = read(spark, tmp_path, tmp_path / "beer", BEER_OPTIONS)
    labelled = {(r["id_a"], r["id_b"], r["label"], r["split"]) for r in tables.labelled.collect()}
    assert labelled == {("beer/0", "beer/7", 1, "train"), ("beer/2", "beer/7", 0, "train"),
                        ("beer/1", "beer/8", 1, "valid"), ("beer/1", "beer/7", 0, "test")}
    gold = {(r["id_a"], r["id_b"], r["split"]) for r in tables.gold.collect()}
    assert gold == {("beer/0", "beer/7", "train"), ("beer/1", "beer/8", "valid")}
    # two A beers of "Alpha Brewing" share one brewery node
    edges = tables.edges.where("kg = 'A' AND dst = 'brewery/alpha brewing'").collect()
    assert sorted(r["src"] for r in edges) == ["beer/0", "beer/2"]


def test_ditto_record_matching_no_row_names_file_and_line(spark, tmp_path):
    stray = "COL Beer_Name VAL Nowhere COL Brew_Factory_Name VAL X COL Style VAL Y COL ABV VAL 1 % "
    beer_like(tmp_path / "beer", extra_test_line=f"{stray}\t{stray}\t0\n")
    with pytest.raises(ValueError, match=r"test\.txt line 2: the left record matches 0 rows of .*tableA\.csv"):
        read(spark, tmp_path, tmp_path / "beer", BEER_OPTIONS)
    (tmp_path / "beer" / "test.txt").write_text("COL Beer_Name VAL a\tCOL Beer_Name VAL b\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"test\.txt line 1: expected 3 TAB-separated fields"):
        read(spark, tmp_path, tmp_path / "beer", BEER_OPTIONS)


def test_without_labelled_split_files_tables_and_matches_are_enough(spark, tmp_path):
    folder = copy_slice(tmp_path)
    for split in ("train", "valid", "test"):
        (folder / f"{split}.csv").unlink()
    details, paths = ingested(spark, tmp_path / "run", "walmart_no_splits", folder, conf_options("walmart_amazon"))
    gold = spark.read.parquet(str(paths.gold))
    with open(folder / "matches.csv", encoding="utf-8") as fh:
        assert gold.count() == sum(1 for _ in fh) - 1
    assert {r["split"] for r in gold.select("split").distinct().collect()} == {"train", "valid", "test"}
    assert not paths.labelled.exists()

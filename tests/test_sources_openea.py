"""The OpenEA-family adapter (format "openea"): SRPRS on its bundled slice, and the two OpenEA
layouts on tiny hand-written folders."""
from __future__ import annotations

import shutil

import pytest

from pipeline import ingest
from pipeline.config import ConfigError
from pipeline.schema import Paths
from pipeline.sources import openea
from pipeline.stage import StageContext

from conftest import DATA, write_config

SLICE = DATA / "srprs_fr_en_small"


def _dataset(path, **options):
    return {"name": "x", "format": "openea", "path": str(path), "seed": 7, "options": options}


def _read(spark, tmp_path, dataset):
    cfg = write_config(tmp_path, dataset)
    tables = openea.read(spark, cfg.dataset, cfg.dataset.adapter_options())
    return tables


def _names(tables, kg):
    return {r["id"]: r["name"] for r in tables.nodes.where(f"kg = '{kg}'").collect()}


def _gold(tables):
    return {(r["id_a"], r["id_b"]): r["split"] for r in tables.gold.collect()}


def test_srprs_slice_ingests_with_the_shipped_split(spark, tmp_path):
    cfg = write_config(tmp_path, _dataset(SLICE, layout="gcn_align", names="uri"))
    result = ingest.run(StageContext(spark, cfg, Paths(cfg.warehouse, "t")))
    assert result.details["nodes"] == 600
    assert result.details["nodes_by_type"] == {"entity": 600}
    # lines of triples_1 and triples_2, none dangling; three self-loops go to `rejected`
    assert result.details["edges"] == 636 + 540 - 3
    assert result.details["rejected_by_reason"] == {"edges: self-loop": 3}
    assert result.rejected == 3
    # 90 sup_ent_ids links (train, 10% of them carved off as valid), 210 ref_ent_ids (test)
    assert result.details["gold_by_split"] == {"train": 81, "valid": 9, "test": 210}
    paths = Paths(cfg.warehouse, "t")
    gold = {(r["id_a"], r["id_b"]): r["split"] for r in spark.read.parquet(str(paths.gold)).collect()}
    assert gold[("134", "10634")] == "test"
    assert gold[("21643", "29303")] in ("train", "valid")
    sup = [tuple(line.split("\t")) for line in (SLICE / "sup_ent_ids").read_text().splitlines()]
    assert {gold[p] for p in sup} == {"train", "valid"}
    edges = spark.read.parquet(str(paths.edges))
    assert edges.where("rel NOT LIKE 'r%'").count() == 0
    assert edges.where("kg = 'A'").select("rel").distinct().count() == 65


def test_uri_names_are_the_decoded_local_name(spark, tmp_path):
    tables = _read(spark, tmp_path, _dataset(SLICE, names="uri"))
    a, b = _names(tables, "A"), _names(tables, "B")
    assert a["134"] == b["10634"] == "Up Up Girls (Kakko Kari)"
    assert a["7242"] == "Royce da 5'9\""  # %22 decoded
    assert tables.nodes.where("attrs['uri'] IS NULL").count() == 0
    # the files end their lines in CRLF, as SRPRS's do: no '\r' may stay in a value
    uris = [r["uri"] for r in tables.nodes.selectExpr("attrs['uri'] AS uri").collect()]
    assert all(u.startswith("http") and not u.endswith("\r") for u in uris)
    assert all("\r" not in a + b for a, b in _gold(tables))


def test_no_names_gives_empty_names(spark, tmp_path):
    tables = _read(spark, tmp_path, _dataset(SLICE, names="none"))
    assert tables.nodes.count() == 600
    assert tables.nodes.where("name = ''").count() == 600


def test_translated_names(spark, tmp_path):
    tables = _read(spark, tmp_path, _dataset(SLICE, names="translated"))
    assert _names(tables, "A")["134"] == "up up girls kakko kari"
    assert _names(tables, "B")["29303"] == "dewey robinson"
    assert tables.nodes.where("name IS NULL OR name = ''").count() == 0


def test_seeded_split_ignores_the_shipped_one(spark, tmp_path):
    dataset = {**_dataset(SLICE, split="seeded"), "train_fraction": 0.5}
    gold = _gold(_read(spark, tmp_path, dataset))
    splits = list(gold.values())
    assert (splits.count("train"), splits.count("valid"), splits.count("test")) == (135, 15, 150)
    test_links = [tuple(line.split("\t")) for line in (SLICE / "ref_ent_ids").read_text().splitlines()]
    assert {gold[p] for p in test_links} == {"train", "valid", "test"}


def test_missing_file_is_named(spark, tmp_path):
    folder = tmp_path / "srprs"
    shutil.copytree(SLICE, folder)
    (folder / "triples_2").unlink()
    with pytest.raises(FileNotFoundError, match="triples_2"):
        _read(spark, tmp_path, _dataset(folder))
    shutil.copy(SLICE / "triples_2", folder / "triples_2")
    (folder / "translated_ent_name.json").unlink()
    with pytest.raises(FileNotFoundError, match="translated_ent_name.json"):
        _read(spark, tmp_path, _dataset(folder, names="translated"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="ent_ids_1.*ent_dict1.*rel_triples_1"):
        _read(spark, tmp_path, _dataset(empty))


def test_bad_option_is_refused_at_load(tmp_path):
    with pytest.raises(ConfigError, match="dataset"):
        write_config(tmp_path, _dataset(SLICE, names="label"))
    with pytest.raises(ConfigError, match="dataset"):
        write_config(tmp_path, _dataset(SLICE, folds=1))


DB, YG = "http://dbpedia.org/resource/", "YAGO/"


def _write(folder, name, rows):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")


def test_openea_text_layout_with_a_fold(spark, tmp_path):
    d = tmp_path / "D_Y"
    _write(d, "rel_triples_1", [
        (DB + "E1", "http://dbpedia.org/ontology/starring", DB + "E2"),
        (DB + "E2", "http://www.w3.org/2000/01/rdf-schema#seeAlso", DB + "E3"),
    ])
    _write(d, "rel_triples_2", [(YG + "E7", "actedIn", YG + "E8")])
    fold = d / "721_5fold" / "1"
    _write(fold, "train_links", [(DB + "E1", YG + "E8")])
    _write(fold, "valid_links", [(DB + "E2", YG + "E7")])
    _write(fold, "test_links", [(DB + "E4", YG + "E9")])  # E4, E9: in no triple
    with pytest.raises(FileNotFoundError, match="train_links"):
        _read(spark, tmp_path, _dataset(d))
    tables = _read(spark, tmp_path, _dataset(d, fold="721_5fold/1"))
    a, b = _names(tables, "A"), _names(tables, "B")
    assert set(a) == {DB + "E1", DB + "E2", DB + "E3", DB + "E4"}
    assert set(b) == {YG + "E7", YG + "E8", YG + "E9"}
    assert a[DB + "E4"] == "E4" and b[YG + "E9"] == "E9"
    assert sorted(r["rel"] for r in tables.edges.collect()) == ["actedIn", "seeAlso", "starring"]
    assert _gold(tables) == {(DB + "E1", YG + "E8"): "train", (DB + "E2", YG + "E7"): "valid",
                             (DB + "E4", YG + "E9"): "test"}


def test_id_dicts_layout_names_relations_by_their_uri(spark, tmp_path):
    d = tmp_path / "D_W"
    _write(d, "ent_dict1", [("0", DB + "AC/DC"), ("1", DB + "Drum_kit")])
    _write(d, "ent_dict2", [("2", "http://www.wikidata.org/entity/Q11"), ("3", "http://www.wikidata.org/entity/Q12")])
    _write(d, "rel_dict1", [("0", "http://dbpedia.org/ontology/timeZone")])
    _write(d, "rel_dict2", [("1", "http://www.wikidata.org/entity/P69")])
    _write(d, "triples_1", [("0", "0", "1")])
    _write(d, "triples_2", [("2", "1", "3")])
    _write(d, "train_links", [("0", "2")])
    _write(d, "valid_links", [])
    _write(d, "test_links", [("1", "3")])
    tables = _read(spark, tmp_path, _dataset(d))
    assert _names(tables, "A") == {"0": "AC/DC", "1": "Drum kit"}
    assert _names(tables, "B") == {"2": "Q11", "3": "Q12"}
    assert sorted((r["kg"], r["rel"]) for r in tables.edges.collect()) == [("A", "timeZone"), ("B", "P69")]
    assert _gold(tables) == {("0", "2"): "train", ("1", "3"): "test"}

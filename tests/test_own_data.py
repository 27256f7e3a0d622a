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


def test_without_labels_the_run_bootstraps_its_own_seed_links(flat_run, spark, tmp_path):
    """train.labels none on the same tables: no gold link is read to train; the pseudo-links
    are mostly right, the summary says how many, and the alignment is still worth having."""
    cfg, paths, _ = flat_run
    unlabelled = cfg.model_copy(update={
        "train": cfg.train.model_copy(update={"labels": "none"}),
        "warehouse": tmp_path / "warehouse"})
    summaries = run_pipeline(unlabelled, "no-labels", list(STAGES), spark=spark)
    train = summaries["train"]
    assert train["pseudo_links"] >= 20 and train["pseudo_valid"] > 0, train
    # mostly right, on a slice built around look-alikes (the ends of Walmart-Amazon's labelled
    # non-matches are records too): 81 of 113 when written
    assert train["pseudo_precision"] >= 0.6, train
    assert train["pseudo_links_of_gold_types"] == train["pseudo_links"]  # one type, products
    assert train["pseudo_links_right"] == round(train["pseudo_precision"] * train["pseudo_links"])
    assert summaries["train"]["positives"] == train["pseudo_links"] - train["pseudo_valid"]
    assert summaries["evaluate"]["metrics"]["f1"] > 0.5, summaries["evaluate"]["metrics"]


def test_a_persons_answers_override_the_pseudo_links(spark):
    from pipeline.train import with_person_answers

    pseudo = spark.createDataFrame(
        [("a1", "b1", "t", "train"), ("a2", "b2", "t", "valid"), ("a3", "b3", "t", "train"), ("a4", "b4", "t", "train")],
        "id_a string, id_b string, type string, split string")
    answers = spark.createDataFrame(
        [("a1", "b1", "t", 0), ("a2", "b9", "t", 1), ("a5", "b5", "t", 1), ("a4", "b4", "t", None)],
        "id_a string, id_b string, type string, label int")
    links = {(r["id_a"], r["id_b"]): r["split"] for r in with_person_answers(pseudo, answers).collect()}
    # a1-b1 answered "not", a2-b2 loses a2 to the match a2-b9, a4-b4 answered unsure
    assert links == {("a3", "b3"): "train", ("a2", "b9"): "train", ("a5", "b5"): "train"}


def test_labels_none_refuses_switches_that_read_gold_links(flat_run):
    from pipeline.config import PipelineConfig

    cfg, _, _ = flat_run
    raw = cfg.model_dump()
    raw["train"]["labels"] = "none"
    raw["block"]["method"] = "anchors"
    with pytest.raises(ValueError, match="train.labels 'none' reads no gold link, but block.method 'anchors'"):
        PipelineConfig.model_validate(raw)


def test_two_record_tables_from_csv_delta_and_the_catalog(spark, tmp_path):
    """The records adapter: side A a CSV file, side B a Delta table (then a catalog table), one
    column mapping, known matches from CSV; brands become shared nodes, and the matches get
    splits by the seeded hash."""
    import pandas as pd

    from pipeline import ingest
    from pipeline.stage import StageContext

    src = DATA / "walmart_amazon_small"
    table_b = pd.read_csv(src / "tableB.csv", dtype=str)
    spark.createDataFrame(table_b).write.format("delta").save(str(tmp_path / "shop_b"))
    mapping = {"id_column": "id", "name_column": "title", "entity_type": "product", "attributes": ["price"],
               "linked": [{"column": "brand", "type": "brand", "rel": "has_brand"}],
               "matches": {"path": "matches.csv", "a_column": "ltable_id", "b_column": "rtable_id"}}
    summaries = {}
    for where_b in ({"path": str(tmp_path / "shop_b"), "file_format": "delta"}, {"table": "shop_b_view"}):
        if "table" in where_b:
            spark.read.format("delta").load(str(tmp_path / "shop_b")).createOrReplaceTempView("shop_b_view")
        run = tmp_path / ("delta" if "path" in where_b else "catalog")
        cfg = write_config(run, {"name": "shops", "format": "records", "path": str(src),
                                 "options": {"a": {"path": "tableA.csv"}, "b": where_b, **mapping}})
        paths = Paths(cfg.warehouse.resolve(), "r")
        summaries[run.name] = ingest.run(StageContext(spark, cfg, paths)).details
        nodes = spark.read.parquet(str(paths.nodes))
        products = {r["kg"]: r["count"] for r in nodes.where("type = 'product'").groupBy("kg").count().collect()}
        assert products == {"A": len(pd.read_csv(src / "tableA.csv")), "B": len(table_b)}
        edges = spark.read.parquet(str(paths.edges))
        assert edges.where("rel = 'has_brand'").count() > 0
        gold = spark.read.parquet(str(paths.gold))
        assert gold.count() == len(pd.read_csv(src / "matches.csv"))
        assert {r["split"] for r in gold.select("split").distinct().collect()} == {"train", "valid", "test"}
        assert nodes.where("id = 'product/3' AND kg = 'A'").first()["attrs"]["price"] == "99.82"
    assert summaries["delta"] == summaries["catalog"]


def test_records_options_name_the_missing_column(spark, tmp_path):
    cfg = write_config(tmp_path, {"name": "shops", "format": "records", "path": str(DATA / "walmart_amazon_small"),
                                  "options": {"a": {"path": "tableA.csv"}, "b": {"path": "tableB.csv"},
                                              "name_column": "name"}})
    from pipeline import ingest
    from pipeline.stage import StageContext

    with pytest.raises(ValueError, match=r"options.a \(tableA.csv\): no column 'name' \(needed by options.name_column\)"):
        ingest.run(StageContext(spark, cfg, Paths(cfg.warehouse.resolve(), "r")))


def test_label_job_asks_records_resumes_and_train_learns_from_the_answers(flat_run, spark):
    """A person at the terminal (stdin from the test): labels ten pairs with one bad keystroke,
    quits; a second session resumes with other pairs; the next train learns from the answers;
    the report lists them."""
    import io

    import pandas as pd

    from pipeline import labelling, run_report

    cfg, paths, summaries = flat_run
    keys = "y\nn\nu\nmaybe\ny\nn\ny\ny\nn\nu\ny\nq\n"  # ten answers, one re-asked, then quit
    out = io.StringIO()
    first = labelling.session(spark, cfg, paths, "tester", limit=20, stdin=io.StringIO(keys), stdout=out)
    text = out.getvalue()
    assert first == {"asked": 10, "match": 5, "not": 3, "unsure": 2, "labels_in_all": 10}, first
    assert "answer y (match), n (not a match), u (unsure) or q (quit)" in text
    assert text.count("match? [y/n/u/q]") == 12 and " | " in text  # both records side by side
    second = labelling.session(spark, cfg, paths, "tester", limit=5, stdin=io.StringIO("n\nn\nn\nn\nn\n"),
                               stdout=io.StringIO())
    assert second["asked"] == 5 and second["labels_in_all"] == 15
    answers = spark.read.format("delta").load(str(paths.labels))
    assert answers.count() == 15 and answers.select("id_a", "id_b").distinct().count() == 15  # none asked twice
    assert {r["user"] for r in answers.collect()} == {"tester"}

    before = summaries["train"]["positives"]
    # a match that is already a gold link keeps its split (a test link stays a test link)
    gold = {(r["id_a"], r["id_b"]) for r in spark.read.parquet(str(paths.gold)).collect()}
    new_matches = {(r["id_a"], r["id_b"]) for r in answers.where("label = 1").collect()} - gold
    train = run_pipeline(cfg, "flat", ["train"], spark=spark)["train"]
    assert train["user_labels"] == {"match": 5, "not": 8, "unsure": 2}
    assert train["positives"] == before + len(new_matches)

    # without known matches (train.labels none) the answers count too: the person's matches are
    # train links beside the pseudo-links, and no pseudo-link they contradict is kept
    unlabelled = cfg.model_copy(update={"train": cfg.train.model_copy(update={"labels": "none"})})
    train = run_pipeline(unlabelled, "flat", ["train"], spark=spark)["train"]
    assert train["user_labels"] == {"match": 5, "not": 8, "unsure": 2}
    links = {(r["id_a"], r["id_b"]): r["split"] for r in spark.read.parquet(str(paths.training_links)).collect()}
    matches = {(r["id_a"], r["id_b"]) for r in answers.where("label = 1").collect()}
    assert all(links.get(m) == "train" for m in matches), matches
    others = {(r["id_a"], r["id_b"]) for r in answers.where("label = 0 OR label IS NULL").collect()}
    assert not others & set(links)
    assert train["pseudo_links"] == len(links) - len(matches)

    names = pd.read_parquet(paths.node_index).assign(key=lambda f: list(zip(f.kg, f.id))).set_index("key").name
    html = run_report.labels_section(paths, names, {"f1": 0.5, "train": {"valid_f1": 0.9}})
    assert "15 pairs answered" in html and "tester" in html and "not a match" in html

"""bench/synth.py's generator and the ``tables`` input format it writes, through real ingest."""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import write_config
from pipeline import ingest
from pipeline.schema import Paths
from pipeline.stage import StageContext, run_stage

sys.path.append(str(Path(__file__).resolve().parents[1] / "bench"))  # after the repo: bench/pipeline.py
import synth  # noqa: E402


@pytest.fixture(scope="module")
def synth_source(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "source"
    return out, synth.generate(3000, out, seed=5)


def read(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(folder / name)


def test_generator_is_deterministic_and_links_both_sides(synth_source, tmp_path):
    out, counts = synth_source
    again = tmp_path / "again"
    synth.generate(3000, again, seed=5)
    for name in ("nodes", "edges", "gold"):
        assert read(out, name).equals(read(again, name)), name
    nodes, gold = read(out, "nodes"), read(out, "gold")
    assert 2700 < counts["nodes_a"] <= 3000 and counts["gold"] == len(gold)
    a = nodes[nodes.kg == "A"].set_index("id")
    b = nodes[nodes.kg == "B"].set_index("id")
    assert gold.id_a.isin(a.index).all() and gold.id_b.isin(b.index).all()
    assert (a.loc[gold.id_a, "type"].to_numpy() == gold.type.to_numpy()).all()
    assert set(gold.type) == {"paper", "author", "venue", "year"}
    # ids carry no alignment: a gold pair's two ids differ in number
    assert (gold.id_a.str[1:] != gold.id_b.str[1:]).mean() > 0.99
    # the sides differ the way real sources do, yet mostly agree on paper titles
    papers = gold[gold.type == "paper"]
    same = (a.loc[papers.id_a, "name"].to_numpy() == b.loc[papers.id_b, "name"].to_numpy()).mean()
    assert 0.6 < same < 0.95
    # hubs: the busiest venue holds far more papers than the average venue
    edges = read(out, "edges")
    per_venue = edges[(edges.kg == "A") & (edges.rel == "published_in")].groupby("dst").size()
    assert per_venue.max() > 3 * per_venue.mean()


def test_tables_format_ingests_and_splits_gold_by_seeded_hash(spark, synth_source, tmp_path):
    out, counts = synth_source
    cfg = write_config(tmp_path, {"name": "synth", "format": "tables", "path": str(out)})
    paths = Paths(cfg.warehouse.resolve(), "t")
    summary = run_stage("ingest", ingest.run, StageContext(spark, cfg, paths))
    assert summary["nodes"] == counts["nodes_a"] + counts["nodes_b"]
    assert summary["rejected"] == 0 and summary["gold"] == counts["gold"]
    splits = summary["gold_by_split"]
    assert set(splits) == {"train", "valid", "test"}
    assert abs(splits["train"] + splits["valid"] - 0.3 * counts["gold"]) < 0.05 * counts["gold"]
    assert splits == run_stage("ingest", ingest.run, StageContext(spark, cfg, paths))["gold_by_split"]


def test_tables_format_names_the_missing_column(spark, synth_source, tmp_path):
    out, _ = synth_source
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("nodes", "gold"):
        read(out, name).to_parquet(broken / f"{name}.parquet")
    (broken / "nodes").mkdir()
    (broken / "nodes.parquet").rename(broken / "nodes" / "part-0.parquet")
    (broken / "gold").mkdir()
    read(out, "gold").drop(columns=["id_b"]).to_parquet(broken / "gold" / "part-0.parquet")
    (broken / "edges").mkdir()
    read(out, "edges").to_parquet(broken / "edges" / "part-0.parquet")
    cfg = write_config(tmp_path, {"name": "broken", "format": "tables", "path": str(broken)})
    with pytest.raises(ValueError, match=r"gold: missing column\(s\) id_b"):
        run_stage("ingest", ingest.run, StageContext(spark, cfg, Paths(cfg.warehouse.resolve(), "t")))

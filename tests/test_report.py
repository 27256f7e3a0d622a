"""The per-run HTML report (pipeline/run_report.py, model/explain.py): pure functions without Spark,
then the report the pipeline run wrote, rendered in real headless Chromium."""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from model import checkpoint
from model.config import ModelConfig
from model.explain import Neighbour, explain_row
from model.infer import score_table
from model.metrics import at_threshold, pr_curve
from model.network import CGMuAlign
from pipeline import run_report as report

SECTIONS = ("blocking", "scores", "pr-curve", "per-type", "uncertain", "explanation")


# ---------------------------------------------------------------- pure functions

def _scored(rows):
    return pd.DataFrame(rows, columns=["id_a", "id_b", "type", "score", "match"])


def test_uncertain_pairs_are_those_closest_to_the_threshold():
    pairs = _scored([("a1", "b1", "t", 0.95, True), ("a2", "b2", "t", 0.52, True), ("a3", "b3", "t", 0.47, False),
                     ("a4", "b4", "t", 0.10, False), ("a5", "b5", "t", 0.55, False)])
    top = report.uncertain_pairs(pairs, threshold=0.5, k=3)
    assert list(top.id_a) == ["a2", "a3", "a5"]
    assert np.allclose(top.distance, [0.02, 0.03, 0.05])
    assert len(report.uncertain_pairs(pairs, 0.5)) == 5  # fewer pairs than k: all of them


def test_default_pair_is_the_gold_match_nearest_the_threshold():
    pairs = _scored([("a1", "b1", "t", 0.51, False), ("a2", "b2", "t", 0.40, True), ("a3", "b3", "t", 0.90, True)])
    assert report.default_pair(pairs, 0.5) == ("a2", "b2")
    assert report.default_pair(pairs.assign(match=False), 0.5) == ("a1", "b1")  # no match: the nearest pair
    assert report.default_pair(pairs.iloc[:0], 0.5) is None


def test_threshold_point_lies_on_the_pr_curve_and_counts_lost_links():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.3, 0.2])
    labels = np.array([True, True, False, True, False, False])
    # 5 gold links, of which blocking lost one and the model ranks one low: recall is end to end
    precision, recall, cuts = pr_curve(scores, labels, n_gold=5)
    assert np.allclose(precision, [1, 1, 2 / 3, 3 / 4, 3 / 5, 3 / 6])
    assert np.allclose(recall, [0.2, 0.4, 0.4, 0.6, 0.6, 0.6])
    p, r = at_threshold(scores, labels, 5, threshold=0.6)[:2]
    assert (p, r) == (0.75, 0.6)
    assert (p, r) == (precision[cuts == 0.6][0], recall[cuts == 0.6][0])
    assert at_threshold(scores, labels, 5, threshold=0.95) == (0.0, 0.0, 0.0)  # nothing called


def test_pr_curve_cuts_only_between_distinct_scores():
    precision, recall, cuts = pr_curve(np.array([0.5, 0.5, 0.4]), np.array([True, False, True]), 2)
    assert list(cuts) == [0.5, 0.4] and np.allclose(precision, [0.5, 2 / 3]) and np.allclose(recall, [0.5, 1])


def test_labelled_pairs_take_the_test_split_where_there_is_one():
    gold = pd.DataFrame({"id_a": ["a1", "a2", "a3"], "id_b": ["b1", "b2", "b3"], "type": "t",
                         "split": ["train", "test", "test"]})
    scores = pd.DataFrame({"id_a": ["a1", "a2", "a2", "a9"], "id_b": ["b1", "b2", "b9", "b3"], "type": "t",
                           "score": [0.9, 0.8, 0.3, 0.2]})
    pairs, n_pos, scope = report.labelled_pairs(scores, gold)
    assert scope == "test split" and n_pos == 2  # a3-b3 was lost by blocking, still a positive
    assert list(zip(pairs.id_a, pairs.id_b, pairs.match)) == [("a2", "b2", True), ("a2", "b9", False),
                                                               ("a9", "b3", False)]
    pairs, n_pos, scope = report.labelled_pairs(scores, gold.assign(split="train"))
    assert scope == "all gold links" and n_pos == 3 and len(pairs) == 4


def test_blocking_table_counts_both_sides_and_completeness():
    cands = pd.DataFrame({"id_a": ["a1", "a1", "a2"], "id_b": ["b1", "b2", "b2"], "type": "t", "sim": 0.5})
    gold = pd.DataFrame({"id_a": ["a1", "a3"], "id_b": ["b1", "b3"], "type": "t", "split": ["test", "test"]})
    row = report.blocking_table(cands, gold).iloc[0]
    assert row["candidates"] == 3 and row["mean per A entity"] == 1.5 and row["max per A entity"] == 2
    assert row["mean per B entity"] == 1.5 and row["pair completeness (test)"] == 0.5
    per = report.candidates_per_entity(cands)
    assert sorted(per[per.side == "B"].candidates) == [1, 2]


@pytest.mark.parametrize("top", [1, 12, 60, 61, 17_634])
def test_candidate_histogram_bins_hold_each_count_once_and_stay_few(top):
    edges = report.count_bins(top)
    counts = np.arange(1, top + 1)
    per_bin = np.histogram(counts, bins=edges)[0]
    assert per_bin.sum() == top and (per_bin > 0).all()  # every count in one bin, no empty bin
    assert len(edges) - 1 <= report.MAX_BINS
    if top <= report.MAX_BINS:
        assert (per_bin == 1).all()  # one bin per count


def test_neighbours_with_an_aligned_counterpart_are_marked():
    index = pd.DataFrame({"nid": [0, 1, 2, 3, 4, 5], "kg": list("AAABBB"), "id": list("xyzuvw"),
                          "type": ["paper", "author", "venue", "paper", "author", "venue"],
                          "name": ["p", "ann", "vldb", "p'", "ann", "vldb journal"]})
    anchors = np.array([[1, 4], [2, 9]])  # venue 2's counterpart is not among B's neighbours
    side_a = [Neighbour(1, 0, 0.7), Neighbour(2, 1, 0.3)]
    side_b = [Neighbour(4, 0, 0.6), Neighbour(5, 3, 0.4)]
    relations = {"written_by": 0, "published_in": 1}
    a = report.neighbour_frame(side_a, side_b, anchors, "A", index, relations)
    b = report.neighbour_frame(side_b, side_a, anchors, "B", index, relations)
    assert list(a.aligned) == [True, False] and list(a.counterpart) == ["ann", ""]
    assert list(b.aligned) == [True, False]
    assert list(b.relation) == ["written_by", "published_in (inverse)"]  # id 3 = 1 + R, read backwards
    fig = report.plot_attention(a, b, "t")
    assert len(fig.axes) == 2
    report.plt.close(fig)


def test_html_is_escaped_and_carries_the_image_check():
    text = report.page("<run>", [report.section("x", "A & B", report.html_table(
        pd.DataFrame({"name": ["<script>alert(1)</script>"], "score": [0.5], "match": [True]})))])
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;" in text
    assert "<td>0.5000</td>" in text and "<td>yes</td>" in text and "A &amp; B" in text
    assert "naturalWidth" in text


# ---------------------------------------------------------------- explain, Spark-free

def _pair_row(nid_a, hop1_a, rel_a, nid_b, hop1_b, rel_b) -> pa.Table:
    ints = pa.list_(pa.int32())
    row = {"id_a": [f"a{nid_a}"], "id_b": [f"b{nid_b}"], "type": ["t"], "nid_a": [nid_a], "nid_b": [nid_b]}
    for side, hop1, rel in (("a", hop1_a, rel_a), ("b", hop1_b, rel_b)):
        row |= {f"{side}_hop1": pa.array([hop1], ints), f"{side}_hop1_rel": pa.array([rel], ints),
                f"{side}_hop2_parent": pa.array([[]], ints), f"{side}_hop2": pa.array([[]], ints),
                f"{side}_hop2_rel": pa.array([[]], ints)}
    return pa.table(row | {"lex_sim": pa.array([0.0], pa.float32())})


def test_explain_row_gives_per_neighbour_weights_and_the_scorers_score(tmp_path):
    torch.manual_seed(0)
    dim = 6
    model = CGMuAlign(ModelConfig(hidden=8, num_bases=2), dim, 4).eval()
    checkpoint.save(model, tmp_path / "model", threshold=0.4)
    feats = np.random.default_rng(0).normal(size=(12, dim)).astype(np.float32)
    pq.write_table(pa.table({"vec": pa.array(list(feats), pa.list_(pa.float32()))}), tmp_path / "f.parquet")
    pd.DataFrame({"nid_a": [2], "nid_b": [8]}).to_parquet(tmp_path / "anchors.parquet")
    row = _pair_row(0, [1, 2, 3], [0, 1, 0], 6, [7, 8], [0, 1])

    ex = explain_row(tmp_path / "model", tmp_path / "f.parquet", tmp_path / "anchors.parquet", row)
    assert [n.nid for n in ex.side_a] == [1, 2, 3] and [n.nid for n in ex.side_b] == [7, 8]
    assert [n.rel for n in ex.side_b] == [0, 1]
    assert sum(n.weight for n in ex.side_a) == pytest.approx(1, abs=1e-5)
    assert sum(n.weight for n in ex.side_b) == pytest.approx(1, abs=1e-5)  # padding slot gets nothing
    assert ex.threshold == 0.4 and ex.anchors.tolist() == [[2, 8]]
    anchored = torch.from_numpy(feats).clone()
    anchored[[2, 8]] = (anchored[2] + anchored[8]) / 2
    expected = score_table(row, checkpoint.load(tmp_path / "model").model, torch.from_numpy(feats), anchored=anchored)
    assert ex.score == pytest.approx(float(expected[0]), abs=1e-6)
    with pytest.raises(ValueError, match="one shard row"):
        explain_row(tmp_path / "model", tmp_path / "f.parquet", None, pa.concat_tables([row, row]))


# ---------------------------------------------------------------- the run's report, in Chromium

class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.src: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.src.append(dict(attrs)["src"])


def _chromium() -> str:
    exe = shutil.which("chromium")
    if exe is None:
        pytest.fail("headless Chromium is needed to render the report: install Debian's `chromium` package "
                    "(apt-get install chromium)")
    return exe


def _headless(page: Path, *args: str) -> subprocess.CompletedProcess:
    # its own profile folder: other Chromium processes on the machine hold the default one's lock
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}", *args,
             page.as_uri()], capture_output=True, text=True, timeout=300, check=True)


def test_the_run_writes_a_report_with_every_section(dblp_run):
    _, paths, summaries = dblp_run
    latest, folder = paths.report_dirs()
    index = folder / report.INDEX
    assert summaries["evaluate"]["report"] == str(index)
    text = index.read_text(encoding="utf-8")
    for anchor in SECTIONS:
        assert f'<section id="{anchor}">' in text, anchor
    assert "pair completeness" in text and "precision" in text
    images = _Images()
    images.feed(text)
    assert len(images.src) == 4
    for src in images.src:
        png = folder / src
        assert png.is_file() and png.stat().st_size > 1000, src
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", src
        assert (latest / src).read_bytes() == png.read_bytes()
    assert (latest / report.INDEX).read_text(encoding="utf-8") == text
    # 20 uncertain pairs, each with a gold verdict
    uncertain = text.split('<section id="uncertain">')[1].split("</section>")[0]
    assert uncertain.count("<tr>") == 1 + report.UNCERTAIN


def test_the_explained_pair_is_scored_as_the_score_stage_scored_it(dblp_run):
    cfg, paths, _ = dblp_run
    gold, scores = pd.read_parquet(paths.gold), pd.read_parquet(paths.scores)
    pairs, _, _ = report.labelled_pairs(scores, gold)
    threshold = checkpoint.load(paths.model_dir).threshold
    pair = report.default_pair(pairs, threshold)
    rounds = cfg.collective.rounds if cfg.collective.enabled else 1
    ex = explain_row(paths.model_dir, paths.node_features, paths.anchors(rounds - 1),
                     report.find_shard_row(paths.shards, *pair))
    stored = scores[(scores.id_a == pair[0]) & (scores.id_b == pair[1])].score.iloc[0]
    assert ex.score == pytest.approx(stored, abs=1e-4)
    assert ex.side_a and ex.side_b
    assert sum(n.weight for n in ex.side_a) == pytest.approx(1, abs=1e-4)
    text = (paths.report_dirs()[1] / report.INDEX).read_text(encoding="utf-8")
    assert f"Pair ({pair[0]}, {pair[1]})" in text


def test_chromium_renders_the_report_with_every_image(dblp_run):
    from matplotlib.image import imread

    _, paths, _ = dblp_run
    folder = paths.report_dirs()[1]
    index = folder / report.INDEX
    shot = folder / "screenshot.png"
    shot.unlink(missing_ok=True)
    _headless(index, f"--screenshot={shot}", "--window-size=1280,4000")
    assert shot.is_file() and shot.stat().st_size > 10_000
    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (4000, 1280)
    colours = np.unique((pixels.reshape(-1, 3) * 255).astype(np.uint8), axis=0)
    assert len(colours) > 100, f"screenshot has only {len(colours)} colours: blank page?"
    assert (pixels.min(axis=-1) < 0.9).mean() > 0.02  # more than a blank page's specks of ink

    dom = _headless(index, "--dump-dom").stdout
    body = re.search(r"<body[^>]*>", dom)
    assert body, dom[:500]
    assert 'data-images="loaded"' in body.group(0), body.group(0)
    assert 'data-images-loaded="4/4"' in body.group(0)

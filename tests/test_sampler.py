"""Neighbour sampling: caps, determinism, and inverse-relation-frequency weights."""
from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from pipeline.config import ExtractConfig
from pipeline.extract import directed_edges, neighbour_lists, relation_vocabulary, sample_neighbours, two_hop

N_FILMS, N_ACTORS, CAP = 300, 50, 10


@pytest.fixture(scope="module")
def films(spark):
    """Each film has one director and fifty actors of its own."""
    nodes, edges = [], []
    for f in range(N_FILMS):
        nodes.append(("A", f"film{f}", "film"))
        nodes.append(("A", f"dir{f}", "person"))
        edges.append(("A", f"film{f}", "directed_by", f"dir{f}"))
        for k in range(N_ACTORS):
            nodes.append(("A", f"act{f}_{k}", "person"))
            edges.append(("A", f"film{f}", "acted_by", f"act{f}_{k}"))
    index = pd.DataFrame(nodes, columns=["kg", "id", "type"])
    index["nid"] = range(len(index))
    index = spark.createDataFrame(index)
    edges = spark.createDataFrame(pd.DataFrame(edges, columns=["kg", "src", "rel", "dst"]))
    return index, edges


def _picks(spark, films, sampling, seed):
    index, edges = films
    relations = relation_vocabulary(edges)
    directed = directed_edges(edges, index, relations)
    sampled = sample_neighbours(directed, ExtractConfig(cap=CAP, sampling=sampling, seed=seed))
    names = {r["nid"]: r["id"] for r in index.collect()}
    rows = sampled.collect()
    per_src = Counter(names[r["src"]] for r in rows)
    films_sampled = [r for r in rows if names[r["src"]].startswith("film")]
    return per_src, Counter(names[r["dst"]][:3] for r in films_sampled)


def test_cap_and_relation_aware_weights(spark, films):
    per_src, kinds = _picks(spark, films, "relation_aware", seed=3)
    assert max(per_src.values()) == CAP  # a film has 51 neighbours: capped
    assert per_src["dir0"] == 1  # a director has one film: everything taken
    # weight 1/avg_N: director 1/1, each actor 1/50 -> the director is nearly always drawn
    # (exact inclusion probability here ~0.99); uniform sampling would give 10/51 ~ 0.20
    assert kinds["dir"] / N_FILMS >= 0.95
    assert kinds["act"] == N_FILMS * CAP - kinds["dir"]


def test_uniform_sampling_ignores_relations(spark, films):
    _, kinds = _picks(spark, films, "uniform", seed=3)
    share = kinds["dir"] / N_FILMS
    assert 0.12 <= share <= 0.28  # 10/51 ~ 0.196, 300 films


def test_sampling_is_seeded_and_deterministic(spark, films):
    first = _picks(spark, films, "relation_aware", seed=5)
    again = _picks(spark, films, "relation_aware", seed=5)
    other = _picks(spark, films, "uniform", seed=6)
    assert first == again
    assert first != other


def test_two_hop_reuses_each_nodes_sample(spark, films):
    index, edges = films
    relations = relation_vocabulary(edges)
    sampled = sample_neighbours(directed_edges(edges, index, relations), ExtractConfig(cap=CAP))
    lists = neighbour_lists(sampled)
    film0 = index.where("id = 'film0'").select("nid")
    row = two_hop(film0, lists).first()
    own = {r["nid"]: [x["dst"] for x in r["nbrs"]] for r in lists.collect()}
    assert row["hop1"] == own[row["nid"]]
    for pos, n in enumerate(row["hop1"]):
        children = [m for p, m in zip(row["hop2_parent"], row["hop2"]) if p == pos]
        assert children == own[n]

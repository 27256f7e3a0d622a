"""The CG-MuAlign model on hand-built pairs: no Spark."""
from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from model import checkpoint
from model.config import ModelConfig
from model.infer import score_table
from model.level0 import anchored_features, map_matrix_file, write_matrix_file
from model.metrics import average_precision, best_f1, recall_at_precision
from model.network import CGMuAlign
from model.shards import PairBatch

DIM, RELS = 8, 4


def _rows(pairs: list[dict]) -> pa.Table:
    cols = {k: [p[k] for p in pairs] for k in pairs[0]}
    ints = pa.list_(pa.int32())
    return pa.table({k: pa.array(v, ints if isinstance(v[0], list) else None) for k, v in cols.items()})


def _pair(nid_a, hop1_a, rel_a, nid_b, hop1_b, rel_b, children=None):
    """children: node -> list of (child, rel); hop 2 is derived from it like the sampler does."""
    children = children or {}
    row = {"id_a": f"a{nid_a}", "id_b": f"b{nid_b}", "type": "t", "nid_a": nid_a, "nid_b": nid_b}
    for side, hop1, rel in (("a", hop1_a, rel_a), ("b", hop1_b, rel_b)):
        parent, hop2, rel2 = [], [], []
        for pos, n in enumerate(hop1):
            for c, r in children.get(n, []):
                parent.append(pos), hop2.append(c), rel2.append(r)
        row |= {f"{side}_hop1": hop1, f"{side}_hop1_rel": rel, f"{side}_hop2_parent": parent,
                f"{side}_hop2": hop2, f"{side}_hop2_rel": rel2}
    return row


def _model(**kw):
    torch.manual_seed(0)
    return CGMuAlign(ModelConfig(hidden=16, **kw), DIM, RELS).eval()


def test_output_does_not_depend_on_neighbour_order():
    feats = torch.randn(20, DIM)
    children = {2: [(10, 1), (11, 2)], 3: [(12, 1)], 6: [(13, 3), (14, 1)]}
    pair = _pair(0, [2, 3, 4], [0, 1, 2], 1, [5, 6], [0, 3], children)
    permuted = _pair(0, [4, 2, 3], [2, 0, 1], 1, [6, 5], [3, 0], {2: [(11, 2), (10, 1)], 3: [(12, 1)], 6: [(14, 1), (13, 3)]})
    model = _model()
    s1 = score_table(_rows([pair]), model, feats)
    s2 = score_table(_rows([permuted]), model, feats)
    np.testing.assert_allclose(s1, s2, rtol=1e-5)


def test_cross_attention_favours_a_shared_neighbour():
    feats = torch.randn(10, DIM)
    feats[7] = feats[3]  # node 3 (graph A) and node 7 (graph B) are the same entity
    pair = _pair(0, [3, 4], [1, 1], 1, [7, 8], [1, 1])
    model = _model(self_attention=False)  # cross-graph attention alone decides the weights
    batch = PairBatch.from_arrow(_rows([pair]))
    with torch.no_grad():
        out = model(batch, feats)
    assert out.weights_a[0, 0] > out.weights_a[0, 1]  # shared neighbour 3 beats unshared 4
    assert out.weights_b[0, 0] > out.weights_b[0, 1]
    torch.testing.assert_close(out.weights_a.sum(1), torch.ones(1))


def test_anchored_features_replace_only_the_anchored_rows_by_their_pair_means():
    feats = torch.randn(10, DIM)
    # node 2 is in two pairs: it gets the mean of both pair means
    anchored = anchored_features(feats, np.array([[0, 5], [2, 7], [2, 8]]))
    expected = feats.clone()
    expected[[0, 5]] = (feats[0] + feats[5]) / 2
    expected[[7, 8]] = torch.stack([(feats[2] + feats[7]) / 2, (feats[2] + feats[8]) / 2])
    expected[2] = ((feats[2] + feats[7]) / 2 + (feats[2] + feats[8]) / 2) / 2
    torch.testing.assert_close(anchored.dense(), expected)
    ids = torch.tensor([9, 2, 2, 0, 4, 8])
    torch.testing.assert_close(anchored[ids], expected[ids])
    torch.testing.assert_close(anchored[3:9], expected[3:9])
    assert anchored.base is feats  # no copy of the matrix
    # summed a pair at a time: the same rows
    torch.testing.assert_close(anchored_features(feats, np.array([[0, 5], [2, 7], [2, 8]]), chunk=1).dense(), expected)


def test_the_anchored_matrix_file_the_workers_map_holds_the_anchored_rows(tmp_path):
    """write_anchored_matrix: what the score stage's driver writes once per round for its
    workers, the anchored view as a whole matrix, written a few rows at a time."""
    from model.level0 import write_anchored_matrix

    feats = torch.randn(10, DIM)
    np.save(tmp_path / "m.npy", feats.numpy())
    pairs = np.array([[0, 5], [2, 7], [2, 8]])
    written = write_anchored_matrix(tmp_path / "m.npy", pairs, tmp_path / "a.npy", chunk=3)
    assert written == tmp_path / "a.npy" and not (tmp_path / "a.npy.tmp").exists()
    torch.testing.assert_close(map_matrix_file(written), anchored_features(feats, pairs).dense(), rtol=0, atol=0)
    np.testing.assert_array_equal(np.load(write_anchored_matrix(tmp_path / "m.npy", np.empty((0, 2)), tmp_path / "b.npy")),
                                  feats.numpy())


def test_the_matrix_file_maps_the_parquet_features_and_follows_a_rewrite(tmp_path):
    parquet, npy = tmp_path / "node_features.parquet", tmp_path / "node_features.npy"

    def write(values: np.ndarray) -> None:
        pq.write_table(pa.table({"nid": np.arange(len(values)),
                                 "vec": pa.array(list(values), pa.list_(pa.float32()))}), parquet)

    first = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    write(first)
    np.testing.assert_array_equal(map_matrix_file(write_matrix_file(parquet, npy)).numpy(), first)
    write(first + 1)  # the features stage reran: the matrix file is stale and is rewritten
    stale = npy.stat().st_mtime_ns
    os.utime(parquet, ns=(stale + 1_000_000, stale + 1_000_000))
    np.testing.assert_array_equal(map_matrix_file(write_matrix_file(parquet, npy)).numpy(), first + 1)


def test_feature_file_is_streamed_from_sorted_parts_and_checks_the_node_order(tmp_path):
    from model.level0 import feature_blocks, write_feature_file

    values = np.random.default_rng(1).normal(size=(7, 3)).astype(np.float32)
    parts = tmp_path / "parts"
    parts.mkdir()
    for k, (lo, hi) in enumerate([(0, 3), (3, 7)]):  # as Spark writes a sorted frame: ranges in part order
        pq.write_table(pa.table({"nid": np.arange(lo, hi, dtype=np.int32),
                                 "vec": pa.array(list(values[lo:hi]), pa.list_(pa.float32()))}),
                       parts / f"part-{k:05d}-x.parquet", row_group_size=2)
    out, npy = tmp_path / "node_features.parquet", tmp_path / "node_features.npy"
    assert write_feature_file(parts, out, [("name", 2), ("numeric", 1)]) == 7
    assert feature_blocks(out) == [("name", 2), ("numeric", 1)]
    np.testing.assert_array_equal(map_matrix_file(write_matrix_file(out, npy)).numpy(), values)
    (parts / "part-00000-x.parquet").unlink()  # nodes 0..2 lost: refused, not shifted
    with pytest.raises(RuntimeError, match="not in nid order"):
        write_feature_file(parts, tmp_path / "again.parquet", [("name", 3)])


def test_a_pair_never_sees_its_own_answer_and_ignores_its_batch():
    """Node 0 (A) and node 1 (B) are anchored together; each comes back as a two-hop node under
    its one-hop neighbours. The anchored (merged) vector must not reach the pair (0, 1) that way,
    and a pair's score must not depend on the other pairs scored with it."""
    torch.manual_seed(1)
    feats = torch.randn(20, DIM)
    anchors = np.array([[0, 1], [2, 5], [12, 13]])
    anchored = anchored_features(feats, anchors)
    children = {2: [(0, 1), (12, 2)], 3: [(0, 1)], 5: [(1, 1), (13, 2)], 6: [(14, 3)]}
    pair = _pair(0, [2, 3], [0, 0], 1, [5, 6], [0, 0], children)
    # as the sampler does, a node brings the same neighbour list wherever it appears
    other = _pair(2, [0, 12], [1, 2], 5, [1, 13], [1, 2], {0: [(2, 0), (3, 0)], 1: [(5, 0), (6, 0)]})
    model = _model()
    alone = score_table(_rows([pair]), model, feats, anchored=anchored)
    # the same pair with its centres' own vectors written into the anchored copy: nothing leaks
    honest = anchored.dense()
    honest[[0, 1]] = feats[[0, 1]]
    np.testing.assert_allclose(alone, score_table(_rows([pair]), model, feats, anchored=honest), rtol=1e-6)
    together = score_table(_rows([pair, other]), model, feats, anchored=anchored)
    np.testing.assert_allclose(together[0], alone[0], rtol=1e-6)
    np.testing.assert_allclose(together[1], score_table(_rows([other]), model, feats, anchored=anchored)[0], rtol=1e-6)


def _neighbourhoods(pairs: list[dict]) -> pa.Table:
    """extract's NEIGHBOURHOOD rows of the pairs' centres, read back off the pair rows."""
    rows = {}
    for p in pairs:
        for side in ("a", "b"):
            rows[p[f"nid_{side}"]] = {"nid": p[f"nid_{side}"]} | {
                c: p[f"{side}_{c}"] for c in ("hop1", "hop1_rel", "hop2_parent", "hop2", "hop2_rel")}
    return _rows(list(rows.values()))


@pytest.mark.parametrize("relation_aware", [True, False])
def test_first_layer_computed_once_per_round_gives_the_same_scores(relation_aware):
    """The scorer computes every node's first layer once per round (node_first_layer) instead
    of per batch: the same scores, anchored or not."""
    from model.infer import node_first_layer

    torch.manual_seed(1)
    feats = torch.randn(20, DIM)
    anchored = anchored_features(feats, np.array([[0, 1], [2, 5], [12, 13]]))
    children = {2: [(0, 1), (12, 2)], 3: [(0, 1)], 5: [(1, 1), (13, 2)], 6: [(14, 3)]}
    pairs = [_pair(0, [2, 3], [0, 0], 1, [5, 6], [0, 0], children),
             _pair(2, [0, 12], [1, 2], 5, [1, 13], [1, 2], {0: [(2, 0), (3, 0)], 1: [(5, 0), (6, 0)]})]
    model = _model(relation_aware=relation_aware)
    rows, hoods = _rows(pairs), _neighbourhoods(pairs)
    for anchors in (None, anchored):
        first_layer = node_first_layer(hoods, model, feats, anchors)
        assert first_layer.shape == (20, 16)  # [W_self x ; mean message]
        assert first_layer[[4, 7, 8], 8:].abs().sum() == 0  # a mean message of 0 without neighbours
        source = feats if anchors is None else anchors
        torch.testing.assert_close(first_layer[:, :8], model.layer1.self_proj(source[torch.arange(20)]))
        np.testing.assert_allclose(score_table(rows, model, feats, anchored=anchors, first_layer=first_layer),
                                   score_table(rows, model, feats, anchored=anchors), rtol=1e-6)


def test_scores_come_back_in_row_order_when_batches_are_formed_by_width():
    """score_table batches pairs of like width together (model.infer.by_width): each row still
    gets its own score, the one it gets alone, wherever its width puts it."""
    torch.manual_seed(2)
    feats = torch.randn(30, DIM)
    children = {2: [(0, 1)], 3: [(0, 1), (12, 2)], 5: [(1, 1)], 6: [(14, 3)], 7: [(15, 0)]}
    pairs = [_pair(0, [2, 3, 4, 7], [0, 0, 1, 2], 1, [5, 6], [0, 3], children),
             _pair(8, [], [], 9, [5], [0], children),
             _pair(10, [2], [0], 11, [5, 6, 7], [0, 3, 2], children),
             _pair(16, [3, 4], [1, 1], 17, [], [], children),
             _pair(18, [2, 3, 4, 7, 12], [0, 0, 1, 2, 3], 19, [6], [3], children)]
    model = _model()
    rows = _rows(pairs)
    alone = np.concatenate([score_table(rows.slice(i, 1), model, feats) for i in range(len(pairs))])
    for batch_size in (1, 2, 5):
        np.testing.assert_allclose(score_table(rows, model, feats, batch_size), alone, rtol=1e-5)
    assert len(np.unique(alone.round(6))) == len(pairs)  # five different scores: a swap would show


def test_node_edges_read_in_chunks_are_those_read_at_once():
    """node_edges reads the neighbourhoods a few rows at a time; each target's edges are those of
    its first meeting, in the same order, whatever the chunk size."""
    from model.shards import node_edges

    children = {2: [(0, 1), (12, 2)], 3: [(0, 1)], 5: [(1, 1), (13, 2)], 6: [(14, 3)]}
    pairs = [_pair(0, [2, 3], [0, 0], 1, [5, 6], [0, 0], children),
             _pair(2, [0, 12], [1, 2], 5, [1, 13], [1, 2], {0: [(2, 0), (3, 0)], 1: [(5, 0), (6, 0)]}),
             _pair(12, [2], [2], 13, [5], [2], {2: [(0, 1), (12, 2)], 5: [(1, 1), (13, 2)]})]
    hoods = _neighbourhoods(pairs)

    def by_target(edges):
        return edges[np.argsort(edges[:, 0], kind="stable")]

    whole = node_edges(hoods, chunk_rows=len(hoods))
    assert len(np.unique(whole[:, 0])) == 8  # the six centres, and 3 and 6 (only someone's one hop)
    for rows in (1, 2, 4):
        np.testing.assert_array_equal(by_target(node_edges(hoods, chunk_rows=rows)), by_target(whole))


def test_empty_neighbourhoods_are_handled():
    feats = torch.randn(6, DIM)
    rows = _rows([_pair(0, [], [], 1, [], []), _pair(2, [3], [0], 4, [], [])])
    scores = score_table(rows, _model(), feats)
    assert np.isfinite(scores).all() and ((scores > 0) & (scores <= 1)).all()


def test_checkpoint_round_trip_without_pickle(tmp_path):
    feats = torch.randn(20, DIM)
    rows = _rows([_pair(0, [2, 3], [0, 1], 1, [5], [0], {2: [(10, 1)]})])
    model = _model()
    version = checkpoint.save(model, tmp_path, threshold=0.4)
    loaded = checkpoint.load(tmp_path)
    assert loaded.version == version and loaded.threshold == 0.4
    np.testing.assert_allclose(score_table(rows, model, feats), score_table(rows, loaded.model, feats), rtol=1e-6)


def test_a_model_that_does_not_fit_the_data_is_refused(tmp_path):
    relations = {"written_by": 0, "published_in": 1}  # RELS = 4: two relations, both directions
    checkpoint.save(_model(), tmp_path, threshold=0.4, extra={"relations": relations})
    assert not (tmp_path / checkpoint.WEIGHTS).read_bytes().startswith(b"\x80")  # safetensors, not a pickle
    checkpoint.require_compatible(tmp_path, [("name", DIM)], relations)  # the data it was trained on
    with pytest.raises(checkpoint.ModelMismatchError) as err:
        checkpoint.require_compatible(tmp_path, [("name", DIM), ("numbers", 3)], relations)
    assert f"{DIM}-d level-0 features, this run's features are {DIM + 3}-d" in str(err.value)
    assert "run the train stage" in str(err.value)
    with pytest.raises(checkpoint.ModelMismatchError) as err:
        checkpoint.require_compatible(tmp_path, [("name", DIM)], {"written_by": 0, "cites": 1})
    assert "only the model knows: ['published_in']; only this run has: ['cites']" in str(err.value)


def test_ranking_figures_count_missed_links():
    scores = np.array([0.9, 0.8, 0.7, 0.1])
    labels = np.array([1, 0, 1, 0])
    # 3 gold links, one never scored (lost by blocking)
    assert average_precision(scores, labels, 3) == (1 / 1 + 2 / 3) / 3
    f1, threshold = best_f1(scores, labels, 3)
    assert threshold == 0.7 and abs(f1 - 2 * 2 / (3 + 3)) < 1e-9
    assert recall_at_precision(scores, labels, 3, 0.95) == 1 / 3


def test_training_is_deterministic():
    from model.fit import fit

    torch.manual_seed(3)
    feats = torch.randn(40, DIM)
    rng = np.random.default_rng(0)
    pairs, groups, labels = [], [], []
    for g in range(12):
        a, b = g, 20 + g
        children = {n: [(int(rng.integers(0, 40)), int(rng.integers(0, RELS)))] for n in range(40)}
        for other, label in [(b, 1), (20 + (g + 1) % 12, 0), (20 + (g + 5) % 12, 0)]:
            hop = [int(x) for x in rng.integers(0, 40, 3)]
            pairs.append(_pair(a, hop, [0, 1, 2], other, hop[:2], [0, 1], children))
            groups.append(g)
            labels.append(label)
    rows = _rows(pairs).append_column("group", pa.array(groups, pa.int64())).append_column(
        "label", pa.array(labels, pa.int32()))
    runs = [fit(rows, rows, 12, feats, RELS, ModelConfig(hidden=16), epochs=3, batch_size=4) for _ in range(2)]
    for w1, w2 in zip(runs[0].model.state_dict().values(), runs[1].model.state_dict().values()):
        assert torch.equal(w1, w2)
    assert runs[0].history == runs[1].history


def test_a_neighbour_linked_twice_fills_two_slots_in_both_layers():
    # node 3 is linked to the centre by two relations that map to the same id (merged relations)
    rows = _rows([_pair(0, [3, 3, 4], [1, 1, 0], 1, [5], [0], {3: [(6, 0)]})])
    batch = PairBatch.from_arrow(rows)
    ids = batch.node_ids.numpy()
    into_centre = ids[batch.edge_index[1].numpy()] == 0
    assert sorted(ids[batch.edge_index[0].numpy()][into_centre].tolist()) == [3, 3, 4]  # layer 1
    assert batch.mask_a.sum().item() == 3  # layer 2


def _two_relation_pair():
    children = {2: [(10, 1), (11, 2)], 5: [(12, 3)]}
    return _rows([_pair(0, [2, 3], [0, 1], 1, [5, 6], [2, 0], children)])


def test_each_switch_changes_the_scores_of_the_same_weights():
    """Cross-graph attention, self-attention and relation features are real switches: the
    same weights score differently with each one turned off."""
    feats = torch.randn(20, DIM)
    rows = _two_relation_pair()
    full = _model(level0_skip=False)  # the paper's distance: the graph part alone
    base = score_table(rows, full, feats)
    for switch in ("cross_attention", "self_attention", "relation_aware"):
        off = CGMuAlign(ModelConfig(hidden=16, level0_skip=False, **{switch: False}), DIM, RELS).eval()
        off.load_state_dict(full.state_dict())
        assert not np.allclose(score_table(rows, off, feats), base, rtol=1e-4), switch


def test_anchors_reach_neighbours_but_never_the_pair_itself():
    feats = torch.randn(20, DIM)
    rows = _two_relation_pair()
    model = _model(level0_skip=False)
    base = score_table(rows, model, feats)
    # the pair's own two centres aligned: the score must not move (no pair sees its answer)
    self_anchor = anchored_features(feats, np.array([[0, 1]]))
    np.testing.assert_allclose(score_table(rows, model, feats, anchored=self_anchor), base, rtol=1e-6)
    # same-named centres whose neighbours differ; once the neighbours are aligned one to one
    # (2-5 and 3-6, same relations, no children) the two sides are the same: score -> 1
    feats[1] = feats[0]
    rows = _rows([_pair(0, [2, 3], [0, 1], 1, [5, 6], [0, 1])])
    before = score_table(rows, model, feats)[0]
    after = score_table(rows, model, feats, anchored=anchored_features(feats, np.array([[2, 5], [3, 6]])))[0]
    assert before < 0.99 and after > 0.999


@pytest.mark.parametrize("switch, column, worse, better", [
    ("lexical_similarity", "lex_sim", 0.1, 0.9),  # the records' lexical cosine
    ("code_conflict", "code_conflict", 1.0, 0.0),  # both have model numbers, none agrees
])
def test_pair_evidence_enters_the_distance_only_when_switched_on(switch, column, worse, better):
    feats = torch.randn(20, DIM)
    rows = _two_relation_pair()

    def score(model, value):
        return score_table(rows.append_column(column, pa.array([value], pa.float32())), model, feats)

    for on in (True, False):
        model = _model(**{switch: on})
        assert (score(model, better)[0] > score(model, worse)[0]) if on else np.allclose(
            score(model, better), score(model, worse))


def test_rows_without_a_code_conflict_column_have_none_and_old_checkpoints_load():
    feats = torch.randn(20, DIM)
    rows = _two_relation_pair()
    model = _model(code_conflict=True)
    np.testing.assert_allclose(score_table(rows, model, feats), score_table(rows.append_column(
        "code_conflict", pa.array([0.0], pa.float32())), model, feats))
    # switched off, the model has no weight for it, so checkpoints saved before the switch load
    assert "code_conflict_weight" not in dict(_model(code_conflict=False).named_parameters())


def test_level0_parts_must_cover_the_features():
    CGMuAlign(ModelConfig(hidden=16, level0_blocks=(6, 2)), DIM, RELS)  # 6 + 2 = DIM
    with pytest.raises(ValueError, match="level0_blocks"):
        CGMuAlign(ModelConfig(hidden=16, level0_blocks=(6, 3)), DIM, RELS)


def test_a_numeric_attribute_counts_only_where_both_nodes_have_it():
    """Level-0 layout: name (4), then numeric (value, present) for two attributes. A value only
    one centre has adds nothing (a missing price is not a different price); a value both have
    adds a term that grows with the difference and saturates."""
    model = _model(level0_blocks=(4, 4), level0_kinds=("name", "numeric"))
    name = torch.randn(1, 4)

    def distances(a, b):  # (value, present) of the two attributes on each side
        x_a = torch.cat([name, torch.tensor([a], dtype=torch.float32)], dim=1)
        x_b = torch.cat([name, torch.tensor([b], dtype=torch.float32)], dim=1)
        return model.level0_distances(x_a, x_b)[0]

    assert distances([1.0, 1, 0.0, 0], [1.0, 1, 0.0, 0]).abs().max() < 1e-4  # equal, and name equal
    # the first attribute missing on b: no term, however far a's value is
    assert distances([5.0, 1, 0.0, 0], [0.0, 0, 0.0, 0])[1] == 0
    near, far, farther = (distances([0.0, 1, 0.0, 0], [d, 1, 0.0, 0])[1] for d in (0.1, 1.0, 10.0))
    assert 0 < near < far < farther <= 1
    # the second attribute's term is its own column, and moves only with its own values
    both = distances([0.0, 1, 0.0, 1], [1.0, 1, 2.0, 1])
    assert both.shape == (3,) and both[1] == far and both[2] > both[1]
    with pytest.raises(ValueError, match="level0_kinds"):
        ModelConfig(level0_blocks=(4, 4), level0_kinds=("name",))


def test_neighbour_match_rewards_same_named_neighbours_by_the_same_relation():
    """Pair (0, 1) with one neighbour each side by relation 0. Only the neighbour-match term
    is on (no level-0 skip); with the graph part silenced, the distance is that term alone."""
    torch.manual_seed(2)
    feats = torch.randn(20, DIM)
    feats[5] = feats[2]  # the A neighbour 2 and the B neighbour 5 share a name
    model = _model(level0_skip=False)
    with torch.no_grad():
        model.layer2.self_proj.weight.zero_(), model.layer2.self_proj.bias.zero_()
        model.layer2.rel_proj.bases.weight.zero_(), model.layer2.rel_proj.bases.bias.zero_()

    def distance(hop_b, rel_b, m=model):
        with torch.no_grad():
            return float(m(PairBatch.from_arrow(_rows([_pair(0, [2], [0], 1, hop_b, rel_b)])), feats).distance[0])

    assert distance([5], [0]) < 1e-3  # same name, same relation: no mismatch
    weight = float(torch.nn.functional.softplus(model.neighbour_match_weight[0].detach()))
    cos = float(torch.nn.functional.cosine_similarity(feats[2], feats[6], dim=0))
    assert distance([6], [0]) == pytest.approx(weight * (1 - cos), rel=1e-3)  # a different name costs
    assert distance([5], [1]) < 1e-3  # a relation the other side lacks counts nothing
    off = CGMuAlign(ModelConfig(hidden=16, level0_skip=False, neighbour_match=False), DIM, RELS).eval()
    off.load_state_dict({k: v for k, v in model.state_dict().items() if k != "neighbour_match_weight"})
    assert distance([6], [0], off) < 1e-3


def test_relation_projection_grouped_by_relation_equals_the_basis_formula():
    """W_r x per row, grouped by relation (few relations) or on the shared bases (many): both
    must equal sum_b coef[r, b] (V_b x + bias_b), rows in their own order."""
    from model.layers import RelationProjection
    torch.manual_seed(3)
    proj = RelationProjection(12, 5, num_relations=40, num_bases=4)
    x = torch.randn(3, 50, 12)
    with torch.no_grad():
        many = (torch.arange(150) % 40).view(3, 50)  # 40 distinct > MAX_GROUPED: the bases path
        assert len(torch.unique(many)) > RelationProjection.MAX_GROUPED
        for rel in (torch.randint(0, 3, (3, 50)), many):
            expected = (proj.coef(rel).unsqueeze(-1) * proj.project_bases(x)).sum(-2)
            torch.testing.assert_close(proj(x, rel), expected, rtol=1e-5, atol=1e-5)

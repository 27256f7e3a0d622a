"""evaluate: the run's figures on the test split, written to metrics.json.

Two protocols. ``labelled_test`` (where the benchmark has labelled pairs, the protocol of
DeepMatcher and Ditto): its labelled test pairs, scored, cut at the threshold chosen on its
labelled valid pairs; F1, PR-AUC, recall at precision 0.95.

End to end over the full graphs (README "Evaluation"), per node type with test links, then pooled:
- test links G: gold links with split 'test'. Test entities: the A and B ends of G.
- precision: of the aligned pairs (after merge's resolution) that touch a test entity, the
  share that are gold links.
- recall: of G, the share that were aligned. A link that blocking lost counts as missed.
- pr_auc (average precision) and recall at precision 0.95: over the model's scores of every
  candidate pair touching a test entity, ranked, with |G| as the number of positives, so lost
  links cap recall.
- hits_at_1, hits_at_10 and mrr: for each test link (a, b), the rank of b among a's candidates by score
  (not found: rank infinite, reciprocal rank 0); hits_at_1_one_to_one: the share of test links
  kept by a greedy one-to-one assignment over those candidates (no threshold).
- among_test_targets: the same four, with a's candidates cut to the B ends of test links: the
  protocol of the KG-alignment literature (DBP15K, SRPRS, OpenEA papers rank each test entity
  among the test targets only), so the figures to set beside theirs. The figures above keep
  every candidate: a train-linked or unlinked B entity can outrank the partner, as in production.
  Here also hits_at_1_optimal_one_to_one: the share of test links kept by the one-to-one
  assignment of largest total score (a maximum-weight bipartite matching, as the papers that
  report "bipartite matching" use); not over every candidate, where it would trade test links
  for train-linked and unlinked entities' pairs. A connected component of the candidates above
  ``OPTIMAL_MAX_COMPONENT_PAIRS`` is matched greedily instead, and
  optimal_one_to_one_greedy_pairs says how many pairs were.
- valid: the same ranking figures on the valid links (over every candidate, and
  among_valid_targets), the split on which to compare configs before the test links are read.
"""
from __future__ import annotations

import json
import logging
import operator
from dataclasses import dataclass
from functools import reduce

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, min_weight_full_bipartite_matching

from model.metrics import at_threshold, average_precision, best_f1, f1_score, recall_at_precision
from pipeline.pairs import touching, touching_rows
from pipeline.run_report import write_report
from pipeline.stage import StageContext, StageResult, read_stage_log, write_atomically
from pipeline.unified import current_links, read_merged

log = logging.getLogger("kgmerge")


def greedy_one_to_one(scored: pd.DataFrame) -> set[tuple[str, str]]:
    """Pairs taken best score first, each entity at most once (a greedy bipartite matching)."""
    order = scored.sort_values(["score", "id_a", "id_b"], ascending=[False, True, True], kind="stable")
    used_a, used_b, taken = set(), set(), set()
    for a, b in zip(order.id_a, order.id_b):
        if a not in used_a and b not in used_b:
            used_a.add(a), used_b.add(b), taken.add((a, b))
    return taken


# The exact matching's solver grows much faster than its component: on random candidate graphs
# (4 pairs per entity) 125k pairs took 9 s and 250k 45 s; at 1M per side with graph proposals
# evaluate did not end in 36 minutes (bench/RESULTS.md 2026-12-07). A larger component is matched
# greedily, and the figures say how many pairs were.
OPTIMAL_MAX_COMPONENT_PAIRS = 500_000


def optimal_one_to_one(scored: pd.DataFrame) -> set[tuple[str, str]]:
    """The one-to-one assignment over the candidate pairs with the largest total score: a
    maximum-weight bipartite matching in which a pair weighs its score (a probability) and an
    entity left unmatched weighs nothing (``one_to_one_matching``'s pairs)."""
    return one_to_one_matching(scored)[0]


def one_to_one_matching(scored: pd.DataFrame, max_component_pairs: int = OPTIMAL_MAX_COMPONENT_PAIRS
                        ) -> tuple[set[tuple[str, str]], int]:
    """(pairs taken, candidate pairs matched greedily). The matching splits over the connected
    components of the candidate graph: each is solved alone (a lone pair is taken as it is),
    which halved the time at 100k nodes per side (463k pairs, one component of 316k), same
    matching; a component of more than ``max_component_pairs`` pairs is matched greedily."""
    best = scored.groupby(["id_a", "id_b"], as_index=False)["score"].max()
    if best.empty:
        return set(), 0
    a_ids, a = np.unique(best.id_a.to_numpy(), return_inverse=True)
    b_ids, b = np.unique(best.id_b.to_numpy(), return_inverse=True)
    s = best.score.to_numpy(dtype=float)
    edges = coo_matrix((np.ones(len(a)), (a, len(a_ids) + b)), shape=(len(a_ids) + len(b_ids),) * 2)
    n_components, component = connected_components(edges, directed=False)
    pair_component = component[a]
    alone = np.bincount(pair_component, minlength=n_components)[pair_component] == 1
    taken_a, taken_b = [a[alone]], [b[alone]]
    rest = np.flatnonzero(~alone)
    rest = rest[np.argsort(pair_component[rest], kind="stable")]
    greedy_pairs = 0
    for part in np.split(rest, np.flatnonzero(np.diff(pair_component[rest])) + 1):
        if len(part) > max_component_pairs:
            greedy_pairs += len(part)
            log.warning("evaluate: a component of %d candidate pairs (above %d) is matched greedily, not optimally",
                        len(part), max_component_pairs)
            chosen = greedy_one_to_one(pd.DataFrame({"id_a": a[part], "id_b": b[part], "score": s[part]}))
            taken_a.append(np.array([x for x, _ in chosen], dtype=a.dtype))
            taken_b.append(np.array([y for _, y in chosen], dtype=b.dtype))
        elif len(part):
            ends_a, local_a = np.unique(a[part], return_inverse=True)
            ends_b, local_b = np.unique(b[part], return_inverse=True)
            row, col = max_weight_matching(local_a, local_b, s[part], len(ends_a), len(ends_b))
            taken_a.append(ends_a[row])
            taken_b.append(ends_b[col])
    return set(zip(a_ids[np.concatenate(taken_a)], b_ids[np.concatenate(taken_b)])), greedy_pairs


def max_weight_matching(a: np.ndarray, b: np.ndarray, s: np.ndarray, n_a: int, n_b: int
                        ) -> tuple[np.ndarray, np.ndarray]:
    """(A ends, B ends) of the pairs (a[i], b[i]) of weight s[i] > 0 that a maximum-weight
    bipartite matching takes; a in 0..n_a-1, b in 0..n_b-1."""
    # scipy wants a minimum-cost *full* matching, so each side gets one stand-in per entity of
    # the other: rows are A then one per B, columns B then one per A. Leaving a unmatched is the
    # edge a - stand-in(a), cost c; taking the pair (a, b) costs c - score and pairs the two
    # stand-ins (edge stand-in(b) - stand-in(a), cost c). A full matching always exists and its
    # cost is c (n_a + n_b) minus the scores of the pairs taken. c keeps every cost positive.
    c = max(1.0, s.max()) + 1.0
    rows = np.concatenate([a, np.arange(n_a), n_a + np.arange(n_b), n_a + b])
    cols = np.concatenate([b, n_b + np.arange(n_a), np.arange(n_b), n_b + a])
    cost = np.concatenate([c - s, np.full(n_a + n_b + len(s), c)])
    graph = coo_matrix((cost, (rows, cols)), shape=(n_a + n_b, n_b + n_a)).tocsr()
    row_of, col_of = min_weight_full_bipartite_matching(graph)
    pair = (row_of < n_a) & (col_of < n_b)
    return row_of[pair], col_of[pair]


@dataclass(frozen=True)
class Assignments:
    """The one-to-one assignments ``ranking`` scores links by, over one set of candidates:
    the greedy one, and (``optimal``) the maximum-weight one with the count of candidate pairs
    in components too large for it (matched greedily instead).

    The candidate graph's components never span two node types (a pair joins two nodes of its
    type), so the assignments over all types are the union of the per-type ones: evaluate
    solves each type once and pools them with ``|``.

    >>> pooled = Assignments.solve(papers, optimal=True) | Assignments.solve(authors, optimal=True)
    """

    greedy: frozenset
    optimal: frozenset | None = None
    greedy_pairs: int = 0

    @classmethod
    def solve(cls, scored: pd.DataFrame, optimal: bool = False) -> Assignments:
        if not optimal:
            return cls(frozenset(greedy_one_to_one(scored)))
        taken, greedy_pairs = one_to_one_matching(scored)
        return cls(frozenset(greedy_one_to_one(scored)), frozenset(taken), greedy_pairs)

    def __or__(self, other: Assignments) -> Assignments:
        optimal = None if self.optimal is None or other.optimal is None else self.optimal | other.optimal
        return Assignments(self.greedy | other.greedy, optimal, self.greedy_pairs + other.greedy_pairs)


def among_targets(scored: pd.DataFrame, links: pd.DataFrame) -> pd.DataFrame:
    """The candidates between the links' A ends and the links' B ends only."""
    return scored[scored.id_a.isin(set(links.id_a)) & scored.id_b.isin(set(links.id_b))]


def link_assignments(scored: pd.DataFrame, links: pd.DataFrame) -> tuple[Assignments, Assignments]:
    """What ``link_ranking`` ranks by: the assignments over every candidate, and (with the
    optimal one) over the candidates among the links' own ends."""
    return Assignments.solve(scored), Assignments.solve(among_targets(scored, links), optimal=True)


def figures(test: pd.DataFrame, gold: pd.DataFrame, aligned: pd.DataFrame, scored: pd.DataFrame,
            assignments: tuple[Assignments, Assignments] | None = None) -> dict:
    """All inputs are pandas frames with id_a, id_b (scored and aligned also a score).
    ``assignments``: ``link_assignments`` of the candidates touching the test links, where
    already solved."""
    gold_pairs = set(zip(gold.id_a, gold.id_b))
    test_pairs = set(zip(test.id_a, test.id_b))
    n = len(test_pairs)

    touch = touching_rows(aligned, test)
    predicted = set(zip(touch.id_a, touch.id_b))
    # a predicted pair is right when it is any gold link (a train link touching a test end too);
    # recall counts the test links found
    precision = len(predicted & gold_pairs) / len(predicted) if predicted else 0.0
    recall = len(predicted & test_pairs) / n if n else 0.0
    f1 = f1_score(precision, recall)

    cand = touching_rows(scored, test)
    labels = np.array([p in test_pairs for p in zip(cand.id_a, cand.id_b)], dtype=bool)
    s = cand.score.to_numpy()
    return {
        "test_links": n,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "pr_auc": round(average_precision(s, labels, n), 4),
        "recall_at_p95": round(recall_at_precision(s, labels, n, 0.95), 4),
        # the paper's "best F1 over a threshold sweep": an oracle threshold, reported, never used
        "best_f1_over_thresholds": round(best_f1(s, labels, n)[0], 4),
        **link_ranking(cand, test, "among_test_targets", assignments),
        "aligned_touching_test": len(predicted),
    }


def link_ranking(scored: pd.DataFrame, links: pd.DataFrame, among_key: str,
                 assignments: tuple[Assignments, Assignments] | None = None) -> dict:
    """``ranking`` of the links over every candidate, and under ``among_key`` among the links'
    own B ends only (with the optimal one-to-one). ``assignments``: ``link_assignments`` of
    the same candidates and links, where already solved."""
    pairs = set(zip(links.id_a, links.id_b))
    over_all, among = assignments or link_assignments(scored, links)
    return {**ranking(scored, pairs, over_all), among_key: ranking(among_targets(scored, links), pairs, among)}


def ranking(scored: pd.DataFrame, pairs: set[tuple[str, str]], assignments: Assignments | None = None) -> dict:
    """Hits@1, Hits@10 and MRR of each link's B end among its A end's candidates in
    ``scored`` (absent: rank infinite, reciprocal rank 0), and Hits@1 after the greedy one-to-one
    assignment over ``scored``; where ``assignments`` has the optimal one, also after it (how
    KG-alignment papers that use bipartite matching report it). ``assignments``: solved over
    ``scored``; by default the greedy one, solved here."""
    assignments = assignments or Assignments.solve(scored)
    optimal = assignments.optimal is not None
    n = len(pairs)
    if not n:
        return {"hits_at_1": 0.0, "hits_at_10": 0.0, "hits_at_1_one_to_one": 0.0, "mrr": 0.0,
                **({"hits_at_1_optimal_one_to_one": 0.0} if optimal else {})}
    ranked = scored[scored.id_a.isin({a for a, _ in pairs})].copy()
    ranked["rank"] = ranked.groupby("id_a")["score"].rank(ascending=False, method="first")
    rank_of = {(a, b): r for a, b, r in zip(ranked.id_a, ranked.id_b, ranked["rank"])}
    ranks = np.array([rank_of.get(p, np.inf) for p in pairs])
    out = {
        "hits_at_1": round(float(np.mean(ranks == 1)), 4),
        "hits_at_10": round(float(np.mean(ranks <= 10)), 4),
        "hits_at_1_one_to_one": round(len(assignments.greedy & pairs) / n, 4),
        "mrr": round(float(np.mean(1.0 / ranks)), 4),
    }
    if optimal:
        out["hits_at_1_optimal_one_to_one"] = round(len(assignments.optimal & pairs) / n, 4)
        if assignments.greedy_pairs:  # candidate pairs not solved exactly
            out["optimal_one_to_one_greedy_pairs"] = assignments.greedy_pairs
    return out


def labelled_figures(scored: pd.DataFrame, threshold: float) -> dict:
    """Protocol (a), the benchmark's own: its labelled test pairs, scored, cut at the threshold."""
    labels = scored["label"].to_numpy() == 1
    s = scored["score"].to_numpy()
    n_pos = int(labels.sum())
    precision, recall, f1 = at_threshold(s, labels, n_pos, threshold)
    return {
        "pairs": len(scored), "positives": n_pos,
        "precision": round(float(precision), 4), "recall": round(recall, 4), "f1": round(f1, 4),
        "pr_auc": round(average_precision(s, labels, n_pos), 4),
        "recall_at_p95": round(recall_at_precision(s, labels, n_pos, 0.95), 4),
        "best_f1_over_thresholds": round(best_f1(s, labels, n_pos)[0], 4),
    }


def valid_ranking(scores: DataFrame, gold: DataFrame) -> dict | None:
    """The ranking figures on the valid links (None without any): the split to choose a config
    on, so that the test links are read once, after the choice."""
    valid = gold.where("split = 'valid'")
    links = valid.toPandas()
    if links.empty:
        return None
    candidates = touching(scores, valid).toPandas()
    return {"valid_links": len(links), **link_ranking(candidates, links, "among_valid_targets")}


def run(ctx: StageContext) -> StageResult:
    spark, paths = ctx.spark, ctx.paths
    gold = spark.read.parquet(str(paths.gold))
    test = gold.where("split = 'test'")
    scores = spark.read.parquet(str(paths.scores))
    # the links this run's merge left (another run may have merged into the warehouse since)
    aligned = current_links(read_merged(spark, paths.delta, paths.run_id)["alignment"])
    frames = {name: df.toPandas() for name, df in
              {"test": test, "gold": gold, "aligned": aligned, "touching": touching(scores, test)}.items()}
    types = sorted(frames["test"]["type"].unique())
    per_type, solved = {}, []
    if len(types) > 1:  # each type's one-to-one assignments solved once, then pooled (Assignments)
        for t in types:
            test_t, gold_t, aligned_t, touching_t = (f[f["type"] == t] for f in frames.values())
            solved.append(link_assignments(touching_t, test_t))
            per_type[t] = figures(test_t, gold_t, aligned_t, touching_t, assignments=solved[-1])
    pooled = figures(*frames.values(), assignments=(
        reduce(operator.or_, (s[0] for s in solved)), reduce(operator.or_, (s[1] for s in solved))) if solved else None)

    protocol_a = None
    if paths.labelled.exists():
        from model.checkpoint import load

        labelled = spark.read.parquet(str(paths.labelled_scores)).where("split = 'test'").toPandas()
        protocol_a = labelled_figures(labelled, load(paths.model_dir).threshold)

    blocking = json.loads(paths.blocking_report.read_text()) if paths.blocking_report.is_file() else {}
    stages = read_stage_log(paths.stage_log)
    metrics = {
        "dataset": ctx.config.dataset.name,
        "run_id": paths.run_id,
        **pooled,
        "per_type": per_type,
        "labelled_test": protocol_a,
        "valid": valid_ranking(scores, gold),
        "pair_completeness": blocking.get("pair_completeness", {}).get("test"),
        "candidates": blocking.get("candidates"),
        # the stages before this one: an evaluate entry in the log is an earlier attempt's
        "stages": {name: {k: s[k] for k in ("seconds", "rows_in", "rows_out")} for name, s in stages.items()
                   if name != "evaluate"},
        # the fit's figures on the valid split: what configs are compared on
        "train": {k: v for k, v in stages.get("train", {}).items()
                  if k in ("valid_f1", "threshold", "best_epoch", "epochs_run")},
    }
    score_stage = stages.get("score")
    if score_stage and score_stage["seconds"]:
        metrics["pairs_scored_per_second"] = round(score_stage["rows_out"] / score_stage["seconds"], 1)
    text = json.dumps(metrics, indent=2)
    write_atomically(paths.metrics, text)
    for published in paths.published_metrics():
        published.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(published, text)
    # the report re-runs the model with the anchors the last scoring round read
    report = write_report(paths, anchors_round=ctx.config.collective.scoring_rounds - 1, metrics=metrics)
    return StageResult(
        rows_in=len(frames["touching"]), rows_out=len(frames["test"]),
        details={"metrics": metrics, "metrics_path": str(paths.published_metrics()[0]),
                 "delta_tables": [str(paths.unified_nodes), str(paths.unified_edges), str(paths.alignment)],
                 "f1": metrics["f1"], "hits_at_1": metrics["hits_at_1"], "report": str(report)},
    )

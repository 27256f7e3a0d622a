"""The ``label`` job: a person answers, in the terminal, the candidate pairs whose answer would
teach the model most, and the next ``train`` learns from the answers with any known matches.

    ./spark-submit.sh label conf/my_products.yaml --run-id nightly [--user ana] [--limit 20]

Which pairs (``pairs_to_ask``), from the run's scores: per node type, those nearest the model's
threshold, and among equally uncertain ones those where the model and the blocking similarity
disagree most; each entity once per session; the types taken in turn, so that a session covers
each. Pairs answered before (by anyone) are never asked again, so a session resumes where the
last one stopped.

Each pair shows both records side by side (name, attributes) with their neighbours; a neighbour
marked ``=`` has its counterpart among the other record's neighbours (aligned by the run's merge,
or labelled a match). Answers: ``y`` match, ``n`` not, ``u`` unsure (kept, never asked again,
not learnt from), ``q`` quit. Each answer is written at once to the ``labels`` Delta table
(``Paths.labels``: pair, label, user, time, run), so nothing is lost when the session stops.
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import textwrap
from datetime import datetime, timezone
from typing import Callable, TextIO

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from pipeline.config import PipelineConfig
from pipeline.schema import KG_A, KG_B, USER_LABEL, Paths, run_id_argument
from pipeline.unified import current_links, read_merged

KEYS = ["id_a", "id_b", "type"]
ANSWERS = {"y": 1, "n": 0, "u": None}
WIDTH = 38


def answered_labels(spark: SparkSession, paths: Paths) -> DataFrame | None:
    """The latest answer per pair (USER_LABEL), None before any session. A person's answers are
    few (hundreds): they are read to the driver once, so the plans that use them (training)
    hold a small local table rather than the Delta scan."""
    if not (paths.labels / "_delta_log").exists():
        return None
    latest = Window.partitionBy(*KEYS).orderBy(F.desc("labelled_at"))
    rows = (spark.read.format("delta").load(str(paths.labels)).withColumn("_n", F.row_number().over(latest))
            .where(F.col("_n") == 1).drop("_n").collect())
    return spark.createDataFrame(rows, USER_LABEL)


def pairs_to_ask(scores: DataFrame, candidates: DataFrame, answered: DataFrame | None, threshold: float,
                 per_type: int) -> list[dict]:
    """The pairs to ask, in the order to ask them (see the module docstring): dicts with id_a,
    id_b, type, score, sim."""
    pairs = scores.select(*KEYS, "score").join(candidates.select(*KEYS, "sim"), KEYS, "left")
    if answered is not None:
        pairs = pairs.join(answered.select(*KEYS), KEYS, "left_anti")
    uncertainty = F.abs(F.col("score") - F.lit(threshold))
    disagreement = F.abs(F.coalesce(F.col("sim"), F.col("score")) - F.col("score"))
    pairs = pairs.withColumn("_priority", uncertainty - 0.5 * disagreement)
    for end, other in (("id_a", "id_b"), ("id_b", "id_a")):  # each entity once
        first = Window.partitionBy("type", end).orderBy("_priority", other)
        pairs = pairs.withColumn("_n", F.row_number().over(first)).where(F.col("_n") == 1).drop("_n")
    rank = Window.partitionBy("type").orderBy("_priority", "id_a", "id_b")
    rows = (pairs.withColumn("_rank", F.row_number().over(rank)).where(F.col("_rank") <= per_type)
            .orderBy("_rank", "type").collect())
    return [{k: r[k] for k in (*KEYS, "score", "sim")} for r in rows]


def record_lines(node: dict, neighbours: list[tuple[str, str, bool]]) -> list[str]:
    """A record as lines: name, attributes, then ``rel: neighbour`` (``=`` where the neighbour has
    its counterpart among the other record's neighbours)."""
    lines = textwrap.wrap(node.get("name") or "(no name)", WIDTH) or [""]
    for key, value in sorted((node.get("attrs") or {}).items()):
        lines += textwrap.wrap(f"{key}: {value}", WIDTH)
    for rel, name, matched in neighbours:
        lines += textwrap.wrap(f"{'=' if matched else '-'} {rel}: {name}", WIDTH)
    return lines


def side_by_side(left: list[str], right: list[str]) -> str:
    height = max(len(left), len(right))
    left, right = left + [""] * (height - len(left)), right + [""] * (height - len(right))
    return "\n".join(f"  {a:<{WIDTH}} | {b}" for a, b in zip(left, right))


class Graphs:
    """Both graphs' nodes and neighbours, read for the pairs of one session."""

    def __init__(self, spark: SparkSession, paths: Paths, pairs: list[dict], links: set[tuple[str, str]]):
        ends = {(KG_A, p["id_a"]) for p in pairs} | {(KG_B, p["id_b"]) for p in pairs}
        wanted = spark.createDataFrame(sorted(ends), "kg string, id string")
        edges = spark.read.parquet(str(paths.edges))
        both = edges.select("kg", F.col("src").alias("id"), "rel", F.col("dst").alias("nbr")).unionByName(
            edges.select("kg", F.col("dst").alias("id"), F.concat(F.lit("~"), "rel").alias("rel"),
                         F.col("src").alias("nbr")))
        near = both.join(wanted, ["kg", "id"]).collect()
        nodes = spark.read.parquet(str(paths.nodes))
        ids = wanted
        if near:
            ids = ids.unionByName(spark.createDataFrame([(r["kg"], r["nbr"]) for r in near], "kg string, id string"))
        ids = ids.distinct()
        self.nodes = {(r["kg"], r["id"]): r.asDict() for r in nodes.join(ids, ["kg", "id"]).collect()}
        self.neighbours: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for r in near:
            self.neighbours.setdefault((r["kg"], r["id"]), []).append((r["rel"], r["nbr"]))
        self.links = links

    def show(self, pair: dict) -> str:
        a, b = (KG_A, pair["id_a"]), (KG_B, pair["id_b"])
        nbr_a, nbr_b = self.neighbours.get(a, []), self.neighbours.get(b, [])
        b_ids, a_ids = {n for _, n in nbr_b}, {n for _, n in nbr_a}
        matched_a = {n for n in a_ids if any((n, m) in self.links for m in b_ids)}
        matched_b = {m for m in b_ids if any((n, m) in self.links for n in a_ids)}

        def lines(key, nbrs, matched, kg):
            return record_lines(self.nodes.get(key, {}), [
                (rel, (self.nodes.get((kg, n)) or {}).get("name") or n, n in matched) for rel, n in sorted(nbrs)])

        header = f"  {'A ' + pair['id_a']:<{WIDTH}} | B {pair['id_b']}"
        return "\n".join([header, side_by_side(lines(a, nbr_a, matched_a, KG_A), lines(b, nbr_b, matched_b, KG_B)),
                          f"  model score {pair['score']:.3f}, name similarity {pair['sim'] or 0:.3f}"])


def ask(prompt: str, read: Callable[[], str], write: Callable[[str], None]) -> str:
    """y, n, u or q; the end of the input is q."""
    while True:
        write(prompt)
        line = read()
        if not line:  # end of input
            return "q"
        answer = line.strip().lower()[:1]
        if answer in ("y", "n", "u", "q"):
            return answer
        write("  answer y (match), n (not a match), u (unsure) or q (quit)\n")


def next_pairs(spark: SparkSession, paths: Paths, limit: int) -> tuple[list[dict], float, DataFrame | None]:
    """(the next ``limit`` pairs to ask from the run's scores, in order; the model's threshold;
    the answers so far, or None)."""
    if not paths.scores.exists():
        raise FileNotFoundError(f"run {paths.run_id!r} has no scores ({paths.scores}): run the pipeline "
                                "(at least until score) with this --run-id first")
    threshold = float(json.loads(paths.model_config.read_text())["threshold"])
    answered = answered_labels(spark, paths)
    scores = spark.read.parquet(str(paths.scores))
    types = scores.select("type").distinct().count()
    pairs = pairs_to_ask(scores, spark.read.parquet(str(paths.candidates)), answered, threshold,
                         per_type=max(1, -(-limit // max(types, 1))))[:limit]
    return pairs, threshold, answered


def record_answer(spark: SparkSession, paths: Paths, pair: dict, label: int | None, user: str) -> None:
    """Appends one answer (1 match, 0 not, None unsure) to the ``labels`` Delta table."""
    row = (pair["id_a"], pair["id_b"], pair["type"], label, user, datetime.now(timezone.utc).replace(tzinfo=None),
           paths.run_id)
    spark.createDataFrame([row], USER_LABEL).write.format("delta").mode("append").save(str(paths.labels))


def session(spark: SparkSession, config: PipelineConfig, paths: Paths, user: str, limit: int,
            stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> dict:
    """One labelling session: asks up to ``limit`` pairs, writes each answer at once; returns the
    counts."""
    pairs, threshold, answered = next_pairs(spark, paths, limit)
    links = set()
    if (paths.merge_log / "_delta_log").exists():
        try:
            links = {(r["id_a"], r["id_b"]) for r in
                     current_links(read_merged(spark, paths.delta, paths.run_id)["alignment"]).collect()}
        except LookupError:  # this run has not merged: no aligned neighbours to show
            pass
    if answered is not None:
        links |= {(r["id_a"], r["id_b"]) for r in answered.where("label = 1").collect()}
    graphs = Graphs(spark, paths, pairs, links) if pairs else None
    counts = {"asked": 0, "match": 0, "not": 0, "unsure": 0}
    write = stdout.write
    write(f"{len(pairs)} pairs to label (threshold {threshold:.3f}); y = match, n = not, u = unsure, q = quit\n")
    for i, pair in enumerate(pairs, 1):
        write(f"\n[{i}/{len(pairs)}] {pair['type']}\n{graphs.show(pair)}\n")
        stdout.flush()
        answer = ask("  match? [y/n/u/q] ", stdin.readline, write)
        if answer == "q":
            break
        label = ANSWERS[answer]
        record_answer(spark, paths, pair, label, user)
        counts["asked"] += 1
        counts[{1: "match", 0: "not", None: "unsure"}[label]] += 1
    total = answered_labels(spark, paths).count() if counts["asked"] or answered is not None else 0
    write(f"\n{counts['asked']} answered this session ({counts['match']} match, {counts['not']} not, "
          f"{counts['unsure']} unsure); {total} labels in {paths.labels}. The next train run learns from them.\n")
    return {**counts, "labels_in_all": total}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="jobs/label.py", description="Label candidate pairs in the terminal; "
                                "the next train run learns from the answers.")
    p.add_argument("config", help="YAML config file, e.g. conf/dblp_acm.yaml")
    p.add_argument("--run-id", type=run_id_argument, default=os.environ.get("KGMERGE_RUN_ID", "local"),
                   help="the run whose scores choose the pairs (default: $KGMERGE_RUN_ID or 'local')")
    p.add_argument("--user", default=os.environ.get("KGMERGE_USER") or _login(), help="who answers (default: your login)")
    p.add_argument("--limit", type=int, default=20, help="pairs to ask at most (default 20)")
    p.add_argument("--log-level", default="WARNING")
    return p.parse_args(argv)


def _login() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in a container
        return "unknown"

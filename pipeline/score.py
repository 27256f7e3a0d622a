"""score: every candidate pair of the shards, scored by the trained model, in collective rounds.

Spark ``mapInArrow`` over the shard files, one task per file, each Python worker reading its
files itself (``over_files``: the rows do not pass through Spark's JVM, whose Parquet reader and
Arrow conversion took 25-52 s a round at 100k nodes per side); each worker loads the model, the
feature matrix and the round's anchors once, computes every node's first layer once per round
(``model.infer.node_first_layer``, from the run's neighbourhoods), and scores Arrow batches with
``model.infer.score_table`` (no Spark inside), on CUDA when the worker has a GPU, else on the
CPU with one torch thread per worker.

Rounds (``collective``): round 1 reads the seed anchors (the train links) that training wrote;
each later round adds the previous round's confident matches (mutual best at or above the
threshold, any type; with ``collective.anchor_precision``, down to a threshold per type chosen
on the valid links, ``anchor_thresholds``) to the anchors and scores again; with anchor
profiles in the level-0 features and ``collective.bootstrap_profiles``, it also reads a
level-0 matrix whose profiles are made anew with those anchors as the seed links
(``features.ProfileBootstrap``).
``scores`` holds the last round.
Where the benchmark has labelled pairs, they are scored too (``labelled_scores``), with the
last round's anchors; blocking never sees them.

Every score carries its pair's ``signature`` (model/signature.py: a hash of all the score
depends on besides the model). An incremental run (``ctx.base``, the run it builds on) first
computes each round's signatures alone, takes the base run's score of that round wherever the
signature and the model version match, and runs the model only on the other pairs: the result
is the one a full run with the same model gives.
"""
from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from model.shard_layout import SUBGRAPH_COLUMNS
from pipeline.anchor_profile import ProfileBootstrap
from pipeline.anchors import read_anchors, write_anchors
from pipeline.pairs import mutual_best, touching, with_node_rows
from pipeline.schema import SCORE, Paths
from pipeline.stage import StageContext, StageResult


def _stamp(*files) -> tuple[int, ...]:
    """Modification times: part of the cache key, so a rewritten file is never served stale
    by a Python worker that Spark reuses across jobs."""
    return tuple(Path(f).stat().st_mtime_ns for f in files)


log = logging.getLogger("kgmerge")
KEYS = ["id_a", "id_b", "type"]
SIGNATURE = T.StructType([SCORE[c] for c in KEYS + ["signature"]])


def node_keys(index_path: str) -> np.ndarray:
    """int64 per nid: a hash of the node's stable (kg, id), the same in every run."""
    import pyarrow.parquet as pq

    index = pq.read_table(index_path, columns=["nid", "kg", "id"]).to_pandas().sort_values("nid")
    if not np.array_equal(index["nid"].to_numpy(), np.arange(len(index))):
        raise ValueError(f"{index_path}: node ids are not 0..n-1; rerun the features stage")
    return pd.util.hash_pandas_object(index[["kg", "id"]], index=False).to_numpy().view(np.int64)


@lru_cache(maxsize=1)
def _level0(matrix_path: str, stamp: int):
    """The level-0 matrix, on the CPU, memory-mapped: one copy in the page cache for all the
    Python workers of a machine, and for every round (a round adds only its anchored rows,
    see ``model.level0.AnchoredFeatures``)."""
    from model.level0 import map_matrix_file

    return map_matrix_file(matrix_path)


_round_scorer: dict[tuple, tuple] = {}


def _scorer(*key) -> tuple:
    """One round's ``_build_scorer`` per worker, kept for the round's batches (and its
    signatures and labelled passes); the previous round's is dropped before the next is built:
    at 1M nodes per side each held ~2 GiB (node messages, anchored rows), and two at once ran
    the machine out of memory."""
    if key not in _round_scorer:
        _round_scorer.clear()
        _round_scorer[key] = _build_scorer(*key)
    return _round_scorer[key]


def load_round(model_dir: str, features, matrix_path: str, anchored_path: str | None, device: str):
    """The trained model (checked against the level-0 ``features`` read from ``matrix_path``)
    and the round's anchored matrix, mapped from ``anchored_path``
    (``model.level0.write_anchored_matrix``; None: the round has no anchors)."""
    from model import checkpoint
    from model.level0 import map_matrix_file

    ckpt = checkpoint.load(model_dir, device=device)
    if features.shape[1] != ckpt.model.in_dim:
        raise ValueError(
            f"model in {model_dir} expects {ckpt.model.in_dim}-d features, {matrix_path} has "
            f"{features.shape[1]}: retrain, or score with the run that trained it"
        )
    return ckpt, map_matrix_file(anchored_path) if anchored_path else None


def _build_scorer(model_dir: str, matrix_path: str, index_path: str, anchored_path: str | None, hoods_path: str,
                  device: str, stamp: tuple):
    """What a worker scores a round with: the model, the level-0 matrix, the round's anchored one,
    every node's first layer (computed once per worker and round, not per batch) and
    the node hashes of the pairs' signatures."""
    import pyarrow.dataset as pads
    import torch

    from model.infer import node_first_layer, pick_device
    from model.signature import node_hashes

    dev = pick_device(device)
    if dev.type == "cpu":
        torch.set_num_threads(1)  # Spark runs one worker per core already
    features = _level0(matrix_path, stamp[1])  # stamp: mtimes of (weights, matrix, anchored matrix)
    ckpt, anchored = load_round(model_dir, features, matrix_path, anchored_path, str(dev))
    node_hash = node_hashes(node_keys(index_path), (features if anchored is None else anchored).numpy())
    features = features.to(dev)
    anchored = anchored.to(dev) if anchored is not None else None
    # streamed: the whole table is never in the worker's memory (0.5 GiB at 1M nodes per side)
    hoods = pads.dataset(hoods_path).to_batches(columns=["nid", *SUBGRAPH_COLUMNS], batch_size=65_536)
    first_layer = node_first_layer(hoods, ckpt.model, features, anchored)
    return ckpt, features, anchored, first_layer, node_hash


def score_partitions(paths: Paths, anchored_path: Path | None, matrix_path: Path, device: str, batch_size: int,
                     keep: tuple[str, ...] = (), signatures_only: bool = False):
    """A mapInArrow function: pair-shard batches in, SCORE rows (plus the ``keep`` columns) out;
    with ``signatures_only``, SIGNATURE rows and no model run. ``matrix_path``: the round's
    level-0 matrix (.npy); ``anchored_path``: the same with the round's anchors folded in
    (``round_matrix``), or None without anchors."""

    files = (str(paths.model_dir), str(matrix_path), str(paths.node_index),
             str(anchored_path) if anchored_path else None, str(paths.neighbourhoods))
    stamp = _stamp(paths.model_weights, matrix_path, *([anchored_path] if anchored_path else []),
                   paths.neighbourhoods)

    def fn(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from model.infer import score_table
        from model.signature import pair_signatures

        ckpt, features, anchored, first_layer, node_hash = _scorer(*files, device, stamp)
        for batch in batches:
            ids = [batch.column(c) for c in KEYS]
            signature = pa.array(pair_signatures(batch, node_hash), pa.int64())
            if signatures_only:
                yield pa.RecordBatch.from_arrays(ids + [signature], names=SIGNATURE.fieldNames())
                continue
            scores = score_table(batch, ckpt.model, features, batch_size, anchored, first_layer)
            yield pa.RecordBatch.from_arrays(
                ids + [pa.array(scores, pa.float64()), pa.array(np.full(len(scores), ckpt.version), pa.string()),
                       signature] + [batch.column(c) for c in keep],
                names=SCORE.fieldNames() + list(keep),
            )
    return fn


def parquet_files(folder: Path) -> list[str]:
    """The data files of a Parquet folder Spark wrote (its partition folders included), as Spark
    reads them: names starting with ``_`` or ``.`` (markers, checksums) left out."""
    return sorted(str(p) for p in Path(folder).rglob("*.parquet") if not p.name.startswith(("_", ".")))


def over_files(spark, files: list[str], fn, schema: T.StructType | str, batch_rows: int = 10_000) -> DataFrame:
    """``fn``, a mapInArrow function of pair-shard batches, over the Parquet ``files``, one
    Spark task per file, the task's Python worker reading its file with pyarrow, ``batch_rows``
    rows at a time. The same rows as ``spark.read.parquet(...).mapInArrow(fn, schema)`` without
    their trip through the JVM (its Parquet reader, then Arrow again for Python), which took
    25-52 s a round at 100k nodes per side (bench/RESULTS.md 2026-12-07). The files must
    be readable at the same path from every worker, as the warehouse's other files they read.

    >>> over_files(spark, parquet_files(paths.shards), fn, SCORE).write.parquet(out)
    """
    def read(tasks: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow.parquet as pq

        def batches() -> Iterator[pa.RecordBatch]:
            for task in tasks:
                for i in task.column("id").to_pylist():
                    yield from pq.ParquetFile(files[i]).iter_batches(batch_size=batch_rows)
        yield from fn(batches())

    # a range of n over n partitions: exactly one file index per task
    return spark.range(0, len(files), 1, numPartitions=max(1, len(files))).mapInArrow(read, schema)


def score_round(spark, shards: Path, fn, sign_fn, base_scores: DataFrame | None
                ) -> tuple[DataFrame, DataFrame | None]:
    """One round's scores: all pairs of the pair-shard folder ``shards`` through the model, or,
    given the base run's scores of the same round and model, only the pairs whose signature is
    not among them. Returns the scores and, when reusing, the (cached) signatures of every pair."""
    shard_files = parquet_files(shards)
    if base_scores is None:
        return over_files(spark, shard_files, fn, SCORE), None
    signatures = over_files(spark, shard_files, sign_fn, SIGNATURE).cache()
    base = base_scores.select(*SCORE.fieldNames())
    reused = base.join(signatures, KEYS + ["signature"], "left_semi")
    changed = signatures.join(base, KEYS + ["signature"], "left_anti").select(*KEYS)
    rescored = spark.read.parquet(str(shards)).drop("shard").join(changed, KEYS, "left_semi").mapInArrow(fn, SCORE)
    return rescored.unionByName(reused), signatures


def anchor_thresholds(touching: pd.DataFrame, valid: pd.DataFrame, precision: float) -> dict[str, float]:
    """Per node type of the ``valid`` links (id_a, id_b, type): the lowest score down to which
    the mutual best pairs ``touching`` a valid link at either end (id_a, id_b, type, score) are
    that link at least ``precision`` of the time, counted from the highest score; inf where
    even the best-scoring one falls short."""
    cuts = {}
    for node_type, links in valid.groupby("type"):
        pairs = touching[touching["type"] == node_type].sort_values("score", ascending=False, kind="stable")
        right = pairs.merge(links[["id_a", "id_b"]].drop_duplicates(), on=["id_a", "id_b"], how="left",
                            indicator=True)["_merge"].eq("both").to_numpy()
        share = np.cumsum(right) / np.arange(1, len(right) + 1)
        good = np.flatnonzero(share >= precision)
        cuts[node_type] = float(pairs["score"].to_numpy()[good[-1]]) if len(good) else float("inf")
    return cuts


def anchor_matches(scores: DataFrame, threshold: float, valid: DataFrame,
                   precision: float | None) -> tuple[DataFrame, dict[str, float]]:
    """A round's matches that become anchors (id_a, id_b, type, score) and, with ``precision``
    (collective.anchor_precision), the score threshold chosen per type on the ``valid`` links
    (``anchor_thresholds``; a type without valid links keeps ``threshold``, the model's)."""
    if precision is None:
        return mutual_best(scores, "score", threshold), {}
    mutual = mutual_best(scores, "score", 0.0).localCheckpoint()  # read three times below
    links = valid.select("id_a", "id_b", "type")
    cuts = anchor_thresholds(touching(mutual, links).toPandas(), links.toPandas(), precision)
    cut = F.lit(threshold)
    if cuts:
        cut = F.coalesce(F.create_map(*[F.lit(x) for kv in cuts.items() for x in kv])[F.col("type")], cut)
    return mutual.where(F.col("score") >= cut), cuts


def next_anchors(matched: DataFrame, index: DataFrame, seeds: np.ndarray) -> pd.DataFrame:
    """Seed anchors plus a round's ``matched`` pairs (``anchor_matches``), as sorted (nid_a, nid_b)."""
    matched = with_node_rows(matched, index).select("nid_a", "nid_b").toPandas()
    both = pd.concat([pd.DataFrame(seeds, columns=["nid_a", "nid_b"]), matched], ignore_index=True)
    return both.drop_duplicates().sort_values(["nid_a", "nid_b"], ignore_index=True)


def _base_scores(spark, base: Paths | None, round_no: int, rounds: int, version: str) -> DataFrame | None:
    """The base run's scores of this round by this model, if an incremental run has any to reuse."""
    if base is None:
        return None
    path = base.round_scores(round_no, rounds)
    if not path.exists():
        log.warning("score: base run %s has no round %d of %d (%s); scoring every pair",
                    base.run_id, round_no, rounds, path)
        return None
    return spark.read.parquet(str(path)).where(F.col("model_version") == version)


def round_matrix(paths: Paths, matrix: Path, anchors: np.ndarray, round_no: int) -> Path | None:
    """The round's anchored level-0 matrix for the workers to map (``paths.anchored_matrix``),
    written from the round's ``matrix`` and ``anchors``, the previous round's removed; None
    without anchors."""
    from model.level0 import write_anchored_matrix

    paths.anchored_matrix(round_no - 1).unlink(missing_ok=True)
    if not len(anchors):
        return None
    return write_anchored_matrix(matrix, anchors, paths.anchored_matrix(round_no))


def remove_round_matrices(paths: Paths, keep_bootstrapped: bool = False) -> None:
    """The score stage's per-round matrices (anchored; bootstrapped unless ``keep_bootstrapped``)."""
    patterns = ["round=*.anchored.npy*"] + ([] if keep_bootstrapped else ["round=*.features.npy"])
    for pattern in patterns:
        for path in paths.anchors(0).parent.glob(pattern):
            path.unlink()


def run(ctx: StageContext) -> StageResult:
    from model import checkpoint
    from model.level0 import feature_blocks, write_matrix_file

    spark, paths, cfg = ctx.spark, ctx.paths, ctx.config
    index = spark.read.parquet(str(paths.node_index))
    reuse_from = ctx.base if ctx.incremental else None  # --base-run alone: its model, not its scores
    checkpoint.require_compatible(paths.model_dir, feature_blocks(paths.node_features),
                                  json.loads(paths.relations.read_text()))
    ckpt = checkpoint.load(paths.model_dir)
    write_matrix_file(paths.node_features, paths.node_feature_matrix)  # what the workers map
    seeds = read_anchors(paths.anchors(0))
    rounds = cfg.collective.scoring_rounds
    bootstrap = cfg.collective.bootstrap_profiles and cfg.features.anchor_hops > 0
    bootstrapper = ProfileBootstrap.gather(ctx) if bootstrap and rounds > 1 else None
    anchors_per_round, rescored_per_round, cuts_per_round = [], [], []
    valid = spark.read.parquet(str(paths.gold)).where("split = 'valid'")
    matrix = paths.node_feature_matrix
    remove_round_matrices(paths)  # an earlier score run's
    for round_no in range(1, rounds + 1):
        anchors = read_anchors(paths.anchors(round_no - 1))
        anchors_per_round.append(len(anchors))
        anchored = round_matrix(paths, matrix, anchors, round_no)
        fn, sign_fn = (score_partitions(paths, anchored, matrix, cfg.score.device, cfg.score.batch_size,
                                        signatures_only=only) for only in (False, True))
        base_scores = _base_scores(spark, reuse_from, round_no, rounds, ckpt.version)
        reusing = f", reusing run {reuse_from.run_id}" if base_scores is not None else ""
        spark.sparkContext.setJobDescription(f"score [{cfg.dataset.name}] round {round_no} of {rounds}{reusing}")
        scores, signatures = score_round(spark, paths.shards, fn, sign_fn, base_scores)
        out = paths.round_scores(round_no, rounds)
        scores.write.mode("overwrite").parquet(str(out))
        if signatures is not None:
            reused = signatures.join(base_scores, KEYS + ["signature"], "left_semi").count()
            rescored_per_round.append(signatures.count() - reused)
            log.info("score: round %d rescored %d pairs, reused %d from run %s",
                     round_no, rescored_per_round[-1], reused, reuse_from.run_id)
            signatures.unpersist()
        if round_no < rounds:
            scores = spark.read.parquet(str(out))
            matched, cuts = anchor_matches(scores, ckpt.threshold, valid, cfg.collective.anchor_precision)
            anchors = next_anchors(matched, index, seeds)
            if cuts:
                cuts_per_round.append({t: round(c, 6) if np.isfinite(c) else None for t, c in cuts.items()})
                log.info("score: round %d anchors down to score %s per type (valid links right >= %.2f)",
                         round_no, cuts_per_round[-1], cfg.collective.anchor_precision)
            write_anchors(anchors, paths.anchors(round_no))
            if bootstrapper is not None:
                matrix = paths.bootstrapped_matrix(round_no + 1)
                bootstrapper.write(anchors, paths.node_feature_matrix, matrix)
    details = {"rounds": rounds, "anchors_per_round": anchors_per_round, "bootstrapped_profiles": bootstrap}
    if cuts_per_round:
        details["anchor_thresholds_per_round"] = cuts_per_round
    if reuse_from is not None:
        details |= {"base_run": reuse_from.run_id, "rescored_per_round": rescored_per_round}

    if paths.labelled.exists():
        keep = ("label", "split")
        schema = T.StructType(SCORE.fields + [T.StructField("label", T.IntegerType()),
                                              T.StructField("split", T.StringType())])
        fn = score_partitions(paths, anchored, matrix, cfg.score.device, cfg.score.batch_size, keep)
        labelled = over_files(spark, parquet_files(paths.labelled_shards), fn, schema)
        labelled.write.mode("overwrite").parquet(str(paths.labelled_scores))
        details["labelled_pairs_scored"] = spark.read.parquet(str(paths.labelled_scores)).count()
    remove_round_matrices(paths, keep_bootstrapped=True)
    n_out = spark.read.parquet(str(paths.scores)).count()
    return StageResult(rows_in=n_out, rows_out=n_out, details=details)

"""score: every candidate pair of the shards, scored by the trained model, in collective rounds.

Spark ``mapInArrow`` over the shard files; each Python worker loads the model, the feature
matrix and the round's anchors once and scores Arrow batches with ``model.infer.score_table``
(no Spark inside), on CUDA when the worker has a GPU, else on the CPU with one torch thread per
worker.

Rounds (``collective``): round 1 reads the seed anchors (the train links) that training wrote;
each later round adds the previous round's confident matches (mutual best at or above the
threshold, any type) to the anchors and scores again. ``scores`` holds the last round.
Where the benchmark has labelled pairs, they are scored too (``labelled_scores``), with the
last round's anchors; blocking never sees them.
"""
from __future__ import annotations

import json
from functools import lru_cache
from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipeline.merge import resolve
from pipeline.schema import SCORE
from pipeline.stage import StageContext, StageResult
from pipeline.train import read_anchors, write_anchors


def _stamp(*files) -> tuple[int, ...]:
    """Modification times: part of the cache key, so a rewritten file is never served stale
    by a Python worker that Spark reuses across jobs."""
    from pathlib import Path

    return tuple(Path(f).stat().st_mtime_ns for f in files)


@lru_cache(maxsize=2)
def _scorer(model_dir: str, features_path: str, anchors_path: str, device: str, stamp: tuple):
    import torch

    from model import checkpoint
    from model.features import anchored_features, load_feature_matrix
    from model.infer import pick_device

    dev = pick_device(device)
    if dev.type == "cpu":
        torch.set_num_threads(1)  # Spark runs one worker per core already
    ckpt = checkpoint.load(model_dir, device=str(dev))
    features = torch.from_numpy(load_feature_matrix(features_path)).to(dev)
    if features.shape[1] != ckpt.model.in_dim:
        raise ValueError(
            f"model in {model_dir} expects {ckpt.model.in_dim}-d features, {features_path} has "
            f"{features.shape[1]}: retrain, or score with the run that trained it"
        )
    anchors = read_anchors(anchors_path)
    anchored = anchored_features(features, anchors) if len(anchors) else None
    return ckpt, features, anchored


def score_partitions(model_dir: str, features_path: str, anchors_path: str, device: str, batch_size: int,
                     keep: tuple[str, ...] = ()):
    """A mapInArrow function: pair-shard batches in, SCORE rows (plus the ``keep`` columns) out."""
    from model.checkpoint import WEIGHTS

    stamp = _stamp(f"{model_dir}/{WEIGHTS}", features_path, anchors_path)

    def fn(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from model.infer import score_table

        ckpt, features, anchored = _scorer(model_dir, features_path, anchors_path, device, stamp)
        for batch in batches:
            scores = score_table(batch, ckpt.model, features, batch_size, anchored)
            yield pa.RecordBatch.from_arrays(
                [batch.column("id_a"), batch.column("id_b"), batch.column("type"),
                 pa.array(scores, pa.float64()), pa.array(np.full(len(scores), ckpt.version), pa.string())]
                + [batch.column(c) for c in keep],
                names=SCORE.fieldNames() + list(keep),
            )
    return fn


def next_anchors(scores: DataFrame, index: DataFrame, seeds: np.ndarray, threshold: float) -> pd.DataFrame:
    """Seed anchors plus this round's confident matches, as sorted (nid_a, nid_b)."""
    ids = index.select("kg", "id", "nid")
    matched = (resolve(scores, threshold)
               .join(ids.where("kg = 'A'").select(F.col("id").alias("id_a"), F.col("nid").alias("nid_a")), "id_a")
               .join(ids.where("kg = 'B'").select(F.col("id").alias("id_b"), F.col("nid").alias("nid_b")), "id_b")
               .select("nid_a", "nid_b").toPandas())
    both = pd.concat([pd.DataFrame(seeds, columns=["nid_a", "nid_b"]), matched], ignore_index=True)
    return both.drop_duplicates().sort_values(["nid_a", "nid_b"], ignore_index=True)


def run(ctx: StageContext) -> StageResult:
    from model import checkpoint

    spark, paths, cfg = ctx.spark, ctx.paths, ctx.config
    shards = spark.read.parquet(str(paths.shards)).drop("shard")
    index = spark.read.parquet(str(paths.node_index))
    from model.features import feature_blocks

    checkpoint.require_compatible(paths.model_dir, feature_blocks(paths.node_features),
                                  json.loads(paths.relations.read_text()))
    threshold = checkpoint.load(paths.model_dir).threshold
    seeds = read_anchors(paths.anchors(0))
    rounds = cfg.collective.rounds if cfg.collective.enabled else 1
    anchors_per_round = []
    for round_no in range(1, rounds + 1):
        anchors_path = paths.anchors(round_no - 1)
        anchors_per_round.append(len(read_anchors(anchors_path)))
        fn = score_partitions(str(paths.model_dir), str(paths.node_features), str(anchors_path),
                              cfg.score.device, cfg.score.batch_size)
        spark.sparkContext.setJobDescription(f"score [{cfg.dataset.name}] round {round_no} of {rounds}")
        shards.mapInArrow(fn, SCORE).write.mode("overwrite").parquet(str(paths.scores))
        if round_no < rounds:
            scores = spark.read.parquet(str(paths.scores))
            write_anchors(next_anchors(scores, index, seeds, threshold), paths.anchors(round_no))
    details = {"rounds": rounds, "anchors_per_round": anchors_per_round}

    if paths.labelled.exists():
        keep = ("label", "split")
        schema = T.StructType(SCORE.fields + [T.StructField("label", T.IntegerType()),
                                              T.StructField("split", T.StringType())])
        fn = score_partitions(str(paths.model_dir), str(paths.node_features), str(paths.anchors(rounds - 1)),
                              cfg.score.device, cfg.score.batch_size, keep)
        labelled = spark.read.parquet(str(paths.labelled_shards))
        labelled.mapInArrow(fn, schema).write.mode("overwrite").parquet(str(paths.labelled_scores))
        details["labelled_pairs_scored"] = spark.read.parquet(str(paths.labelled_scores)).count()
    n_out = spark.read.parquet(str(paths.scores)).count()
    return StageResult(rows_in=n_out, rows_out=n_out, details=details)

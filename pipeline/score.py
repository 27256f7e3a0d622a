"""score: every candidate pair of the shards, scored by the trained model.

Spark ``mapInArrow`` over the shard files; each Python worker loads the model and the feature
matrix once and scores Arrow batches with ``model.infer.score_table`` (no Spark inside), on
CUDA when the worker has a GPU, else on the CPU with one torch thread per worker.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Iterator

import numpy as np
import pyarrow as pa

from pipeline.schema import SCORE
from pipeline.stage import StageContext, StageResult


@lru_cache(maxsize=2)
def _scorer(model_dir: str, features_path: str, device: str):
    import torch

    from model import checkpoint
    from model.features import load_feature_matrix
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
    return ckpt, features


def score_partitions(model_dir: str, features_path: str, device: str, batch_size: int):
    def fn(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from model.infer import score_table

        ckpt, features = _scorer(model_dir, features_path, device)
        for batch in batches:
            scores = score_table(batch, ckpt.model, features, batch_size)
            yield pa.RecordBatch.from_arrays(
                [batch.column("id_a"), batch.column("id_b"), batch.column("type"),
                 pa.array(scores, pa.float64()), pa.array(np.full(len(scores), ckpt.version), pa.string())],
                names=SCORE.fieldNames(),
            )
    return fn


def run(ctx: StageContext) -> StageResult:
    spark, paths, cfg = ctx.spark, ctx.paths, ctx.config.score
    shards = spark.read.parquet(str(paths.shards)).drop("shard")
    fn = score_partitions(str(paths.model_dir), str(paths.node_features), cfg.device, cfg.batch_size)
    shards.mapInArrow(fn, SCORE).write.mode("overwrite").parquet(str(paths.scores))
    n_out = spark.read.parquet(str(paths.scores)).count()
    return StageResult(rows_in=n_out, rows_out=n_out, details={})

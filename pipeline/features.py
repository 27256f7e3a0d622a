"""features: level-0 vectors (MiniLM on the name) for every node, and the node index.

Each distinct normalised name is encoded once, ever: vectors live in a cache table under the
warehouse (``cache/name_vectors``) shared by all runs, and only names missing from it are
encoded, inside Spark workers (``mapInArrow``, one encoder per Python worker, one torch thread).

Writes ``node_index`` (nid <-> (kg, id)) and ``node_features.parquet`` (row nid = the vector of
node nid), which the model reads directly.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from pipeline.schema import NAME_VECTOR
from pipeline.stage import StageContext, StageResult

_ENCODER = None


def name_key(col: Column) -> Column:
    """The form a name is encoded and cached under: lower case, single spaces, trimmed."""
    return F.lower(F.trim(F.regexp_replace(F.coalesce(col, F.lit("")), r"\s+", " ")))


def _encode_partitions(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    global _ENCODER
    from model.features import NameEncoder

    if _ENCODER is None:
        _ENCODER = NameEncoder(threads=1)  # one thread per worker: Spark already uses the cores
    for batch in batches:
        keys = batch.column("name_key").to_pylist()
        vecs = _ENCODER.encode(keys)
        flat = pa.array(vecs.reshape(-1), type=pa.float32())
        offsets = pa.array(np.arange(0, len(keys) + 1, dtype=np.int32) * vecs.shape[1])
        yield pa.RecordBatch.from_arrays(
            [pa.array(keys, pa.string()), pa.ListArray.from_arrays(offsets, flat)],
            schema=pa.schema([("name_key", pa.string()), ("vec", pa.list_(pa.float32()))]),
        )


def cached_vectors(spark, path) -> DataFrame | None:
    """The name-vector cache, or None before the first run has written it."""
    jvm_path = spark._jvm.org.apache.hadoop.fs.Path(str(path))
    fs = jvm_path.getFileSystem(spark._jsc.hadoopConfiguration())
    if not fs.exists(jvm_path):
        return None
    return spark.read.schema(NAME_VECTOR).parquet(str(path))


def run(ctx: StageContext) -> StageResult:
    spark, paths = ctx.spark, ctx.paths
    nodes = spark.read.parquet(str(paths.nodes)).withColumn("name_key", name_key(F.col("name")))
    keys = nodes.select("name_key").distinct()
    cache = cached_vectors(spark, paths.name_vectors)
    missing = keys if cache is None else keys.join(cache, "name_key", "left_anti")
    n_missing = missing.count()
    if n_missing:
        parts = max(1, min(spark.sparkContext.defaultParallelism * 2, n_missing // 256 + 1))
        encoded = missing.repartition(parts).mapInArrow(_encode_partitions, NAME_VECTOR)
        encoded.write.mode("append").parquet(str(paths.name_vectors))
        cache = cached_vectors(spark, paths.name_vectors)

    # nid: dense index over (kg, id), the row of the node's vector in node_features.parquet
    index = nodes.select(
        (F.row_number().over(Window.orderBy("kg", "id")) - 1).cast("int").alias("nid"),
        "kg", "id", "type", "name", "name_key",
    )
    index.drop("name_key").write.mode("overwrite").parquet(str(paths.node_index))
    index = spark.read.parquet(str(paths.node_index))
    with_keys = index.join(nodes.select("kg", "id", "name_key"), ["kg", "id"])
    vectors = with_keys.join(cache.dropDuplicates(["name_key"]), "name_key").select("nid", "vec")
    table = vectors.orderBy("nid").toArrow()
    n_index = index.count()
    if table.num_rows != n_index:
        raise RuntimeError(f"{n_index - table.num_rows} nodes got no vector; rerun the features stage")
    paths.node_features.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, str(paths.node_features))
    return StageResult(
        rows_in=n_index, rows_out=table.num_rows,
        details={"distinct_names": keys.count(), "names_encoded": n_missing},
    )


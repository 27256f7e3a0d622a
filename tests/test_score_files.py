"""The score stage's Python workers read the shard files themselves (pipeline/score.py
``over_files``): every row of the folder once, the same rows as Spark's own reader gives."""
import pyarrow as pa
from pyspark.sql import functions as F

from pipeline.score import over_files, parquet_files


def test_each_file_of_a_partitioned_folder_is_read_once_in_the_workers(spark, tmp_path):
    folder = tmp_path / "shards"
    rows = spark.range(0, 5000, numPartitions=2).select(
        (F.col("id") % 3).alias("shard"), "id", F.array("id", F.col("id") * 2).alias("hop1"))
    rows.write.partitionBy("shard").parquet(str(folder))
    files = parquet_files(folder)
    assert len(files) == 6 and all(f.endswith(".parquet") and "/shard=" in f for f in files)  # no _SUCCESS

    def passthrough(batches):
        for batch in batches:
            yield pa.RecordBatch.from_arrays([batch.column("id"), batch.column("hop1")], names=["id", "hop1"])

    read = over_files(spark, files, passthrough, "id long, hop1 array<long>", batch_rows=700)
    assert read.rdd.getNumPartitions() == len(files)
    assert sorted(read.collect()) == sorted(spark.read.parquet(str(folder)).drop("shard").collect())
    assert over_files(spark, [], passthrough, "id long, hop1 array<long>").count() == 0

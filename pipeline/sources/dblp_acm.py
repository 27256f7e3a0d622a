"""DBLP-ACM (Magellan/DeepMatcher layout) as a multi-type graph.

Files: tableA.csv (DBLP), tableB.csv (ACM) with ``id,title,authors,venue,year``;
matches_2224.csv (the full gold, ``ltable_id,rtable_id``); train/valid/test.csv
(``ltable_id,rtable_id,label``, the public split).

Graph: each row is a ``paper`` (name = title); each name in the comma-separated author list is
an ``author``; ``venue`` and ``year`` values are nodes too. Edges: paper -written_by-> author,
paper -published_in-> venue, paper -in_year-> year. Author, venue and year nodes are keyed by
their normalised text, so two papers by "j. gray" share one author node.
Gold: the 2,224 paper links, each carrying the split of the labelled pair it appears in.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.config import DatasetConfig
from pipeline.schema import KG_A, KG_B
from pipeline.sources import SourceTables, require_files

TABLE_SCHEMA = "id STRING, title STRING, authors STRING, venue STRING, year STRING"
PAIR_SCHEMA = "ltable_id STRING, rtable_id STRING, label INT"


def _norm(col: F.Column) -> F.Column:
    return F.lower(F.trim(F.regexp_replace(col, r"\s+", " ")))


def _csv(spark: SparkSession, path, schema: str) -> DataFrame:
    return spark.read.csv(
        str(path), header=True, schema=schema, multiLine=True, escape='"', mode="FAILFAST"
    )


def _graph(table: DataFrame, kg: str) -> tuple[DataFrame, DataFrame]:
    papers = table.select(
        F.lit(kg).alias("kg"),
        F.concat(F.lit("paper/"), "id").alias("id"),
        F.lit("paper").alias("type"),
        F.col("title").alias("name"),
        F.create_map(
            F.lit("authors"), F.col("authors"), F.lit("venue"), F.col("venue"), F.lit("year"), F.col("year")
        ).alias("attrs"),
        "authors", "venue", "year",
    )
    authors = papers.select(
        "kg", F.col("id").alias("paper"),
        F.explode(F.split(F.coalesce("authors", F.lit("")), r"\s*,\s*")).alias("author"),
    ).where(F.length(F.trim("author")) > 0)
    linked = [
        authors.select("kg", "paper", F.lit("author").alias("type"), F.trim("author").alias("name"),
                       F.lit("written_by").alias("rel")),
        papers.where(F.length(F.trim("venue")) > 0).select(
            "kg", F.col("id").alias("paper"), F.lit("venue").alias("type"), F.trim("venue").alias("name"),
            F.lit("published_in").alias("rel")),
        papers.where(F.length(F.trim("year")) > 0).select(
            "kg", F.col("id").alias("paper"), F.lit("year").alias("type"), F.trim("year").alias("name"),
            F.lit("in_year").alias("rel")),
    ]
    links = linked[0].unionByName(linked[1]).unionByName(linked[2])
    links = links.withColumn("node", F.concat_ws("/", "type", _norm(F.col("name"))))
    others = links.groupBy("kg", F.col("node").alias("id"), "type").agg(F.min("name").alias("name"))
    others = others.withColumn("attrs", F.create_map().cast("map<string,string>"))
    nodes = papers.select("kg", "id", "type", "name", "attrs").unionByName(others)
    edges = links.select("kg", F.col("paper").alias("src"), "rel", F.col("node").alias("dst")).distinct()
    return nodes, edges


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


def read(spark: SparkSession, ds: DatasetConfig, options: Options) -> SourceTables:
    folder = ds.path
    require_files(folder, ["tableA.csv", "tableB.csv", "matches_2224.csv", "train.csv", "valid.csv", "test.csv"])
    nodes_a, edges_a = _graph(_csv(spark, folder / "tableA.csv", TABLE_SCHEMA), KG_A)
    nodes_b, edges_b = _graph(_csv(spark, folder / "tableB.csv", TABLE_SCHEMA), KG_B)

    splits = None
    for split in ("train", "valid", "test"):
        part = _csv(spark, folder / f"{split}.csv", PAIR_SCHEMA).where("label = 1")
        part = part.select("ltable_id", "rtable_id", F.lit(split).alias("split"))
        splits = part if splits is None else splits.unionByName(part)
    matches = _csv(spark, folder / "matches_2224.csv", "ltable_id STRING, rtable_id STRING")
    gold = matches.join(splits, ["ltable_id", "rtable_id"], "left").select(
        F.concat(F.lit("paper/"), "ltable_id").alias("id_a"),
        F.concat(F.lit("paper/"), "rtable_id").alias("id_b"),
        F.lit("paper").alias("type"),
        "split",
    )
    return SourceTables(nodes_a.unionByName(nodes_b), edges_a.unionByName(edges_b), gold)

"""DBP15K (GCN-Align id format) with translated entity names.

Files (TAB-separated): ent_ids_1 / ent_ids_2 (``id, URI``), triples_1 / triples_2
(``head, rel, tail``), ref_ent_ids (15,000 gold links ``id1, id2``) and
translated_ent_name.json (``[[id, [token, ...]], ...]``, English names for both graphs).

Graph: one node type, ``entity``; a node's name is its translated name (the URI's last
segment where none is given); relation ids become relations ``r<id>``.
Gold: the links after a seeded shuffle: ``train_fraction`` of them for training (of which
``valid_fraction_of_train`` is carved off as valid), the rest test.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pandas as pd
from pydantic import BaseModel, ConfigDict
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from pipeline.schema import GOLD, KG_A, KG_B
from pipeline.sources import SourceTables, require_files
from pipeline.splits import split_by_permutation

if TYPE_CHECKING:  # the config imports the adapters to check their options
    from pipeline.config import DatasetConfig

FILES = ["ent_ids_1", "ent_ids_2", "triples_1", "triples_2", "ref_ent_ids", "translated_ent_name.json"]


def _tsv(spark: SparkSession, path, schema: str):
    return spark.read.csv(str(path), sep="\t", schema=schema, mode="FAILFAST")


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


def read(spark: SparkSession, ds: DatasetConfig, options: Options) -> SourceTables:
    folder = ds.path
    require_files(folder, FILES)
    with open(folder / "translated_ent_name.json", encoding="utf-8") as fh:
        names = json.load(fh)
    name_df = spark.createDataFrame(
        pd.DataFrame({"id": [str(e) for e, _ in names], "tname": [" ".join(t) for _, t in names]})
    )
    uri_tail = F.expr("replace(url_decode(regexp_extract(uri, '[^/]+$', 0)), '_', ' ')")
    nodes, edges = None, None
    for kg, n in ((KG_A, 1), (KG_B, 2)):
        ents = _tsv(spark, folder / f"ent_ids_{n}", "id STRING, uri STRING")
        part = ents.join(name_df, "id", "left").select(
            F.lit(kg).alias("kg"), "id", F.lit("entity").alias("type"),
            F.coalesce(F.when(F.length("tname") > 0, F.col("tname")), uri_tail).alias("name"),
            F.create_map(F.lit("uri"), F.col("uri")).alias("attrs"),
        )
        trip = _tsv(spark, folder / f"triples_{n}", "src STRING, rel STRING, dst STRING").select(
            F.lit(kg).alias("kg"), "src", F.concat(F.lit("r"), "rel").alias("rel"), "dst"
        )
        nodes = part if nodes is None else nodes.unionByName(part)
        edges = trip if edges is None else edges.unionByName(trip)
    links = pd.read_csv(folder / "ref_ent_ids", sep="\t", header=None, names=["id_a", "id_b"], dtype=str)
    gold = split_by_permutation(links, ds).assign(type="entity")[["id_a", "id_b", "type", "split"]]
    return SourceTables(nodes, edges.distinct(), spark.createDataFrame(gold, schema=GOLD))

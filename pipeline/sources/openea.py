"""The NJU 15K entity-alignment benchmarks: SRPRS (RSN) and OpenEA 15K V1 (D-W, D-Y).

They share the task (two graphs of relation triples, 15,000 one-to-one links, a fixed
train / valid / test split) but not a file layout; three are read (``layout``, or ``auto``:
told apart by the files present):

- ``gcn_align`` (SRPRS as shipped by RSN / Dual-AMN / LightEA): ``ent_ids_1`` / ``ent_ids_2``
  (``id, URI``), ``triples_1`` / ``triples_2`` (``head, rel, tail`` ids; no relation names),
  ``sup_ent_ids`` (train links) and ``ref_ent_ids`` (test links), optionally
  ``translated_ent_name.json`` (as DBP15K's). No valid split ships: ``valid_fraction_of_train``
  of the train links is carved off as valid by the seeded shuffle of ``pipeline.splits.split_by_permutation``.
- ``id_dicts`` (OpenEA converted to ids, e.g. D_W_15K_V1 from ExEA): ``ent_dict1`` /
  ``ent_dict2`` and ``rel_dict1`` / ``rel_dict2`` (``id, URI``), ``triples_1`` / ``triples_2``
  (ids), ``train_links`` / ``valid_links`` / ``test_links`` (``id1, id2``).
- ``openea`` (OpenEA's own text format, e.g. D_Y_15K_V1): ``rel_triples_1`` / ``rel_triples_2``
  (``head URI, relation URI, tail URI``), ``train_links`` / ``valid_links`` / ``test_links``
  (URI pairs); the entities are those of the triples and links, and a node's id is its URI.

The link files live in the dataset folder, or in ``fold`` below it (OpenEA's release puts
them in ``721_5fold/<k>/``). ``split: seeded`` ignores the shipped split and splits all the
links like DBP15K (``train_fraction``, ``valid_fraction_of_train``, ``seed``).

Graph: one node type, ``entity``; edges are typed by the relation URI's local name
(``http://dbpedia.org/ontology/starring`` -> ``starring``, Wikidata ``P69``) or ``r<id>``
where only ids exist. A node's name (``names``):

- ``uri``: the URI's local name (after ``/resource/`` or ``/entity/``, else after the last
  ``/``), URL-decoded, underscores as spaces. On SRPRS fr_en 9,442 of the 15,000 links have
  identical local names on both sides; on D-W the Wikidata side is Q-ids and on D-Y both
  sides are anonymised (``E380043``), so these names carry nothing there.
- ``translated``: the names of ``translated_ent_name.json`` (``gcn_align`` layout only).
- ``none``: an empty name for every node (structure only).

Attribute triples would be the place for labels, but none of the copies here has them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.schema import GOLD, KG_A, KG_B
from pipeline.sources import SourceTables, require_files
from pipeline.splits import split_by_permutation

if TYPE_CHECKING:  # the config imports the adapters to check their options
    from pipeline.config import DatasetConfig

LINK_FILES = ["train_links", "valid_links", "test_links"]
LAYOUTS = {
    "gcn_align": ["ent_ids_1", "ent_ids_2", "triples_1", "triples_2", "sup_ent_ids", "ref_ent_ids"],
    "id_dicts": ["ent_dict1", "ent_dict2", "rel_dict1", "rel_dict2", "triples_1", "triples_2"],
    "openea": ["rel_triples_1", "rel_triples_2"],
}
NAMES_FILE = "translated_ent_name.json"


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    layout: Literal["auto", "gcn_align", "id_dicts", "openea"] = "auto"
    # benchmark: the shipped train / valid / test links (the published protocol);
    # seeded: all links re-split by the seeded shuffle of the dataset settings
    split: Literal["benchmark", "seeded"] = "benchmark"
    # folder (relative to the dataset's) holding train_links / valid_links / test_links
    fold: str = ""
    names: Literal["uri", "translated", "none"] = "uri"


def detect_layout(folder: Path) -> str:
    for layout, files in LAYOUTS.items():
        if (folder / files[0]).is_file():
            return layout
    raise FileNotFoundError(
        f"dataset folder {folder} has none of {', '.join(f[0] for f in LAYOUTS.values())}; "
        "check dataset.path in the config (or set dataset.options.layout)"
    )


def _tsv(spark: SparkSession, path: Path, schema: str) -> DataFrame:
    # quote "" turns quoting off: URIs may hold a literal '"'
    return spark.read.csv(str(path), sep="\t", schema=schema, quote="", mode="FAILFAST")


def _links(path: Path) -> pd.DataFrame:
    if path.stat().st_size == 0:
        return pd.DataFrame({"id_a": pd.Series(dtype=str), "id_b": pd.Series(dtype=str)})
    return pd.read_csv(path, sep="\t", header=None, names=["id_a", "id_b"], dtype=str,
                       quoting=3, keep_default_na=False)


def local_name(uri: Column) -> Column:
    """A URI's local name: after the resource namespace (so ``AC/DC`` stays whole), else after
    the last ``/`` or ``#``."""
    return F.regexp_replace(uri, r"^(https?://[^/]+/(resource|entity)/|.*[/#])", "")


def uri_name(uri: Column) -> Column:
    tail = local_name(uri)
    return F.replace(F.coalesce(F.try_url_decode(tail), tail), F.lit("_"), F.lit(" "))


def _gold(links: dict[str, pd.DataFrame], ds: DatasetConfig, options: Options) -> pd.DataFrame:
    """links: split name -> (id_a, id_b); "train" and "test" always, "valid" where shipped."""
    if options.split == "seeded":
        gold = split_by_permutation(pd.concat(list(links.values()), ignore_index=True), ds)
    elif "valid" in links:
        gold = pd.concat([df.assign(split=s) for s, df in links.items()], ignore_index=True)
    else:
        # the shipped train links, valid carved off them (every one kept: train_fraction 1)
        train = split_by_permutation(links["train"], ds.model_copy(update={"train_fraction": 1.0}))
        gold = pd.concat([train, links["test"].assign(split="test")], ignore_index=True)
    return gold.assign(type="entity")[["id_a", "id_b", "type", "split"]]


def read(spark: SparkSession, ds: DatasetConfig, options: Options) -> SourceTables:
    folder = ds.path
    layout = detect_layout(folder) if options.layout == "auto" else options.layout
    require_files(folder, LAYOUTS[layout])
    if options.names == "translated":
        if layout != "gcn_align":
            raise ValueError(f"names: translated needs the gcn_align layout ({NAMES_FILE}); {folder} is {layout}")
        require_files(folder, [NAMES_FILE])
    if layout == "gcn_align":
        links = {"train": _links(folder / "sup_ent_ids"), "test": _links(folder / "ref_ent_ids")}
    else:
        require_files(folder / options.fold, LINK_FILES)
        links = {f.split("_")[0]: _links(folder / options.fold / f) for f in LINK_FILES}

    ents, edges = [], []
    for kg, n in ((KG_A, 1), (KG_B, 2)):
        if layout == "gcn_align":
            ent = _tsv(spark, folder / f"ent_ids_{n}", "id STRING, uri STRING")
            trip = _tsv(spark, folder / f"triples_{n}", "src STRING, rel STRING, dst STRING").select(
                "src", F.concat(F.lit("r"), "rel").alias("rel"), "dst")
        elif layout == "id_dicts":
            ent = _tsv(spark, folder / f"ent_dict{n}", "id STRING, uri STRING")
            rel = _tsv(spark, folder / f"rel_dict{n}", "rel STRING, rel_uri STRING")
            trip = _tsv(spark, folder / f"triples_{n}", "src STRING, rel STRING, dst STRING").join(
                F.broadcast(rel), "rel", "left"
            ).select("src", F.coalesce(local_name(F.col("rel_uri")), F.concat(F.lit("r"), "rel")).alias("rel"), "dst")
        else:
            trip = _tsv(spark, folder / f"rel_triples_{n}", "src STRING, rel STRING, dst STRING").select(
                "src", local_name(F.col("rel")).alias("rel"), "dst")
            side = "id_a" if kg == KG_A else "id_b"
            linked = spark.createDataFrame(
                pd.DataFrame({"id": pd.concat([df[side] for df in links.values()], ignore_index=True)}),
                "id STRING",
            )
            ent = (trip.select(F.col("src").alias("id")).union(trip.select(F.col("dst").alias("id")))
                   .union(linked).distinct().select("id", F.col("id").alias("uri")))
        ents.append(ent.select(F.lit(kg).alias("kg"), "id", "uri"))
        edges.append(trip.select(F.lit(kg).alias("kg"), "src", "rel", "dst"))
    ents_df = ents[0].unionByName(ents[1])

    if options.names == "none":
        name = F.lit("")
    elif options.names == "uri":
        name = uri_name(F.col("uri"))
    else:
        with open(folder / NAMES_FILE, encoding="utf-8") as fh:
            rows = json.load(fh)
        tnames = spark.createDataFrame(
            pd.DataFrame({"id": [str(e) for e, _ in rows], "tname": [" ".join(t) for _, t in rows]}),
            "id STRING, tname STRING",
        )
        ents_df = ents_df.join(F.broadcast(tnames), "id", "left")
        name = F.coalesce(F.when(F.length("tname") > 0, F.col("tname")), uri_name(F.col("uri")))
    nodes = ents_df.select(
        "kg", "id", F.lit("entity").alias("type"), name.alias("name"),
        F.create_map(F.lit("uri"), F.col("uri")).alias("attrs"),
    )
    gold = _gold(links, ds, options)
    return SourceTables(nodes, edges[0].unionByName(edges[1]).distinct(), spark.createDataFrame(gold, schema=GOLD))

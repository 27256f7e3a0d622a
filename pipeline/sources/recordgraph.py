"""Records -> a graph, for the adapters that read two tables of records (``magellan``,
``records``): each record a node of ``entity_type`` (id prefixed ``<entity_type>/``), its
``attributes`` columns in ``attrs``, and each ``linked`` column's values nodes of their own type
(id ``<type>/<normalised value>``), linked from the record by ``rel``, so two records that share a
brand share the brand node.
"""
from __future__ import annotations

import re
from typing import Protocol

from pydantic import Field, field_validator
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from pipeline.settings import Settings
from pipeline.text import name_key

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"


class Linked(Settings):
    """A column whose values become nodes of their own type, linked from the row by ``rel``."""

    column: str
    type: str = Field(pattern=NAME_PATTERN)
    rel: str = Field(pattern=NAME_PATTERN)
    # a regex splitting one cell into several values (e.g. "\\s*,\\s*"); None: one value a cell
    separator: str | None = None

    @field_validator("separator")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            if v == "":
                raise ValueError("separator must be a non-empty regex, or null for one value a cell")
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"separator {v!r} is not a valid regex: {exc}") from exc
        return v


class RecordMapping(Protocol):
    """What ``record_graph`` reads of an adapter's options."""

    entity_type: str
    linked: list[Linked]
    attributes: list[str]


def _empty_map() -> Column:
    return F.create_map().cast("map<string,string>")


def record_graph(rows: DataFrame, kg: str, o: RecordMapping) -> tuple[DataFrame, DataFrame]:
    """rows: id, name, l<i> (linked columns), a<j> (attributes) -> (nodes, edges) of one graph."""
    t = o.entity_type
    attrs = (
        F.create_map(*[x for j, a in enumerate(o.attributes) for x in (F.lit(a.lower()), F.col(f"a{j}"))])
        if o.attributes else _empty_map()
    )
    ents = rows.select(
        F.lit(kg).alias("kg"), F.concat(F.lit(f"{t}/"), "id").alias("id"), F.lit(t).alias("type"),
        "name", attrs.alias("attrs"), *[f"l{i}" for i in range(len(o.linked))],
    )
    nodes = ents.select("kg", "id", "type", "name", "attrs")
    links = None
    for i, link in enumerate(o.linked):
        value = F.col(f"l{i}")
        if link.separator is not None:
            value = F.explode(F.split(F.coalesce(value, F.lit("")), link.separator))
        part = (
            ents.select("kg", F.col("id").alias("src"), value.alias("value"))
            .where(F.length(F.trim("value")) > 0)
            .select("kg", "src", F.lit(link.type).alias("type"), F.trim("value").alias("name"),
                    F.lit(link.rel).alias("rel"))
        )
        links = part if links is None else links.unionByName(part)
    if links is None:
        spark = rows.sparkSession
        return nodes, spark.createDataFrame([], "kg STRING, src STRING, rel STRING, dst STRING")
    links = links.withColumn("dst", F.concat_ws("/", "type", name_key(F.col("name"))))
    others = (
        links.groupBy("kg", F.col("dst").alias("id"), "type").agg(F.min("name").alias("name"))
        .withColumn("attrs", _empty_map())
    )
    edges = links.select("kg", "src", "rel", "dst").distinct()
    return nodes.unionByName(others), edges

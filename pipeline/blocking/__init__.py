"""Blocking: the ways to find candidate pairs, never all pairs. The block stage
(pipeline/block.py) runs the configured method, then the add-ons its config turns on, and
writes the candidates.

A method (``block.method``) is a module of this package with:

- ``NEEDS_NAMES``: whether every node needs a name (ingest then rejects nodes without one);
- ``candidates(inputs: BlockInputs) -> Found``: (id_a, id_b, type, sim) per candidate pair.

``METHODS`` maps the config's name to the module. The add-ons work on any method's output:
``vectors`` (each name's nearest names by level-0 vector, ``block.vector_top_k``) and
``graph`` (the neighbours of confidently matched pairs, ``block.graph_proposals``).

    >>> found = method("names").candidates(BlockInputs(nodes, edges, gold, cfg, names_per_type, paths.block_terms))
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from pipeline.schema import CANDIDATE

if TYPE_CHECKING:  # the config checks block.method against METHODS
    from pipeline.config import BlockConfig

# block.method -> the module of this package that implements it
METHODS = {
    "names": "names",  # TF-IDF cosine of the names over shared terms (names.py)
    "anchors": "seed_links",  # graphs without names: shared seed-linked neighbours (seed_links.py)
}


def method(name: str) -> ModuleType:
    if name not in METHODS:
        raise ValueError(f"unknown block.method {name!r}; use one of {', '.join(METHODS)}")
    return importlib.import_module(f"pipeline.blocking.{METHODS[name]}")


@dataclass(frozen=True)
class BlockInputs:
    nodes: DataFrame  # NODES of both graphs
    edges: DataFrame  # EDGES of both graphs
    gold: DataFrame  # GOLD (seed links for the anchors method; never read by names)
    cfg: "BlockConfig"
    names_per_type: dict[str, int]  # nodes per type, both graphs together
    scratch: Path  # a folder of the run the method may write to (on the warehouse: every worker reads it)


@dataclass(frozen=True)
class Found:
    """A method's candidates (id_a, id_b, type, sim) and, where it has them, the TF-IDF weights
    of the names (kg, type, id, gram, w; persisted: the caller unpersists them), which score
    the pairs the graph add-on proposes."""

    candidates: DataFrame
    name_weights: DataFrame | None = None


def k_of_type(cfg: BlockConfig, types: list[str]) -> Column:
    """``top_k`` of the row's ``type`` (the config's default for a type it does not name)."""
    k = F.create_map(*[x for t in types for x in (F.lit(t), F.lit(cfg.k_for(t)))])
    return F.coalesce(k[F.col("type")], F.lit(cfg.k_for("default")))


def keep_top_k(sims: DataFrame, cfg: BlockConfig, types: list[str]) -> DataFrame:
    """(type, id_a, id_b, sim) -> the ``top_k`` best partners of each entity, from each side."""
    k = k_of_type(cfg, types)
    rank_a = F.row_number().over(Window.partitionBy("type", "id_a").orderBy(F.desc("sim"), "id_b"))
    rank_b = F.row_number().over(Window.partitionBy("type", "id_b").orderBy(F.desc("sim"), "id_a"))
    ranked = sims.withColumn("rank_a", rank_a).withColumn("rank_b", rank_b)
    return ranked.where((F.col("rank_a") <= k) | (F.col("rank_b") <= k)).select(
        *CANDIDATE.fieldNames()
    )

"""Checks on the input graphs, between an adapter and ingest's writes: which rows are kept, which
are rejected and why, and which problems stop the run.

Rejected (the rest goes on; each row lands in the ``rejected`` Delta table with its reason,
written ``<kind>: <details>`` so that reasons group by kind):

- nodes: an empty id or type (empty: nothing but white space, in any script), a ``kg`` other
  than A/B, an id that several rows of one graph share (every copy: which one is right cannot
  be told), a name longer than ``MAX_NAME_CHARS``, no name where blocking is by names (such a
  node could never be a candidate);
- edges: an empty src, rel or dst, an end that is no kept node of its graph, a self-loop, a
  repeat of an edge already kept;
- gold links and labelled pairs: an end that is no kept node of its graph (``id_a`` in A,
  ``id_b`` in B), or a node of another type; a split other than train/valid/test; a repeated
  gold link.

Stop the run before anything is written (``InputError``): a graph left with no nodes, and node
types named in the config that the data does not have.

Names: outer white space stripped, an empty name becomes null; any script is kept as it is.
"""
from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from pipeline import blocking
from pipeline.config import PipelineConfig
from pipeline.schema import EDGES, GOLD, KG_A, KG_B, LABELLED, NODES
from pipeline.sources import SourceTables, rejected_rows
from pipeline.splits import SPLITS


class InputError(ValueError):
    """Input the run cannot go on with; the message says which file or key and what to do."""


@dataclass
class Checked:
    nodes: DataFrame
    edges: DataFrame
    gold: DataFrame
    labelled: DataFrame | None
    rejected: DataFrame  # REJECTED_INPUT
    held: list[DataFrame]  # cached by the checks: released by ``release`` once the tables are written

    def release(self) -> None:
        for df in self.held:
            df.unpersist()


# A name is what an entity is called; a longer text (a description, a whole record pasted into
# one field) belongs in an attribute, and would cost the encoder and blocking for nothing.
MAX_NAME_CHARS = 10_000


def _stripped(col: Column) -> Column:
    """``col`` without outer white space of any script (Spark's ``trim`` strips only spaces)."""
    return F.regexp_replace(col, r"(?U)^\s+|\s+$", "")


def _blank(col: Column) -> Column:
    return col.isNull() | (F.length(_stripped(col)) == 0)


def _record(df: DataFrame, schema) -> Column:
    return F.to_json(F.struct(*[F.col(c) for c in schema.fieldNames()]))


def _split(df: DataFrame, reason: Column, source: str, schema,
           held: list[DataFrame]) -> tuple[DataFrame, DataFrame]:
    """(rows whose reason is null, the others as REJECTED_INPUT). The rows with their reasons are
    cached (and added to ``held``): the kept rows and the rejected ones then read the checks'
    joins once, not once each."""
    tagged = df.withColumn("_reason", reason).cache()
    held.append(tagged)
    kept = tagged.where(F.col("_reason").isNull()).drop("_reason")
    bad = tagged.where(F.col("_reason").isNotNull())
    return kept, rejected_rows(bad, source, _record(bad, schema), F.col("_reason"))


def _first(*cases: tuple[Column, Column | str]) -> Column:
    """The first reason whose condition holds, else null."""
    out = None
    for cond, why in cases:
        why = F.lit(why) if isinstance(why, str) else why
        out = F.when(cond, why) if out is None else out.when(cond, why)
    return out


def check_nodes(nodes: DataFrame, need_names: bool, held: list[DataFrame]) -> tuple[DataFrame, DataFrame]:
    name = _stripped(F.col("name"))
    nodes = nodes.withColumn("name", F.when(F.length(name) > 0, name))
    copies = F.count(F.lit(1)).over(Window.partitionBy("kg", "id"))
    reason = _first(
        (_blank(F.col("id")), "empty id: the row has no id"),
        (~F.col("kg").isin(KG_A, KG_B) | F.col("kg").isNull(),
         F.concat(F.lit("bad kg: kg is "), F.coalesce(F.col("kg"), F.lit("empty")), F.lit("; it must be A or B"))),
        (_blank(F.col("type")), "empty type: the row has no type"),
        (copies > 1, F.format_string("duplicate id: %d rows of graph %s have id '%s'; ids must be unique "
                                     "per graph, so every copy is rejected", copies, F.col("kg"), F.col("id"))),
        (F.length("name") > MAX_NAME_CHARS,
         F.format_string("name too long: %d characters, at most %d; a name is what the entity is called: put "
                         "longer text in another column (an attribute)", F.length("name"), F.lit(MAX_NAME_CHARS))),
        (F.lit(need_names) & F.col("name").isNull(),
         "no name: with block.method 'names' a node without a name can never be a candidate; give it a "
         "name, or use block.method 'anchors'"),
    )
    return _split(nodes, reason, "nodes", NODES, held)


def _end(df: DataFrame, keys: DataFrame, kg_col: Column | str, id_col: str, flag: str) -> DataFrame:
    """Adds boolean ``flag``: (kg, id_col) is a kept node (and ``<flag>_type``, its type)."""
    k = keys.select(F.col("kg").alias(f"{flag}_kg"), F.col("id").alias(f"{flag}_id"),
                    F.col("type").alias(f"{flag}_type"), F.lit(True).alias(flag))
    kg = F.lit(kg_col) if kg_col in (KG_A, KG_B) else F.col(kg_col)
    joined = df.join(k, (k[f"{flag}_kg"] == kg) & (k[f"{flag}_id"] == F.col(id_col)), "left")
    return joined.drop(f"{flag}_kg", f"{flag}_id").fillna({flag: False})


def check_edges(edges: DataFrame, nodes: DataFrame, held: list[DataFrame]) -> tuple[DataFrame, DataFrame]:
    tagged = _end(_end(edges, nodes, "kg", "src", "_src_ok"), nodes, "kg", "dst", "_dst_ok")
    order = Window.partitionBy("kg", "src", "rel", "dst").orderBy(F.lit(1))
    tagged = tagged.withColumn("_copy", F.row_number().over(order))
    reason = _first(
        (_blank(F.col("src")) | _blank(F.col("dst")) | _blank(F.col("rel")), "empty field: src, rel or dst is empty"),
        (F.col("src") == F.col("dst"), "self-loop: an edge from a node to itself"),
        (~F.col("_src_ok"), F.format_string("unknown src: '%s' is not a kept node of graph %s (unknown, or rejected)",
                                            F.col("src"), F.col("kg"))),
        (~F.col("_dst_ok"), F.format_string("unknown dst: '%s' is not a kept node of graph %s (unknown, or rejected)",
                                            F.col("dst"), F.col("kg"))),
        (F.col("_copy") > 1, "duplicate edge: the same (kg, src, rel, dst) is kept once"),
    )
    kept, bad = _split(tagged, reason, "edges", EDGES, held)
    return kept.select(*EDGES.fieldNames()), bad


def _link_reason(df: DataFrame, nodes: DataFrame) -> tuple[DataFrame, list[tuple[Column, Column | str]]]:
    tagged = _end(_end(df, nodes, KG_A, "id_a", "_a_ok"), nodes, KG_B, "id_b", "_b_ok")
    cases = [
        (~F.col("_a_ok"), F.format_string("unknown id_a: '%s' is not a kept node of graph A (unknown, rejected, "
                                          "or in graph B: a link joins a node of A to one of B)", F.col("id_a"))),
        (~F.col("_b_ok"), F.format_string("unknown id_b: '%s' is not a kept node of graph B (unknown, rejected, "
                                          "or in graph A: a link joins a node of A to one of B)", F.col("id_b"))),
        ((F.col("_a_ok_type") != F.col("type")) | (F.col("_b_ok_type") != F.col("type")),
         F.format_string("type mismatch: the link says type '%s' but its nodes are '%s' and '%s'",
                         F.col("type"), F.col("_a_ok_type"), F.col("_b_ok_type"))),
        (F.col("split").isNotNull() & ~F.col("split").isin(*SPLITS),
         F.format_string("bad split: '%s' is not one of train, valid, test (or empty)", F.col("split"))),
    ]
    return tagged, cases


def check_gold(gold: DataFrame, nodes: DataFrame, held: list[DataFrame]) -> tuple[DataFrame, DataFrame]:
    tagged, cases = _link_reason(gold, nodes)
    order = Window.partitionBy("id_a", "id_b", "type").orderBy(F.col("split").asc_nulls_last())
    tagged = tagged.withColumn("_copy", F.row_number().over(order))
    cases.append((F.col("_copy") > 1, "duplicate gold link: the same (id_a, id_b, type) is kept once"))
    kept, bad = _split(tagged, _first(*cases), "gold", GOLD, held)
    return kept.select(*GOLD.fieldNames()), bad


def check_labelled(labelled: DataFrame, nodes: DataFrame, held: list[DataFrame]) -> tuple[DataFrame, DataFrame]:
    tagged, cases = _link_reason(labelled, nodes)
    kept, bad = _split(tagged, _first(*cases), "labelled", LABELLED, held)
    return kept.select(*LABELLED.fieldNames()), bad


def check_config_types(config: PipelineConfig, types: set[str]) -> None:
    """Node types the config names must exist in the data (a typo would silently do nothing)."""
    named = {f"block.top_k.{t}": t for t in config.block.top_k if t != "default"}
    named.update({f"train.train_types[{i}]": t for i, t in enumerate(config.train.train_types or [])})
    unknown = {key: t for key, t in named.items() if t not in types}
    if unknown:
        listed = ", ".join(f"{key} = {t!r}" for key, t in unknown.items())
        raise InputError(f"the config names node type(s) the data does not have: {listed}; the data's "
                         f"types are {', '.join(sorted(types))}: fix the config (or the dataset options)")


def check(tables: SourceTables, config: PipelineConfig) -> Checked:
    held = []
    nodes, bad_nodes = check_nodes(tables.nodes, blocking.method(config.block.method).NEEDS_NAMES, held)
    nodes = nodes.select(*NODES.fieldNames())
    edges, bad_edges = check_edges(tables.edges, nodes, held)
    gold, bad_gold = check_gold(tables.gold, nodes, held)
    rejected = bad_nodes.unionByName(bad_edges).unionByName(bad_gold)
    labelled = None
    if tables.labelled is not None:
        labelled, bad_labelled = check_labelled(tables.labelled, nodes, held)
        rejected = rejected.unionByName(bad_labelled)
    if tables.rejected is not None:
        rejected = tables.rejected.unionByName(rejected)

    per_graph = {r["kg"]: r["count"] for r in nodes.groupBy("kg").count().collect()}
    for kg in (KG_A, KG_B):
        if not per_graph.get(kg):
            reasons = (rejected.where((F.col("source") == "nodes") & (F.col("kg") == kg))
                       .groupBy("reason").count().orderBy(F.desc("count")).limit(3).collect())
            why = "; ".join(f"{r['count']} rejected: {r['reason']}" for r in reasons)
            raise InputError(f"graph {kg} has no nodes in {config.dataset.path}"
                             + (f" ({why})" if why else " (the input holds none)")
                             + ": check dataset.path and the input files")
    check_config_types(config, {r["type"] for r in nodes.select("type").distinct().collect()})
    return Checked(nodes, edges, gold, labelled, rejected, held)

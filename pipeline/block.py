"""block: candidate pairs per node type, never all pairs.

Runs the configured blocking method (``block.method``: pipeline/blocking/, ``names`` by
default), then the add-ons the config turns on: the nearest names by level-0 vector
(``vector_top_k``, pipeline/blocking/vectors.py) and the pairs proposed through the graph
(``graph_proposals``, pipeline/blocking/graph.py).

Writes ``candidates`` (CANDIDATE) and ``blocking.json``: candidate count, reduction ratio,
pair completeness against the gold links (per split, and per type), candidates per entity,
and with graph proposals how many they added.
"""
from __future__ import annotations

import json
import logging
import shutil

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipeline import blocking
from pipeline.blocking import BlockInputs
from pipeline.blocking.graph import graph_proposals
from pipeline.blocking.names import pair_cosine
from pipeline.blocking.vectors import vector_candidates, with_vector_candidates
from pipeline.schema import CANDIDATE, KG_A, KG_B
from pipeline.splits import SPLITS
from pipeline.stage import StageContext, StageResult

log = logging.getLogger("kgmerge")


def diagnostics(nodes: DataFrame, cands: DataFrame, gold: DataFrame) -> dict:
    sizes = {(r["kg"], r["type"]): r["count"] for r in nodes.groupBy("kg", "type").count().collect()}
    types = {t for _, t in sizes}
    all_pairs = sum(sizes.get((KG_A, t), 0) * sizes.get((KG_B, t), 0) for t in types)
    per_type = {
        r["type"]: {"candidates": r["n"], "entities_a": r["ents"], "mean_per_entity": round(r["mean"], 2),
                    "max_per_entity": r["max"]}
        for r in cands.groupBy("type", "id_a").count().groupBy("type").agg(
            F.sum("count").alias("n"), F.count("*").alias("ents"), F.mean("count").alias("mean"),
            F.max("count").alias("max")).collect()
    }
    n_cands = sum(t["candidates"] for t in per_type.values())
    # one pass over the gold links: found or not, per split and type
    hit = cands.select("id_a", "id_b", "type", F.lit(1).alias("found"))
    counts = gold.join(hit, ["id_a", "id_b", "type"], "left").groupBy("split", "type").agg(
        F.count("*").alias("total"), F.count("found").alias("found")).collect()
    by_split: dict = {}
    for r in counts:
        total, found = by_split.get(r["split"], (0, 0))
        by_split[r["split"]] = (total + r["total"], found + r["found"])
        per_type.setdefault(r["type"], {}).setdefault("gold_links", 0)
        per_type[r["type"]]["gold_links"] += r["total"]
        per_type[r["type"]]["gold_found"] = per_type[r["type"]].get("gold_found", 0) + r["found"]
    for figures in per_type.values():
        if figures.get("gold_links"):
            figures["pair_completeness"] = round(figures.pop("gold_found") / figures["gold_links"], 5)
    completeness = {}
    total, found = sum(t for t, _ in by_split.values()), sum(f for _, f in by_split.values())
    if total:
        completeness["all"] = round(found / total, 5)
    for split in SPLITS:
        if by_split.get(split, (0, 0))[0]:
            completeness[split] = round(by_split[split][1] / by_split[split][0], 5)
    return {
        "candidates": n_cands,
        "comparisons_without_blocking": all_pairs,
        "reduction_ratio": round(1 - n_cands / all_pairs, 6) if all_pairs else None,
        "pair_completeness": completeness,
        "per_type": per_type,
    }


def run(ctx: StageContext) -> StageResult:
    spark, paths, cfg = ctx.spark, ctx.paths, ctx.config.block
    nodes = spark.read.parquet(str(paths.nodes))
    gold = spark.read.parquet(str(paths.gold))
    names_per_type = {r["type"]: r["count"] for r in nodes.groupBy("type").count().collect()}
    edges = spark.read.parquet(str(paths.edges))
    found = blocking.method(cfg.method).candidates(
        BlockInputs(nodes, edges, gold, cfg, names_per_type, paths.block_terms))
    cands, weights = found.candidates, found.name_weights
    if cfg.vector_top_k:
        cands = with_vector_candidates(cands, vector_candidates(spark, paths, cfg))
    n_by_name = None
    if cfg.graph_proposals:
        # the name candidates are read twice (their confident pairs, then the union): once to disk
        cands.write.mode("overwrite").parquet(str(paths.name_candidates))
        cands = spark.read.parquet(str(paths.name_candidates))
        n_by_name = cands.count()
        proposed = graph_proposals(cands, edges, nodes, cfg)
        proposed = proposed.join(cands.select("id_a", "id_b", "type"), ["id_a", "id_b", "type"], "left_anti")
        proposed = pair_cosine(proposed, weights) if weights is not None else proposed.withColumn("sim", F.lit(0.0))
        cands = cands.unionByName(proposed.select(*CANDIDATE.fieldNames()))
    cands.write.mode("overwrite").parquet(str(paths.candidates))
    if weights is not None:
        weights.unpersist()
    shutil.rmtree(paths.name_candidates, ignore_errors=True)
    shutil.rmtree(paths.block_terms, ignore_errors=True)
    cands = spark.read.parquet(str(paths.candidates))
    report = diagnostics(nodes, cands, gold)
    if n_by_name is not None:
        report["graph_proposed"] = report["candidates"] - n_by_name
        log.info("block: %d candidates by name, %d more proposed through the graph (neighbours of matched pairs)",
                 n_by_name, report["graph_proposed"])
    paths.blocking_report.write_text(json.dumps(report, indent=2))
    return StageResult(
        rows_in=nodes.count(), rows_out=report["candidates"],
        details={"reduction_ratio": report["reduction_ratio"],
                 **({"graph_proposed": report["graph_proposed"]} if "graph_proposed" in report else {}),
                 "pair_completeness": report["pair_completeness"].get("all"),
                 "per_type": report["per_type"]},
    )

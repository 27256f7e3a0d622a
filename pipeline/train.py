"""train: fit CG-MuAlign on the train split, pick the threshold on valid, save the model.

The links it learns from (``training_links``): with ``train.labels: gold`` the gold links; with
``train.labels: none`` pseudo-links the run bootstraps from its candidates (``pseudo_links``),
a seeded fifth of them valid. Under both, a person's answers from the label job count: matches
as train links (a pseudo-link an answer contradicts goes: ``with_person_answers``), non-matches
as negatives. Where they are not the gold links alone they are written to ``training_links``.

Training rows: for each train link (a, b), the positive pair, ``hard_negatives`` pairs
(a, b') and (a', b) taken from the blocking candidates (most similar names first),
``random_negatives`` pairs of each kind with random nodes of the same type and
``neighbour_negatives`` with one-hop neighbours of b (of a) of the same type. Where the benchmark
has its own labelled pairs (``input/labelled``), its train negatives join the group of the
positive they share an entity with, or form a group of their own (they then get a pointwise
loss, model/fit.py).

Valid rows: with labelled pairs, the benchmark's valid pairs (its own protocol); otherwise every
candidate pair touching a valid link, plus the valid links themselves. The threshold is the one
with the best F1 there. Rows are written to ``train_pairs`` so a failed fit can be rerun.

Seed anchors: the train links, as node-id pairs (``anchors/round=0.parquet``), which the
collective model reads (model/network.py) in training and in the first scoring round.

With a base run (``--base-run``, or ``--incremental``), nothing is trained: the base run's model
is checked against this run's features and relations and copied into this run.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import shutil

import numpy as np
import pandas as pd
import torch
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from model import checkpoint
from model.fit import fit
from model.level0 import anchored_features, feature_blocks, map_matrix_file, write_matrix_file
from pipeline.anchors import seed_anchor_pairs, write_anchors
from pipeline.config import TrainConfig
from pipeline.evidence import SPARK_EVIDENCE, evidence_switches, pair_rows, read_pair_evidence
from pipeline.labelling import answered_labels
from pipeline.pairs import mutual_best, touching
from pipeline.stage import StageContext, StageResult

log = logging.getLogger("kgmerge")


def hard_negatives(pos: DataFrame, cands: DataFrame, k: int) -> DataFrame:
    """For each positive group: its k best-named wrong partners on each side."""
    c = cands.select("id_a", "id_b", "type", "sim")
    best = Window.partitionBy("group").orderBy(F.desc("sim"), "neg")
    sides = []
    for keep, swap in (("id_a", "id_b"), ("id_b", "id_a")):
        wrong = pos.join(c.withColumnRenamed(swap, "neg"), [keep, "type"]).where(F.col("neg") != F.col(swap))
        wrong = wrong.withColumn("r", F.row_number().over(best)).where(F.col("r") <= k)
        sides.append(wrong.select(keep, F.col("neg").alias(swap), "type", "group"))
    return sides[0].unionByName(sides[1])


def neighbour_negatives(pos: DataFrame, edges: DataFrame, nodes: DataFrame, k: int, seed: int) -> DataFrame:
    """For each positive group (a, b): up to k of b's one-hop neighbours of the same type
    paired with a, and k of a's paired with b (a seeded draw). A node and its neighbour share
    much of their neighbourhood (a state and its largest city), so a graph model confuses
    them; the name-hard and random negatives never show it such a pair. ``nodes``: (kg, id,
    type) of the nodes a pair may use."""
    undirected = edges.select("kg", F.col("src").alias("node"), F.col("dst").alias("neg")).unionByName(
        edges.select("kg", F.col("dst").alias("node"), F.col("src").alias("neg"))).distinct()
    typed = undirected.join(nodes.select("kg", F.col("id").alias("neg"), "type"), ["kg", "neg"])
    draw = Window.partitionBy("group").orderBy(F.xxhash64("neg", F.lit(seed)), "neg")
    sides = []
    for kg, keep, swap in (("B", "id_a", "id_b"), ("A", "id_b", "id_a")):
        near = typed.where(F.col("kg") == kg).select(F.col("node").alias(swap), "neg", "type")
        wrong = pos.join(near, [swap, "type"]).where(F.col("neg") != F.col(swap))
        wrong = wrong.withColumn("r", F.row_number().over(draw)).where(F.col("r") <= k)
        sides.append(wrong.select(keep, F.col("neg").alias(swap), "type", "group"))
    return sides[0].unionByName(sides[1])


def random_negatives(pos: pd.DataFrame, pool: pd.DataFrame, k: int, seed: int) -> pd.DataFrame:
    """k pairs (a, random b') and k pairs (random a', b) per positive, same type, never the gold partner."""
    rng = np.random.default_rng(seed)
    # Spark hands rows over in no fixed order: sort, so that the same seed draws the same pairs
    pos = pos.sort_values("group", kind="stable")
    pool = pool.sort_values(["kg", "type", "id"], kind="stable")
    rows = []
    for (kg, ntype), ids in pool.groupby(["kg", "type"])["id"]:
        ids = ids.to_numpy()
        mine = pos[pos["type"] == ntype]
        if mine.empty or len(ids) < 2:
            continue
        draws = ids[rng.integers(0, len(ids), size=(len(mine), k))]
        keep, other = ("id_a", "id_b") if kg == "B" else ("id_b", "id_a")
        frame = pd.DataFrame({keep: np.repeat(mine[keep].to_numpy(), k), other: draws.ravel(),
                              "type": ntype, "group": np.repeat(mine["group"].to_numpy(), k)})
        rows.append(frame[frame[other] != np.repeat(mine[other].to_numpy(), k)])
    columns = ["id_a", "id_b", "type", "group"]
    return pd.concat(rows, ignore_index=True)[columns] if rows else pd.DataFrame(columns=columns)


def labelled_negatives(pos: DataFrame, labelled: DataFrame) -> DataFrame:
    """The benchmark's train negatives, in the group of each positive they share an entity with,
    or in a group of their own (id from a hash, never equal to a positive's)."""
    neg = labelled.where("split = 'train' AND label = 0").select("id_a", "id_b", "type")
    by_a = neg.join(pos.select("id_a", "type", "group"), ["id_a", "type"])
    by_b = neg.join(pos.select("id_b", "type", "group"), ["id_b", "type"])
    grouped = by_a.unionByName(by_b)
    alone = neg.join(grouped, ["id_a", "id_b", "type"], "left_anti").withColumn(
        "group", F.xxhash64(F.lit("alone"), "id_a", "id_b"))
    return grouped.unionByName(alone)


def seeded_sample(links: DataFrame, limit: int | None, seed: int) -> DataFrame:
    """At most ``limit`` of the links, the same ones on every run with this seed (None: all)."""
    if not limit:
        return links
    return links.orderBy(F.xxhash64("id_a", "id_b", F.lit(seed)), "id_a", "id_b").limit(limit)


def valid_links(gold: DataFrame, cfg: TrainConfig) -> DataFrame:
    """(id_a, id_b, type) of the valid links the threshold is chosen on: those of the trained
    types, at most ``max_valid_links`` of them."""
    valid = gold.where("split = 'valid'")
    if cfg.train_types:
        valid = valid.where(F.col("type").isin(cfg.train_types))
    return seeded_sample(valid, cfg.max_valid_links, cfg.seed).select("id_a", "id_b", "type")


def pseudo_links(cands: DataFrame, evidence: DataFrame | None, cfg: TrainConfig) -> DataFrame:
    """train.labels none: (id_a, id_b, type, split) for the candidate pairs unambiguous by every
    cheap signal. A pair's ``agreement`` is its blocking similarity, averaged with its lexical
    cosine where ``evidence`` (id_a, id_b, type, lex_sim, code_conflict) has one; a pseudo-link
    is mutual best by it, at least ``pseudo_min_sim``, with every other candidate of either end
    at least ``pseudo_margin`` lower, and no identifier-code conflict. A seeded hash puts
    ``pseudo_valid_fraction`` of them in valid, the rest in train."""
    scored = cands.select("id_a", "id_b", "type", F.col("sim").alias("agreement"))
    if evidence is not None:
        scored = (scored.join(evidence, ["id_a", "id_b", "type"], "left")
                  .where(F.coalesce("code_conflict", F.lit(0.0)) == 0)
                  .withColumn("agreement", (F.col("agreement") + F.coalesce("lex_sim", "agreement")) / 2))
    second = {}
    for end, other in (("id_a", "id_b"), ("id_b", "id_a")):
        ranked = F.row_number().over(Window.partitionBy("type", end).orderBy(F.desc("agreement"), other))
        second[end] = (scored.withColumn("_rank", ranked).where(F.col("_rank") == 2)
                       .select("type", end, F.col("agreement").alias(f"second_{end}")))
    best = mutual_best(scored, "agreement", cfg.pseudo_min_sim)
    for end in ("id_a", "id_b"):
        best = best.join(second[end], ["type", end], "left")
    clear = ((F.col("agreement") - F.coalesce("second_id_a", F.lit(0.0)) >= cfg.pseudo_margin)
             & (F.col("agreement") - F.coalesce("second_id_b", F.lit(0.0)) >= cfg.pseudo_margin))
    u = F.pmod(F.xxhash64("id_a", "id_b", F.lit(cfg.seed)), F.lit(1_000_000)) / 1_000_000.0
    return best.where(clear).select("id_a", "id_b", "type", F.when(u < cfg.pseudo_valid_fraction, "valid")
                                    .otherwise("train").alias("split"))


def person_answers(ctx: StageContext) -> DataFrame | None:
    """The label job's answers, read once per train run; None before any."""
    return answered_labels(ctx.spark, ctx.paths)


def with_person_answers(pseudo: DataFrame, answers: DataFrame) -> DataFrame:
    """train.labels none with a person's answers: their matches become train links, and a
    pseudo-link goes where they contradict it: they answered that pair (not a match, or
    unsure), or matched one of its ends to another entity."""
    keys = ["id_a", "id_b", "type"]
    matched = answers.where(F.col("label") == 1).select(*keys)
    kept = pseudo.join(answers.select(*keys), keys, "left_anti")
    for end in ("id_a", "id_b"):
        kept = kept.join(matched.select(end, "type"), [end, "type"], "left_anti")
    return kept.unionByName(matched.withColumn("split", F.lit("train")))


def training_links(ctx: StageContext, answers: DataFrame | None) -> DataFrame:
    """The links the model learns from (id_a, id_b, type, split): the gold links and the label
    job's matches, or with train.labels none the run's pseudo-links; written to
    ``Paths.training_links`` where they are not the gold links alone."""
    spark, paths, cfg = ctx.spark, ctx.paths, ctx.config.train
    if cfg.labels == "gold":
        gold = spark.read.parquet(str(paths.gold))
        if answers is None:
            return gold
        # a person's "match" answers (the label job) are train links beside the known ones
        matched = (answers.where(F.col("label") == 1).select("id_a", "id_b", "type", F.lit("train").alias("split"))
                   .join(gold.select("id_a", "id_b", "type"), ["id_a", "id_b", "type"], "left_anti"))
        links = gold.select("id_a", "id_b", "type", "split").unionByName(matched)
    else:
        evidence_columns = [e.column for e in SPARK_EVIDENCE]
        computed = any(getattr(paths, e.source).exists() for e in SPARK_EVIDENCE)
        evidence = (spark.read.parquet(str(paths.shards)).select("id_a", "id_b", "type", *evidence_columns)
                    if computed else None)
        links = pseudo_links(spark.read.parquet(str(paths.candidates)), evidence, cfg)
        if answers is not None:
            links = with_person_answers(links, answers)
    # written once and read back: every later step reads plain files (and the Delta table's
    # partitioning never meets the gold's in one plan)
    links.write.mode("overwrite").parquet(str(paths.training_links))
    return spark.read.parquet(str(paths.training_links))


def pseudo_link_figures(ctx: StageContext, links: DataFrame, answers: DataFrame | None) -> dict:
    """How many pseudo-links the run used (a person's matches not counted) and, where gold links
    exist, how many of those of the types the gold links cover are right (pseudo-links of other
    types, say authors where only papers have gold links, can be judged by nothing)."""
    if answers is not None:
        links = links.join(answers.where(F.col("label") == 1).select("id_a", "id_b", "type"),
                           ["id_a", "id_b", "type"], "left_anti")
    counts = {r["split"]: r["count"] for r in links.groupBy("split").count().collect()}
    figures = {"pseudo_links": sum(counts.values()), "pseudo_valid": counts.get("valid", 0)}
    gold = ctx.spark.read.parquet(str(ctx.paths.gold))
    if not gold.isEmpty():
        judged = links.join(gold.select("type").distinct(), "type", "left_semi")
        n_judged = judged.count()
        right = judged.join(gold.select("id_a", "id_b", "type"), ["id_a", "id_b", "type"], "left_semi").count()
        figures |= {"pseudo_links_of_gold_types": n_judged, "pseudo_links_right": right,
                    "pseudo_precision": round(right / n_judged, 4) if n_judged else None}
    log.info("train: %d pseudo-links bootstrapped (%d to choose the threshold on)%s", figures["pseudo_links"],
             figures["pseudo_valid"], f"; of the {figures['pseudo_links_of_gold_types']} of types with gold "
             f"links, {figures['pseudo_links_right']} are gold links" if "pseudo_links_right" in figures else "")
    return figures


def user_label_counts(answers: DataFrame | None) -> dict:
    """How many of a person's answers (the label job) the fit learnt from, where there are any."""
    if answers is None:
        return {}
    counts = {r["label"]: r["count"] for r in answers.groupBy("label").count().collect()}
    return {"user_labels": {"match": counts.get(1, 0), "not": counts.get(0, 0), "unsure": counts.get(None, 0)}}


def build_rows(ctx: StageContext, gold: DataFrame, answers: DataFrame | None) -> DataFrame:
    """The train and valid pair-shard rows from ``gold`` (``training_links``) and a person's
    ``answers`` (``person_answers``)."""
    spark, paths, cfg = ctx.spark, ctx.paths, ctx.config.train
    # the benchmark's own labelled pairs are labels too: not read without labels
    labelled = (spark.read.parquet(str(paths.labelled))
                if paths.labelled.exists() and cfg.labels == "gold" else None)
    cands = spark.read.parquet(str(paths.candidates))
    index = spark.read.parquet(str(paths.node_index))
    hoods = spark.read.parquet(str(paths.neighbourhoods))
    if cfg.train_types:
        gold = gold.where(F.col("type").isin(cfg.train_types))

    pos = seeded_sample(gold.where("split = 'train'"), cfg.max_links, cfg.seed).select(
        "id_a", "id_b", "type", F.xxhash64("id_a", "id_b").alias("group"))
    pos_pd = pos.toPandas()
    if pos_pd.empty:
        raise ValueError("no gold links with split 'train': the train stage needs labelled pairs. Give known "
                         "matches, answer a few pairs with the label job (after a run), or set train.labels: none"
                         if cfg.labels == "gold" else
                         f"train.labels none found no pseudo-link (no candidate pair is its ends' best by "
                         f"{cfg.pseudo_margin} or more at similarity >= {cfg.pseudo_min_sim}): lower "
                         "train.pseudo_min_sim or train.pseudo_margin, or give labels")
    pool = index.join(hoods.select("nid"), "nid").select("kg", "id", "type")
    rand = random_negatives(pos_pd, pool.toPandas(), cfg.random_negatives, cfg.seed)
    negatives = hard_negatives(pos, cands, cfg.hard_negatives).unionByName(
        spark.createDataFrame(rand, schema="id_a string, id_b string, type string, group long"))
    if cfg.neighbour_negatives:
        edges = spark.read.parquet(str(paths.edges))
        negatives = negatives.unionByName(neighbour_negatives(pos, edges, pool, cfg.neighbour_negatives, cfg.seed))
    if labelled is not None:
        negatives = negatives.unionByName(labelled_negatives(pos, labelled))
    if answers is not None:  # a person's "not a match" answers (the label job)
        rejected = answers.where(F.col("label") == 0).select("id_a", "id_b", "type", F.lit(0).alias("label"),
                                                             F.lit("train").alias("split"))
        negatives = negatives.unionByName(labelled_negatives(pos, rejected))
    train = pos.withColumn("label", F.lit(1)).unionByName(
        negatives.dropDuplicates(["id_a", "id_b", "group"]).withColumn("label", F.lit(0))
    ).withColumn("split", F.lit("train"))

    if labelled is not None:
        valid = labelled.where("split = 'valid'").select(
            "id_a", "id_b", "type", F.lit(-1).cast("long").alias("group"), "label", "split")
    else:
        valid_gold = valid_links(gold, cfg)
        valid = touching(cands, valid_gold).select("id_a", "id_b", "type").unionByName(valid_gold).distinct()
        all_gold = gold.select("id_a", "id_b", "type", F.lit(1).alias("label"))
        valid = valid.join(all_gold, ["id_a", "id_b", "type"], "left").select(
            "id_a", "id_b", "type", F.lit(-1).cast("long").alias("group"),
            F.coalesce("label", F.lit(0)).alias("label"), F.lit("valid").alias("split"))
    rows = pair_rows(train.unionByName(valid), index, hoods, read_pair_evidence(spark, paths))
    rows.write.mode("overwrite").parquet(str(paths.train_pairs))
    return spark.read.parquet(str(paths.train_pairs))


def write_seed_anchors(ctx: StageContext, links: DataFrame | None = None) -> pd.DataFrame:
    """The train links (``training_links``) as (nid_a, nid_b), the anchors of the first
    collective round."""
    spark, paths = ctx.spark, ctx.paths
    links = training_links(ctx, person_answers(ctx)) if links is None else links
    seeds = seed_anchor_pairs(links, spark.read.parquet(str(paths.node_index)))
    if not ctx.config.collective.enabled:
        seeds = seeds.iloc[:0]
    write_anchors(seeds, paths.anchors(0))
    return seeds


def adopt_model(ctx: StageContext) -> StageResult:
    """Uses the base run's trained model instead of training: copied into this run, after
    checking that it fits this run's features and relations."""
    paths, base = ctx.paths, ctx.base
    checkpoint.require_compatible(base.model_dir, feature_blocks(paths.node_features),
                                  json.loads(paths.relations.read_text()))
    shutil.copytree(base.model_dir, paths.model_dir, dirs_exist_ok=True)
    seeds = write_seed_anchors(ctx)
    meta = json.loads(paths.model_config.read_text())
    return StageResult(rows_in=0, rows_out=1, details={"model_from_run": base.run_id, "model_version": meta["version"],
                                                       "threshold": round(meta["threshold"], 4),
                                                       "seed_anchors": len(seeds)})


def run(ctx: StageContext) -> StageResult:
    if ctx.base is not None:
        return adopt_model(ctx)
    paths, cfg = ctx.paths, ctx.config
    answers = person_answers(ctx)
    links = training_links(ctx, answers)
    rows = build_rows(ctx, links, answers)
    table = rows.toArrow().sort_by([("split", "ascending"), ("id_a", "ascending"), ("id_b", "ascending")])
    split = table.column("split").to_numpy(zero_copy_only=False)
    train_rows, valid_rows = table.filter(split == "train"), table.filter(split == "valid")
    if paths.labelled.exists() and cfg.train.labels == "gold":  # its valid pairs are all there is to find
        n_valid_gold = int((valid_rows.column("label").to_numpy() == 1).sum())
    else:  # every valid link, including those blocking lost
        n_valid_gold = valid_links(links, cfg.train).count()
    chosen_on = "valid"
    if n_valid_gold == 0:
        # a few labels, none of them valid: the threshold and the best epoch can only be chosen on
        # the train pairs, in sample (optimistic, but a run that aligns nothing helps no one)
        log.warning("train: no valid link to choose the threshold and the epoch on; choosing them on the train "
                    "pairs instead. Give more links, or a larger dataset.valid_fraction_of_train")
        valid_rows, chosen_on = train_rows, "train (no valid links)"
        n_valid_gold = int((train_rows.column("label").to_numpy() == 1).sum())
    relations = json.loads(paths.relations.read_text())
    features = map_matrix_file(write_matrix_file(paths.node_features, paths.node_feature_matrix))
    blocks = feature_blocks(paths.node_features)
    model_config = dataclasses.replace(cfg.model, level0_blocks=tuple(size for _, size in blocks),
                                       level0_kinds=tuple(kind for kind, _ in blocks),
                                       **evidence_switches(paths))
    seeds = write_seed_anchors(ctx, links)
    anchored = anchored_features(features, seeds.to_numpy()) if len(seeds) else None
    torch.set_num_threads(cfg.train.threads)
    result = fit(
        train_rows, valid_rows, n_valid_gold, features, 2 * len(relations), model_config,
        epochs=cfg.train.epochs, batch_size=cfg.train.batch_size, lr=cfg.train.lr,
        weight_decay=cfg.train.weight_decay, margin=cfg.train.margin, patience=cfg.train.patience,
        seed=cfg.train.seed, anchored=anchored, mixing_lr=cfg.train.mixing_lr,
    )
    version = checkpoint.save(
        result.model, paths.model_dir, result.threshold,
        extra={"valid_f1": result.valid_f1, "best_epoch": result.best_epoch, "history": result.history,
               "relations": relations},
    )
    n_pos = int((train_rows.column("label").to_numpy() == 1).sum())
    return StageResult(
        rows_in=table.num_rows, rows_out=1,
        details={"positives": n_pos, "train_rows": train_rows.num_rows, "valid_rows": valid_rows.num_rows,
                 "valid_f1": round(result.valid_f1, 4), "threshold": round(result.threshold, 4),
                 "threshold_chosen_on": chosen_on,
                 "best_epoch": result.best_epoch, "epochs_run": len(result.history), "model_version": version,
                 "seed_anchors": len(seeds),
                 **(pseudo_link_figures(ctx, links, answers) if cfg.train.labels == "none" else {}),
                 **user_label_counts(answers)},
    )

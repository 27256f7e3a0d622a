"""Accuracy on every public benchmark we hold, beside the published figures.

    DATA_DIR=../shared/data .venv/bin/python bench/quality.py [--datasets a,b] [--seeds 1,2,3]
    DATA_DIR=../shared/data .venv/bin/python bench/quality.py --ablation [--datasets ...] [--variants ...]
    DATA_DIR=../shared/data .venv/bin/python bench/quality.py --collect   # the table from runs made

For each dataset, the whole pipeline runs once per training seed (ingest, features, blocking and
extraction are deterministic, so later seeds reuse the first seed's outputs and rerun train ->
evaluate). Prints one table, mean ± sd over seeds, beside the published figure, and writes it
as JSON to bench/results/quality.json (ablation: quality_ablation.json).

Protocols (README "Evaluation"):
- entity-resolution sets: (a) the benchmark's labelled test pairs, threshold from its labelled
  valid pairs: F1, PR-AUC, recall at precision 0.95 (DeepMatcher's and Ditto's protocol);
  (b) end to end over the full tables and the full gold, blocking losses counted: P/R/F1/PR-AUC;
- KG-alignment sets: Hits@1, Hits@10, MRR of the test links among each entity's candidates.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.config import PipelineConfig, load_config  # noqa: E402
from pipeline.runner import STAGES, run_pipeline, setup_logging  # noqa: E402
from pipeline.schema import Paths  # noqa: E402
from pipeline.spark import get_spark  # noqa: E402
from pipeline.stage import read_stage_log  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
# the stages whose outputs a variant reuses: every one of them, as Paths.outputs lists them (a
# missing one changes what a later stage does: train reads the lexical similarity only where
# lexical_terms exists)
REUSED_STAGES = ("ingest", "features", "block", "extract")


def stages_from(first: str) -> list[str]:
    return list(STAGES)[list(STAGES).index(first):]


TRAIN_ON = stages_from("train")


@dataclass
class Dataset:
    name: str
    conf: str
    kind: str  # "er" (entity resolution tables) or "kg" (knowledge-graph alignment)
    # published figures on the same protocol: metric -> (value, source)
    published: dict[str, tuple[float, str]] = field(default_factory=dict)
    # a simple floor measured on this machine (figures given in the issue that asked for this
    # benchmark): entity resolution, gradient boosting on MiniLM title cosine plus fuzzy string
    # and numeric features; KG alignment, the names alone: metric -> value
    floor: dict[str, float] = field(default_factory=dict)
    end_to_end: bool = True  # False where the full tables are not available


DITTO = "Ditto (Li et al., VLDB 2021), Table 3"
JIANG = "Jiang et al. 2023, unsupervised multilingual encoder + bipartite matching"
# the best relation-triples-only approach in the OpenEA benchmark's 15K V1 results (mean of its
# five folds; ours is the one shipped 721 fold)
OPENEA = "BootEA, OpenEA (Sun et al., VLDB 2020), detailed 15K V1 results"
DATASETS = {d.name: d for d in [
    Dataset("dblp_acm", "conf/dblp_acm.yaml", "er", {"labelled_f1": (0.9899, DITTO)}, {"labelled_f1": 0.980}),
    Dataset("walmart_amazon", "conf/walmart_amazon.yaml", "er", {"labelled_f1": (0.8676, DITTO)}, {"labelled_f1": 0.735}),
    Dataset("amazon_google", "conf/amazon_google.yaml", "er", {"labelled_f1": (0.7558, DITTO)}, {"labelled_f1": 0.608}),
    Dataset("beer", "conf/beer.yaml", "er", {"labelled_f1": (0.9437, DITTO)}, {"labelled_f1": 0.903}),
    Dataset("fodors_zagats", "conf/fodors_zagats.yaml", "er", {"labelled_f1": (1.0, DITTO)}, {"labelled_f1": 1.0}),
    Dataset("itunes_amazon", "conf/itunes_amazon.yaml", "er", {"labelled_f1": (0.9706, DITTO)}, {"labelled_f1": 1.0},
            end_to_end=False),
    # KG sets: the floor is the names alone (bundled MiniLM on the translated names, each test
    # entity ranked among the test targets; figures given in the issue), plain and one-to-one
    # Jiang et al.'s figures come after a bipartite matching: the optimal one-to-one's protocol
    Dataset("dbp15k_zh_en", "conf/dbp15k_zh_en.yaml", "kg",
            {"test_targets_hits_at_1": (0.966, JIANG), "test_targets_hits_at_1_optimal_one_to_one": (0.966, JIANG)},
            {"test_targets_hits_at_1": 0.705, "test_targets_hits_at_1_one_to_one": 0.752}),
    Dataset("dbp15k_fr_en", "conf/dbp15k_fr_en.yaml", "kg",
            {"test_targets_hits_at_1": (0.996, JIANG), "test_targets_hits_at_1_optimal_one_to_one": (0.996, JIANG)},
            {"test_targets_hits_at_1": 0.918, "test_targets_hits_at_1_one_to_one": 0.960}),
    Dataset("srprs_fr_en", "conf/srprs_fr_en.yaml", "kg", {},
            {"test_targets_hits_at_1": 0.884, "test_targets_hits_at_1_one_to_one": 0.938}),
    Dataset("srprs_fr_en_nonames", "conf/srprs_fr_en_nonames.yaml", "kg"),
    Dataset("openea_d_w_15k", "conf/openea_d_w_15k.yaml", "kg", {"test_targets_hits_at_1": (0.5723, OPENEA)}),
    Dataset("openea_d_y_15k", "conf/openea_d_y_15k.yaml", "kg", {"test_targets_hits_at_1": (0.7391, OPENEA)}),
]}

# Ablation variants: (run-id slug, label, config overrides: section -> fields).
ABLATION = [
    ("full", "full model", {}),
    ("nocross", "- cross-graph attention", {"model": {"cross_attention": False}}),
    ("noself", "- self-attention", {"model": {"self_attention": False}}),
    ("uniform", "uniform sampling", {"extract": {"sampling": "uniform"}}),
    ("norel", "no relation features", {"model": {"relation_aware": False}}),
    ("nocollective", "no collective rounds", {"collective": {"enabled": False}}),
    ("nomatch", "- neighbour match term", {"model": {"neighbour_match": False}}),
    # the neighbour-match term also compares the two neighbourhoods across the graphs: without
    # both, whether cross-graph attention's share was taken over by it shows
    ("nocrossmatch", "- cross-graph attention, - neighbour match term",
     {"model": {"cross_attention": False, "neighbour_match": False}}),
    ("noskip", "paper's distance (no level-0 skip, no neighbour match)",
     {"model": {"level0_skip": False, "neighbour_match": False}}),
    ("static", "static name encoder (fast path)", {"features": {"encoder": "static"}}),
]
ABLATION_DATASETS = ["dblp_acm", "walmart_amazon", "dbp15k_fr_en"]


def first_changed_stage(overrides: dict[str, dict]) -> str:
    """The earliest stage whose output a variant's overrides change: the features, block or
    extract section reruns from that stage, any other section from train."""
    upstream = ["features", "block", "extract"]
    return next((stage for stage in upstream if stage in overrides), "train")


def with_overrides(cfg: PipelineConfig, overrides: dict[str, dict]) -> PipelineConfig:
    """A copy of the config with some fields of some sections replaced (validated again)."""
    raw = json.loads(cfg.model_dump_json())
    for section, fields in overrides.items():
        raw[section] = {**raw.get(section, {}), **fields}
    return PipelineConfig.model_validate(raw)


def reuse_upstream(cfg: PipelineConfig, source_run: str, target_run: str) -> None:
    """Copy a run's deterministic upstream outputs (features .. extract) under another run id."""
    src, dst = Paths(cfg.warehouse.resolve(), source_run), Paths(cfg.warehouse.resolve(), target_run)
    shutil.rmtree(dst.run, ignore_errors=True)
    dst.run.mkdir(parents=True)
    for stage in REUSED_STAGES:
        for have, want in zip(src.outputs(stage), dst.outputs(stage)):
            if have.is_dir():
                shutil.copytree(have, want)
            elif have.is_file():
                shutil.copy2(have, want)


def figures_of(metrics: dict, kind: str) -> dict[str, float]:
    out = {}
    if kind == "er":
        lab = metrics.get("labelled_test") or {}
        out |= {f"labelled_{k}": lab[k] for k in ("f1", "pr_auc", "recall_at_p95") if k in lab}
        out |= {f"e2e_{k}": metrics[k] for k in ("precision", "recall", "f1", "pr_auc")}
    else:
        ranks = ("hits_at_1", "hits_at_10", "mrr", "hits_at_1_one_to_one")
        out |= {k: metrics[k] for k in (*ranks, "pair_completeness")}
        # the literature's protocol (each test entity ranked among the test targets only): the
        # figures the published ones stand beside; runs evaluated before it (or before the
        # optimal one-to-one assignment) lack them
        among = metrics.get("among_test_targets") or {}
        out |= {f"test_targets_{k}": among[k] for k in (*ranks, "hits_at_1_optimal_one_to_one") if k in among}
        out["f1"] = metrics["f1"]
    stages = metrics["stages"]
    # the F1 on the valid split at the threshold chosen there: what a config is chosen on
    if metrics.get("train", {}).get("valid_f1") is not None:
        out["valid_f1"] = metrics["train"]["valid_f1"]
    out["features_seconds"] = stages["features"]["seconds"]
    out["train_seconds"] = stages["train"]["seconds"]
    out["score_seconds"] = stages["score"]["seconds"]
    out["total_seconds"] = round(sum(s["seconds"] for s in stages.values()), 1)
    return out


def extracted(cfg: PipelineConfig, run_id: str) -> bool:
    """Whether the run already went through extract (its stage log says so)."""
    return "extract" in read_stage_log(Paths(cfg.warehouse.resolve(), run_id).stage_log)


def run_seeds(spark, cfg: PipelineConfig, kind: str, tag: str, seeds: list[int],
              upstream_run: str | None = None, resume: bool = False, from_stage: str = "train") -> list[dict]:
    """One run per training seed; returns each run's figures. The first seed runs the whole
    pipeline unless ``upstream_run`` already holds features .. extract for this config (then
    only ``from_stage`` on runs: "extract" for a variant that samples differently), or
    ``resume`` is set and the first seed's own run already has them."""
    runs = []
    for i, seed in enumerate(seeds):
        run_id = f"{tag}-seed{seed}"
        seeded = with_overrides(cfg, {"train": {"seed": seed}})
        base = upstream_run if not i else f"{tag}-seed{seeds[0]}"
        if base:
            reuse_upstream(cfg, base, run_id)
            stages = stages_from(from_stage if not i else "train")
        elif resume and extracted(cfg, run_id):
            stages = TRAIN_ON
        else:
            stages = list(STAGES)
        summaries = run_pipeline(seeded, run_id, stages, spark=spark)
        metrics = summaries["evaluate"]["metrics"]
        runs.append(figures_of(metrics, kind))
        print(f"  {tag} seed {seed}: {json.dumps(runs[-1])}", flush=True)
    return runs


def mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0


def summarise(runs: list[dict]) -> dict[str, list[float]]:
    """Mean and sd per figure, over the runs that have it (a run evaluated before a figure was
    added lacks it)."""
    keys = dict.fromkeys(k for r in runs for k in r)
    return {k: [round(v, 4) for v in mean_sd([r[k] for r in runs if r.get(k) is not None])]
            for k in keys if any(r.get(k) is not None for r in runs)}


def fmt(ms: list[float] | None) -> str:
    if not ms:
        return "-"
    mean, sd = ms
    return f"{mean:.4f} ± {sd:.4f}" if mean < 10 else f"{mean:.0f} ± {sd:.0f}"


def print_table(rows: list[dict]) -> None:
    print(f"\n{'dataset':<22}{'metric':<36}{'ours (mean ± sd)':>22}{'floor':>8}{'published':>10}  source")
    for row in rows:
        ds = DATASETS.get(row["dataset"])
        for metric, ms in row["figures"].items():
            published = ds.published.get(metric) if ds else None
            floor = ds.floor.get(metric) if ds else None
            print(f"{row['dataset'] + row.get('variant', ''):<22}{metric:<36}{fmt(ms):>22}"
                  f"{'' if floor is None else f'{floor:.3f}':>8}"
                  f"{'' if published is None else f'{published[0]:.4f}':>10}  {published[1] if published else ''}")


def earlier_run(cfg: PipelineConfig, name: str, seeds: list[int]) -> str | None:
    """A quality run of the dataset, for other seeds than ``seeds``, that went through extract:
    its features .. extract outputs serve more seeds (``--resume --seeds 2,3`` after seed 1)."""
    own = {f"quality-{name}-seed{s}" for s in seeds}
    runs = sorted(Paths(cfg.warehouse.resolve(), "any").run.parent.glob(f"quality-{name}-seed*"))
    return next((r.name for r in runs if r.name not in own and extracted(cfg, r.name)), None)


def quality(spark, names: list[str], seeds: list[int], resume: bool) -> list[dict]:
    rows = []
    for name in names:
        ds = DATASETS[name]
        cfg = load_config(ds.conf)
        start = time.time()
        first_done = extracted(cfg, f"quality-{name}-seed{seeds[0]}")
        upstream = earlier_run(cfg, name, seeds) if resume and not first_done else None
        runs = run_seeds(spark, cfg, ds.kind, f"quality-{name}", seeds, upstream, resume=resume)
        rows.append(quality_row(ds, seeds, runs) | {"wall_seconds": round(time.time() - start, 1)})
    return rows


def quality_metrics(cfg: PipelineConfig, name: str, seed: int) -> Path:
    return Paths(cfg.warehouse.resolve(), f"quality-{name}-seed{seed}").metrics


def quality_row(ds: Dataset, seeds: list[int], runs: list[dict]) -> dict:
    figures = summarise(runs)
    if not ds.end_to_end:
        figures = {k: v for k, v in figures.items() if not k.startswith("e2e_")}
    return {"dataset": ds.name, "seeds": seeds, "figures": figures, "runs": runs}


def collect(names: list[str], seeds: list[int]) -> list[dict]:
    """The table from runs already made (their metrics.json), running nothing: for a long run
    that was stopped, or to print the table again."""
    rows = []
    for name in names:
        ds = DATASETS[name]
        cfg = load_config(ds.conf)
        done = [s for s in seeds if quality_metrics(cfg, name, s).is_file()]
        if done:
            runs = [figures_of(json.loads(quality_metrics(cfg, name, s).read_text()), ds.kind) for s in done]
            rows.append(quality_row(ds, done, runs))
    return rows


def ablation(spark, names: list[str], seeds: list[int], variants: list[str]) -> list[dict]:
    rows = []
    for name in names:
        ds = DATASETS[name]
        base_cfg = load_config(ds.conf)
        # variants that leave extraction alone reuse the upstream outputs (features .. extract)
        # of the quality run when there is one, else of the full model's own first run
        quality_run = f"quality-{name}-seed1"
        shared = quality_run if extracted(base_cfg, quality_run) else f"ablation-{name}-full-seed{seeds[0]}"
        for slug, variant, overrides in [v for v in ABLATION if v[0] in variants]:
            cfg = with_overrides(base_cfg, overrides)
            tag = f"ablation-{name}-{slug}"
            metrics = [quality_metrics(base_cfg, name, s) for s in seeds]
            if slug == "full" and all(m.is_file() for m in metrics):
                # the same config and seeds as the quality runs, which are deterministic: read them
                runs = [figures_of(json.loads(m.read_text()), ds.kind) for m in metrics]
                rows.append({"dataset": name, "variant": f" [{variant}]", "figures": summarise(runs), "runs": runs})
                continue
            own_upstream = slug == "full" and shared != quality_run
            runs = run_seeds(spark, cfg, ds.kind, tag, seeds, None if own_upstream else shared,
                             from_stage=first_changed_stage(overrides))
            rows.append({"dataset": name, "variant": f" [{variant}]", "figures": summarise(runs), "runs": runs})
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", help=f"comma-separated, from: {', '.join(DATASETS)}")
    p.add_argument("--seeds", default="1,2,3", help="training seeds (default 1,2,3)")
    p.add_argument("--ablation", action="store_true", help="the ablation table instead")
    p.add_argument("--variants", default=",".join(v[0] for v in ABLATION),
                   help=f"ablation variants to run (default all: {', '.join(v[0] for v in ABLATION)})")
    p.add_argument("--collect", action="store_true",
                   help="run nothing: print and write the table from the quality runs already made")
    p.add_argument("--resume", action="store_true",
                   help="reuse a dataset's earlier features .. extract outputs (same config: the first "
                        "seed's run, else a run of another seed) and retrain")
    args = p.parse_args(argv)
    setup_logging("INFO")  # each stage's summary line and training's epochs: progress on long runs
    seeds = [int(s) for s in args.seeds.split(",")]
    names = args.datasets.split(",") if args.datasets else (ABLATION_DATASETS if args.ablation else list(DATASETS))
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        p.error(f"unknown dataset(s) {', '.join(unknown)}; choose from {', '.join(DATASETS)}")
    if args.collect:
        rows = collect(names, seeds)
    else:
        spark = get_spark(load_config(DATASETS[names[0]].conf).spark, "kgmerge-quality")
        rows = (ablation(spark, names, seeds, args.variants.split(",")) if args.ablation
                else quality(spark, names, seeds, args.resume))
    print_table(rows)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / ("quality_ablation.json" if args.ablation else "quality.json")
    previous = json.loads(out.read_text()) if out.is_file() else {}
    previous.update({row["dataset"] + row.get("variant", ""): row for row in rows})
    out.write_text(json.dumps(previous, indent=2))
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()

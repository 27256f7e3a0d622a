"""Splink beside kgmerge: the same full tables, the same test links, the same figures.

    DATA_DIR=../shared/data .venv/bin/python bench/compare_splink.py \
        [--datasets dblp_acm,walmart_amazon,amazon_google] [--systems ours,splink]
    # ours read back from bench/quality.py's runs instead of run again:
    DATA_DIR=../shared/data .venv/bin/python bench/compare_splink.py \
        --warehouse-root warehouse --ours-run 'quality-{dataset}-seed1'

Needs the ``bench`` extra (``.venv/bin/pip install -e '.[bench]'``: Splink, DuckDB backend).
Prints one table (dataset, system, precision, recall, F1, PR-AUC, seconds, and our seconds
over Splink's) and writes the figures to bench/results/compare_splink.json (entries of datasets
not run are kept).

For each dataset, in one invocation:

1. ours: the whole pipeline (conf/<dataset>.yaml) as a user runs it, ``./spark-submit.sh
   pipeline``, in a process of its own, run id ``splink-compare``, in a warehouse of its own,
   ``<--warehouse-root>/<dataset>``, emptied first so that, like Splink, the run starts from the
   CSV files (name cache cold; ``--warm`` keeps it). Figures: the run's metrics.json. Seconds:
   the whole process, the JVM's start and the Python imports included.
2. Splink, unsupervised, its documented recipe, ``link_only`` between tableA and tableB of the
   same folder the config reads: blocking rules and comparisons (below, per dataset), then
   estimate_probability_two_random_records_match (deterministic rules and a guessed recall),
   estimate_u_using_random_sampling, estimate_parameters_using_expectation_maximisation
   (two sessions on different blocking rules, so that every comparison is trained once),
   predict. Seconds: from reading the CSVs to the predictions as a pandas frame, plus the
   import of Splink and DuckDB (measured once when this script starts).
3. Both scored by ``pipeline.evaluate.figures`` with the test and gold links read from our
   warehouse (input/gold, with its split), so the test links are the same for both. For
   Splink, scored = every pair it predicted, with its match_probability; two alignments:
   ``splink 1:1``: mutual best pairs with probability >= 0.5, our merge's resolution;
   ``splink all``: every pair with probability >= 0.5, Splink's own output.

Read the figures knowing that ours is trained on the benchmark's train split while Splink sees
no label; that Walmart-Amazon's gold is only the split's positives (a true match outside it
counts against precision, for both); and that the machine may be shared: ``load`` is the
1-minute load average when each system started.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

_import_start = time.time()
try:
    import splink
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on
except ImportError:
    sys.exit("bench/compare_splink.py needs Splink: .venv/bin/pip install -e '.[bench]'")
# Splink's and DuckDB's import, added to each Splink run as our JVM's start is to ours
SPLINK_IMPORT_SECONDS = time.time() - _import_start

from pipeline.config import load_config  # noqa: E402
from pipeline.evaluate import figures  # noqa: E402
from pipeline.runner import setup_logging  # noqa: E402
from pipeline.schema import Paths  # noqa: E402

RUN_ID = "splink-compare"
THRESHOLD = 0.5
RESULTS = REPO / "bench" / "results" / "compare_splink.json"
# a title word in at most this many titles (both tables) is "rare": products block on sharing one
RARE_DF = 50
U_MAX_PAIRS = 2e6
SEED = 1


# ---------------------------------------------------------------------------------------------
# Splink inputs: one row per record, the columns the comparisons and blocking rules read


def words(text) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower()) if isinstance(text, str) else []


def word_set(items) -> list[str] | None:
    """Sorted distinct words, None for none (Splink's null level)."""
    s = sorted(set(items))
    return s or None


def clean(col: pd.Series) -> pd.Series:
    return col.str.strip().str.lower().replace("", None)


def papers(a: pd.DataFrame, b: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """DBLP-ACM: title, author surnames, venue words, year."""
    def one(t: pd.DataFrame) -> pd.DataFrame:
        surnames = t.authors.map(lambda s: word_set(
            n.split()[-1] for n in s.split(",") if n.strip()) if isinstance(s, str) else None)
        return pd.DataFrame({
            "title": clean(t.title),
            "title_words": t.title.map(lambda s: word_set(words(s))),
            "surnames": surnames,
            "venue_words": t.venue.map(lambda s: word_set(words(s))),
            "year": clean(t.year),
        })
    return one(a), one(b)


def products(brand: str, modelno: str | None = None):
    """Walmart-Amazon / Amazon-Google: title words, rare title words (for blocking), the first
    two title words, model-number-like codes, brand, price (and the model number column)."""
    def prepare(a: pd.DataFrame, b: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        df = Counter(w for title in pd.concat([a.title, b.title]) for w in set(words(title)))

        def one(t: pd.DataFrame) -> pd.DataFrame:
            models = t[modelno] if modelno else pd.Series(None, index=t.index, dtype=object)
            out = pd.DataFrame({
                "title": clean(t.title),
                "title_words": t.title.map(lambda s: word_set(words(s))),
                "rare_words": t.title.map(lambda s: word_set(w for w in words(s) if df[w] <= RARE_DF)),
                "title_head": t.title.map(lambda s: " ".join(words(s)[:2]) or None),
                "codes": [word_set(codes(f"{x} {m}")) for x, m in zip(t.title, models)],
                "brand": clean(t[brand]),
                "price": pd.to_numeric(t.price, errors="coerce"),
            })
            if modelno:
                out["modelno"] = clean(t[modelno]).str.replace(r"[^a-z0-9]", "", regex=True).replace("", None)
            return out
        return one(a), one(b)
    return prepare


def codes(text: str) -> list[str]:
    """Model-number-like tokens: 3+ characters, a digit among them, punctuation dropped."""
    out = []
    for token in text.lower().split():
        token = re.sub(r"[^a-z0-9]", "", token)
        if len(token) >= 3 and re.search(r"[0-9]", token) and token != "nan":
            out.append(token)
    return out


# ---------------------------------------------------------------------------------------------
# Splink model: comparisons and rules


def word_jaccard(col: str, thresholds: list[float], exact_tf: str | None = None) -> cl.CustomComparison:
    """Jaccard of two word sets at thresholds; first an exact match of ``exact_tf`` with term
    frequency adjustment (a common exact title counts for less than a rare one)."""
    jac = f"len(list_intersect({col}_l, {col}_r)) / len(list_distinct(list_concat({col}_l, {col}_r)))"
    levels = [cll.NullLevel(col)]
    if exact_tf:
        levels.append(cll.ExactMatchLevel(exact_tf).configure(tf_adjustment_column=exact_tf))
    levels += [cll.CustomLevel(f"{jac} >= {t}", f"{col} jaccard >= {t}") for t in thresholds]
    return cl.CustomComparison(levels + [cll.ElseLevel()], output_column_name=col)


def price_comparison() -> cl.CustomComparison:
    levels = [cll.PercentageDifferenceLevel("price", p) for p in (0.05, 0.2, 0.5)]
    return cl.CustomComparison([cll.NullLevel("price"), *levels, cll.ElseLevel()], output_column_name="price")


@dataclass(frozen=True)
class SplinkModel:
    prepare: Callable[[pd.DataFrame, pd.DataFrame], tuple[pd.DataFrame, pd.DataFrame]]
    comparisons: list
    blocking: list  # blocking_rules_to_generate_predictions
    deterministic: list  # for estimate_probability_two_random_records_match
    # The guessed recall of the deterministic rules: the pairs they find over the records of the
    # smaller table (most of which should have a partner), rounded; no gold link is read. (A flat
    # 0.5 for the products, tried first, gave Amazon-Google F1 0.31 (1:1) / 0.32 (all).)
    recall: float
    em_blocking: list  # one EM session each


def paper_model() -> SplinkModel:
    return SplinkModel(
        prepare=papers,
        comparisons=[
            word_jaccard("title_words", [0.9, 0.7, 0.5], exact_tf="title"),
            word_jaccard("surnames", [0.9, 0.6, 0.3]),
            word_jaccard("venue_words", [0.5, 0.2]),
            cl.ExactMatch("year"),
        ],
        blocking=[block_on("substr(title, 1, 20)"), block_on("substr(title, -20)"), block_on("year", "surnames[1]")],
        deterministic=[block_on("title", "year")],
        recall=0.8,  # exact title and year: 2,016 pairs; ACM has 2,294 papers
        em_blocking=[block_on("substr(title, 1, 20)"), block_on("year", "surnames[1]")],
    )


def product_model(brand: str, recall: float, modelno: str | None = None) -> SplinkModel:
    comparisons = [
        word_jaccard("title_words", [0.8, 0.6, 0.4, 0.2], exact_tf="title"),
        cl.JaroWinklerAtThresholds("brand", [0.9]).configure(term_frequency_adjustments=True),
        cl.ArrayIntersectAtSizes("codes", [2, 1]),
        price_comparison(),
    ]
    blocking = [block_on("rare_words", arrays_to_explode=["rare_words"]), block_on("title_head")]
    deterministic = [block_on("title")]
    if modelno:
        comparisons.append(cl.JaroWinklerAtThresholds("modelno", [0.9]))
        blocking.append(block_on("modelno"))
        deterministic.append(block_on("modelno"))
    return SplinkModel(
        prepare=products(brand, modelno),
        comparisons=comparisons,
        blocking=blocking,
        deterministic=deterministic,
        recall=recall,
        em_blocking=[block_on("title_head"), block_on("brand")],
    )


@dataclass(frozen=True)
class Dataset:
    conf: str
    splink: Callable[[], SplinkModel]


DATASETS = {
    "dblp_acm": Dataset("conf/dblp_acm.yaml", paper_model),
    # exact title or model number: 677 pairs; Walmart has 2,554 products
    "walmart_amazon": Dataset("conf/walmart_amazon.yaml", lambda: product_model("brand", 0.3, "modelno")),
    # exact title: 103 pairs; Amazon has 1,363 products
    "amazon_google": Dataset("conf/amazon_google.yaml", lambda: product_model("manufacturer", 0.1)),
}


def run_splink(model: SplinkModel, folder: Path, entity_type: str) -> tuple[pd.DataFrame, float]:
    """Every pair Splink predicts: (id_a, id_b, score = match_probability), and the seconds."""
    start = time.time()
    raw = [pd.read_csv(folder / name, dtype=str, keep_default_na=False, na_values=[""])
           for name in ("tableA.csv", "tableB.csv")]
    tables = model.prepare(*raw)
    db = DuckDBAPI()
    inputs = []
    for kg, raw_t, t in zip("AB", raw, tables):
        t.insert(0, "unique_id", f"{entity_type}/" + raw_t["id"])
        inputs.append(db.register(t, dataset_display_name=kg))
    settings = SettingsCreator(
        link_type="link_only", comparisons=model.comparisons,
        blocking_rules_to_generate_predictions=model.blocking, retain_matching_columns=False,
    )
    linker = Linker(inputs, settings, log_level=logging.WARNING)
    linker.training.estimate_probability_two_random_records_match(model.deterministic, recall=model.recall)
    linker.training.estimate_u_using_random_sampling(max_pairs=U_MAX_PAIRS, seed=SEED)
    for rule in model.em_blocking:
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    pred = linker.inference.predict().as_pandas_dataframe()
    a_left = pred.source_dataset_l == "A"  # orient every pair as (table A, table B)
    scored = pd.DataFrame({
        "id_a": np.where(a_left, pred.unique_id_l, pred.unique_id_r),
        "id_b": np.where(a_left, pred.unique_id_r, pred.unique_id_l),
        "score": pred.match_probability.astype(float),
    })
    return scored, time.time() - start


def mutual_best(scored: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Our merge's resolution: each side the other's best partner, and at or above threshold."""
    best_a = scored.sort_values(["score", "id_b"], ascending=[False, True]).drop_duplicates("id_a")
    best_b = scored.sort_values(["score", "id_a"], ascending=[False, True]).drop_duplicates("id_b")
    both = best_a.merge(best_b[["id_a", "id_b"]], on=["id_a", "id_b"])
    return both[both.score >= threshold]


# ---------------------------------------------------------------------------------------------
# ours, and the shared gold


def fresh_warehouse(path: Path, warm: bool) -> None:
    """Empties this script's own warehouse (never the configs'); ``warm`` keeps the name cache."""
    if not path.exists():
        return
    for child in path.iterdir():
        if warm and child.name == "cache":
            continue
        shutil.rmtree(child) if child.is_dir() else child.unlink()


def run_ours(cfg) -> tuple[dict, float]:
    """The whole pipeline as a user runs it, ``./spark-submit.sh pipeline <config>``, timed as a
    whole process: the JVM's start and the Python imports count, as Splink's import does."""
    conf = cfg.warehouse / "compare.yaml"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(yaml.safe_dump(json.loads(cfg.model_dump_json())))
    start = time.time()
    subprocess.run([str(REPO / "spark-submit.sh"), "pipeline", str(conf), "--run-id", RUN_ID,
                    "--log-level", "WARNING"], check=True, cwd=REPO)
    seconds = time.time() - start
    return json.loads(Paths(cfg.warehouse.resolve(), RUN_ID).metrics.read_text()), seconds


def earlier_run(cfg, run_id: str) -> tuple[dict, float]:
    """An earlier run's metrics.json (e.g. bench/quality.py's ``quality-<dataset>-seed1``) and
    the sum of its stage seconds, in place of a fresh run of ours."""
    path = Paths(cfg.warehouse, run_id).metrics
    if not path.is_file():
        sys.exit(f"{path} is missing: run bench/quality.py for this dataset first, or drop --ours-run")
    metrics = json.loads(path.read_text())
    return metrics, sum(s["seconds"] for s in metrics.get("stages", {}).values())


def gold_links(cfg, run_id: str) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(test links, all gold links, the entity type) from our run's input/gold."""
    path = Paths(cfg.warehouse, run_id).gold
    if not path.exists():
        sys.exit(f"{path} is missing: run with --systems ours (it writes the warehouse) first")
    gold = pd.read_parquet(path)
    types = gold["type"].unique()
    if len(types) != 1:
        sys.exit(f"{path}: expected gold links of one entity type, found {sorted(types)}")
    return gold[gold.split == "test"], gold, str(types[0])


# ---------------------------------------------------------------------------------------------


KEYS = ("precision", "recall", "f1", "pr_auc", "recall_at_p95", "hits_at_1", "test_links", "aligned_touching_test")


def row(system: str, fig: dict, seconds: float, load: float | None, **extra) -> dict:
    """``load``: the machine's 1-minute load average when the system started (shared machines;
    None for an earlier run read back)."""
    return {"system": system, **{k: fig.get(k) for k in KEYS}, "seconds": round(seconds, 1),
            "load_avg_at_start": None if load is None else round(load, 1), "date": date.today().isoformat(),
            "timing": "whole process (JVM start and imports included; Splink with its import)", **extra}


def compare(name: str, ds: Dataset, systems: list[str], args) -> list[dict]:
    cfg = load_config(REPO / ds.conf)
    cfg = cfg.model_copy(update={"warehouse": args.warehouse_root / name})
    rows = []
    ours_run = args.ours_run.format(dataset=name) if args.ours_run else RUN_ID  # its gold is Splink's too
    if "ours" in systems and args.ours_run:
        metrics, seconds = earlier_run(cfg, ours_run)
        stages = {k: v["seconds"] for k, v in metrics.get("stages", {}).items()}
        rows.append(row(f"kgmerge ({ours_run})", metrics, seconds, None,
                        stage_seconds=stages))
    elif "ours" in systems:
        fresh_warehouse(cfg.warehouse, args.warm)
        load = os.getloadavg()[0]
        metrics, seconds = run_ours(cfg)
        stages = {k: v["seconds"] for k, v in metrics.get("stages", {}).items()}
        rows.append(row("kgmerge", metrics, seconds, load, stage_seconds=stages))
    if "splink" in systems:
        test, gold, entity_type = gold_links(cfg, ours_run)
        load = os.getloadavg()[0]
        scored, seconds = run_splink(ds.splink(), cfg.dataset.path, entity_type)
        seconds += SPLINK_IMPORT_SECONDS
        covered = len(set(zip(gold.id_a, gold.id_b)) & set(zip(scored.id_a, scored.id_b)))
        extra = {"pairs_scored": len(scored), "gold_links_in_scored": covered, "gold_links": len(gold)}
        one_to_one = figures(test, gold, mutual_best(scored, THRESHOLD), scored)
        all_pairs = figures(test, gold, scored[scored.score >= THRESHOLD], scored)
        rows.append(row("splink 1:1", one_to_one, seconds, load, **extra))
        rows.append(row("splink all", all_pairs, seconds, load, **extra))
    return rows


def print_table(results: dict[str, list[dict]]) -> None:
    print(f"\n{'dataset':<16}{'system':<36}{'precision':>10}{'recall':>8}{'F1':>8}{'PR-AUC':>8}{'seconds':>9}{'load':>6}")
    for name, rows in results.items():
        for r in rows:
            print(f"{name:<16}{r['system']:<36}{r['precision']:>10.4f}{r['recall']:>8.4f}{r['f1']:>8.4f}"
                  f"{r['pr_auc']:>8.4f}{r['seconds']:>9.1f}{'-' if r['load_avg_at_start'] is None else r['load_avg_at_start']:>6}")
        ratio = time_ratio(rows)
        if ratio is not None:
            print(f"{name:<16}{'our seconds / Splink seconds':<36}{ratio:>51.2f}")
    print("splink 1:1: mutual best pairs with match_probability >= 0.5 (our resolution); "
          "splink all: every pair >= 0.5; load: 1-minute load average when the system started")


def time_ratio(rows: list[dict]) -> float | None:
    """Our end-to-end seconds over Splink's, where both ran."""
    ours = [r["seconds"] for r in rows if r["system"].startswith("kgmerge")]
    theirs = [r["seconds"] for r in rows if r["system"].startswith("splink")]
    return round(ours[0] / theirs[0], 2) if ours and theirs else None


def write_json(results: dict[str, list[dict]]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    datasets = {**old.get("datasets", {}), **results}
    RESULTS.write_text(json.dumps({
        "date": date.today().isoformat(),
        "splink_version": splink.__version__,
        "cpus": os.cpu_count(),
        "protocol": "pipeline.evaluate.figures on our test links; bench/compare_splink.py docstring",
        "datasets": datasets,
    }, indent=2) + "\n")
    print(f"figures: {RESULTS.relative_to(REPO)}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Splink beside kgmerge on the same tables and test links.")
    p.add_argument("--datasets", default=",".join(DATASETS),
                   help=f"comma-separated, of {', '.join(DATASETS)} (default: all)")
    p.add_argument("--systems", default="ours,splink", help="ours, splink or both (default); "
                   "splink alone reads the gold links of an earlier run's warehouse")
    p.add_argument("--warehouse-root", type=Path, default=Path("/tmp/kgmerge-splink-compare"),
                   help="our warehouses, one folder per dataset (emptied before our run)")
    p.add_argument("--warm", action="store_true", help="keep the MiniLM name cache of the last run")
    p.add_argument("--ours-run", help="read ours from this earlier run instead of running it, e.g. "
                   "'quality-{dataset}-seed1' with --warehouse-root warehouse (bench/quality.py's runs); "
                   "seconds are then the sum of that run's stage seconds")
    args = p.parse_args(argv)
    args.datasets = args.datasets.split(",")
    args.systems = args.systems.split(",")
    unknown = [d for d in args.datasets if d not in DATASETS] + [s for s in args.systems if s not in ("ours", "splink")]
    if unknown:
        p.error(f"unknown: {', '.join(unknown)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.chdir(REPO)  # the configs' relative paths are relative to the repo root
    setup_logging("WARNING")
    results = {}
    for name in args.datasets:
        results[name] = compare(name, DATASETS[name], args.systems, args)
        print_table({name: results[name]})
        write_json({name: results[name]})  # as each dataset finishes: a long run keeps what it did
    print_table(results)


if __name__ == "__main__":
    main()

"""A report people can read, per run: ``<warehouse>/reports/<run_id>/index.html`` plus its PNGs
(copied to ``reports/latest`` as metrics.json is). Written at the end of the evaluate stage.

Sections: blocking diagnostics, score histogram of matches vs non-matches, precision-recall
curve with the model's threshold, per-type precision/recall/F1, the 20 most uncertain pairs,
and one pair explained by the attention the model gave each neighbour (model/explain.py).

Pure functions take pandas frames and dicts and return frames, figures or HTML;
``write_report`` reads the run's outputs (small Parquet reads with pandas/pyarrow, no Spark).
Labels: a candidate pair is a match when it is a gold link. The scope is the test split where
there is one (candidate pairs touching an end of a test link, as in pipeline/evaluate.py), else
every gold link.
"""
from __future__ import annotations

import html
import json
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from model import checkpoint  # noqa: E402
from model.explain import explain_row  # noqa: E402
from model.metrics import at_threshold, average_precision, pr_curve  # noqa: E402
from pipeline.pairs import touching_rows  # noqa: E402
from pipeline.schema import Paths  # noqa: E402

INDEX = "index.html"
UNCERTAIN = 20
MATCH, NON_MATCH = "#2a7ab0", "#e07b39"  # blue / orange, also for aligned / not aligned


# ---------------------------------------------------------------- blocking

def candidates_per_entity(cands: pd.DataFrame) -> pd.DataFrame:
    """(type, side, id, candidates): how many candidates each entity with any has, per side."""
    parts = [cands.groupby(["type", col]).size().rename("candidates").reset_index()
             .rename(columns={col: "id"}).assign(side=side)
             for side, col in (("A", "id_a"), ("B", "id_b"))]
    return pd.concat(parts, ignore_index=True)[["type", "side", "id", "candidates"]]


def blocking_table(cands: pd.DataFrame, gold: pd.DataFrame) -> pd.DataFrame:
    """Per type: candidates, candidates per entity (A and B), gold links and the share blocking kept."""
    per = candidates_per_entity(cands)
    found = gold.merge(cands[["id_a", "id_b", "type"]].drop_duplicates(), on=["id_a", "id_b", "type"],
                       how="left", indicator=True)
    found["kept"] = found["_merge"] == "both"
    rows = []
    for t in sorted(set(cands["type"]) | set(gold["type"])):
        a = per[(per.type == t) & (per.side == "A")].candidates
        b = per[(per.type == t) & (per.side == "B")].candidates
        g = found[found.type == t]
        test = g[g["split"] == "test"]
        rows.append({
            "type": t, "candidates": int((cands.type == t).sum()),
            "mean per A entity": round(a.mean(), 2) if len(a) else None,
            "median per A entity": float(a.median()) if len(a) else None,
            "max per A entity": int(a.max()) if len(a) else None,
            "mean per B entity": round(b.mean(), 2) if len(b) else None,
            "gold links": len(g),
            "pair completeness": round(g.kept.mean(), 4) if len(g) else None,
            "pair completeness (test)": round(test.kept.mean(), 4) if len(test) else None,
        })
    return pd.DataFrame(rows)


MAX_BINS = 60


def count_bins(top: int) -> np.ndarray:
    """Histogram bin edges for counts 1..top: one bin per count up to ``MAX_BINS``, above that
    ``MAX_BINS`` bins of growing width (log-spaced; an author with 17,634 candidates at 1M per
    side made matplotlib draw one bar per count and spend minutes on it)."""
    if top <= MAX_BINS:
        return np.arange(0.5, top + 1.5)
    return np.unique(np.round(np.geomspace(1, top + 1, MAX_BINS + 1))) - 0.5


def plot_candidates(per_entity: pd.DataFrame):
    """Histogram of candidates per entity, one panel per type, A and B side by side."""
    types = sorted(per_entity["type"].unique()) or ["(none)"]
    fig, axes = plt.subplots(1, len(types), figsize=(3.2 * len(types) + 1, 3.4), squeeze=False)
    for ax, t in zip(axes[0], types):
        sub = per_entity[per_entity.type == t]
        top = int(sub.candidates.max()) if len(sub) else 1
        ax.hist([sub[sub.side == "A"].candidates, sub[sub.side == "B"].candidates], bins=count_bins(top),
                label=["graph A", "graph B"], color=[MATCH, NON_MATCH])
        ax.set_title(t)
        ax.set_xlim(0.5, top + 0.5)
        if top > MAX_BINS:
            ax.set_xscale("log")
        elif top <= 12:
            ax.set_xticks(range(1, top + 1))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("candidates per entity")
        ax.set_ylabel("entities")
    axes[0][0].legend()
    fig.suptitle("Blocking: candidates per entity")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- scores

def labelled_pairs(scores: pd.DataFrame, gold: pd.DataFrame) -> tuple[pd.DataFrame, int, str]:
    """The scored candidate pairs in scope with ``match`` (a gold link or not), the number of
    gold links in scope (blocking losses included, so recall is end to end) and the scope."""
    test = gold[gold["split"] == "test"]
    scope, name = (test, "test split") if len(test) else (gold, "all gold links")
    touch = touching_rows(scores, scope) if len(scope) else scores
    links = set(zip(gold.id_a, gold.id_b))
    out = touch.assign(match=[p in links for p in zip(touch.id_a, touch.id_b)]).reset_index(drop=True)
    return out, max(len(scope), int(out.match.sum())), name


def plot_score_histogram(pairs: pd.DataFrame, threshold: float, scope: str):
    fig, ax = plt.subplots(figsize=(7, 3.8))
    bins = np.linspace(0, 1, 41)
    ax.hist([pairs[pairs.match].score, pairs[~pairs.match].score], bins=bins, color=[MATCH, NON_MATCH],
            label=[f"match ({int(pairs.match.sum())})", f"non-match ({int((~pairs.match).sum())})"],
            histtype="stepfilled", alpha=0.6)
    ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3f}")
    ax.set_yscale("log")
    ax.set_xlabel("model score")
    ax.set_ylabel("candidate pairs (log scale)")
    ax.set_title(f"Scores of gold-labelled candidate pairs ({scope})")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_pr(precision: np.ndarray, recall: np.ndarray, point: tuple[float, float], threshold: float, ap: float):
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.step(recall, precision, where="post", color=MATCH, label=f"PR curve (average precision {ap:.3f})")
    ax.plot([point[1]], [point[0]], "o", color="crimson", markersize=9,
            label=f"threshold {threshold:.3f}: P {point[0]:.3f}, R {point[1]:.3f}")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_title("Precision-recall over candidate scores")
    ax.legend(loc="lower left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def uncertain_pairs(pairs: pd.DataFrame, threshold: float, k: int = UNCERTAIN) -> pd.DataFrame:
    """The ``k`` pairs whose scores lie closest to the threshold (ties by ids, so stable)."""
    out = pairs.assign(distance=(pairs.score - threshold).abs())
    return out.sort_values(["distance", "id_a", "id_b"], kind="stable").head(k).reset_index(drop=True)


def default_pair(pairs: pd.DataFrame, threshold: float) -> tuple[str, str] | None:
    """The gold match scored closest to the threshold (the hardest one the model had to call)."""
    matches = pairs[pairs.match]
    if matches.empty:
        matches = pairs
    if matches.empty:
        return None
    top = uncertain_pairs(matches, threshold, 1).iloc[0]
    return str(top.id_a), str(top.id_b)


# ---------------------------------------------------------------- explanation

def relation_name(rel: int, relations: dict[str, int]) -> str:
    """A shard relation id as text; ids >= R are the edge read backwards (pipeline/schema.py)."""
    names = {i: n for n, i in relations.items()}
    r = len(relations)
    return names.get(rel, str(rel)) if rel < r else f"{names.get(rel - r, str(rel - r))} (inverse)"


def neighbour_frame(neighbours, other_side, anchors: np.ndarray, side: str,
                    index: pd.DataFrame, relations: dict[str, int]) -> pd.DataFrame:
    """One side's one-hop neighbours with name, relation, attention and the aligned counterpart
    among the other side's neighbours (from ``anchors``, the aligned pairs the model read)."""
    mine, theirs = (0, 1) if side == "A" else (1, 0)  # anchors' columns: (nid_a, nid_b)
    partners: dict[int, set[int]] = {}
    for n, m in zip(anchors[:, mine], anchors[:, theirs]):
        partners.setdefault(int(n), set()).add(int(m))
    other = {nb.nid for nb in other_side}
    names = index.set_index("nid")
    rows = []
    for pos, nb in enumerate(neighbours):
        hit = sorted(partners.get(nb.nid, set()) & other)
        rows.append({
            "position": pos, "nid": nb.nid,
            "name": names.name.get(nb.nid), "type": names.type.get(nb.nid),
            "relation": relation_name(nb.rel, relations), "attention": nb.weight,
            "aligned": bool(hit),
            "counterpart": "; ".join(str(names.name.get(h)) for h in hit) if hit else "",
        })
    return pd.DataFrame(rows, columns=["position", "nid", "name", "type", "relation", "attention",
                                       "aligned", "counterpart"])


def _short(text, n: int = 38) -> str:
    text = str(text)
    return text if len(text) <= n else text[: n - 1] + "…"


def plot_attention(side_a: pd.DataFrame, side_b: pd.DataFrame, title: str):
    """Horizontal bars of the attention per neighbour, one panel per side, coloured by whether
    the neighbour has an aligned counterpart among the other side's neighbours."""
    height = max(3.0, 0.32 * max(len(side_a), len(side_b), 1) + 1.6)
    fig, axes = plt.subplots(1, 2, figsize=(13, height))
    for ax, frame, label in ((axes[0], side_a, "graph A"), (axes[1], side_b, "graph B")):
        if frame.empty:
            ax.text(0.5, 0.5, "no neighbours", ha="center", va="center")
        else:
            y = np.arange(len(frame))
            ax.barh(y, frame.attention, color=[MATCH if a else NON_MATCH for a in frame.aligned])
            ax.set_yticks(y, [f"{_short(n)} [{r}]" for n, r in zip(frame.name, frame.relation)], fontsize=8)
            ax.invert_yaxis()
        ax.set_xlabel("attention weight (last layer)")
        ax.set_title(label)
    handles = [plt.Rectangle((0, 0), 1, 1, color=MATCH), plt.Rectangle((0, 0), 1, 1, color=NON_MATCH)]
    fig.legend(handles, ["aligned counterpart on the other side", "no aligned counterpart"],
               loc="lower center", ncol=2)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


# ---------------------------------------------------------------- HTML

def html_table(frame: pd.DataFrame, floats: int = 4) -> str:
    def cell(v) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return "–"
        if isinstance(v, (bool, np.bool_)):
            return "yes" if v else "no"
        if isinstance(v, (float, np.floating)):
            return f"{v:.{floats}f}"
        return html.escape(str(v))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def metrics_table(metrics: dict) -> pd.DataFrame:
    keys = ["test_links", "precision", "recall", "f1", "pr_auc", "hits_at_1", "mrr"]
    rows = [{"type": t, **{k: m.get(k) for k in keys}} for t, m in sorted((metrics.get("per_type") or {}).items())]
    rows.append({"type": "all (pooled)", **{k: metrics.get(k) for k in keys}})
    return pd.DataFrame(rows)


# An inline script marks <body data-images="loaded"> once every image has decoded, so that a
# headless browser's dumped DOM tells whether the page rendered whole (tests/test_report.py).
_CHECK_IMAGES = """<script>
window.addEventListener("load", function () {
  var imgs = Array.from(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.dataset.images = ok === imgs.length ? "loaded" : "missing";
  document.body.dataset.imagesLoaded = ok + "/" + imgs.length;
});
</script>"""

_STYLE = """<style>
body { font-family: sans-serif; margin: 2em auto; max-width: 1250px; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f0f0f0; }
img { max-width: 100%; display: block; margin: 0.8em 0; }
.note { color: #555; font-size: 0.9em; }
</style>"""


def section(anchor: str, title: str, *parts: str) -> str:
    return f'<section id="{anchor}"><h2>{html.escape(title)}</h2>\n' + "\n".join(parts) + "</section>\n"


def para(text: str, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<p{attr}>{html.escape(text)}</p>"


def image(src: str, alt: str) -> str:
    return f'<img src="{html.escape(src)}" alt="{html.escape(alt)}">'


def page(title: str, sections: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title>{_STYLE}</head>\n<body>\n<h1>{html.escape(title)}</h1>\n"
            + "".join(sections) + _CHECK_IMAGES + "\n</body></html>\n")


# ---------------------------------------------------------------- the run's report

def _save(fig, folder: Path, name: str) -> str:
    fig.savefig(folder / name, dpi=100)
    plt.close(fig)
    return name


def find_shard_row(shards: Path, id_a: str, id_b: str):
    """The pair's row of ``<run>/shards`` (a one-row Arrow table, without the partition column)."""
    import pyarrow.dataset as ds

    table = ds.dataset(str(shards), format="parquet", partitioning="hive").to_table(
        filter=(ds.field("id_a") == id_a) & (ds.field("id_b") == id_b))
    if table.num_rows == 0:
        raise LookupError(f"pair ({id_a}, {id_b}) is not a candidate pair in {shards}")
    if "shard" in table.column_names:
        table = table.drop_columns(["shard"])
    return table.slice(0, 1)


def explain_section(paths: Paths, anchors_path: Path, pair: tuple[str, str], scored: pd.DataFrame,
                    index: pd.DataFrame, folder: Path) -> str:
    row = find_shard_row(paths.shards, *pair)
    # the level-0 matrix the round read: remade anchor profiles (collective.bootstrap_profiles) or the features stage's
    round_no = int(anchors_path.stem.split("=")[1]) + 1
    bootstrapped = paths.bootstrapped_matrix(round_no)
    ex = explain_row(paths.model_dir, bootstrapped if bootstrapped.exists() else paths.node_features, anchors_path, row)
    relations = json.loads(paths.relations.read_text()) if paths.relations.is_file() else {}
    side_a = neighbour_frame(ex.side_a, ex.side_b, ex.anchors, "A", index, relations)
    side_b = neighbour_frame(ex.side_b, ex.side_a, ex.anchors, "B", index, relations)
    names = index.set_index("nid").name
    name_a, name_b = names.get(ex.nid_a), names.get(ex.nid_b)
    hit = scored[(scored.id_a == pair[0]) & (scored.id_b == pair[1])]
    stored = float(hit.score.iloc[0]) if len(hit) else None
    gold = bool(hit["match"].iloc[0]) if len(hit) and "match" in hit else None
    fig = plot_attention(side_a, side_b, f"Attention per neighbour: {_short(name_a, 50)} vs {_short(name_b, 50)}")
    png = _save(fig, folder, "explain_attention.png")
    cols = ["name", "type", "relation", "attention", "aligned", "counterpart"]
    summary = pd.DataFrame([
        {"side": "A", "id": pair[0], "name": name_a},
        {"side": "B", "id": pair[1], "name": name_b},
    ])
    parts = [
        para(f"Pair ({pair[0]}, {pair[1]}): score {ex.score:.4f} from the model re-run on its shard row"
             + (f" (scores table: {stored:.4f})" if stored is not None else "")
             + f", threshold {ex.threshold:.4f}"
             + ("" if gold is None else f"; gold says {'match' if gold else 'no match'}") + "."),
        html_table(summary),
        para("Each bar is one sampled one-hop neighbour and the attention the model's last layer gave it "
             "(each side's weights add up to 1). Blue: the neighbour has an aligned counterpart among the "
             "other side's neighbours (a seed link or an earlier round's confident match, the anchors the "
             "model read) — shared context that pulls the pair together. Orange: no counterpart — a "
             "difference that pushes it apart.", "note"),
        image(png, "attention per neighbour, both sides"),
        "<h3>Graph A neighbours</h3>", html_table(side_a[cols]),
        "<h3>Graph B neighbours</h3>", html_table(side_b[cols]),
    ]
    return section("explanation", "Explanation of one pair", *parts)


def labels_section(paths: Paths, names: pd.Series, metrics: dict) -> str:
    """The label job's answers (the Delta table is append-only, so its Parquet files are its
    rows): counts per person, the latest answers, and the model before and after them."""
    answers = pd.read_parquet(paths.labels).sort_values("labelled_at")
    latest = answers.drop_duplicates(["id_a", "id_b", "type"], keep="last")
    latest = latest.assign(answer=latest.label.map({1: "match", 0: "not a match"}).fillna("unsure"))
    counts = latest.groupby(["user", "answer"]).size().unstack(fill_value=0).reset_index()
    shown = latest.tail(UNCERTAIN).iloc[::-1]
    shown = pd.DataFrame({"name A": [names.get(("A", a)) for a in shown.id_a],
                          "name B": [names.get(("B", b)) for b in shown.id_b],
                          "answer": shown.answer, "user": shown.user, "at": shown.labelled_at.astype(str),
                          "chosen from run": shown.run_id})
    rows = []
    for run_id in sorted(set(latest.run_id) - {paths.run_id}) + [paths.run_id]:
        other = Paths(paths.warehouse, run_id)
        figures = metrics if run_id == paths.run_id else (
            json.loads(other.metrics.read_text()) if other.metrics.is_file() else None)
        if figures:
            rows.append({"run": run_id, "labels it learnt from": "this run's" if run_id == paths.run_id else "before",
                         "valid F1": (figures.get("train") or {}).get("valid_f1"), "F1": figures.get("f1"),
                         "precision": figures.get("precision"), "recall": figures.get("recall")})
    return section(
        "labels", "Labels given with the label job",
        para(f"{len(latest)} pairs answered ({paths.labels}); the train stage learns from the matches and "
             "non-matches beside the known links. The model of the run(s) whose scores chose the pairs, and "
             "this run's:"),
        html_table(pd.DataFrame(rows)) if rows else "", html_table(counts),
        f"<h3>The latest {min(UNCERTAIN, len(shown))} answers</h3>", html_table(shown))


def write_report(paths: Paths, anchors_round: int | None = None, pair: tuple[str, str] | None = None,
                 metrics: dict | None = None) -> Path:
    """Writes reports/<run_id>/index.html and its PNGs, copies them to reports/latest, returns
    the run's index.html. ``anchors_round``: the anchors file the last scoring round read
    (default: the highest there is); ``pair``: (id_a, id_b) to explain (default: the gold match
    scored closest to the threshold)."""
    latest, folder = paths.report_dirs()
    folder.mkdir(parents=True, exist_ok=True)
    metrics = metrics if metrics is not None else json.loads(paths.metrics.read_text())
    blocking = json.loads(paths.blocking_report.read_text()) if paths.blocking_report.is_file() else {}
    threshold = checkpoint.load(paths.model_dir).threshold
    if anchors_round is None:
        rounds = paths.anchor_rounds()
        anchors_round = rounds[-1] if rounds else 0
    gold, cands = pd.read_parquet(paths.gold), pd.read_parquet(paths.candidates)
    scores, index = pd.read_parquet(paths.scores), pd.read_parquet(paths.node_index)

    # 1. blocking
    per_entity = candidates_per_entity(cands)
    overview = pd.DataFrame([{
        "candidates": blocking.get("candidates"), "comparisons without blocking": blocking.get("comparisons_without_blocking"),
        "reduction ratio": blocking.get("reduction_ratio"),
        **{f"pair completeness ({k})": v for k, v in (blocking.get("pair_completeness") or {}).items()},
    }])
    sections = [section(
        "blocking", "Blocking diagnostics",
        para("Pair completeness: the share of gold links that blocking kept as candidate pairs "
             "(a lost link can never be aligned)."),
        html_table(overview), html_table(blocking_table(cands, gold), floats=4),
        image(_save(plot_candidates(per_entity), folder, "candidates_per_entity.png"), "candidates per entity"))]

    # 2, 3. scores and the PR curve
    pairs, n_pos, scope = labelled_pairs(scores, gold)
    prec, rec, _ = pr_curve(pairs.score.to_numpy(), pairs.match.to_numpy(), n_pos)
    point = at_threshold(pairs.score.to_numpy(), pairs.match.to_numpy(), n_pos, threshold)[:2]
    ap = average_precision(pairs.score.to_numpy(), pairs.match.to_numpy(), n_pos)
    sections.append(section(
        "scores", "Score histogram: matches vs non-matches",
        para(f"{len(pairs)} scored candidate pairs ({scope}); a pair is a match when it is a gold link."),
        image(_save(plot_score_histogram(pairs, threshold, scope), folder, "score_histogram.png"), "score histogram")))
    sections.append(section(
        "pr-curve", "Precision–recall curve",
        para(f"Every candidate pair scoring at or above the threshold ({threshold:.4f}, chosen on the valid "
             f"split, model/config.json) counts as a match: precision {point[0]:.4f}, recall {point[1]:.4f} "
             f"of {n_pos} gold links ({scope}; before merge's one-to-one step; links blocking lost count "
             "as missed)."),
        image(_save(plot_pr(prec, rec, point, threshold, ap), folder, "pr_curve.png"), "precision-recall curve")))

    # 4. per-type figures of the evaluate stage
    sections.append(section(
        "per-type", "Precision, recall and F1 per type",
        para("End to end on the test split, after merge's one-to-one step (metrics.json)."),
        html_table(metrics_table(metrics))))

    # 5. uncertain pairs
    names = index.assign(key=list(zip(index.kg, index.id))).set_index("key").name
    top = uncertain_pairs(pairs, threshold)
    shown = pd.DataFrame({
        "name A": [names.get(("A", a)) for a in top.id_a], "name B": [names.get(("B", b)) for b in top.id_b],
        "type": top.type, "score": top.score, "gold match": top.match, "id A": top.id_a, "id B": top.id_b})
    sections.append(section(
        "uncertain", f"The {UNCERTAIN} most uncertain pairs",
        para(f"Candidate pairs ({scope}) whose scores lie closest to the threshold {threshold:.4f}."),
        html_table(shown)))

    # 7 (where a person labelled pairs). Listed before the explanation, which is the longest.
    if paths.labels.exists():
        sections.append(labels_section(paths, names, metrics))

    # 6. one pair explained
    chosen = tuple(pair) if pair else default_pair(pairs, threshold)
    if chosen is None:
        raise ValueError("no candidate pair to explain: the scores table is empty")
    in_scope = ((pairs.id_a == chosen[0]) & (pairs.id_b == chosen[1])).any()
    sections.append(explain_section(paths, paths.anchors(anchors_round), chosen, pairs if in_scope else scores,
                                    index, folder))

    title = f"kgmerge report: {metrics.get('dataset', '')}, run {paths.run_id}"
    (folder / INDEX).write_text(page(title, sections), encoding="utf-8")
    if latest != folder:
        latest.mkdir(parents=True, exist_ok=True)
        for f in folder.iterdir():
            if f.suffix in (".html", ".png") and f.name != "screenshot.png":
                shutil.copy2(f, latest / f.name)
    return folder / INDEX

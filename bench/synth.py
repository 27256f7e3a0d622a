"""A pair of multi-type bibliographic KGs with gold links, at a chosen size, from the real
DBLP-ACM tables bundled in data/dblp_acm: for scale benchmarks (bench/scale.py).

    .venv/bin/python bench/synth.py --nodes 100000 --out warehouse/synth/100000 [--seed 1]

One "world" of papers, authors, venues and years is drawn from the real one, then each side
sees it through its own noise, the way two real bibliographies differ:

- titles: each world paper takes a real title and replaces about 40% of its words with words of
  other real titles (so titles are new but read like titles); 3% copy another paper's title
  exactly (a look-alike: same name, different paper, told apart by authors, venue, year);
- authors: real first and last names recombined; 5% share another author's name; side B
  abbreviates first names ("yannis e. ioannidis" -> "y. ioannidis") for 30% of authors;
  side A writes accents on 5% of names that side B transliterates ("muller" / "mueller");
- typos (B 8%, A 2% of names), a dropped word (B 8%) and swapped neighbouring words (B 5%);
- venues named "<phrase> conference on <topic>" on A are acronyms on B for half of them;
  venues are picked by a Zipf law and years by the real year distribution, so both become hubs
  (the biggest venue holds a few percent of all papers; each year thousands at 1M);
- authors per paper 1 + Poisson(1.8), picked by a Zipf law (a few very prolific authors: hubs);
- edges: B loses 5% and A 2% of authorship edges; B gains 2% spurious ones; 3% of B's papers
  carry a year off by one (attribute drift);
- entities: 4% of papers and 3% of authors are missing from each side, independently.

Node ids are opaque and shuffled per side, so nothing but the content links the sides. Output
(``--out``): nodes/, edges/, gold/ as Parquet in the pipeline's schema (dataset format
``tables``); gold splits are left to the adapter's seeded hash. Deterministic for a seed.
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
BASE = REPO / "data" / "dblp_acm"

ACCENTS = {"a": "ä", "o": "ö", "u": "ü", "e": "é", "c": "ç", "n": "ñ"}
TRANSLIT = {"ä": "ae", "ö": "oe", "ü": "ue", "é": "e", "ç": "c", "ñ": "n"}
TOPIC_PHRASES = ["international", "european", "asian", "annual", "joint", "ieee", "acm", "workshop"]


@dataclass
class Base:
    titles: list[list[str]]
    vocabulary: np.ndarray
    first_names: np.ndarray
    last_names: np.ndarray
    years: np.ndarray  # one entry per real paper: the year distribution


def read_base(folder: Path = BASE) -> Base:
    titles, firsts, lasts, years = [], set(), set(), []
    for table in ("tableA.csv", "tableB.csv"):
        with open(folder / table, encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                words = re.findall(r"[\w'-]+", row["title"].lower())
                if len(words) >= 2:
                    titles.append(words)
                for author in re.split(r"\s*,\s*", row["authors"] or ""):
                    parts = author.lower().split()
                    if len(parts) >= 2 and len(parts[0].strip(".")) > 1:
                        firsts.add(parts[0])
                        lasts.add(parts[-1])
                if row["year"].strip().isdigit():
                    years.append(int(row["year"]))
    vocabulary = sorted({w for t in titles for w in t if len(w) > 2})
    return Base(titles, np.array(vocabulary), np.array(sorted(firsts)), np.array(sorted(lasts)), np.array(years))


# --- name noise -------------------------------------------------------------------------------

def typo(s: str, rng: np.random.Generator) -> str:
    if len(s) < 4:
        return s
    i = int(rng.integers(1, len(s) - 1))
    op = int(rng.integers(4))
    letter = "abcdefghijklmnopqrstuvwxyz"[int(rng.integers(26))]
    if op == 0:
        return s[:i] + s[i + 1:]                       # deletion
    if op == 1:
        return s[:i - 1] + s[i] + s[i - 1] + s[i + 1:]  # swapped neighbours
    if op == 2:
        return s[:i] + letter + s[i + 1:]              # substitution
    return s[:i] + letter + s[i:]                      # insertion


def drop_word(s: str, rng: np.random.Generator) -> str:
    words = s.split()
    if len(words) < 4:
        return s
    del words[int(rng.integers(1, len(words)))]
    return " ".join(words)


def swap_words(s: str, rng: np.random.Generator) -> str:
    words = s.split()
    if len(words) < 3:
        return s
    i = int(rng.integers(len(words) - 1))
    words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def abbreviate_person(s: str) -> str:
    parts = s.split()
    return " ".join([p[0] + "." for p in parts[:-1]] + parts[-1:]) if len(parts) >= 2 else s


def acronym(s: str) -> str:
    return "".join(w[0] for w in s.split() if w not in {"on", "of", "and", "the", "conference"})


def accented(s: str, rng: np.random.Generator) -> str:
    spots = [i for i, ch in enumerate(s) if ch in ACCENTS]
    if not spots:
        return s
    i = spots[int(rng.integers(len(spots)))]
    return s[:i] + ACCENTS[s[i]] + s[i + 1:]


def transliterate(s: str) -> str:
    s = "".join(TRANSLIT.get(ch, ch) for ch in s)
    return unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode()


def noisy(names: list[str], rng: np.random.Generator, typo_p: float, drop_p: float, swap_p: float) -> list[str]:
    out = []
    draws = rng.random((len(names), 3))
    for name, (t, d, w) in zip(names, draws):
        if d < drop_p:
            name = drop_word(name, rng)
        if w < swap_p:
            name = swap_words(name, rng)
        if t < typo_p:
            name = typo(name, rng)
        out.append(name)
    return out


# --- the world --------------------------------------------------------------------------------

@dataclass
class World:
    types: np.ndarray        # entity index -> type name
    names: list[str]
    paper_author: np.ndarray  # [E, 2] entity indices (paper, author)
    paper_venue: np.ndarray   # [P, 2]
    paper_year: np.ndarray    # [P, 2] (paper, year entity)
    year_of: dict[int, int]   # year entity -> calendar year


def zipf_choice(rng: np.random.Generator, n: int, size: int, exponent: float) -> np.ndarray:
    """``size`` draws from 0..n-1 with P(rank r) ~ 1/r^exponent, ranks shuffled over the items."""
    p = 1.0 / np.arange(1, n + 1) ** exponent
    ranks = rng.choice(n, size=size, p=p / p.sum())
    return rng.permutation(n)[ranks]


def make_world(base: Base, n_nodes: int, rng: np.random.Generator) -> World:
    real_years = np.unique(base.years)
    n_venues = max(10, n_nodes // 400)
    n_papers = int(n_nodes * 0.45)
    n_authors = n_nodes - n_papers - n_venues - len(real_years)

    titles = []
    for _ in range(n_papers):
        words = list(base.titles[int(rng.integers(len(base.titles)))])
        k = max(1, int(round(0.4 * len(words))))
        for i in rng.choice(len(words), size=min(k, len(words)), replace=False):
            words[i] = base.vocabulary[int(rng.integers(len(base.vocabulary)))]
        titles.append(" ".join(words))
    lookalike = np.flatnonzero(rng.random(n_papers) < 0.03)
    for i in lookalike:
        titles[i] = titles[int(rng.integers(n_papers))]

    firsts = rng.choice(base.first_names, size=n_authors)
    middles = np.where(rng.random(n_authors) < 0.3,
                       np.char.add(rng.choice(list("abcdefghijklmnoprstw"), size=n_authors), ". "), "")
    lasts = rng.choice(base.last_names, size=n_authors)
    authors = [f"{f} {m}{l}" for f, m, l in zip(firsts, middles, lasts)]
    for i in np.flatnonzero(rng.random(n_authors) < 0.05):
        authors[i] = authors[int(rng.integers(n_authors))]

    venues = [f"{rng.choice(TOPIC_PHRASES)} conference on "
              f"{' '.join(rng.choice(base.vocabulary, size=int(rng.integers(2, 4))))}" for _ in range(n_venues)]
    year_names = [str(y) for y in real_years]

    types = np.array(["paper"] * n_papers + ["author"] * n_authors + ["venue"] * n_venues + ["year"] * len(real_years))
    names = titles + authors + venues + year_names
    author0, venue0, year0 = n_papers, n_papers + n_authors, n_papers + n_authors + n_venues

    # every author writes at least one paper; the rest of the authorships follow a Zipf law
    per_paper = 1 + np.minimum(rng.poisson(1.8, size=n_papers), 7)
    extra = int(per_paper.sum()) - n_authors
    first_paper = rng.integers(n_papers, size=n_authors)
    papers = np.concatenate([first_paper, rng.integers(n_papers, size=max(extra, 0))])
    who = np.concatenate([np.arange(n_authors), zipf_choice(rng, n_authors, max(extra, 0), 0.8)])
    paper_author = np.unique(np.stack([papers, author0 + who], axis=1), axis=0)

    paper_venue = np.stack([np.arange(n_papers), venue0 + zipf_choice(rng, n_venues, n_papers, 1.1)], axis=1)
    years = rng.choice(base.years, size=n_papers)
    year_index = {int(y): year0 + i for i, y in enumerate(real_years)}
    paper_year = np.stack([np.arange(n_papers), [year_index[int(y)] for y in years]], axis=1)
    return World(types, names, paper_author, paper_venue, paper_year,
                 {e: int(y) for y, e in year_index.items()})


# --- the two sides ----------------------------------------------------------------------------

def side_names(world: World, side: str, rng: np.random.Generator) -> list[str]:
    names = list(world.names)
    t = world.types
    people = np.flatnonzero(t == "author")
    if side == "A":
        for i in people[rng.random(len(people)) < 0.05]:
            names[i] = accented(names[i], rng)
        noisy_idx = np.flatnonzero((t == "paper") | (t == "author"))
        for i, n in zip(noisy_idx, noisy([names[i] for i in noisy_idx], rng, 0.02, 0.0, 0.0)):
            names[i] = n
        return names
    for i in people:
        names[i] = transliterate(names[i])
    for i in people[rng.random(len(people)) < 0.3]:
        names[i] = abbreviate_person(names[i])
    venues = np.flatnonzero(t == "venue")
    for i in venues[rng.random(len(venues)) < 0.5]:
        names[i] = acronym(names[i])
    papers = np.flatnonzero(t == "paper")
    for i, n in zip(papers, noisy([names[i] for i in papers], rng, 0.08, 0.08, 0.05)):
        names[i] = n
    for i, n in zip(people, noisy([names[i] for i in people], rng, 0.08, 0.0, 0.0)):
        names[i] = n
    return names


def present_on_side(world: World, rng: np.random.Generator) -> np.ndarray:
    keep = np.ones(len(world.types), dtype=bool)
    for typ, p in (("paper", 0.04), ("author", 0.03)):
        idx = np.flatnonzero(world.types == typ)
        keep[idx[rng.random(len(idx)) < p]] = False
    return keep


def side_edges(world: World, side: str, keep: np.ndarray, rng: np.random.Generator) -> list[tuple[int, str, int]]:
    pa_ = world.paper_author[rng.random(len(world.paper_author)) >= (0.05 if side == "B" else 0.02)]
    if side == "B":
        n_spurious = int(0.02 * len(world.paper_author))
        authors = np.flatnonzero(world.types == "author")
        spurious = np.stack([rng.choice(world.paper_venue[:, 0], n_spurious), rng.choice(authors, n_spurious)], axis=1)
        pa_ = np.unique(np.concatenate([pa_, spurious]), axis=0)
    years = world.paper_year.copy()
    if side == "B":
        drift = rng.random(len(years)) < 0.03
        year_entities = np.array(sorted(world.year_of))
        pos = np.searchsorted(year_entities, years[drift, 1]) + rng.choice([-1, 1], size=int(drift.sum()))
        years[drift, 1] = year_entities[np.clip(pos, 0, len(year_entities) - 1)]
    edges = []
    for rel, pairs in (("written_by", pa_), ("published_in", world.paper_venue), ("in_year", years)):
        ok = keep[pairs[:, 0]] & keep[pairs[:, 1]]
        edges += [(int(s), rel, int(d)) for s, d in pairs[ok]]
    return edges


def write_side_tables(world: World, out: Path, seed: int) -> dict:
    rng = np.random.default_rng(seed + 1)
    n = len(world.types)
    ids, present = {}, {}
    node_cols = {k: [] for k in ("kg", "id", "type", "name", "attrs")}
    edge_cols = {k: [] for k in ("kg", "src", "rel", "dst")}
    for side in ("A", "B"):
        keep = present_on_side(world, rng)
        names = side_names(world, side, rng)
        # opaque ids, shuffled per side
        ids[side] = np.array([f"{side.lower()}{i}" for i in rng.permutation(n)], dtype=object)
        present[side] = keep
        idx = np.flatnonzero(keep)
        node_cols["kg"] += [side] * len(idx)
        node_cols["id"] += ids[side][idx].tolist()
        node_cols["type"] += world.types[idx].tolist()
        node_cols["name"] += [names[i] for i in idx]
        node_cols["attrs"] += [None] * len(idx)
        edges = side_edges(world, side, keep, rng)
        edge_cols["kg"] += [side] * len(edges)
        edge_cols["src"] += [ids[side][s] for s, _, _ in edges]
        edge_cols["rel"] += [r for _, r, _ in edges]
        edge_cols["dst"] += [ids[side][d] for _, _, d in edges]
    both = np.flatnonzero(present["A"] & present["B"])
    gold = {"id_a": ids["A"][both].tolist(), "id_b": ids["B"][both].tolist(),
            "type": world.types[both].tolist(), "split": [None] * len(both)}
    schemas = {
        "nodes": pa.schema([("kg", pa.string()), ("id", pa.string()), ("type", pa.string()),
                            ("name", pa.string()), ("attrs", pa.map_(pa.string(), pa.string()))]),
        "edges": pa.schema([("kg", pa.string()), ("src", pa.string()), ("rel", pa.string()), ("dst", pa.string())]),
        "gold": pa.schema([("id_a", pa.string()), ("id_b", pa.string()), ("type", pa.string()), ("split", pa.string())]),
    }
    for name, cols in (("nodes", node_cols), ("edges", edge_cols), ("gold", gold)):
        (out / name).mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(cols, schema=schemas[name]), out / name / "part-0.parquet")
    return {"nodes_a": int(present["A"].sum()), "nodes_b": int(present["B"].sum()),
            "edges": len(edge_cols["kg"]), "gold": len(both)}


def generate(n_nodes: int, out: Path, seed: int = 1) -> dict:
    """Writes the pair of graphs (about ``n_nodes`` per side) under ``out``; returns counts."""
    start = time.time()
    world = make_world(read_base(), n_nodes, np.random.default_rng(seed))
    counts = write_side_tables(world, Path(out), seed)
    counts |= {"nodes_per_side_target": n_nodes, "seed": seed, "seconds": round(time.time() - start, 1),
               "by_type": {t: int((world.types == t).sum()) for t in np.unique(world.types)}}
    (Path(out) / "SOURCE.json").write_text(json.dumps(counts, indent=2))
    return counts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, required=True, help="entities per side (about)")
    p.add_argument("--out", type=Path, required=True, help="output folder (nodes/, edges/, gold/)")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    if args.nodes < 1000:
        p.error("--nodes must be at least 1000 (the world needs its venues and years)")
    print(json.dumps(generate(args.nodes, args.out, args.seed)), file=sys.stdout)


if __name__ == "__main__":
    main()

"""Cut the small test slices in tests/data from the full benchmark data (../shared/data).

Run once by hand (the slices are committed; tests never read ../shared):
    python tests/data/make_slices.py [DATA_DIR]
DBLP-ACM: a seeded sample of gold links from each split plus unmatched papers of each side,
with the split files kept to pairs inside the slice. DBP15K fr_en: a seeded sample of links,
the triples among their entities, and their names.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
SEED = 11


def dblp_acm(src: Path, dst: Path, per_split=(("train", 160), ("valid", 50), ("test", 50)), unmatched=60):
    rng = np.random.default_rng(SEED)
    dst.mkdir(parents=True, exist_ok=True)
    a, b = pd.read_csv(src / "tableA.csv", dtype=str), pd.read_csv(src / "tableB.csv", dtype=str)
    gold = pd.read_csv(src / "matches_2224.csv", dtype=str)
    splits = {s: pd.read_csv(src / f"{s}.csv", dtype=str) for s, _ in per_split}
    keep_a, keep_b = set(), set()
    for s, n in per_split:
        pos = splits[s][splits[s].label == "1"]
        pick = pos.iloc[rng.choice(len(pos), n, replace=False)]
        keep_a |= set(pick.ltable_id)
        keep_b |= set(pick.rtable_id)
    matched_a, matched_b = set(gold.ltable_id), set(gold.rtable_id)
    free_a = sorted(set(a.id) - matched_a)
    free_b = sorted(set(b.id) - matched_b)
    keep_a |= set(rng.choice(free_a, min(unmatched, len(free_a)), replace=False))
    keep_b |= set(rng.choice(free_b, min(unmatched, len(free_b)), replace=False))
    a[a.id.isin(keep_a)].to_csv(dst / "tableA.csv", index=False)
    b[b.id.isin(keep_b)].to_csv(dst / "tableB.csv", index=False)
    inside = lambda df: df[df.ltable_id.isin(keep_a) & df.rtable_id.isin(keep_b)]  # noqa: E731
    inside(gold).to_csv(dst / "matches_2224.csv", index=False)
    for s, df in splits.items():
        inside(df).to_csv(dst / f"{s}.csv", index=False)


def dbp15k(src: Path, dst: Path, links=400):
    rng = np.random.default_rng(SEED)
    dst.mkdir(parents=True, exist_ok=True)
    ref = pd.read_csv(src / "ref_ent_ids", sep="\t", header=None, dtype=str)
    ref = ref.iloc[np.sort(rng.choice(len(ref), links, replace=False))]
    ref.to_csv(dst / "ref_ent_ids", sep="\t", header=False, index=False)
    keep = set(ref[0]) | set(ref[1])
    for n in (1, 2):
        ents = pd.read_csv(src / f"ent_ids_{n}", sep="\t", header=None, dtype=str, quoting=3)
        ents[ents[0].isin(keep)].to_csv(dst / f"ent_ids_{n}", sep="\t", header=False, index=False, quoting=3)
        tri = pd.read_csv(src / f"triples_{n}", sep="\t", header=None, dtype=str)
        tri[tri[0].isin(keep) & tri[2].isin(keep)].to_csv(dst / f"triples_{n}", sep="\t", header=False, index=False)
    names = json.loads((src / "translated_ent_name.json").read_text(encoding="utf-8"))
    kept = [e for e in names if str(e[0]) in keep]
    (dst / "translated_ent_name.json").write_text(json.dumps(kept, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[2] / "shared" / "data"
    dblp_acm(data / "magellan-deepmatcher" / "Structured" / "DBLP-ACM", HERE / "dblp_acm_small")
    dbp15k(data / "dbp15k" / "fr_en", HERE / "dbp15k_fr_en_small")

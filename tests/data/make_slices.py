"""Cut the small test slices in tests/data from the full benchmark data (../shared/data).

Run once by hand (the slices are committed; tests never read ../shared):
    python tests/data/make_slices.py [DATA_DIR]
DBLP-ACM: a seeded sample of gold links from each split plus unmatched papers of each side,
with the split files kept to pairs inside the slice. DBP15K fr_en: a seeded sample of links,
the triples among their entities, and their names. SRPRS fr_en: links grown from a seeded
sample along graph 1's triples, their triples and names, split as shipped. Walmart-Amazon: the
ends of a seeded sample of labelled pairs (positives and negatives) of each split plus unmatched
products of each side, with every labelled pair and gold link whose both ends are kept.
Fodors-Zagats (Ditto pair files, no tables): a seeded sample of pair lines of each split, then
every line whose left and right records are both among the sampled lines' records.
Flat products: the Walmart-Amazon slice as two flat record tables in the ``tables`` CSV format
with no edges at all (brand, model number, category and price as plain attributes) and its gold
links without a split: a user's two product tables.
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


def srprs(src: Path, dst: Path, seeds=40, size=300):
    """Links grown from a seeded sample along graph 1's triples (a plain sample of 300 of the
    15,000 entities would keep almost no triple), each written back to its file: the shipped
    train (sup_ent_ids) or test (ref_ent_ids) links. Lines end in CRLF, as in the source."""
    rng = np.random.default_rng(SEED)
    dst.mkdir(parents=True, exist_ok=True)
    links = pd.concat([pd.read_csv(src / f, sep="\t", header=None, dtype=str).assign(f=f)
                       for f in ("sup_ent_ids", "ref_ent_ids")], ignore_index=True)
    tri1 = pd.read_csv(src / "triples_1", sep="\t", header=None, dtype=str)
    nbrs = pd.concat([tri1[[0, 2]], tri1[[2, 0]].set_axis([0, 2], axis=1)]).groupby(0)[2].agg(sorted)
    by_a = links.set_index(0)
    picked = list(links[0].iloc[np.sort(rng.choice(len(links), seeds, replace=False))])
    seen, i = set(picked), 0
    while len(picked) < size and i < len(picked):
        for n in nbrs.get(picked[i], []):
            if n not in seen and n in by_a.index and len(picked) < size:
                seen.add(n)
                picked.append(n)
        i += 1
    ref = links[links[0].isin(seen)]
    for f, part in ref.groupby("f"):
        part[[0, 1]].to_csv(dst / f, sep="\t", header=False, index=False, lineterminator="\r\n")
    keep = set(ref[0]) | set(ref[1])
    for n in (1, 2):
        ents = pd.read_csv(src / f"ent_ids_{n}", sep="\t", header=None, dtype=str, quoting=3)
        ents[ents[0].isin(keep)].to_csv(dst / f"ent_ids_{n}", sep="\t", header=False, index=False, quoting=3,
                                        lineterminator="\r\n")
        tri = pd.read_csv(src / f"triples_{n}", sep="\t", header=None, dtype=str)
        tri[tri[0].isin(keep) & tri[2].isin(keep)].to_csv(dst / f"triples_{n}", sep="\t", header=False, index=False,
                                                          lineterminator="\r\n")
    names = json.loads((src / "translated_ent_name.json").read_text(encoding="utf-8"))
    kept = [e for e in names if str(e[0]) in keep]
    (dst / "translated_ent_name.json").write_text(json.dumps(kept, ensure_ascii=False), encoding="utf-8")


def walmart_amazon(src: Path, dst: Path, per_split=(("train", 60, 60), ("valid", 20, 20), ("test", 20, 20)),
                   unmatched=30):
    rng = np.random.default_rng(SEED)
    dst.mkdir(parents=True, exist_ok=True)
    a, b = pd.read_csv(src / "tableA.csv", dtype=str), pd.read_csv(src / "tableB.csv", dtype=str)
    gold = pd.read_csv(src / "matches.csv", dtype=str)
    splits = {s: pd.read_csv(src / f"{s}.csv", dtype=str) for s, _, _ in per_split}
    keep_a, keep_b = set(), set()
    for s, n_pos, n_neg in per_split:
        for label, n in (("1", n_pos), ("0", n_neg)):
            part = splits[s][splits[s].label == label]
            pick = part.iloc[rng.choice(len(part), n, replace=False)]
            keep_a |= set(pick.ltable_id)
            keep_b |= set(pick.rtable_id)
    free_a = sorted(set(a.id) - set(gold.ltable_id) - keep_a)
    free_b = sorted(set(b.id) - set(gold.rtable_id) - keep_b)
    keep_a |= set(rng.choice(free_a, min(unmatched, len(free_a)), replace=False))
    keep_b |= set(rng.choice(free_b, min(unmatched, len(free_b)), replace=False))
    a[a.id.isin(keep_a)].to_csv(dst / "tableA.csv", index=False)
    b[b.id.isin(keep_b)].to_csv(dst / "tableB.csv", index=False)
    inside = lambda df: df[df.ltable_id.isin(keep_a) & df.rtable_id.isin(keep_b)]  # noqa: E731
    inside(gold).to_csv(dst / "matches.csv", index=False)
    for s, df in splits.items():
        inside(df).to_csv(dst / f"{s}.csv", index=False)


def fodors_zagats(src: Path, dst: Path, per_split=(("train", 30, 120), ("valid", 10, 40), ("test", 10, 40))):
    rng = np.random.default_rng(SEED)
    dst.mkdir(parents=True, exist_ok=True)
    lines = {s: (src / f"{s}.txt").read_text(encoding="utf-8").splitlines() for s, _, _ in per_split}

    def ends(line: str) -> list[str]:  # left, right, label
        return [f.strip() for f in line.split("\t")]

    keep_l, keep_r = set(), set()
    for s, n_pos, n_neg in per_split:
        for label, n in (("1", n_pos), ("0", n_neg)):
            part = [ln for ln in lines[s] if ends(ln)[2] == label]
            for i in rng.choice(len(part), n, replace=False):
                left, right, _ = ends(part[i])
                keep_l.add(left)
                keep_r.add(right)
    for s, ls in lines.items():
        kept = [ln for ln in ls if ends(ln)[0] in keep_l and ends(ln)[1] in keep_r]
        (dst / f"{s}.txt").write_text("".join(ln + "\n" for ln in kept), encoding="utf-8")


def flat_products(src: Path, dst: Path):
    """From the walmart_amazon_small slice (src), not from ../shared: nodes.csv, an edges.csv with
    its header only, gold.csv without splits."""
    dst.mkdir(parents=True, exist_ok=True)
    sides = []
    for kg, table in (("A", "tableA.csv"), ("B", "tableB.csv")):
        t = pd.read_csv(src / table, dtype=str)
        sides.append(pd.DataFrame({"kg": kg, "id": t["id"], "type": "product", "name": t["title"],
                                   "brand": t["brand"], "modelno": t["modelno"], "category": t["category"],
                                   "price": t["price"]}))
    pd.concat(sides).to_csv(dst / "nodes.csv", index=False)
    (dst / "edges.csv").write_text("kg,src,rel,dst\n")
    gold = pd.read_csv(src / "matches.csv", dtype=str)
    pd.DataFrame({"id_a": gold.ltable_id, "id_b": gold.rtable_id, "type": "product"}).to_csv(dst / "gold.csv", index=False)


if __name__ == "__main__":
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[2] / "shared" / "data"
    dblp_acm(data / "magellan-deepmatcher" / "Structured" / "DBLP-ACM", HERE / "dblp_acm_small")
    dbp15k(data / "dbp15k" / "fr_en", HERE / "dbp15k_fr_en_small")
    srprs(data / "srprs-15k" / "fr_en", HERE / "srprs_fr_en_small")
    walmart_amazon(data / "magellan-deepmatcher" / "Structured" / "Walmart-Amazon", HERE / "walmart_amazon_small")
    fodors_zagats(data / "ditto-er-magellan" / "Structured" / "Fodors-Zagats", HERE / "fodors_zagats_small")
    flat_products(HERE / "walmart_amazon_small", HERE / "flat_products_small")

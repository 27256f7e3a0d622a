"""Writes the bad-input corpus (one folder per case, ``tables`` format, CSV) from a few real
DBLP-ACM records of tests/data/dblp_acm_small. Rerun after changing it:
``.venv/bin/python tests/data/bad/make_bad.py``; tests/test_bad_input.py says what each case
must do. The cases that need big files (a node with 100,000 neighbours) are built by the test.
"""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
SLICE = HERE.parent / "dblp_acm_small"
N_PAPERS = 8


def base() -> dict[str, list[dict]]:
    """A small two-graph bibliography: papers, their authors and venues, gold paper links."""
    a = pd.read_csv(SLICE / "tableA.csv", dtype=str, keep_default_na=False)
    b = pd.read_csv(SLICE / "tableB.csv", dtype=str, keep_default_na=False)
    gold = pd.read_csv(SLICE / "matches_2224.csv", dtype=str).head(N_PAPERS)
    nodes, edges, links = [], [], []
    for kg, table, ids in (("A", a, gold.ltable_id), ("B", b, gold.rtable_id)):
        seen = set()
        for row in table.set_index("id").loc[list(ids)].reset_index().itertuples():
            pid = f"paper/{row.id}"
            nodes.append({"kg": kg, "id": pid, "type": "paper", "name": row.title, "year": row.year})
            for author in (x.strip() for x in row.authors.split(",") if x.strip()):
                aid = f"author/{author}"
                if aid not in seen:
                    seen.add(aid)
                    nodes.append({"kg": kg, "id": aid, "type": "author", "name": author, "year": ""})
                edges.append({"kg": kg, "src": pid, "rel": "written_by", "dst": aid})
            vid = f"venue/{row.venue}"
            if vid not in seen:
                seen.add(vid)
                nodes.append({"kg": kg, "id": vid, "type": "venue", "name": row.venue, "year": ""})
            edges.append({"kg": kg, "src": pid, "rel": "published_in", "dst": vid})
    for i, (la, rb) in enumerate(zip(gold.ltable_id, gold.rtable_id)):
        links.append({"id_a": f"paper/{la}", "id_b": f"paper/{rb}", "type": "paper",
                      "split": ("train", "train", "valid")[i % 3] if i < 6 else "test"})
    return {"nodes": nodes, "edges": edges, "gold": links}


def write(case: str, tables: dict[str, list[dict]], delimiter: str = ",", encoding: str = "utf-8") -> None:
    folder = HERE / case
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for name, rows in tables.items():
        with open(folder / f"{name}.csv", "w", newline="", encoding=encoding) as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter=delimiter, lineterminator="\n")
            w.writeheader()
            w.writerows(rows)


def copy(tables):
    return {k: [dict(r) for r in v] for k, v in tables.items()}


def main() -> None:
    good = base()
    write("good", good)

    t = copy(good)  # names: empty, blank; their edges then point at rejected nodes
    t["nodes"][0]["name"] = ""
    t["nodes"][1]["name"] = "   "
    write("missing_names", t)

    t = copy(good)  # the same id twice in graph A, with different names
    t["nodes"].append({**t["nodes"][0], "name": t["nodes"][0]["name"] + " (extended version)"})
    write("duplicate_ids", t)

    t = copy(good)  # edges and a gold link pointing at nodes that do not exist
    t["edges"].append({"kg": "A", "src": "paper/999999", "rel": "written_by", "dst": t["edges"][0]["dst"]})
    t["edges"].append({"kg": "B", "src": t["edges"][-2]["src"], "rel": "written_by", "dst": "author/nobody"})
    t["gold"].append({"id_a": "paper/888888", "id_b": t["gold"][0]["id_b"], "type": "paper", "split": "test"})
    t["gold"].append({"id_a": t["gold"][1]["id_a"], "id_b": t["gold"][1]["id_b"], "type": "paper", "split": "tset"})
    write("unknown_ends", t)

    t = copy(good)  # a paper citing itself; the same edge twice
    p = t["nodes"][0]["id"]
    t["edges"].append({"kg": "A", "src": p, "rel": "cites", "dst": p})
    t["edges"].append(dict(t["edges"][0]))
    write("self_loops", t)

    t = copy(good)  # names in several scripts (kept as they are)
    extra = [("A", "author/jürgen müller", "jürgen müller"), ("B", "author/юрген мюллер", "Юрген Мюллер"),
             ("A", "author/山田太郎", "山田太郎"), ("B", "author/yamada taro", "Yamada Tarō"),
             ("A", "author/αλέξανδρος", "Αλέξανδρος Παπαδόπουλος"), ("B", "author/محمد", "محمد علي")]
    for kg, nid, name in extra:
        t["nodes"].append({"kg": kg, "id": nid, "type": "author", "name": name, "year": ""})
        paper = next(n["id"] for n in t["nodes"] if n["kg"] == kg and n["type"] == "paper")
        t["edges"].append({"kg": kg, "src": paper, "rel": "written_by", "dst": nid})
    write("mixed_script", t)

    t = copy(good)  # Latin-1 bytes in a file read as UTF-8
    t["nodes"][2]["name"] = "josé blakeley"
    t["nodes"][2]["id"] = "author/josé blakeley"
    for e in t["edges"]:
        if e["dst"] == good["nodes"][2]["id"]:
            e["dst"] = "author/josé blakeley"
    write("non_utf8", t, encoding="latin-1")

    write("wrong_delimiter", good, delimiter=";")

    t = copy(good)  # graph A has no nodes
    t["nodes"] = [n for n in t["nodes"] if n["kg"] == "B"]
    t["edges"] = [e for e in t["edges"] if e["kg"] == "B"]
    t["gold"] = t["gold"][:1]
    write("empty_graph", t)

    t = copy(good)  # identifier/label instead of id/name
    t["nodes"] = [{"kg": n["kg"], "identifier": n["id"], "type": n["type"], "label": n["name"]} for n in t["nodes"]]
    write("wrong_columns", t)

    t = copy(good)  # odd values: blank ids and names in other scripts' white space, numbers that are
    # no numbers, one date written five ways, a gold link whose two ends are both in graph B
    papers = [n for n in t["nodes"] if n["type"] == "paper"]
    odd_years = ["NaN", "Infinity", "-inf", "1e308", "2001-05-03", "2001/05/03", "May 3, 2001", "3-May-01",
                 "2001-05-03T10:00:00Z"]
    for paper, year in zip(papers, odd_years):
        paper["year"] = year
    t["nodes"].append({"kg": "A", "id": " \t ", "type": "author", "name": "tab and spaces", "year": ""})
    t["nodes"].append({"kg": "B", "id": "author/nbsp", "type": "author", "name": "\u00a0\u2003", "year": ""})
    b_papers = [n["id"] for n in papers if n["kg"] == "B"]
    t["gold"].append({"id_a": b_papers[0], "id_b": b_papers[1], "type": "paper", "split": "test"})
    write("odd_values", t)

    # a byte-order mark and Windows line ends (what Excel writes): read as the good case
    folder = HERE / "bom_crlf"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(HERE / "good", folder)
    for path in folder.glob("*.csv"):
        text = path.read_text(encoding="utf-8")
        path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))

    write("malformed_rows", good)
    path = HERE / "malformed_rows" / "nodes.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines.insert(3, 'A,paper/7,paper,a title with an unquoted, comma,1999')
    lines.insert(5, "A,author/too few")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

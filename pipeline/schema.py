"""Every table the pipeline reads or writes: its Spark schema and where it lives.

A knowledge graph is two tables, ``nodes`` and ``edges``; two graphs share them, told
apart by the ``kg`` column ("A" or "B"). ``gold`` holds the known links, where any.

Warehouse layout (``Paths`` below builds every path; no stage spells a path itself)::

    <warehouse>/cache/name_vectors[_static]     features      Parquet, NAME_VECTOR (shared by all runs; one per encoder)
    <warehouse>/runs/<run_id>/                  everything a run computes: two runs never share a file
        input/{nodes,edges,gold}                ingest        Parquet, NODES/EDGES/GOLD (checked: pipeline/validate.py)
        input/labelled                          ingest        Parquet, LABELLED (where the source has it)
        node_index                              features      Parquet, NODE_INDEX
        node_features.parquet                   features      one Arrow file, NODE_FEATURE (row i = nid i)
        node_features.npy                       score         the same as a float32 matrix, memory-mapped by workers
        lexical_terms                           features      Parquet (nid, term, w), where features.lexical
        record_codes                            features      Parquet (nid, codes, squeezed), where features.identifier_codes
        relations.json                          extract       relation vocabulary (name -> id)
        candidates                              block         Parquet, CANDIDATE
        blocking.json                           block         diagnostics
        neighbourhoods                          extract       Parquet, NEIGHBOURHOOD
        shards/shard=<k>/                       extract       Parquet, PAIR_SHARD (see below)
        labelled_shards                         extract       Parquet, PAIR_SHARD + label, split (labelled pairs)
        anchors/round=<k>.parquet               train, score  (nid_a, nid_b) aligned before round k+1
        train_pairs                             train         Parquet, PAIR_SHARD + TRAIN_EXTRA
        training_links                          train         Parquet, GOLD: the links it learnt from, where not the gold alone
        model/{weights.safetensors,config.json} train
        scores                                  score         Parquet, SCORE (last round)
        score_rounds/round=<k>                  score         Parquet, SCORE (earlier rounds)
        labelled_scores                         score         Parquet, SCORE + label, split
        metrics.json                            evaluate      the run's figures
    <warehouse>/delta/{unified_nodes,unified_edges,alignment}   merge   Delta, UNIFIED_*/ALIGNMENT
    <warehouse>/delta/merge_log                 merge         Delta, MERGE_LOG (table versions per merge)
    <warehouse>/delta/rejected                  ingest        Delta, REJECTED (input rows not kept, and why)
    <warehouse>/delta/labels                    label job     Delta, USER_LABEL (a person's answers; train reads them)
    <warehouse>/reports/{latest,<run_id>}/{metrics.json,index.html}   evaluate

Pair shards (``PAIR_SHARD``): one row per candidate pair, holding both sampled two-hop
neighbourhoods as integer node ids (``nid``, an index into ``node_features``) so that the
model can score a shard with no Spark and no join:

    nid_a, nid_b                the two centres
    a_hop1, a_hop1_rel          the centre's sampled neighbours and relation ids (<= cap)
    a_hop2_parent               for each two-hop node: its parent's position in a_hop1
    a_hop2, a_hop2_rel          the sampled neighbours of each one-hop node (<= cap each)
    b_...                       the same for the B side
    lex_sim, code_conflict      the pair evidence (model/shard_layout.py PAIR_EVIDENCE), 0 without it

Relation ids: a relation name ``r`` has id ``i`` in ``relations.json``; the same edge read
backwards (dst -> src) has id ``i + R`` where R is the vocabulary size.
"""
from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import types as T

from model.config import CONFIG as MODEL_CONFIG
from model.config import WEIGHTS as MODEL_WEIGHTS
from model.shard_layout import PAIR_EVIDENCE, SUBGRAPH_COLUMNS

KG_A, KG_B = "A", "B"

NODES = T.StructType([
    T.StructField("kg", T.StringType(), False),
    T.StructField("id", T.StringType(), False),
    T.StructField("type", T.StringType(), False),
    T.StructField("name", T.StringType(), True),
    T.StructField("attrs", T.MapType(T.StringType(), T.StringType()), True),
])

EDGES = T.StructType([
    T.StructField("kg", T.StringType(), False),
    T.StructField("src", T.StringType(), False),
    T.StructField("rel", T.StringType(), False),
    T.StructField("dst", T.StringType(), False),
])

# split is one of train / valid / test, or null for a known link outside any split.
GOLD = T.StructType([
    T.StructField("id_a", T.StringType(), False),
    T.StructField("id_b", T.StringType(), False),
    T.StructField("type", T.StringType(), False),
    T.StructField("split", T.StringType(), True),
])

# A benchmark's own labelled pairs (ER sets: DeepMatcher/Ditto train/valid/test files), label 1
# or 0. Train uses its negatives, valid picks the threshold, test is evaluation protocol (a).
LABELLED = T.StructType([
    T.StructField("id_a", T.StringType(), False),
    T.StructField("id_b", T.StringType(), False),
    T.StructField("type", T.StringType(), False),
    T.StructField("label", T.IntegerType(), False),
    T.StructField("split", T.StringType(), False),
])

NAME_VECTOR = T.StructType([
    T.StructField("name_key", T.StringType(), False),
    T.StructField("vec", T.ArrayType(T.FloatType(), False), False),
])

NODE_INDEX = T.StructType([
    T.StructField("nid", T.IntegerType(), False),
    T.StructField("kg", T.StringType(), False),
    T.StructField("id", T.StringType(), False),
    T.StructField("type", T.StringType(), False),
    T.StructField("name", T.StringType(), True),
])

CANDIDATE = T.StructType([
    T.StructField("id_a", T.StringType(), False),
    T.StructField("id_b", T.StringType(), False),
    T.StructField("type", T.StringType(), False),
    T.StructField("sim", T.DoubleType(), False),
])

_INTS = T.ArrayType(T.IntegerType(), False)

NEIGHBOURHOOD = T.StructType([
    T.StructField("nid", T.IntegerType(), False),
    T.StructField("hop1", _INTS, False),
    T.StructField("hop1_rel", _INTS, False),
    T.StructField("hop2_parent", _INTS, False),
    T.StructField("hop2", _INTS, False),
    T.StructField("hop2_rel", _INTS, False),
])

PAIR_SHARD = T.StructType(
    [
        T.StructField("id_a", T.StringType(), False),
        T.StructField("id_b", T.StringType(), False),
        T.StructField("type", T.StringType(), False),
        T.StructField("nid_a", T.IntegerType(), False),
        T.StructField("nid_b", T.IntegerType(), False),
    ]
    + [T.StructField(f"a_{c}", _INTS, False) for c in SUBGRAPH_COLUMNS]
    + [T.StructField(f"b_{c}", _INTS, False) for c in SUBGRAPH_COLUMNS]
    + [T.StructField(e.column, T.FloatType(), False) for e in PAIR_EVIDENCE]
)

# Training pairs add: which positive a row belongs to, and whether it is that positive.
TRAIN_EXTRA = T.StructType([
    T.StructField("group", T.LongType(), False),
    T.StructField("label", T.IntegerType(), False),
    T.StructField("split", T.StringType(), False),
])

SCORE = T.StructType([
    T.StructField("id_a", T.StringType(), False),
    T.StructField("id_b", T.StringType(), False),
    T.StructField("type", T.StringType(), False),
    T.StructField("score", T.DoubleType(), False),
    T.StructField("model_version", T.StringType(), False),
    # hash of everything the score depends on besides the model (model/signature.py): an
    # incremental run reuses a base run's score when signature and model_version match
    T.StructField("signature", T.LongType(), False),
])

ALIGNMENT = T.StructType([
    T.StructField("id_a", T.StringType(), False),
    T.StructField("id_b", T.StringType(), False),
    T.StructField("type", T.StringType(), False),
    T.StructField("score", T.DoubleType(), False),
    T.StructField("run_id", T.StringType(), False),  # the run that last opened or changed the link
    T.StructField("closed_in_run", T.StringType(), True),  # null while the link holds
])

# One row per completed merge: the version each table reached. A reader that needs the three
# tables as of one run reads them at these versions (pipeline.unified.read_merged).
MERGE_LOG = T.StructType([
    T.StructField("run_id", T.StringType(), False),
    T.StructField("finished_at", T.TimestampType(), False),
    T.StructField("alignment_version", T.LongType(), False),
    T.StructField("unified_nodes_version", T.LongType(), False),
    T.StructField("unified_edges_version", T.LongType(), False),
])

# Input rows ingest did not keep, and why (the adapter's or pipeline/validate.py's reason).
REJECTED_INPUT = T.StructType([
    T.StructField("source", T.StringType(), False),  # nodes, edges, gold or labelled
    T.StructField("kg", T.StringType(), True),
    T.StructField("row", T.LongType(), True),  # data row number in its file, where known
    T.StructField("record", T.StringType(), True),  # the row as JSON (or the raw text of a malformed one)
    T.StructField("reason", T.StringType(), False),
])

# The ``rejected`` Delta table: REJECTED_INPUT per run and stage (a rerun replaces its rows).
REJECTED = T.StructType(
    [T.StructField("run_id", T.StringType(), False), T.StructField("stage", T.StringType(), False)]
    + REJECTED_INPUT.fields
)

# The ``labels`` Delta table: the answers a person gave to the ``label`` job, one row per pair
# (the latest answer wins). Training reads them with the gold links (pipeline/train.py).
USER_LABEL = T.StructType([
    T.StructField("id_a", T.StringType(), False),
    T.StructField("id_b", T.StringType(), False),
    T.StructField("type", T.StringType(), False),
    T.StructField("label", T.IntegerType(), True),  # 1 match, 0 not, null unsure
    T.StructField("user", T.StringType(), False),
    T.StructField("labelled_at", T.TimestampType(), False),
    T.StructField("run_id", T.StringType(), False),  # the run whose scores chose the pair
])

# Delta refuses NOT NULL inside arrays, so nested fields of Delta tables are nullable.
MEMBER = T.StructType([
    T.StructField("kg", T.StringType(), True),
    T.StructField("id", T.StringType(), True),
])

UNIFIED_NODES = T.StructType([
    T.StructField("uid", T.StringType(), False),
    T.StructField("type", T.StringType(), False),
    T.StructField("name", T.StringType(), True),
    T.StructField("members", T.ArrayType(MEMBER, True), False),
    T.StructField("run_id", T.StringType(), False),
])

UNIFIED_EDGES = T.StructType([
    T.StructField("src_uid", T.StringType(), False),
    T.StructField("rel", T.StringType(), False),
    T.StructField("dst_uid", T.StringType(), False),
    T.StructField("sources", T.ArrayType(T.StringType(), True), False),
    T.StructField("run_id", T.StringType(), False),
])


# the three tables a merge writes and ``read_merged`` reads at one merge's versions
UNIFIED_TABLES = ("alignment", "unified_nodes", "unified_edges")

# the ``Paths`` properties each stage writes under the run's folder, in stage order
STAGE_OUTPUTS = {
    "ingest": ["input"],
    "features": ["node_index", "node_features", "lexical_terms", "record_codes"],
    "block": ["candidates", "blocking_report"],
    "extract": ["relations", "neighbourhoods", "shards", "labelled_shards"],
    "train": ["train_pairs", "training_links", "model_dir"],
    "score": ["node_feature_matrix", "scores", "labelled_scores"],
    "merge": [],
    "evaluate": ["metrics"],
}


# A run id names a folder (``runs/<run_id>``, ``reports/<run_id>``) and a value in Delta tables,
# so it is held to characters that mean nothing to a file system or to SQL.
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
RUN_ID_RULE = "1 to 128 letters, digits, '_', '-' or '.', starting with a letter or a digit, without '..'"


def check_run_id(run_id: str) -> str:
    """``run_id`` itself where it is usable, else a ValueError that says what a run id may hold.

    >>> check_run_id("nightly-2026-12-07")
    'nightly-2026-12-07'
    """
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id) or ".." in run_id:
        raise ValueError(f"run id {run_id!r} cannot be used: it names the run's folder, so it must be "
                         f"{RUN_ID_RULE} (e.g. 'nightly-2026-12-07')")
    return run_id


def run_id_argument(value: str) -> str:
    """The argparse ``type`` of ``--run-id`` and ``--base-run``: a bad id is a usage error."""
    try:
        return check_run_id(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def delta_table_name(path) -> str:
    """The SQL name of the Delta table at ``path`` (``delta.`<path>```, backticks in it doubled),
    for the few operations only SQL or the V2 writer offer.

    >>> delta_table_name("/data/wh/`odd`")
    'delta.`/data/wh/``odd```'
    """
    return "delta.`" + str(path).replace("`", "``") + "`"


@dataclass(frozen=True)
class Paths:
    """Where every table of one warehouse and one run lives."""

    warehouse: Path
    run_id: str

    def __post_init__(self) -> None:
        check_run_id(self.run_id)

    @property
    def input(self) -> Path:
        return self.run / "input"

    @property
    def nodes(self) -> Path:
        return self.input / "nodes"

    @property
    def edges(self) -> Path:
        return self.input / "edges"

    @property
    def gold(self) -> Path:
        return self.input / "gold"

    @property
    def labelled(self) -> Path:
        return self.input / "labelled"

    def name_vectors(self, encoder: str) -> Path:
        """The name-vector cache of one encoder (``features.encoder``); the two never mix."""
        return self.warehouse / "cache" / ("name_vectors" if encoder == "minilm" else f"name_vectors_{encoder}")

    @property
    def run(self) -> Path:
        return self.warehouse / "runs" / self.run_id

    @property
    def node_index(self) -> Path:
        return self.run / "node_index"

    @property
    def node_features(self) -> Path:
        return self.run / "node_features.parquet"

    @property
    def node_feature_matrix(self) -> Path:
        return self.run / "node_features.npy"

    @property
    def staged_anchor_profiles(self) -> Path:
        """features: the anchor profiles while the level-0 file is assembled (removed after)."""
        return self.run / "anchor_profiles.parquet"

    @property
    def lexical_terms(self) -> Path:
        return self.run / "lexical_terms"

    @property
    def record_codes(self) -> Path:
        return self.run / "record_codes"

    @property
    def relations(self) -> Path:
        return self.run / "relations.json"

    @property
    def candidates(self) -> Path:
        return self.run / "candidates"

    @property
    def block_terms(self) -> Path:
        """block's B-side name terms, read by every worker while it ranks pairs (removed after)."""
        return self.run / "block.terms_b"

    @property
    def name_candidates(self) -> Path:
        """block's candidates by name alone, while it proposes more through the graph (removed after)."""
        return self.run / "candidates.by_name"

    @property
    def blocking_report(self) -> Path:
        return self.run / "blocking.json"

    @property
    def neighbourhoods(self) -> Path:
        return self.run / "neighbourhoods"

    @property
    def shards(self) -> Path:
        return self.run / "shards"

    @property
    def labelled_shards(self) -> Path:
        return self.run / "labelled_shards"

    def anchors(self, round_no: int) -> Path:
        return self.run / "anchors" / f"round={round_no}.parquet"

    def anchor_rounds(self) -> list[int]:
        """The rounds whose anchors file exists, in order."""
        return sorted(int(p.name.removeprefix("round=").removesuffix(".parquet"))
                      for p in (self.run / "anchors").glob("round=*.parquet"))

    def anchored_matrix(self, round_no: int) -> Path:
        """Collective round ``round_no``'s level-0 matrix as neighbours read it, each anchored
        pair's two rows replaced by their mean (``model.level0.write_anchored_matrix``): written
        by the score stage's driver, mapped by its workers, removed when the stage ends."""
        return self.run / "anchors" / f"round={round_no}.anchored.npy"

    def bootstrapped_matrix(self, round_no: int) -> Path:
        """Collective round ``round_no``'s level-0 matrix, its anchor profiles made from the
        anchors of the round before (``collective.bootstrap_profiles``)."""
        return self.run / "anchors" / f"round={round_no}.features.npy"

    @property
    def labelled_scores(self) -> Path:
        return self.run / "labelled_scores"

    @property
    def train_pairs(self) -> Path:
        return self.run / "train_pairs"

    @property
    def training_links(self) -> Path:
        """The links train learnt from (GOLD's columns) where they are not the gold links alone:
        with the label job's matches, or the pseudo-links of train.labels none."""
        return self.run / "training_links"

    @property
    def model_dir(self) -> Path:
        return self.run / "model"

    @property
    def model_config(self) -> Path:
        """The trained model's settings, threshold and version (model/checkpoint.py)."""
        return self.model_dir / MODEL_CONFIG

    @property
    def model_weights(self) -> Path:
        return self.model_dir / MODEL_WEIGHTS

    @property
    def scores(self) -> Path:
        return self.run / "scores"

    def round_scores(self, round_no: int, rounds: int) -> Path:
        """Scores of collective round ``round_no`` of ``rounds``; the last round's are ``scores``."""
        return self.scores if round_no == rounds else self.run / "score_rounds" / f"round={round_no}"

    @property
    def stage_log(self) -> Path:
        return self.run / "stages.jsonl"

    @property
    def metrics(self) -> Path:
        return self.run / "metrics.json"

    @property
    def delta(self) -> Path:
        return self.warehouse / "delta"

    @staticmethod
    def delta_table(delta_dir: Path | str, name: str) -> Path:
        """A Delta table of the warehouse whose ``delta`` folder is ``delta_dir`` (for readers
        given only that folder): ``name`` is one of UNIFIED_TABLES, "merge_log" or "rejected"."""
        return Path(delta_dir) / name

    @property
    def unified_nodes(self) -> Path:
        return self.delta_table(self.delta, "unified_nodes")

    @property
    def unified_edges(self) -> Path:
        return self.delta_table(self.delta, "unified_edges")

    @property
    def alignment(self) -> Path:
        return self.delta_table(self.delta, "alignment")

    @property
    def merge_log(self) -> Path:
        return self.delta_table(self.delta, "merge_log")

    @property
    def rejected(self) -> Path:
        return self.delta / "rejected"

    @property
    def labels(self) -> Path:
        """The ``label`` job's answers (USER_LABEL), shared by the runs of the warehouse."""
        return self.delta / "labels"

    def report_dirs(self) -> list[Path]:
        return [self.warehouse / "reports" / "latest", self.warehouse / "reports" / self.run_id]

    def published_metrics(self) -> list[Path]:
        """metrics.json as evaluate publishes it beside the reports (latest and this run's)."""
        return [d / "metrics.json" for d in self.report_dirs()]

    def outputs(self, stage: str) -> list[Path]:
        """What ``stage`` writes into the run's folder (some only under a switch: check
        ``exists()``). A run that reuses stages' outputs copies exactly these."""
        return [getattr(self, name) for name in STAGE_OUTPUTS[stage]]

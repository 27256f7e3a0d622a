"""Typed configuration, validated when a job starts (unknown keys and bad values stop the run).

A YAML file under conf/ fills ``PipelineConfig``; see README.md "Configuration" for every key.
Relative paths are read relative to the directory the job runs in (the repo root), and
``${DATA_DIR}`` in a path is replaced by the DATA_DIR environment variable (default ../shared/data),
so benchmark configs can point at data outside the repo.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from model.config import ModelConfig
from pipeline.settings import Settings


class DatasetConfig(Settings):
    name: str
    format: str  # an adapter module under pipeline/sources/
    path: Path
    seed: int = 7
    # KG benchmarks without a labelled split: share of the gold links used for training
    # (valid is carved from it).
    train_fraction: float = Field(0.3, gt=0, lt=1)
    valid_fraction_of_train: float = Field(0.1, gt=0, lt=1)
    # the adapter's own settings, checked against its ``Options`` model
    options: dict[str, Any] = {}

    @field_validator("path", mode="before")
    @classmethod
    def _expand(cls, v: str) -> str:
        return str(v).replace("${DATA_DIR}", os.environ.get("DATA_DIR", "../shared/data"))

    @model_validator(mode="after")
    def _adapter_options(self) -> "DatasetConfig":
        from pipeline.sources import adapter

        adapter(self.format).Options.model_validate(self.options)
        return self

    def adapter_options(self) -> BaseModel:
        from pipeline.sources import adapter

        return adapter(self.format).Options.model_validate(self.options)


class SparkConfig(Settings):
    master: str = "local[*]"
    shuffle_partitions: int = Field(8, ge=1)
    driver_memory: str = "4g"


class FeaturesConfig(Settings):
    # the name encoder (model/level0.py): minilm, the full transformer; static, word-piece
    # vectors distilled from it (×273-×393 the names per second, one thread, bench/RESULTS.md;
    # its accuracy there too)
    encoder: Literal["minilm", "static"] = "minilm"
    # attrs keys read as numbers (prices, years, durations, dates) and appended to the name
    # vector, two values each (pipeline/features.py)
    numeric: list[str] = []
    # TF-IDF words and character 3-grams of each node's record text, compared per pair and
    # added to the pair distance (pipeline/features.py)
    lexical: bool = False
    # also the character 4-grams of the record text squeezed to letters and digits, across word
    # boundaries ("photoshop cs2" meets "photoshopcs2"), in the same terms; needs lexical
    lexical_squeezed: bool = False
    # model and part numbers in the record text: a pair whose records both have some and share
    # none is marked, and the mark added to the pair distance (pipeline/features.py); needs lexical
    identifier_codes: bool = False
    # length of a fixed pseudo-random vector per node, for graphs without names (0 = off)
    identity: int = Field(0, ge=0, le=1024)
    # for graphs without names: each node's anchor profile, where the train links lie within
    # this many hops (pipeline/anchor_profile.py; 0 = off), anchor_dim numbers per hop
    anchor_hops: int = Field(0, ge=0, le=8)
    anchor_dim: int = Field(128, ge=8, le=1024)
    lexical_context: list[str] = []  # relation names; checked against the edges by the features stage

    @model_validator(mode="after")
    def _context_needs_lexical(self) -> "FeaturesConfig":
        if self.lexical_context and not self.lexical:
            raise ValueError("features.lexical_context is set but features.lexical is false: "
                             "set lexical: true, or drop lexical_context")
        if self.lexical_squeezed and not self.lexical:
            raise ValueError("features.lexical_squeezed adds to the lexical terms but features.lexical "
                             "is false: set lexical: true, or drop lexical_squeezed")
        if self.identifier_codes and not self.lexical:
            raise ValueError("features.identifier_codes reads the lexical record text but features.lexical "
                             "is false: set lexical: true, or drop identifier_codes")
        return self


class BlockConfig(Settings):
    # a key of pipeline/blocking METHODS: names, character-n-gram TF-IDF of the names;
    # anchors, shared seed-linked neighbours, for graphs without names
    method: str = "names"
    max_anchor_degree: int = Field(500, ge=1, description="anchors: skip neighbours of higher degree")

    @field_validator("method")
    @classmethod
    def _known_method(cls, v: str) -> str:
        from pipeline.blocking import method

        method(v)  # unknown: a ValueError that names the methods there are
        return v
    # Candidates kept per entity, from each side, per node type ("default" for the rest).
    top_k: dict[str, int] = {"default": 10}
    # The terms of the TF-IDF name representation: character n-grams (robust to typos), words
    # (far fewer shared terms on large graphs: docs/scaling.md), or words and adjacent word
    # pairs (the pairs still join names whose every word is crowded out by max_postings), and
    # the n-gram length.
    unit: Literal["chars", "words", "word_pairs"] = "chars"
    ngram: int = Field(3, ge=2, le=5)
    # n-grams found in more than this share of a type's names carry almost no signal and
    # would blow up the join; they are dropped.
    max_df: float = Field(0.2, gt=0, le=1)
    min_sim: float = Field(0.05, ge=0, lt=1)
    # Large graphs (docs/scaling.md): a gram held by more than max_postings names of one side
    # and type is dropped (bounds the join: at most max_postings^2 pairs per gram), and with
    # prefix set, pairs are found only through each name's `prefix` rarest grams.
    max_postings: int | None = Field(None, ge=1)
    prefix: int | None = Field(None, ge=1)
    # A budget that holds however large the graph grows: the crowded terms are dropped, most
    # crowded first, until the join makes at most this many (A, B, term) rows per name of the
    # type (max_postings can only bound the rows per term, and at 1M per side thousands of
    # terms sit just under it).
    max_pairs_per_name: float | None = Field(None, gt=0)
    # Besides the TF-IDF partners: each name's k nearest names of the other side and type by
    # the level-0 name vector (MiniLM cosine), exact, from both sides. Finds what shares no
    # character n-gram (translations, reworded titles). It compares every name with every
    # name of the other side (a matrix product per type), so it is for graphs of up to a few
    # ten thousand names per type: a type above vector_max_products (names A x names B) is
    # refused with an error. 0 = off.
    vector_top_k: int = Field(0, ge=0)
    # the level-0 blocks vector_top_k compares, each on its own (the k nearest by each join the
    # candidates): the name vector, and/or (with features.anchor_hops set) the anchor profile,
    # for graphs without names or whose names tell too little (translated names)
    vector_blocks: list[Literal["name", "anchor_profile"]] = Field(["name"], min_length=1)
    vector_max_products: float = Field(2e9, gt=0)
    # Candidates proposed through the graph, for names no term budget can block (common author
    # names at a million per side share every term with hundreds of others): the neighbours of
    # each confidently matched pair -- mutual best name candidates with sim >= graph_min_sim --
    # under the same relation and direction, of the same type, become candidates for each
    # other (the authors of two matched papers). A node with more than graph_max_degree
    # neighbours by a relation proposes none by it (a venue's thousand papers), so the join is
    # at most confident pairs x graph_max_degree^2 per relation, whatever the names.
    graph_proposals: bool = False
    graph_min_sim: float = Field(0.5, gt=0, le=1)
    graph_max_degree: int = Field(20, ge=1)

    def k_for(self, node_type: str) -> int:
        return self.top_k.get(node_type, self.top_k.get("default", 10))


class ExtractConfig(Settings):
    cap: int = Field(10, ge=1, description="neighbours sampled per node per hop")
    sampling: Literal["relation_aware", "uniform"] = "relation_aware"
    # typed: the model gets one relation id per relation name and direction. merged: only the
    # direction (for graphs whose relation ids are not shared, like DBP15K's two DBpedias, where
    # a per-relation projection of one graph has no counterpart in the other). Sampling weights
    # use the relation names either way.
    relations: Literal["typed", "merged"] = "typed"
    seed: int = 13
    shards: int = Field(4, ge=1)


class TrainConfig(Settings):
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(0.003, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    margin: float = Field(1.0, gt=0)
    hard_negatives: int = Field(5, ge=0, description="per side, from the blocking candidates")
    random_negatives: int = Field(5, ge=0, description="per side, random entities of the same type")
    neighbour_negatives: int = Field(0, ge=0, description="per side, one-hop neighbours of the partner, same type")
    patience: int = Field(5, ge=1, description="epochs without a better valid F1 before stopping")
    # learning rate of the few scalars that weigh the pair distance's parts (graph, name,
    # numbers, lexical): at lr they moved too little in an epoch of a few dozen batches
    # (Walmart-Amazon valid F1 0.56 at lr 0.003, 0.75 with 0.1)
    mixing_lr: float = Field(0.1, gt=0)
    seed: int = 1
    train_types: list[str] | None = None  # None: every type with gold links
    # at most this many train links are fitted on (a seeded sample; all of them still anchor the
    # collective model): the fit's cost then stops growing with the graph (docs/scaling.md)
    max_links: int | None = Field(None, ge=1)
    # likewise for the valid links whose candidate pairs are scored after every epoch to pick
    # the threshold: at most this many (a seeded sample), so each epoch's check stops growing too
    max_valid_links: int | None = Field(None, ge=1)
    # Where the links the model learns from come from. gold: the gold links of split train (and
    # valid, to choose the threshold on). none: no labels are read; the run bootstraps its own
    # (pseudo-links): candidate pairs that are each other's best by every cheap signal (the
    # blocking similarity, and the lexical cosine where features.lexical is on), at least
    # pseudo_min_sim, with no other candidate of either end within pseudo_margin, and no
    # identifier-code conflict. pseudo_valid_fraction of them (a seeded hash) choose the
    # threshold and the epoch; the rest train and seed the collective rounds, which add their
    # confident matches as usual. Gold links, where any, are then only for evaluation. Under
    # both, a person's answers from the label job count: their matches are train links (under
    # none they replace any pseudo-link they contradict), their non-matches negatives.
    labels: Literal["gold", "none"] = "gold"
    pseudo_min_sim: float = Field(0.5, gt=0, le=1)
    pseudo_margin: float = Field(0.1, ge=0, lt=1)
    pseudo_valid_fraction: float = Field(0.2, gt=0, lt=1)
    # torch threads for the fit. The batches are small (a few hundred pairs of 10x10 blocks):
    # one thread is as fast as two on this 2-core machine, and two threads slow down up to 18x
    # whenever another process holds a core (measured: 10 batches 0.94 s vs 17.1 s).
    threads: int = Field(1, ge=1)


class ScoreConfig(Settings):
    # pairs per forward pass. On the CPU, 1024: a batch's largest tensors ([pairs, 10
    # neighbours, 384]) then stay under glibc's 32 MiB limit for reusing freed memory; above
    # it every batch maps fresh pages and pays their faults (the scorer 1.1-1.3x slower at
    # 2048, 1.3-1.7x at 4096: bench/RESULTS.md 2026-12-07). On a GPU, larger batches pay
    # (docs/scaling.md).
    batch_size: int = Field(1024, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"


class CollectiveConfig(Settings):
    # Collective alignment (model/network.py): aligned pairs share one level-0 vector as seen by
    # their neighbours. Seed links (the train split) are aligned from the start; each scoring
    # round after the first adds the previous round's confident matches (mutual best at or
    # above the threshold, every type), so matched authors pull their papers together.
    enabled: bool = True
    rounds: int = Field(2, ge=1, description="scoring rounds; 1 = seed links only")
    # With features.anchor_hops: each round after the first also makes the anchor profiles
    # anew with the round's anchors (train links and confident matches) as the seed links
    # (BootEA's bootstrapping), so a node near newly matched ones gets a fuller profile.
    bootstrap_profiles: bool = True
    # Which confident matches become anchors. None: the mutual best pairs at or above the
    # model's threshold. A share (0-1): per node type, the mutual best pairs down to the lowest
    # score at which those touching a valid link are still right this share of the time,
    # counted from the top (a type without valid links keeps the model's threshold); where even
    # the best-scoring ones fall short, none (pipeline/score.py ``anchor_thresholds``).
    anchor_precision: float | None = Field(None, gt=0, le=1)

    @property
    def scoring_rounds(self) -> int:
        """How many rounds the score stage runs; round k reads the anchors of round k - 1."""
        return self.rounds if self.enabled else 1


class MergeConfig(Settings):
    # Pairs scoring at or above the threshold chosen on valid, that are each other's best, align.
    threshold: float | None = None  # None: take the one training chose on the valid split


class PipelineConfig(Settings):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    dataset: DatasetConfig
    warehouse: Path
    spark: SparkConfig = SparkConfig()
    features: FeaturesConfig = FeaturesConfig()
    block: BlockConfig = BlockConfig()
    extract: ExtractConfig = ExtractConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    score: ScoreConfig = ScoreConfig()
    collective: CollectiveConfig = CollectiveConfig()
    merge: MergeConfig = MergeConfig()

    @field_validator("warehouse")
    @classmethod
    def _warehouse_can_be_written(cls, v: Path) -> Path:
        if "`" in str(v):  # Delta names a path table delta.`<path>`, and Spark re-quotes it unescaped
            raise ValueError(f"'{v}' holds a backtick, which Delta cannot name a table under: choose a folder "
                             "without one")
        folder = v.resolve()
        existing = next(p for p in (folder, *folder.parents) if p.exists())
        if not existing.is_dir():
            raise ValueError(f"'{v}' cannot be made: {existing} is a file, not a folder")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ValueError(f"'{v}' cannot be written: {existing} is not writable by this user (or is on a "
                             "read-only file system); choose a folder you can write, or change its permissions")
        return v

    @model_validator(mode="after")
    def _labels_none_reads_no_gold(self) -> "PipelineConfig":
        if self.train.labels == "none":
            uses_gold = {"block.method 'anchors'": self.block.method == "anchors",
                         "features.anchor_hops": self.features.anchor_hops > 0,
                         "collective.anchor_precision": self.collective.anchor_precision is not None}
            used = [name for name, on in uses_gold.items() if on]
            if used:
                raise ValueError(f"train.labels 'none' reads no gold link, but {', '.join(used)} read the gold "
                                 "train or valid links: turn them off, or give labels (train.labels: gold)")
        return self

    @field_validator("model", mode="before")
    @classmethod
    def _model(cls, v: object) -> ModelConfig:
        # ModelConfig is a plain dataclass so that model/ runs without pydantic (e.g. on a GPU box).
        if isinstance(v, ModelConfig):
            return v
        if not isinstance(v, dict):
            raise ValueError("model must be a mapping of ModelConfig fields")
        try:
            return ModelConfig(**v)
        except TypeError as exc:  # unknown key
            raise ValueError(str(exc)) from exc


class ConfigError(ValueError):
    """A config file that cannot be used; the message says which key and what to do."""


def load_config(path: str | Path) -> PipelineConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; pass one of conf/*.yaml")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{path}: invalid config:"]
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            lines.append(f"  {where}: {err['msg']}")
        raise ConfigError("\n".join(lines)) from exc

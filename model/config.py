"""The model's settings (``model:`` in the YAML config): a plain dataclass with no torch, so
that reading a config (the driver's first step, and a GPU box without pydantic) does not pay
for importing torch and PyTorch Geometric."""
from __future__ import annotations

from dataclasses import asdict, dataclass

# the files of a saved model's folder (model/checkpoint.py): its weights and its settings
WEIGHTS, CONFIG = "weights.safetensors", "config.json"


@dataclass(frozen=True)
class ModelConfig:
    hidden: int = 100  # m in the paper; each layer outputs [self half ; neighbour half]
    num_bases: int = 8  # relation projections share this many basis matrices
    cross_attention: bool = True
    self_attention: bool = True
    # False: every edge gets one shared projection and attention vector (ablation "no
    # relation features"); True: one per relation and direction (model/README.md §2, §3).
    relation_aware: bool = True
    # Add to the pair distance the level-0 distances ||x_a - x_b|| (one learnt non-negative
    # weight per part: name, numbers) and, where computed, the lexical cosine; the graph term
    # gets a learnt weight too. A skip connection, so that what the names already say is not
    # lost in the projections when only a few hundred links train them (model/README.md).
    level0_skip: bool = True
    # lengths of the level-0 parts (name, numeric, identity: pipeline/features.py), each
    # compared on its own in the skip term; () = one part. The train stage sets it from the
    # features file.
    level0_blocks: tuple[int, ...] = ()
    # what each block holds ("name", "numeric", "identity"), parallel to level0_blocks; a
    # "numeric" block is (value, present) per attribute, and each attribute gets a distance and
    # skip weight of its own, counted only where both nodes have the value. () = every block
    # is compared as one vector. The train stage sets it from the features file.
    level0_kinds: tuple[str, ...] = ()
    # whether the pair distance reads the rows' lexical cosine (lex_sim); the train stage sets
    # it from the features stage's output (features.lexical)
    lexical_similarity: bool = False
    # whether the pair distance reads the rows' identifier-code conflict (code_conflict); the
    # train stage sets it from the features stage's output (features.identifier_codes)
    code_conflict: bool = False
    # Add to the pair distance, per relation r, how far the centres' r-neighbours are from
    # having a counterpart: for each one-hop neighbour, 1 - the best name cosine to the other
    # centre's neighbours by the same relation (anchored vectors, so an aligned neighbour
    # counts 1), averaged per relation, weighted by a learnt non-negative weight per relation.
    # The attribute comparison a record matcher makes (same phone, same authors), read off the
    # neighbourhoods the cross-graph attention already pairs up (model/README.md).
    neighbour_match: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "level0_blocks", tuple(int(b) for b in self.level0_blocks))  # JSON gives a list
        object.__setattr__(self, "level0_kinds", tuple(str(k) for k in self.level0_kinds))
        if self.level0_kinds and len(self.level0_kinds) != len(self.level0_blocks):
            raise ValueError(f"model.level0_kinds {self.level0_kinds} must name each of the level0_blocks "
                             f"{self.level0_blocks}")
        if self.hidden < 2 or self.hidden % 2:
            raise ValueError(f"model.hidden must be an even number >= 2, got {self.hidden}")
        if self.num_bases < 1:
            raise ValueError(f"model.num_bases must be >= 1, got {self.num_bases}")

    def to_dict(self) -> dict:
        return asdict(self)

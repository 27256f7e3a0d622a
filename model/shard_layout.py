"""What a pair-shard row holds for the model, declared once for both floors (no torch here):
the Spark schema (pipeline/schema.py ``PAIR_SHARD``), the extract stage that fills the rows,
the batch the model reads (model/shards.py), the pair signature (model/signature.py) and the
distance (model/network.py) all iterate over these declarations.

Pair evidence is a number per candidate pair, computed by Spark from the two records (not from
the graph), that the model adds to the pair distance with a learnt non-negative weight:

    distance += softplus(weight) * evidence.term(value)

Adding one: an entry in ``PAIR_EVIDENCE`` here (its column, switch, weight, signature tag and
distance term), a ``ModelConfig`` switch of that name (model/config.py), and its Spark
computation as an entry of ``pipeline/evidence.py``'s ``SPARK_EVIDENCE``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

# each side's sampled two-hop neighbourhood, as list columns a_<name> and b_<name>
SUBGRAPH_COLUMNS = ("hop1", "hop1_rel", "hop2_parent", "hop2", "hop2_rel")


@dataclass(frozen=True)
class PairEvidence:
    """One piece of pair evidence.

    Attributes:
        column: the float column of the shard rows, and the key in ``PairBatch.evidence``;
            0 where rows lack it.
        switch: the ``ModelConfig`` field that turns it on (the train stage sets it where the
            features stage computed the evidence's inputs).
        weight: the name of its learnt weight in the model (a checkpoint's key).
        tag: its part of the pair signature (model/signature.py): any 64-bit constant not used
            by another entry.
        term: value -> what the weight multiplies in the distance (small means alike).
        weight_always: the weight exists even with the switch off (so that checkpoints saved
            before the switch existed still load).
    """

    column: str
    switch: str
    weight: str
    tag: int
    term: Callable
    weight_always: bool = False


PAIR_EVIDENCE = (
    # cosine of the two records' lexical terms (pipeline/features.py): alike records score near 1
    PairEvidence("lex_sim", switch="lexical_similarity", weight="lexical_weight", tag=0xA5A5,
                 term=lambda value: 1 - value, weight_always=True),
    # 1 where both records carry identifier codes (model numbers) and none of either is found in
    # the other's text
    PairEvidence("code_conflict", switch="code_conflict", weight="code_conflict_weight", tag=0xC0DE,
                 term=lambda value: value),
)

"""CG-MuAlign: two layers and the pair distance (model/README.md §2-§4).

One encoder with shared parameters serves both graphs. Layer 1 (AverageAgg) runs once per
node; layer 2 (CollectiveAgg) runs once per pair, because its cross-graph attention depends on
the other candidate. The pair's distance is ||h_a - h_b||; its score is exp(-distance).

Collective alignment across rounds: ``forward`` takes, besides the level-0 features, an
optional *anchored* version of them in which each already-aligned pair (seed links, then the
confident matches of the previous round, of any type) shares one vector (a tensor, or
``model.level0.AnchoredFeatures``, which stores only those rows). Neighbours read the anchored
vectors, the two centres always their own features (also where a centre comes back as a two-hop
node: ``_own_centre_correction``), so an aligned author pulls its papers together (and draws
the cross-graph attention) without a pair ever seeing its own answer. A pair's score depends
on its own row only, never on the other pairs of its batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from model.config import ModelConfig
from model.layers import CollectiveAgg, RelationalMeanConv, Side, gather_rows
from model.level0 import AnchoredFeatures
from model.shard_layout import PAIR_EVIDENCE
from model.shards import PairBatch


def _unique_first(keys: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(distinct keys, the position of each one's first occurrence, inverse) of a 1-d tensor."""
    distinct, inverse = torch.unique(keys, return_inverse=True)
    positions = torch.arange(len(keys), device=keys.device)
    first = torch.full((len(distinct),), len(keys), dtype=positions.dtype, device=keys.device)
    first = first.scatter_reduce(0, inverse, positions, "amin", include_self=True)
    return distinct, first, inverse


@dataclass
class PairOutput:
    distance: Tensor  # [P]
    weights_a: Tensor  # [P, N] attention each of a's neighbours got in the last layer
    weights_b: Tensor

    @property
    def score(self) -> Tensor:
        return torch.exp(-self.distance)


class CGMuAlign(nn.Module):
    def __init__(self, config: ModelConfig, in_dim: int, num_relations: int):
        super().__init__()
        self.config, self.in_dim, self.num_relations = config, in_dim, num_relations
        # a graph without edges has no relation: one placeholder keeps every shape valid (no
        # neighbour ever reads it; the model then compares level-0 features and pair evidence)
        self.relation_slots = max(num_relations, 1)
        self.layer1 = RelationalMeanConv(in_dim, config.hidden, self.relation_slots, config.num_bases)
        self.layer2 = CollectiveAgg(
            config.hidden,
            config.hidden,
            self.relation_slots,
            config.num_bases,
            cross_attention=config.cross_attention,
            self_attention=config.self_attention,
        )
        self.level0_blocks = tuple(config.level0_blocks) or (in_dim,)
        if sum(self.level0_blocks) != in_dim:
            raise ValueError(f"model.level0_blocks {self.level0_blocks} add up to {sum(self.level0_blocks)}, "
                             f"but the features have {in_dim} dimensions; rerun the features stage")
        self.level0_kinds = tuple(config.level0_kinds) or ("vector",) * len(self.level0_blocks)
        if config.level0_skip:
            # one non-negative weight per level-0 distance (the name; each numeric attribute), so
            # that each counts as much as it tells
            num_terms = sum(size // 2 if kind == "numeric" else 1
                            for kind, size in zip(self.level0_kinds, self.level0_blocks))
            self.level0_weight = nn.Parameter(torch.zeros(num_terms))  # softplus(0) = 0.69
            # per numeric attribute, how sharply a difference counts: 1 - exp(-s |dz|), s learnt
            # (softplus(1.5) = 1.7 at the start), so an equal running time (to the second) can
            # count far more than a close one, which a distance linear in |dz| cannot say
            num_numeric = sum(size // 2 for kind, size in zip(self.level0_kinds, self.level0_blocks)
                              if kind == "numeric")
            self.numeric_sharpness = nn.Parameter(torch.full((num_numeric,), 1.5))
            # each piece of pair evidence (model/shard_layout.py) enters as w * term(value)
            for evidence in PAIR_EVIDENCE:
                if evidence.weight_always or getattr(config, evidence.switch):
                    setattr(self, evidence.weight, nn.Parameter(torch.zeros(())))
            # the graph part starts small (softplus(-2) = 0.13) and grows as far as it helps: with a
            # few hundred train links it otherwise drowns what the level-0 parts already say
            self.graph_weight = nn.Parameter(torch.full((), -2.0))
        if config.neighbour_match:
            # one non-negative weight per relation, softplus(-1) = 0.31 at the start
            self.neighbour_match_weight = nn.Parameter(torch.full((self.relation_slots,), -1.0))

    def mixing_parameters(self) -> list[nn.Parameter]:
        """The few scalars that weigh the distance's parts (graph, level-0 parts, lexical,
        neighbour match) and shape its numeric terms (their sharpness). They
        must move far (a lexical weight of ~15 against ~1 for the name was the best mix on
        Walmart-Amazon), so training gives them a learning rate of their own."""
        names = ("graph_weight", "level0_weight", "neighbour_match_weight", "numeric_sharpness",
                 *(e.weight for e in PAIR_EVIDENCE))
        return [p for n, p in self.named_parameters() if n in names]

    def _own_centre_correction(self, x_own: Tensor, nbr: Callable[[Tensor], Tensor], centre: Tensor,
                               returns: Tensor, num_slots: int) -> tuple[Tensor, Tensor]:
        """Where a pair's centre comes back as a two-hop node, the one-hop node's mean message
        carries the centre's anchored vector (its match's features folded in: the answer). Per
        pair and one-hop slot, this swaps that term back to the centre's own vector, so no pair
        sees its own answer and a pair's score does not depend on the other pairs of its batch.
        x_own: [P, in] the pairs' centres' own vectors; nbr: local node indices -> their anchored
        vectors; centre: [P] the pairs' centres (local index); returns: [K, 4] (pair, slot,
        relation, child count); num_slots: N.
        Returns (flat slots pair * N + slot [U], the change to each one's mean message [U, half]),
        only for slots whose message changes: a centre that is not anchored reads as its own
        vector already."""
        pair, slot, rel, count = returns.unbind(1)
        if not self.config.relation_aware:
            rel = torch.zeros_like(rel)
        conv = self.layer1
        num_rel = self.relation_slots
        # once per distinct (centre, relation): a centre is in several pairs of a batch
        distinct, first, inverse = _unique_first(centre[pair] * num_rel + rel)
        own, read = gather_rows(x_own, pair[first]), nbr(distinct // num_rel)
        moved = (own != read).any(-1)  # [D] an anchored centre: its neighbours read another vector
        node_rel = distinct[moved] % num_rel
        term_moved = conv.rel_proj(own[moved], node_rel) - conv.rel_proj(read[moved], node_rel)
        keep = moved[inverse]
        pair, slot, count = pair[keep], slot[keep], count[keep]
        term = gather_rows(term_moved, (torch.cumsum(moved, 0) - 1)[inverse[keep]])
        slots, row = torch.unique(pair * num_slots + slot, return_inverse=True)
        out = torch.zeros(len(slots), term.shape[-1], dtype=term.dtype, device=term.device)
        out.index_add_(0, row, term / count.unsqueeze(1).to(term.dtype))
        return slots, out

    def _projected_neighbours(self, nbr: Callable[[Tensor], Tensor], hidden: Callable[[Tensor], Tensor],
                              hop1: Tensor, rel: Tensor,
                              corrected: tuple[Tensor, Tensor] | None) -> Tensor:
        """W_r h_j for every one-hop slot [P, N, half], h_j = ``hidden(j)``, the first layer's
        output of the one-hop node (from its anchored vector and its mean message). The same node
        under the same relation fills many slots of a batch (an author of every candidate pair of
        its paper), so h_j and its projection run once per distinct (node, relation); only slots
        whose message the own-centre correction changed (``corrected``: flat slots and their new
        message) get their own."""
        num_rel = self.relation_slots
        key = (hop1 * num_rel + rel).reshape(-1)
        distinct, inverse = torch.unique(key, return_inverse=True)
        z = gather_rows(self.layer2.project_neighbours(hidden(distinct // num_rel), distinct % num_rel), inverse)
        if corrected is not None:
            slots, corrected_message = corrected
            node = hop1.reshape(-1)[slots]
            h = self.layer1.combine(nbr(node), corrected_message)
            z[slots] = self.layer2.project_neighbours(h, rel.reshape(-1)[slots])
        return z.view(*hop1.shape, -1)

    @torch.no_grad()
    def node_first_layer(self, features: Tensor, edges: Tensor, anchored: Tensor | None = None,
                         chunk: int = 262_144) -> Tensor:
        """The first layer of every node as its neighbours read it, before the ReLU, [num_nodes,
        hidden]: [W_self x ; mean_j W_r x_j] from the anchored vectors, for scoring. Both halves
        depend on the node and its own sampled neighbours only, so they are computed once per
        node and round instead of once per batch that meets the node; a batch then gathers a
        one-hop node's ``hidden`` values instead of its level-0 row (384 and more). edges: [E, 3]
        (target, child, relation) global node ids, every node's neighbour list once
        (``model.shards.node_edges``), taken ``chunk`` edges at a time so that only a chunk's
        neighbour rows are in memory. Nodes without neighbours get a mean half of 0, as in
        ``forward``."""
        source = features if anchored is None else anchored
        half = self.layer1.rel_proj.out_dim
        out = torch.zeros(len(features), 2 * half, dtype=features.dtype, device=features.device)
        # the self half from a matrix's rows; of an AnchoredFeatures view, its base's rows, then
        # its few replaced rows (not every row gathered through the view)
        rows = source.base if isinstance(source, AnchoredFeatures) else source
        for start in range(0, len(features), chunk):
            out[start:start + chunk, :half] = self.layer1.self_proj(rows[start:start + chunk])
        if isinstance(source, AnchoredFeatures):
            out[source.rows, :half] = self.layer1.self_proj(source.vectors)
        edges = edges[torch.argsort(edges[:, 0], stable=True)]
        targets = edges[:, 0].contiguous()
        bounds = torch.searchsorted(targets, targets[::chunk].contiguous()).tolist() + [len(edges)]
        for start, stop in zip(bounds[:-1], bounds[1:]):  # chunks end at a target boundary
            if start == stop:
                continue
            target, child, rel = edges[start:stop].unbind(1)
            if not self.config.relation_aware:
                rel = torch.zeros_like(rel)
            nodes, local = torch.unique(target, return_inverse=True)
            out[nodes, half:] = self.layer1.neighbour_half(source, torch.stack([child, local]), rel, len(nodes))
        return out

    def forward(self, batch: PairBatch, features: Tensor, anchored: Tensor | None = None,
                first_layer: Tensor | None = None) -> PairOutput:
        """features: [num_nodes, in_dim], the level-0 vectors of every node (row = node id);
        anchored: the same with aligned pairs merged (see the module docstring), or None;
        first_layer: every node's first layer from ``node_first_layer`` with the same features
        and anchors (scoring), or None: computed here for the batch's nodes (training).

        Only what the pair distance reads is computed: the first layer's mean messages at the
        centres and one-hop nodes (from every batch node's anchored vector), its output at the
        pairs' centres (own vectors) and at the distinct one-hop nodes (anchored vectors)."""
        source = features if anchored is None else anchored  # what a node read as a neighbour holds

        def nbr(local: Tensor) -> Tensor:  # the batch nodes' (local indices) neighbour vectors
            return gather_rows(source, gather_rows(batch.node_ids, local))

        edge_type, rel_a, rel_b = batch.edge_type, batch.rel_a, batch.rel_b
        if not self.config.relation_aware:
            edge_type, rel_a, rel_b = (torch.zeros_like(t) for t in (edge_type, rel_a, rel_b))
        if first_layer is None:
            # children as rows of the whole matrix: each distinct one is read from it once
            child, target = batch.edge_index
            local_messages = self.layer1.neighbour_half(
                source, torch.stack([gather_rows(batch.node_ids, child), target]), edge_type, len(batch.node_ids))

            def message(local: Tensor) -> Tensor:
                return gather_rows(local_messages, local)

            def hidden(local: Tensor) -> Tensor:
                return self.layer1.combine(nbr(local), message(local))
        else:
            half = self.layer1.rel_proj.out_dim

            def message(local: Tensor) -> Tensor:
                return gather_rows(first_layer, gather_rows(batch.node_ids, local))[..., half:]

            def hidden(local: Tensor) -> Tensor:
                return torch.relu(gather_rows(first_layer, gather_rows(batch.node_ids, local)))
        sides, own = [], []
        for centre, hop1, rel, mask, returns in ((batch.centre_a, batch.hop1_a, rel_a, batch.mask_a, batch.returns_a),
                                                 (batch.centre_b, batch.hop1_b, rel_b, batch.mask_b, batch.returns_b)):
            x_own = gather_rows(features, gather_rows(batch.node_ids, centre))
            corrected = None
            if anchored is not None and len(returns):
                slots, change = self._own_centre_correction(x_own, nbr, centre, returns, hop1.shape[1])
                if len(slots):
                    corrected = slots, message(hop1.reshape(-1)[slots]) + change
            z = self._projected_neighbours(nbr, hidden, hop1, rel, corrected)
            sides.append(Side(self.layer1.combine(x_own, message(centre)), z, rel, mask))
            own.append(x_own)
        a, b = sides
        h_a, h_b, w_a, w_b = self.layer2(a, b)
        distance = torch.sqrt(((h_a - h_b) ** 2).sum(-1) + 1e-9)
        if self.config.level0_skip:
            softplus = nn.functional.softplus
            distance = softplus(self.graph_weight) * distance
            distance = distance + self.level0_distances(*own) @ softplus(self.level0_weight)
            for evidence in PAIR_EVIDENCE:
                if getattr(self.config, evidence.switch):
                    weight = getattr(self, evidence.weight)
                    distance = distance + softplus(weight) * evidence.term(batch.evidence[evidence.column])
        if self.config.neighbour_match:
            distance = distance + self._neighbour_mismatch(nbr, batch, rel_a, rel_b)
        return PairOutput(distance, w_a, w_b)

    def level0_distances(self, x_a: Tensor, x_b: Tensor) -> Tensor:
        """[P, T]: the distance of the two centres' level-0 vectors, one column per term: a
        vector block (name, identity) as one Euclidean distance; a numeric block, per attribute,
        1 - exp(-s |value_a - value_b|) (s learnt per attribute) where both nodes have it and 0
        where either lacks it (a missing price is not a different price)."""
        terms, numeric = [], 0
        for kind, a, b in zip(self.level0_kinds, torch.split(x_a, self.level0_blocks, dim=-1),
                              torch.split(x_b, self.level0_blocks, dim=-1)):
            if kind == "numeric":  # (value, present) per attribute
                keys = a.shape[1] // 2
                sharpness = nn.functional.softplus(self.numeric_sharpness[numeric:numeric + keys])
                numeric += keys
                diff = (a[:, 0::2] - b[:, 0::2]).abs()
                terms.append((1 - torch.exp(-sharpness * diff)) * a[:, 1::2] * b[:, 1::2])
            else:
                terms.append(torch.sqrt(((a - b) ** 2).sum(-1, keepdim=True) + 1e-9))
        return torch.cat(terms, dim=-1)

    def _neighbour_mismatch(self, nbr: Callable[[Tensor], Tensor], batch: PairBatch, rel_a: Tensor,
                            rel_b: Tensor) -> Tensor:
        """sum_r softplus(u_r) * mean over both centres' r-neighbours of (1 - best name cosine to
        the other centre's r-neighbours); a neighbour whose relation the other centre lacks
        counts nothing (a missing attribute is not a different one). Returns [P].

        The unit name vector of each distinct one-hop node is made once; the cosines of all of
        a pair's (a-slot, b-slot) couples come from one batched product ([P, N, d] x [P, d, N]),
        and couples of different relations (or padding) are masked out. (With a vector gathered
        per compared couple instead, this term took half the scorer's time.)"""
        name = self.level0_blocks[0]
        same = ((rel_a.unsqueeze(2) == rel_b.unsqueeze(1))
                & batch.mask_a.unsqueeze(2) & batch.mask_b.unsqueeze(1))  # [P, N, N]
        slots = torch.cat([batch.hop1_a.reshape(-1), batch.hop1_b.reshape(-1)])
        nodes, inverse = torch.unique(slots, return_inverse=True)
        unit = nn.functional.normalize(nbr(nodes)[:, :name], dim=-1)
        unit_a = gather_rows(unit, inverse[: batch.hop1_a.numel()].view_as(batch.hop1_a))  # [P, N, d]
        unit_b = gather_rows(unit, inverse[batch.hop1_a.numel():].view_as(batch.hop1_b))
        cos = torch.bmm(unit_a, unit_b.transpose(1, 2)).masked_fill(~same, -2.0)  # [P, N, N]
        weight = nn.functional.softplus(self.neighbour_match_weight)
        total = torch.zeros(len(cos), dtype=cos.dtype, device=cos.device)
        for best, rel, has in ((cos.amax(2), rel_a, same.any(2)), (cos.amax(1), rel_b, same.any(1))):
            # each relation counts once per centre, however many neighbours it has
            peers = ((rel.unsqueeze(2) == rel.unsqueeze(1)) & has.unsqueeze(1)).sum(-1).clamp_min(1)
            total = total + (has * weight[rel] * (1 - best) / peers).sum(-1)
        return total / 2

"""The two CG-MuAlign layers (model/README.md §2-§3).

``RelationalMeanConv`` is the paper's AverageAgg, used below the last layer: a node-level
PyTorch Geometric ``MessagePassing`` layer, so it runs once per distinct node of a batch.

``CollectiveAgg`` is the last layer. It belongs to a *pair* (its cross-graph attention looks at
the other candidate's neighbourhood), so it works on padded ``[pairs, neighbours, dim]`` blocks
with explicit masks.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing


def gather_rows(t: Tensor, index: Tensor) -> Tensor:
    """``t[index]`` for an integer tensor ``index`` of any shape: the rows of ``t`` it names.
    ``index_select`` underneath, which on the CPU copies rows several times faster than
    advanced indexing (``aten::index`` was over half of the scorer's time). ``t`` may also be
    ``model.level0.AnchoredFeatures``."""
    return t.index_select(0, index.reshape(-1)).view(*index.shape, *t.shape[1:])


class RelationProjection(nn.Module):
    """W_r x for every relation r, as a basis decomposition: W_r = sum_b coef[r, b] V_b.

    With few relations (DBLP-ACM has 6 directed ones) this is as expressive as one matrix per
    relation; with thousands (DBP15K) it keeps the parameter count flat.
    """

    # above this many distinct relations in one call, projecting on the shared bases is cheaper
    # than one matrix product per relation
    MAX_GROUPED = 32

    def __init__(self, in_dim: int, out_dim: int, num_relations: int, num_bases: int):
        super().__init__()
        self.num_bases = max(1, min(num_bases, num_relations))
        self.out_dim = out_dim
        self.bases = nn.Linear(in_dim, out_dim * self.num_bases)
        self.coef = nn.Embedding(num_relations, self.num_bases)
        nn.init.normal_(self.coef.weight, mean=1.0 / self.num_bases, std=0.1)

    @property
    def num_relations(self) -> int:
        return self.coef.num_embeddings

    def project_bases(self, x: Tensor) -> Tensor:
        """[..., in_dim] -> [..., num_bases, out_dim]."""
        return self.bases(x).view(*x.shape[:-1], self.num_bases, self.out_dim)

    def forward(self, x: Tensor, rel: Tensor) -> Tensor:
        """[..., in_dim] rows and their relations [...] -> [..., out_dim].

        Rows are grouped by relation and each group multiplied by its own W_r (built from the
        bases first): num_bases times fewer operations than projecting every row on every
        basis, which is what the scorer spends its time on."""
        flat_x, flat_rel = x.reshape(-1, x.shape[-1]), rel.reshape(-1)
        if not len(flat_rel):  # no neighbour in the batch (a graph without edges)
            return x.new_zeros(*x.shape[:-1], self.out_dim)
        rels, counts = torch.unique(flat_rel, return_counts=True)
        if len(rels) > self.MAX_GROUPED:
            out = (self.coef(flat_rel).unsqueeze(-1) * self.project_bases(flat_x)).sum(-2)
            return out.view(*x.shape[:-1], self.out_dim)
        coef = self.coef(rels)  # [k, B]
        weight = torch.einsum("kb,boi->koi", coef, self.bases.weight.view(self.num_bases, self.out_dim, -1))
        bias = coef @ self.bases.bias.view(self.num_bases, self.out_dim)
        grouped = bool((flat_rel[1:] >= flat_rel[:-1]).all())  # rows already in relation order
        order = None if grouped else torch.argsort(flat_rel, stable=True)
        pieces = torch.split(flat_x if grouped else gather_rows(flat_x, order), counts.tolist())
        out = torch.cat([F.linear(p, weight[k], bias[k]) for k, p in enumerate(pieces)])
        if not grouped:
            out = gather_rows(out, torch.argsort(order))
        return out.view(*x.shape[:-1], self.out_dim)


class RelationalMeanConv(MessagePassing):
    """AverageAgg (Eq. 9): h_i = ReLU([W_self h_i ; mean_j W_{r(i,j)} h_j]).

    A node without sampled neighbours gets a zero neighbour half (model/README.md §2).
    """

    def __init__(self, in_dim: int, out_dim: int, num_relations: int, num_bases: int):
        super().__init__(aggr="mean", flow="source_to_target")
        half = out_dim // 2
        self.self_proj = nn.Linear(in_dim, half)
        self.rel_proj = RelationProjection(in_dim, half, num_relations, num_bases)

    def forward(self, x: Tensor, edge_index: Tensor, edge_type: Tensor) -> Tensor:
        return self.combine(x, self.neighbour_half(x, edge_index, edge_type))

    def neighbour_half(self, x: Tensor, edge_index: Tensor, edge_type: Tensor, num_targets: int | None = None) -> Tensor:
        """mean_j W_r x_j per target node [num_targets, half]. ``x`` holds the sources' rows
        (edge_index[0] indexes it, and may be the whole feature matrix, or
        ``model.level0.AnchoredFeatures``: only the rows used are read); edge_index[1] indexes
        the targets (default: the same nodes as x). W_r x_j is computed once per distinct
        (node, relation), not per edge (a node under one relation is the child of many targets),
        ordered by relation so that the projection needs no sort of its own."""
        num_src = x.shape[0]
        distinct, inverse = torch.unique(edge_type * num_src + edge_index[0], return_inverse=True)
        projected = self.rel_proj(gather_rows(x, distinct % num_src), distinct // num_src)
        size = (num_src, num_src if num_targets is None else num_targets)
        return self.propagate(edge_index, projected=gather_rows(projected, inverse), size=size)

    def combine(self, x_self: Tensor, neighbours: Tensor) -> Tensor:
        return F.relu(torch.cat([self.self_proj(x_self), neighbours], dim=-1))

    def message(self, projected: Tensor) -> Tensor:
        return projected


@dataclass
class Side:
    """One side of a batch of pairs at the last layer: centres and their padded neighbours."""

    centre: Tensor  # [P, dim]
    neighbours: Tensor  # [P, N, half] the neighbours' vectors projected by their relation (project_neighbours)
    rel: Tensor  # [P, N] long
    mask: Tensor  # [P, N] bool, True where a neighbour slot is real


def _masked_softmax(logits: Tensor, mask: Tensor) -> Tensor:
    logits = logits.masked_fill(~mask, float("-inf"))
    out = torch.softmax(logits, dim=-1)
    return torch.nan_to_num(out, nan=0.0) * mask  # all-masked rows: zeros, not NaN


class CollectiveAgg(nn.Module):
    """The pair-conditioned last layer (Eq. 4-6 with §4 cross-graph and §5 self-attention).

    Weights: w_ij proportional to alpha_ij * beta_ij, computed in log space as
    softmax_j(log alpha_ij + e_ij), where beta = softmax(e) is the relation-aware self-attention
    and alpha the cross-graph attention (row/column sums of A_pq = exp(-||z_p - z_q||)).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        num_relations: int,
        num_bases: int,
        cross_attention: bool = True,
        self_attention: bool = True,
    ):
        super().__init__()
        half = out_dim // 2
        self.self_proj = nn.Linear(in_dim, half)
        self.rel_proj = RelationProjection(in_dim, half, num_relations, num_bases)
        self.attention = nn.Embedding(num_relations, 2 * half)  # a_r, one per relation (§5)
        nn.init.normal_(self.attention.weight, std=0.1)
        self.cross_attention = cross_attention
        self.self_attention = self_attention

    def project_neighbours(self, h: Tensor, rel: Tensor) -> Tensor:
        """z_ij = W_r h_j: [..., in_dim] neighbour vectors and their relations -> [..., half].
        Kept apart from ``forward`` so a caller can project each distinct (node, relation) once."""
        return self.rel_proj(h, rel)

    def _self_logits(self, s: Tensor, z: Tensor, rel: Tensor) -> Tensor:
        if not self.self_attention:
            return torch.zeros(z.shape[:2], device=z.device, dtype=z.dtype)
        a_r = self.attention(rel)  # [P, N, 2*half]
        half = s.shape[-1]
        e = (a_r[..., :half] * s.unsqueeze(1)).sum(-1) + (a_r[..., half:] * z).sum(-1)
        return F.leaky_relu(e, 0.2)

    def forward(self, a: Side, b: Side) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Returns (h_a, h_b, w_a, w_b): pair vectors [P, out_dim] and neighbour weights [P, N]."""
        s_a, s_b = self.self_proj(a.centre), self.self_proj(b.centre)
        z_a, z_b = a.neighbours, b.neighbours
        logit_a = self._self_logits(s_a, z_a, a.rel)
        logit_b = self._self_logits(s_b, z_b, b.rel)
        if self.cross_attention:
            log_alpha_a, log_alpha_b = cross_graph_log_attention(z_a, a.mask, z_b, b.mask)
            logit_a, logit_b = logit_a + log_alpha_a, logit_b + log_alpha_b
        w_a, w_b = _masked_softmax(logit_a, a.mask), _masked_softmax(logit_b, b.mask)
        h_a = F.relu(torch.cat([s_a, (w_a.unsqueeze(-1) * z_a).sum(1)], dim=-1))
        h_b = F.relu(torch.cat([s_b, (w_b.unsqueeze(-1) * z_b).sum(1)], dim=-1))
        return h_a, h_b, w_a, w_b


def cross_graph_log_attention(
    z_a: Tensor, mask_a: Tensor, z_b: Tensor, mask_b: Tensor
) -> tuple[Tensor, Tensor]:
    """log alpha for both sides (model/README.md §3), up to a per-pair constant that softmax removes.

    A_pq = exp(-||z_p - z_q||); alpha_p = sum_q A_pq / sum_pq A_pq. Computed with logsumexp so
    that far-apart neighbourhoods do not underflow to 0/0. Where the other side has no
    neighbours, alpha is uniform (log alpha = 0), so the weights fall back to self-attention.
    """
    neg_dist = -pairwise_distance(z_a, z_b)  # [P, Na, Nb]
    pair_mask = mask_a.unsqueeze(2) & mask_b.unsqueeze(1)
    neg_dist = neg_dist.masked_fill(~pair_mask, float("-inf"))
    log_a = torch.logsumexp(neg_dist, dim=2)  # [P, Na]
    log_b = torch.logsumexp(neg_dist, dim=1)  # [P, Nb]
    has_other_a = mask_b.any(1, keepdim=True)
    has_other_b = mask_a.any(1, keepdim=True)
    log_a = torch.where(has_other_a, log_a, torch.zeros_like(log_a))
    log_b = torch.where(has_other_b, log_b, torch.zeros_like(log_b))
    # Masked slots hold -inf; they are masked again by the softmax.
    return log_a.nan_to_num(neginf=-1e9), log_b.nan_to_num(neginf=-1e9)


def pairwise_distance(x: Tensor, y: Tensor, eps: float = 1e-9) -> Tensor:
    """||x_p - y_q||_2 for [P, N, d] x [P, M, d] -> [P, N, M], with a finite gradient at 0.

    torch.cdist's gradient is NaN where two points coincide, and identical neighbours across
    the two graphs (the same year, the same venue name) are common here.
    """
    sq = (x * x).sum(-1).unsqueeze(2) + (y * y).sum(-1).unsqueeze(1) - 2 * x @ y.transpose(1, 2)
    return torch.sqrt(sq.clamp_min(0.0) + eps)

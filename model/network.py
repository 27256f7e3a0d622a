"""CG-MuAlign: two layers and the pair distance (MODEL.md §3, §8).

One encoder with shared parameters serves both graphs. Layer 1 (AverageAgg) runs once per
node; layer 2 (CollectiveAgg) runs once per pair, because its cross-graph attention depends on
the other candidate. The pair's distance is ||h_a - h_b||; its score is exp(-distance).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from model.layers import CollectiveAgg, RelationalMeanConv, Side
from model.shards import PairBatch


@dataclass(frozen=True)
class ModelConfig:
    hidden: int = 100  # m in the paper; each layer outputs [self half ; neighbour half]
    num_bases: int = 8  # relation projections share this many basis matrices
    cross_attention: bool = True
    self_attention: bool = True

    def __post_init__(self) -> None:
        if self.hidden < 2 or self.hidden % 2:
            raise ValueError(f"model.hidden must be an even number >= 2, got {self.hidden}")
        if self.num_bases < 1:
            raise ValueError(f"model.num_bases must be >= 1, got {self.num_bases}")

    def to_dict(self) -> dict:
        return asdict(self)


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
        self.layer1 = RelationalMeanConv(in_dim, config.hidden, num_relations, config.num_bases)
        self.layer2 = CollectiveAgg(
            config.hidden,
            config.hidden,
            num_relations,
            config.num_bases,
            cross_attention=config.cross_attention,
            self_attention=config.self_attention,
        )

    def forward(self, batch: PairBatch, features: Tensor) -> PairOutput:
        """features: [num_nodes, in_dim], the level-0 vectors of every node (row = node id)."""
        x = features[batch.node_ids]
        h1 = self.layer1(x, batch.edge_index, batch.edge_type)
        a = Side(h1[batch.centre_a], h1[batch.hop1_a], batch.rel_a, batch.mask_a)
        b = Side(h1[batch.centre_b], h1[batch.hop1_b], batch.rel_b, batch.mask_b)
        h_a, h_b, w_a, w_b = self.layer2(a, b)
        distance = torch.sqrt(((h_a - h_b) ** 2).sum(-1) + 1e-9)
        return PairOutput(distance, w_a, w_b)

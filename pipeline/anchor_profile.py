"""Anchor profiles: a level-0 vector for graphs without names, from where the seed links lie.

Each train (seed) link gets one pseudo-random vector, shared by its two ends. A node's profile
is, for each hop t = 1 .. ``hops``, the mean of those vectors over its t-hop walks
(``mean_neighbours`` applied t times), the hops side by side, unit length. Two nodes whose
neighbourhoods hold the same seed links, near and far, get close profiles, in either graph: on
OpenEA D-Y 15K (3,000 seed links), ranking the 1,500 valid links' B ends by profile cosine
alone puts the partner first for 0.82 of them with 4 hops, 0.37 with one (128 numbers per
hop; a prototype of this function). The features stage writes it as the ``anchor_profile``
block; ``block.vector_blocks: [anchor_profile]`` blocks on it; the score stage remakes it each
collective round with that round's anchors (``ProfileBootstrap``).

A seed node's own vector is taken out of its profile (the walks that return to it), so that a
train link's two ends are no closer than a test link's: the model, fitted on train links, then
sees at test time the distances it learnt from.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from model.level0 import block_columns, feature_blocks
from pipeline.anchors import seed_anchor_pairs
from pipeline.config import FeaturesConfig
from pipeline.stage import StageContext

log = logging.getLogger("kgmerge")


def seed_vectors(num_links: int, dim: int, seed: int) -> np.ndarray:
    """[num_links, dim] pseudo-random vectors, about unit length, one per seed link (in the
    order given, which the caller fixes)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((num_links, dim)) / np.sqrt(dim)).astype(np.float32)


def anchor_profiles(num_nodes: int, src: np.ndarray, dst: np.ndarray, seed_nodes: np.ndarray,
                    seed_links: np.ndarray, vectors: np.ndarray, hops: int) -> np.ndarray:
    """[num_nodes, hops * dim] float32 unit rows (zero where no seed link is within ``hops``).

    ``src``/``dst``: edges as node rows (direction and repeats ignored, self-loops dropped);
    ``seed_nodes[i]`` holds the vector ``vectors[seed_links[i]]`` (both ends of link j list j)."""
    x = torch.zeros(num_nodes, vectors.shape[1])
    x.index_add_(0, torch.as_tensor(seed_nodes, dtype=torch.long), torch.as_tensor(vectors)[seed_links])
    keep = src != dst
    a = torch.as_tensor(np.concatenate([src[keep], dst[keep]]), dtype=torch.long)
    b = torch.as_tensor(np.concatenate([dst[keep], src[keep]]), dtype=torch.long)
    pairs = torch.unique(torch.stack([a, b]), dim=1)  # undirected, each neighbour once
    degree = torch.bincount(pairs[0], minlength=num_nodes).clamp(min=1).unsqueeze(1).float()
    own = x / x.norm(dim=1, keepdim=True).clamp(min=1e-12)  # a seed node's own direction, 0 elsewhere
    walked, parts = x, []
    for _ in range(hops):
        walked = mean_neighbours(walked, pairs, degree)
        parts.append(walked - (walked * own).sum(1, keepdim=True) * own)
    profile = torch.cat(parts, dim=1)
    return (profile / profile.norm(dim=1, keepdim=True).clamp(min=1e-12)).numpy().astype(np.float32)


def mean_neighbours(h: torch.Tensor, pairs: torch.Tensor, degree: torch.Tensor) -> torch.Tensor:
    """Row v: the mean of ``h`` over v's neighbours (``pairs``: [2, E] (v, neighbour), each once)."""
    out = torch.zeros_like(h)
    out.index_add_(0, pairs[0], h[pairs[1]])
    return out / degree


def edge_node_rows(index: DataFrame, edges: DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Every edge as node rows of the node index: (src nids, dst nids), on the driver."""
    ids = index.select("kg", "id", "nid")
    ends = (edges.join(ids.select("kg", F.col("id").alias("src"), F.col("nid").alias("src_nid")), ["kg", "src"])
            .join(ids.select("kg", F.col("id").alias("dst"), F.col("nid").alias("dst_nid")), ["kg", "dst"])
            .select("src_nid", "dst_nid").toPandas())
    return ends["src_nid"].to_numpy(), ends["dst_nid"].to_numpy()


def profile_block(num_nodes: int, src: np.ndarray, dst: np.ndarray, links: pd.DataFrame,
                  fcfg: FeaturesConfig) -> np.ndarray:
    """The anchor_profile block of every node, with ``links`` (nid_a, nid_b) as the seed links:
    link i gets seed vector i, so links listed first keep their vectors when more are added
    (``seed_vectors`` draws row by row)."""
    num_links = len(links)
    return anchor_profiles(
        num_nodes, src, dst,
        seed_nodes=np.concatenate([links["nid_a"].to_numpy(), links["nid_b"].to_numpy()]),
        seed_links=np.tile(np.arange(num_links), 2),
        vectors=seed_vectors(num_links, fcfg.anchor_dim, seed=0), hops=fcfg.anchor_hops)


@dataclass
class ProfileBootstrap:
    """Remakes the level-0 matrix's anchor_profile block with a collective round's anchors as the
    seed links (BootEA's bootstrapping, for the profiles). What that needs besides the anchors,
    the train links and every edge as node rows (Spark joins collected to the driver), is
    gathered once, by ``gather``, and serves every round."""
    seeds: pd.DataFrame  # the train links (nid_a, nid_b), in the features stage's order
    src: np.ndarray  # every edge's two ends, as node rows
    dst: np.ndarray
    columns: slice  # the anchor_profile block's columns of the level-0 matrix
    fcfg: FeaturesConfig

    @classmethod
    def gather(cls, ctx: StageContext) -> "ProfileBootstrap":
        spark, paths = ctx.spark, ctx.paths
        index = spark.read.parquet(str(paths.node_index))
        src, dst = edge_node_rows(index, spark.read.parquet(str(paths.edges)))
        return cls(seed_anchor_pairs(spark.read.parquet(str(paths.gold)), index), src, dst,
                   block_columns(feature_blocks(paths.node_features), "anchor_profile"), ctx.config.features)

    def write(self, anchors: pd.DataFrame, matrix: Path, out: Path) -> None:
        """The level-0 ``matrix`` (.npy) with its anchor_profile block made with ``anchors``
        (nid_a, nid_b: the train links and a round's confident matches) as the seed links,
        written to ``out``. The train links come first, in the features stage's order, so with
        no other anchors the block is unchanged."""
        found = anchors.merge(self.seeds, on=["nid_a", "nid_b"], how="left", indicator=True)
        links = pd.concat([self.seeds, found.loc[found["_merge"] == "left_only", ["nid_a", "nid_b"]]],
                          ignore_index=True)
        level0 = np.load(matrix, mmap_mode="r")
        tmp = out.with_name(out.name + ".tmp.npy")
        out.parent.mkdir(parents=True, exist_ok=True)
        copy = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=level0.shape)
        copy[:] = level0
        copy[:, self.columns] = profile_block(len(level0), self.src, self.dst, links, self.fcfg)
        copy.flush()
        del copy
        tmp.replace(out)
        log.info("features: anchor profiles remade from %d seed links (%d train links, %d matched)",
                 len(links), len(self.seeds), len(links) - len(self.seeds))

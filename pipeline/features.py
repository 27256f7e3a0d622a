"""features: level-0 vectors (MiniLM on the name) for every node, and the node index.

Each distinct normalised name is encoded once, ever: vectors live in a cache table under the
warehouse (``cache/name_vectors``, one per encoder) shared by all runs, and only names missing
from it are encoded, inside Spark workers (``mapInArrow``, one encoder per Python worker, one
torch thread). ``features.encoder`` picks the full MiniLM transformer or the static word-piece
vectors distilled from it (model/level0.py); the static table is distilled once on the
driver, kept in the user's cache (``model.level0.STATIC_TABLE``) and broadcast to the workers.

Numeric attributes (``features.numeric``: prices, years, ABV, durations, dates), as the paper's
§4.3 does, are appended to the name vector: for each listed attribute key, two numbers per node,
the value on a signed log scale standardised over the dataset, and whether the node has it
(nodes without it, and nodes of other types, get zeros). Parsing uses Spark built-ins only:
"$ 1,299.00", "7.50 %", "3:01" (m:ss, as seconds), "31-Mar-15" / "2015-03-31" (as a
fractional year).

Lexical terms (``features.lexical``): MiniLM reads a title for its meaning and blurs the exact
tokens that tell products apart (model numbers, editions, "ii" vs "iii"). Each node's record
text (its name, then the names of the nodes its ``features.lexical_context`` relations point
to: a product's brand and model number) is cut into words and the character 3-grams of its
words (with ``features.lexical_squeezed`` also the character 4-grams of the whole text squeezed
to letters and digits, so "photoshop cs2" meets "photoshopcs2"), TF-IDF weighted over the
dataset and L2-normalised, and written as sparse rows
``lexical_terms`` (nid, term, w), all with Spark built-ins. The extract stage turns them into
one cosine per pair (``lex_sim``); the model adds it to the pair distance. Sparse and exact:
hashing the terms into a dense vector of 1,024 (4,096) dimensions lowered the valid F1 of the
plain cosine on Walmart-Amazon from 0.725 to 0.624 (0.691) through collisions.

Identifier codes (``features.identifier_codes``): a record's model and part numbers decide
many product pairs that the text cosine calls close ("mrk-515st" vs "mrk-525st"). Each record's
words of four or more letters and digits, both present, punctuation inside the word dropped, are
written with the record's whole text squeezed to letters and digits (``record_codes``: nid,
codes, squeezed; only records with codes). The extract stage marks a pair ``code_conflict``
where both records have codes and none of either is found in the other's squeezed text
("tp-tr47dbl" is found in "tptr47dbl"); the model adds it to the pair distance.

Identity vectors (``features.identity``: a length, 0 = off), for structure-only graphs whose
names are empty: a fixed pseudo-random vector per node (``identity_vector``). Anchor profiles
(``features.anchor_hops``: 0 = off), for the same graphs: where the seed links lie around each
node, near and far (pipeline/anchor_profile.py).

The parts (name, numeric, identity, anchor_profile) and their lengths are written into the
Parquet file's metadata; the model weighs each part's distance on its own (model/network.py).

Writes ``node_index`` (nid <-> (kg, id)) and ``node_features.parquet`` (row nid = the vector of
node nid), which the model reads directly.
"""
from __future__ import annotations

import logging
import shutil
import time
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from model.level0 import DIM, write_feature_file
from pipeline.anchor_profile import edge_node_rows, profile_block
from pipeline.anchors import seed_anchor_pairs
from pipeline.schema import NAME_VECTOR
from pipeline.stage import StageContext, StageResult
from pipeline.text import name_key, squeezed, unit_tfidf, words

log = logging.getLogger("kgmerge")

_ENCODERS: dict[str, object] = {}  # per Python worker: the loaded encoder of each kind


def encoder_partitions(kind: str, static_table=None) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The mapInArrow function that encodes a partition's ``name_key`` column with the ``kind``
    encoder (``static_table``: a broadcast of the static encoder's word-piece table)."""

    def encode(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from model.level0 import NameEncoder, StaticEncoder

        if kind not in _ENCODERS:  # one thread per worker: Spark already uses the cores
            _ENCODERS[kind] = (NameEncoder(threads=1) if kind == "minilm"
                              else StaticEncoder(static_table.value, threads=1))
        encoder = _ENCODERS[kind]
        for batch in batches:
            keys = batch.column("name_key").to_pylist()
            vecs = encoder.encode(keys)
            flat = pa.array(vecs.reshape(-1), type=pa.float32())
            offsets = pa.array(np.arange(0, len(keys) + 1, dtype=np.int32) * vecs.shape[1])
            yield pa.RecordBatch.from_arrays(
                [pa.array(keys, pa.string()), pa.ListArray.from_arrays(offsets, flat)],
                schema=pa.schema([("name_key", pa.string()), ("vec", pa.list_(pa.float32()))]),
            )

    return encode


def encode_missing(spark, missing: DataFrame, n_missing: int, kind: str, paths) -> None:
    """Encodes the distinct name keys of ``missing`` and appends them to the encoder's cache."""
    static_table = None
    if kind == "static":
        from model.level0 import static_token_table

        static_table = spark.sparkContext.broadcast(static_token_table())
    per_task = 256 if kind == "minilm" else 50_000  # a task's worth of names: a few seconds
    parts = max(1, min(spark.sparkContext.defaultParallelism * 2, n_missing // per_task + 1))
    encoded = missing.repartition(parts).mapInArrow(encoder_partitions(kind, static_table), NAME_VECTOR)
    encoded.write.mode("append").parquet(str(paths.name_vectors(kind)))
    if static_table is not None:
        static_table.destroy()


def cached_vectors(spark, path) -> DataFrame | None:
    """The name-vector cache, or None before the first run has written it."""
    jvm_path = spark._jvm.org.apache.hadoop.fs.Path(str(path))
    fs = jvm_path.getFileSystem(spark._jsc.hadoopConfiguration())
    if not fs.exists(jvm_path):
        return None
    return spark.read.schema(NAME_VECTOR).parquet(str(path))


def parse_number(value: Column) -> Column:
    """A string attribute -> double: plain numbers, money, percentages, m:ss durations, dates;
    null where none of these (NaN and infinities too: one would make every node's z-score NaN)."""
    text = F.trim(value)
    number = F.regexp_replace(text, r"[$€£%,\s]", "").try_cast("double")
    plain = F.when(~F.isnan(number) & (F.abs(number) < F.lit(float("inf"))), number)
    parts = F.split(text, ":")
    duration = F.when(
        text.rlike(r"^\d{1,3}:\d{2}(:\d{2})?$"),
        F.aggregate(parts, F.lit(0.0), lambda acc, p: acc * 60 + p.cast("double")),
    )
    stamp = F.coalesce(*[F.try_to_timestamp(text, F.lit(fmt)) for fmt in
                         ("yyyy-MM-dd", "yyyy/MM/dd", "dd-MMM-yy", "d-MMM-yy", "MMMM d, yyyy", "MMM d, yyyy")]
                        + [F.try_to_timestamp(text)])  # ISO 8601 date-times
    as_year = F.year(stamp) + (F.dayofyear(stamp) - 1) / 366.0
    return F.coalesce(plain, duration, as_year)


def numeric_features(nodes: DataFrame, keys: list[str]) -> DataFrame:
    """(kg, id, num: array<float> of 2 per key) for nodes with any of the keys."""
    cols = []
    for key in keys:
        v = parse_number(F.col("attrs")[key])
        cols.append(F.signum(v) * F.log1p(F.abs(v)))
    parsed = nodes.select("kg", "id", *[c.alias(f"v{i}") for i, c in enumerate(cols)])
    stats = parsed.agg(*[x for i in range(len(keys)) for x in
                         (F.mean(f"v{i}").alias(f"m{i}"), F.stddev_pop(f"v{i}").alias(f"s{i}"))]).first()
    out = []
    for i in range(len(keys)):
        mean, sd = stats[f"m{i}"] or 0.0, stats[f"s{i}"] or 1.0
        z = (F.col(f"v{i}") - F.lit(mean)) / F.lit(sd if sd > 0 else 1.0)
        out += [F.coalesce(z, F.lit(0.0)), F.col(f"v{i}").isNotNull().cast("double")]
    present = F.greatest(*[F.col(f"v{i}").isNotNull() for i in range(len(keys))]) if len(keys) > 1 \
        else F.col("v0").isNotNull()
    return parsed.where(present).select("kg", "id", F.array(*out).cast("array<float>").alias("num"))


def identity_vector(dim: int) -> Column:
    """A fixed pseudo-random vector per node (uniform, unit length in expectation), from a hash
    of (kg, id): for graphs without names, it tells nodes apart at level 0, and the collective
    model gives both ends of a seed link one shared vector (their mean), so a neighbour linked
    across the graphs is recognisable on both sides."""
    scale = (3.0 / dim) ** 0.5
    return F.array(*[
        ((F.pmod(F.xxhash64("kg", "id", F.lit(i)), F.lit(1_000_003)) / 1_000_003.0) * 2 - 1) * scale
        for i in range(dim)
    ]).cast("array<float>")


def lexical_text(nodes: DataFrame, edges: DataFrame, relations: list[str]) -> DataFrame:
    """(kg, id, text): the node's name key, then the name keys of the nodes its ``relations``
    edges point to, sorted (a product's title, brand and model number, as one record)."""
    if not relations:
        return nodes.select("kg", "id", F.col("name_key").alias("text"))
    targets = nodes.select("kg", F.col("id").alias("dst"), F.col("name_key").alias("dst_key"))
    context = (edges.where(F.col("rel").isin(relations)).join(targets, ["kg", "dst"])
               .groupBy("kg", F.col("src").alias("id"))
               .agg(F.array_join(F.array_sort(F.collect_list("dst_key")), " ").alias("context")))
    return nodes.join(context, ["kg", "id"], "left").select(
        "kg", "id", F.concat_ws(" ", "name_key", "context").alias("text"))


def lexical_terms(texts: DataFrame, squeezed_grams: bool = False) -> DataFrame:
    """(kg, id, text) -> (kg, id, term, w): the text's words ("w:...") and the character 3-grams
    of its words ("g:..."), with ``squeezed_grams`` also the character 4-grams of the squeezed
    text ("q:...", across word boundaries), TF-IDF over the texts, unit length per node."""
    text_words = words(F.col("text"))
    grams = F.flatten(F.transform(text_words, lambda w: F.transform(
        F.sequence(F.lit(1), F.greatest(F.length(w), F.lit(1))),
        lambda i: F.concat(F.lit("g:"), F.substring(F.concat(F.lit("#"), w, F.lit("#")), i, 3)))))
    parts = [F.transform(text_words, lambda w: F.concat(F.lit("w:"), w)), grams]
    if squeezed_grams:
        text = squeezed(F.col("text"))
        parts.append(F.when(F.length(text) == 0, F.array().cast("array<string>")).otherwise(F.transform(
            F.sequence(F.lit(1), F.greatest(F.length(text) - 3, F.lit(1))),
            lambda i: F.concat(F.lit("q:"), F.substring(text, i, 4)))))
    terms = texts.select("kg", "id", F.explode(F.concat(*parts)).alias("term"))
    w = unit_tfidf(terms, node=["kg", "id"], term="term", documents=texts)
    # a term in every text weighs 0 and tells nothing: dropped (so is a text made of such terms)
    return w.where(F.col("w") > 0).select("kg", "id", "term", F.col("w").cast("float").alias("w"))


def identifier_codes(texts: DataFrame) -> DataFrame:
    """(kg, id, text) -> (kg, id, codes, squeezed) for the records that have codes: the text's
    words with at least four letters and digits, both present (punctuation inside a word
    dropped, so "tp-tr47dbl" is "tptr47dbl"), and the whole text with everything but letters
    and digits dropped."""
    words = F.transform(F.split(F.col("text"), r"\s+"), squeezed)
    codes = F.array_distinct(F.filter(words, lambda w: (F.length(w) >= 4) & w.rlike(r"\p{N}") & w.rlike(r"\p{L}")))
    return (texts.select("kg", "id", codes.alias("codes"), squeezed(F.col("text")).alias("squeezed"))
            .where(F.size("codes") > 0))


def write_anchor_profiles(ctx: StageContext, index: DataFrame, edges: DataFrame, path) -> None:
    """(nid, profile) of every node as one Parquet file: ``profile_block`` over the edges with the
    train links as the seed links, on the driver (a few arrays of node ids; the profiles
    themselves are nodes x anchor_hops x anchor_dim floats)."""
    links = seed_anchor_pairs(ctx.spark.read.parquet(str(ctx.paths.gold)), index)
    if links.empty:
        raise ValueError("features.anchor_hops needs gold links with split 'train' (the seed links the "
                         "profiles are made of); set it to 0 for data without them")
    src, dst = edge_node_rows(index, edges)
    profiles = profile_block(index.count(), src, dst, links, ctx.config.features)
    flat = pa.array(profiles.ravel(), pa.float32())
    pq.write_table(pa.table({"nid": pa.array(np.arange(len(profiles)), pa.int64()),
                             "profile": pa.FixedSizeListArray.from_arrays(flat, profiles.shape[1])}), str(path))
    log.info("features: anchor profiles from %d seed links, %d edges, %d hops", len(links), len(src),
             ctx.config.features.anchor_hops)


def with_dense_index(df: DataFrame, order: list[str], name: str) -> DataFrame:
    """``df`` with a column ``name``: 0, 1, 2, ... in ``order`` (which must be unique), computed
    in parallel: rows are range-partitioned, numbered within their partition, and each
    partition's numbers shifted by the row count of the partitions before it. (A row_number
    over one global window would move every row into a single task.)"""
    parts = max(1, int(df.sparkSession.conf.get("spark.sql.shuffle.partitions")))
    # materialised once, so the counts and the numbering see the same partitioning
    ranked = (df.repartitionByRange(parts, *order).withColumn("_part", F.spark_partition_id())
              .withColumn("_local", F.row_number().over(Window.partitionBy("_part").orderBy(*order)) - 1)
              .localCheckpoint())
    counts = sorted((r["_part"], r["count"]) for r in ranked.groupBy("_part").count().collect())
    offsets, total = [], 0
    for part, count in counts:
        offsets += [F.lit(part), F.lit(total)]
        total += count
    offset = F.create_map(*offsets)[F.col("_part")] if offsets else F.lit(0)
    return ranked.select((offset + F.col("_local")).cast("int").alias(name), *df.columns)


def run(ctx: StageContext) -> StageResult:
    spark, paths = ctx.spark, ctx.paths
    nodes = spark.read.parquet(str(paths.nodes)).withColumn("name_key", name_key(F.col("name")))
    edges = spark.read.parquet(str(paths.edges))
    fcfg = ctx.config.features
    if fcfg.lexical_context:  # checked before anything is written
        known = {r["rel"] for r in edges.select("rel").distinct().collect()}
        unknown = sorted(set(fcfg.lexical_context) - known)
        if unknown:
            raise ValueError(f"features.lexical_context names relation(s) {unknown} that no edge has; "
                             f"the graph's relations are {sorted(known)}")
    keys = nodes.select("name_key").distinct()
    cache_path = paths.name_vectors(fcfg.encoder)
    cache = cached_vectors(spark, cache_path)
    missing = keys if cache is None else keys.join(cache, "name_key", "left_anti")
    n_missing = missing.count()
    encode_start = time.time()
    if n_missing:
        log.info("features: encoding %d new distinct names with the %s encoder", n_missing, fcfg.encoder)
        encode_missing(spark, missing, n_missing, fcfg.encoder, paths)
        cache = cached_vectors(spark, cache_path)
    encode_seconds = round(time.time() - encode_start, 1)

    # nid: dense index over (kg, id), the row of the node's vector in node_features.parquet
    index = with_dense_index(nodes.select("kg", "id", "type", "name", "name_key"), ["kg", "id"], "nid")
    index.drop("name_key").write.mode("overwrite").parquet(str(paths.node_index))
    index = spark.read.parquet(str(paths.node_index))
    with_keys = index.join(nodes.select("kg", "id", "name_key"), ["kg", "id"])
    vectors = with_keys.join(cache.dropDuplicates(["name_key"]), "name_key").select("nid", "kg", "id", "vec")
    numeric = fcfg.numeric
    blocks = [("name", DIM)]  # the parts of the vector, in order (the model weighs each)
    if numeric:
        blocks.append(("numeric", 2 * len(numeric)))
        zeros = F.array_repeat(F.lit(0.0).cast("float"), 2 * len(numeric))
        nums = numeric_features(nodes, numeric)
        vectors = vectors.join(nums, ["kg", "id"], "left").withColumn(
            "vec", F.concat("vec", F.coalesce("num", zeros)))
    if fcfg.identity:
        blocks.append(("identity", fcfg.identity))
        vectors = vectors.withColumn("vec", F.concat("vec", identity_vector(fcfg.identity)))
    staged_profiles = paths.staged_anchor_profiles
    if fcfg.anchor_hops:
        blocks.append(("anchor_profile", fcfg.anchor_hops * fcfg.anchor_dim))
        write_anchor_profiles(ctx, index, edges, staged_profiles)
        vectors = vectors.join(spark.read.parquet(str(staged_profiles)), "nid").withColumn(
            "vec", F.concat("vec", "profile"))
    n_terms = 0
    if fcfg.lexical:
        texts = lexical_text(nodes, edges, fcfg.lexical_context)
        terms = (lexical_terms(texts, fcfg.lexical_squeezed)
                 .join(index.select("kg", "id", "nid"), ["kg", "id"]).select("nid", "term", "w"))
        terms.write.mode("overwrite").parquet(str(paths.lexical_terms))
        n_terms = spark.read.parquet(str(paths.lexical_terms)).count()
    else:
        shutil.rmtree(paths.lexical_terms, ignore_errors=True)  # an earlier run's, config changed
    n_coded = 0
    if fcfg.identifier_codes:
        codes = identifier_codes(texts).join(index.select("kg", "id", "nid"), ["kg", "id"])
        codes.select("nid", "codes", "squeezed").write.mode("overwrite").parquet(str(paths.record_codes))
        n_coded = spark.read.parquet(str(paths.record_codes)).count()
    else:
        shutil.rmtree(paths.record_codes, ignore_errors=True)
    # written by the executors, then streamed into one file: never collected (3 GB at 1M per side)
    parts = paths.node_features.with_name("node_features.parts")
    vectors.select("nid", "vec").orderBy("nid").write.mode("overwrite").parquet(str(parts))
    n_index = index.count()
    n_rows = write_feature_file(parts, paths.node_features, blocks)
    shutil.rmtree(parts)
    staged_profiles.unlink(missing_ok=True)
    if n_rows != n_index:
        raise RuntimeError(f"{n_index - n_rows} nodes got no vector; rerun the features stage")
    return StageResult(
        rows_in=n_index, rows_out=n_rows,
        details={"distinct_names": keys.count(), "names_encoded": n_missing, "encoder": fcfg.encoder,
                 "encode_seconds": encode_seconds, "numeric": numeric,
                 "blocks": dict(blocks), "lexical_terms": n_terms,
                 "records_with_codes": n_coded,
                 "dim": sum(size for _, size in blocks)},
    )


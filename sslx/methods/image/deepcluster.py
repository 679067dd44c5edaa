"""DeepCluster (Caron et al. 2018): alternate k-means on the features and classification of the clusters.

At the start of every epoch (the method's ``epoch_start`` hook, run by the training loop at epoch
boundaries, see :mod:`sslx.methods.base`):

1. features ``f(x)`` of the **whole** training set from the current encoder in eval mode (un-augmented
   images; grayscale + Sobel first when ``config.method.sobel``), computed chunk by chunk with the
   rows sharded over the devices: the feature matrix ``[N_pad, D]`` stays sharded by rows;
2. PCA whitening to ``min(D, config.method.pca_dim)`` dims (:func:`pca_whiten`, covariance psum-ed
   over devices), then L2 normalisation of every row;
3. k-means with ``K = config.method.num_clusters`` (:func:`kmeans`): ``kmeans_iters`` Lloyd
   iterations under ``jax.shard_map`` over the device mesh -- every shard assigns its rows, the
   per-cluster sums and counts are ``psum``-ed -- with empty clusters re-seeded by splitting a large
   cluster (:func:`split_empty_clusters`);
4. the assignments become the pseudo-labels of every example and the per-example sampling weights
   become ``1 / (K_nonempty * |cluster|)`` (uniform over clusters), both stored in the method
   ``state`` (so checkpoints hold them); the linear classifier ``params["head"]`` is re-initialised
   and its optimiser state reset (the reference re-creates the top layer and its optimiser every
   epoch); the encoder's optimiser state (momentum) is kept.

Training step: one augmented view (``config.augment``: random resized crop + flip in the paper),
optional Sobel, encoder (train mode, synced BN), linear head ``[D] -> [K]``, softmax cross-entropy
against ``state["pseudo_labels"][batch["index"]]`` (the loop adds the global example ``index`` to
every batch because the method sets ``batch_index=True``; a batch without ``index`` -- synthetic
benchmark batches -- uses the pseudo-label of example 0). Batches are drawn with the stored sampling
weights (:meth:`Method.sampling_weights`), a deterministic function of (seed, step, weights).

Before the first clustering the pseudo-labels are the placeholder ``i mod K`` and the weights uniform;
the training loop always clusters before step 0, so they only matter for code that calls ``loss_fn``
without the hook (benchmarks, unit tests).

Metrics of each clustering (written by the loop at the epoch's first step): ``nmi_true`` (NMI between
the clusters and the true labels), ``nmi_prev`` (NMI between this and the previous assignment, from
the second clustering on), ``kmeans_loss`` (mean squared distance to the centroid), ``num_splits``
(empty clusters re-seeded), ``cluster_size_max`` / ``cluster_size_min``, and the wall time of the
feature extraction and of the clustering (``features_seconds`` / ``kmeans_seconds``, incl. compilation
at the first epoch).

state = {"encoder": bn, "pseudo_labels": int32 [N], "sample_weights": float32 [N],
"num_clusterings": int32}. ``encode``: (Sobel then) the encoder in eval mode. With Adam-type
optimisers the reset head moments restart while the shared step count does not, so the head's first
updates after a reset are larger than Adam's usual first step; the paper uses SGD with momentum,
for which the reset is exact.

The clustering runs on the train step's devices (``ctx.devices``); the labels come back replicated.
Multi-host runs (every process reading the whole training set) are untested.
"""
from __future__ import annotations

import functools
import time
from typing import Optional

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from sslx import augment, losses
from sslx.losses.classification import softmax_cross_entropy
from sslx.losses.clustering import (assign_clusters, normalized_mutual_info,
                                     uniform_cluster_weights, update_centroids)
from sslx.methods.base import DATA_AXIS, EpochContext, Method
from sslx.train.state import reset_opt_state_under
from sslx.methods.image.common import apply_eval, apply_train, build_encoder, images_to_float, init_module, make_views

# Axis name of the clustering mesh (independent of the train step's axis name).
CLUSTER_AXIS = "rows"


# --------------------------------------------------------------------------- input filtering

def sobel_filter(images: jax.Array) -> jax.Array:
    """Grayscale (channel mean) then Sobel x / y: float ``[B, H, W, C]`` -> ``[B, H, W, 2]``.

    As the reference's fixed first layers: a 1x1 conv averaging the channels, then 3x3
    cross-correlations with ``[[1, 0, -1], [2, 0, -2], [1, 0, -1]]`` and its transpose, zero padding 1.
    """
    chex.assert_rank(images, 4)
    x = jnp.mean(images.astype(jnp.promote_types(images.dtype, jnp.float32)), axis=-1, keepdims=True)
    kx = jnp.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]], x.dtype)
    kernel = jnp.stack([kx, kx.T], axis=-1)[:, :, None, :]  # HWIO [3, 3, 1, 2]
    return lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)),
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))


# --------------------------------------------------------------------------- clustering pieces

def _psum(x, axis_name: Optional[str]):
    return x if axis_name is None else lax.psum(x, axis_name)


def _offset(n_local: int, axis_name: Optional[str]) -> jax.Array:
    return jnp.asarray(0, jnp.int32) if axis_name is None else lax.axis_index(axis_name) * n_local


def pca_whiten(x: jax.Array, mask: jax.Array, dim: int, axis_name: Optional[str] = None,
               eps: float = 1e-5) -> tuple[jax.Array, dict]:
    """PCA whitening of the rows of ``x [n_local, D]`` weighted by ``mask [n_local]`` -> ``[n_local, min(D, dim)]``.

    Mean and covariance are taken over every masked row of every shard (psum over ``axis_name``);
    the output is ``(x - mean) V / sqrt(lambda + eps)`` for the top ``dim`` eigenpairs (largest first,
    every eigenvector's largest-magnitude entry made positive so the result is deterministic), so the
    whitened rows have covariance ``diag(lambda / (lambda + eps))`` ~ identity. Masked-out rows give 0.
    Aux: ``eigenvalues`` [dim] (descending).
    """
    chex.assert_rank([x, mask], [2, 1])
    d = x.shape[1]
    k = min(int(dim), d)
    if k < 1:
        raise ValueError(f"pca_whiten: dim must be >= 1, got {dim}.")
    x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    m = mask.astype(x.dtype)[:, None]
    n = _psum(jnp.sum(m), axis_name)
    mean = _psum(jnp.sum(x * m, axis=0), axis_name) / n
    xc = (x - mean) * m
    cov = _psum(xc.T @ xc, axis_name) / n
    cov = 0.5 * (cov + cov.T)
    evals, evecs = jnp.linalg.eigh(cov)
    evals, evecs = evals[::-1][:k], evecs[:, ::-1][:, :k]
    evals = jnp.maximum(evals, 0.0)
    pivot = jnp.take_along_axis(evecs, jnp.argmax(jnp.abs(evecs), axis=0)[None, :], axis=0)[0]
    evecs = evecs * jnp.where(pivot < 0, -1.0, 1.0)[None, :]
    y = (xc @ evecs) / jnp.sqrt(evals + eps)[None, :]
    return y, {"eigenvalues": evals}


def init_centroids(x: jax.Array, mask: jax.Array, key: jax.Array, num_clusters: int,
                   axis_name: Optional[str] = None) -> jax.Array:
    """``num_clusters`` distinct masked rows of the (sharded) ``x``, chosen uniformly -> ``[K, D]``.

    Row ``i`` (global index) gets the score ``uniform(fold_in(key, i))``; the K lowest-scoring masked
    rows are the centroids (in score order), so the choice does not depend on how rows are sharded
    or padded. Needs at least K masked rows (checked by the caller: the count is traced here).
    """
    n_local = x.shape[0]
    gidx = _offset(n_local, axis_name) + jnp.arange(n_local, dtype=jnp.int32)
    scores = jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(key, i)))(gidx)
    scores = jnp.where(mask > 0, scores, jnp.inf)
    every = scores if axis_name is None else lax.all_gather(scores, axis_name, tiled=True)
    _, idx = lax.top_k(-every, num_clusters)
    pos = idx - _offset(n_local, axis_name)
    here = (pos >= 0) & (pos < n_local)
    rows = jnp.where(here[:, None], x[jnp.clip(pos, 0, n_local - 1)], 0.0)
    return _psum(rows, axis_name)


def _global_rank(member: jax.Array, axis_name: Optional[str]) -> jax.Array:
    """0-based rank of every ``member`` row among all members, in global row order."""
    mi = member.astype(jnp.int32)
    before = jnp.asarray(0, jnp.int32)
    if axis_name is not None:
        per_shard = lax.all_gather(jnp.sum(mi), axis_name)
        before = jnp.sum(jnp.where(jnp.arange(per_shard.shape[0]) < lax.axis_index(axis_name), per_shard, 0))
    return before + jnp.cumsum(mi) - 1


def split_empty_clusters(x: jax.Array, mask: jax.Array, labels: jax.Array, centroids: jax.Array,
                         counts: jax.Array, key: jax.Array, axis_name: Optional[str] = None,
                         max_splits: Optional[int] = None) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Re-seed every empty cluster by splitting a large one (DeepCluster / faiss).

    One empty cluster ``e`` at a time (lowest index first): pick a cluster ``j`` with probability
    proportional to ``count_j - 1`` (clusters of >= 2 rows; faiss's rule, so large clusters are
    split first), draw a random unit direction ``u``, i.e. the centroids ``c_j +/- eps u``, and
    reassign ``j``'s rows to the nearer one: rows with ``(x - c_j) . u > 0`` move to ``e``. As
    ``c_j`` is the mean of its rows, both sides are non-empty unless every row lies on the plane
    (e.g. duplicates); then the first half of ``j``'s rows in global order moves instead. ``c_e`` and
    ``c_j`` become the means of their new rows. Stops when no cluster is empty, none has >= 2 rows,
    or after ``max_splits`` (default K) splits.

    ``labels [n_local]`` / ``x [n_local, D]`` / ``mask`` are this shard's rows; ``centroids [K, D]``,
    ``counts [K]`` (float, global) and ``key`` are replicated. Returns ``(labels, centroids, counts,
    num_splits)``; the same on every shard and for every sharding of the rows.
    """
    k = centroids.shape[0]
    max_splits = k if max_splits is None else int(max_splits)
    valid = mask > 0
    xd = x.astype(centroids.dtype)

    def cond(carry):
        _, _, cnt, t = carry
        return (t < max_splits) & jnp.any(cnt == 0) & jnp.any(cnt >= 2)

    def body(carry):
        lab, cen, cnt, t = carry
        kt = jax.random.fold_in(key, t)
        k_pick, k_dir = jax.random.split(kt)
        e = jnp.argmax(cnt == 0)
        logits = jnp.where(cnt >= 2, jnp.log(jnp.maximum(cnt - 1.0, 1e-30)), -jnp.inf)
        j = jax.random.categorical(k_pick, logits)
        u = jax.random.normal(k_dir, (x.shape[1],), cen.dtype)
        u = u / jnp.linalg.norm(u)
        member = (lab == j) & valid
        side = member & (((xd - cen[j]) @ u) > 0)
        n_side = _psum(jnp.sum(side.astype(cen.dtype)), axis_name)
        degenerate = (n_side == 0) | (n_side == cnt[j])
        by_rank = member & (_global_rank(member, axis_name) < jnp.floor(cnt[j] / 2).astype(jnp.int32))
        move = jnp.where(degenerate, by_rank, side)
        stay = member & ~move
        mv, st = move.astype(cen.dtype)[:, None], stay.astype(cen.dtype)[:, None]
        s_e, n_e = _psum(jnp.sum(xd * mv, axis=0), axis_name), _psum(jnp.sum(mv), axis_name)
        s_j, n_j = _psum(jnp.sum(xd * st, axis=0), axis_name), _psum(jnp.sum(st), axis_name)
        lab = jnp.where(move, e.astype(lab.dtype), lab)
        cen = cen.at[e].set(s_e / jnp.maximum(n_e, 1.0)).at[j].set(s_j / jnp.maximum(n_j, 1.0))
        cnt = cnt.at[e].set(n_e).at[j].set(n_j)
        return lab, cen, cnt, t + 1

    return lax.while_loop(cond, body, (labels, centroids, counts, jnp.asarray(0, jnp.int32)))


def _assign_chunked(x: jax.Array, centroids: jax.Array, chunk: int) -> tuple[jax.Array, jax.Array]:
    n, d = x.shape
    lab, d2 = lax.map(lambda xc: assign_clusters(xc, centroids), x.reshape(n // chunk, chunk, d))
    return lab.reshape(n), d2.reshape(n)


def kmeans(x: jax.Array, mask: jax.Array, key: jax.Array, num_clusters: int, num_iters: int,
           axis_name: Optional[str] = None, chunk: Optional[int] = None) -> tuple[jax.Array, jax.Array, dict]:
    """Lloyd's k-means on this shard's rows ``x [n_local, D]`` (psum over ``axis_name``).

    Centroids start at K distinct random masked rows (:func:`init_centroids`). Each of the
    ``num_iters`` iterations: assign every row to its nearest centroid, set every non-empty centroid
    to the mean of its rows (sums / counts psum-ed), then :func:`split_empty_clusters`. Rows are
    processed in chunks of ``chunk`` rows (must divide ``n_local``; ``None``: all at once).

    Returns ``(labels int32 [n_local], centroids [K, D], aux)``: the labels of the last iteration and
    the means of their clusters; aux: ``counts`` [K] (no zeros unless fewer than K distinct rows),
    ``loss`` (mean squared distance of the rows to their centroid at the last assignment),
    ``num_splits`` (empty clusters re-seeded, over all iterations).
    """
    chex.assert_rank([x, mask], [2, 1])
    n = x.shape[0]
    chunk = n if chunk is None else int(chunk)
    if chunk < 1 or n % chunk:
        raise ValueError(f"kmeans: chunk={chunk} must divide the {n} local rows; pad the rows (mask 0).")
    if num_iters < 1:
        raise ValueError(f"kmeans: num_iters must be >= 1, got {num_iters}.")
    x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    c0 = init_centroids(x, mask, jax.random.fold_in(key, 0), num_clusters, axis_name)
    m = mask.astype(x.dtype)
    n_total = _psum(jnp.sum(m), axis_name)

    def it(t, carry):
        _, cen, _, _, splits = carry
        lab, d2 = _assign_chunked(x, cen, chunk)
        cen, cnt = update_centroids(x, lab, m, cen, axis_name=axis_name, chunk=chunk)
        loss = _psum(jnp.sum(d2 * m), axis_name) / n_total
        lab, cen, cnt, ns = split_empty_clusters(x, mask, lab, cen, cnt, jax.random.fold_in(key, t + 1), axis_name)
        return lab, cen, cnt, loss, splits + ns

    init = (jnp.zeros((n,), jnp.int32), c0, jnp.zeros((num_clusters,), x.dtype), jnp.zeros((), x.dtype),
            jnp.zeros((), jnp.int32))
    lab, cen, cnt, loss, splits = lax.fori_loop(0, num_iters, it, init)
    return lab, cen, {"counts": cnt, "loss": loss, "num_splits": splits}


def cluster_features(x: jax.Array, mask: jax.Array, key: jax.Array, *, num_clusters: int, num_iters: int,
                     pca_dim: int, pca_eps: float, axis_name: Optional[str] = None,
                     chunk: Optional[int] = None) -> tuple[jax.Array, jax.Array, dict]:
    """DeepCluster's clustering of one shard's features: PCA whitening, L2 normalisation, k-means."""
    y, _ = pca_whiten(x, mask, pca_dim, axis_name, pca_eps)
    y = losses.l2_normalize(y, axis=-1) * mask.astype(y.dtype)[:, None]
    return kmeans(y, mask, key, num_clusters, num_iters, axis_name, chunk)


def _gathered(fn):
    """``fn`` with its per-shard labels all-gathered (replicated output: addressable on every host)."""
    def wrapped(x, mask, key):
        lab, cen, aux = fn(x, mask, key)
        return lax.all_gather(lab, CLUSTER_AXIS, tiled=True), cen, aux
    return wrapped


@functools.lru_cache(maxsize=8)
def sharded_cluster_fn(devices: tuple, num_clusters: int, num_iters: int, pca_dim: int, pca_eps: float,
                       chunk: Optional[int], whiten: bool = True):
    """A jitted ``(features [N_pad, D], mask [N_pad], key) -> (labels [N_pad], centroids, aux)`` that runs
    :func:`cluster_features` (``whiten=False``: :func:`kmeans` only) under ``jax.shard_map`` with the
    rows sharded over ``devices``; the labels come back replicated."""
    mesh = Mesh(np.asarray(devices), (CLUSTER_AXIS,))
    if whiten:
        fn = functools.partial(cluster_features, num_clusters=num_clusters, num_iters=num_iters, pca_dim=pca_dim,
                               pca_eps=pca_eps, axis_name=CLUSTER_AXIS, chunk=chunk)
    else:
        fn = functools.partial(kmeans, num_clusters=num_clusters, num_iters=num_iters, axis_name=CLUSTER_AXIS,
                               chunk=chunk)
    mapped = jax.shard_map(_gathered(fn), mesh=mesh, in_specs=(P(CLUSTER_AXIS), P(CLUSTER_AXIS), P()),
                           out_specs=(P(), P(), P()), check_vma=False)
    return jax.jit(mapped)


@functools.lru_cache(maxsize=8)
def _concat_rows_fn(devices: tuple):
    """Jitted concatenation of row-sharded chunks, shard by shard (no data moves between devices)."""
    mesh = Mesh(np.asarray(devices), (CLUSTER_AXIS,))
    return jax.jit(jax.shard_map(lambda cs: jnp.concatenate(cs, axis=0), mesh=mesh, in_specs=(P(CLUSTER_AXIS),),
                                 out_specs=P(CLUSTER_AXIS), check_vma=False))


def run_kmeans_sharded(features: np.ndarray | jax.Array, key: jax.Array, devices: list, *, num_clusters: int,
                       num_iters: int, pca_dim: int = 256, pca_eps: float = 1e-5, chunk: Optional[int] = None,
                       whiten: bool = True) -> tuple[np.ndarray, np.ndarray, dict]:
    """Cluster host/global ``features [N, D]`` with the rows sharded over ``devices`` (tests, tools).

    Pads the rows to a multiple of ``len(devices) * chunk`` (mask 0). ``whiten=False`` runs
    :func:`kmeans` on the rows as given. Returns ``(labels [N], centroids [K, D], aux)`` on the host.
    """
    feats = np.asarray(features, np.float32)
    n, d = feats.shape
    if num_clusters > n:
        raise ValueError(f"num_clusters={num_clusters} exceeds the {n} rows to cluster.")
    p = len(devices)
    per = -(-n // p)
    chunk = per if chunk is None else int(chunk)
    per = -(-per // chunk) * chunk
    x = np.zeros((p * per, d), np.float32)
    x[:n] = feats
    mask = np.zeros((p * per,), np.float32)
    mask[:n] = 1.0
    fn = sharded_cluster_fn(tuple(devices), num_clusters, num_iters, pca_dim, pca_eps, chunk, whiten)
    sh = NamedSharding(Mesh(np.asarray(devices), (CLUSTER_AXIS,)), P(CLUSTER_AXIS))
    lab, cen, aux = fn(jax.device_put(x, sh), jax.device_put(mask, sh), key)
    return np.asarray(lab)[:n], np.asarray(cen), jax.device_get(aux)


# --------------------------------------------------------------------------- the method

class _Head(nn.Module):
    """The re-initialised linear classifier ``[D] -> [K]`` (weights N(0, 0.01), bias 0)."""
    num_clusters: int

    @nn.compact
    def __call__(self, h):
        return nn.Dense(self.num_clusters, kernel_init=nn.initializers.normal(0.01), dtype=jnp.float32)(h)


def deepcluster(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
                total_steps: Optional[int] = None) -> Method:
    """DeepCluster as a :class:`Method` (see the module docstring).

    Reads ``config.model`` (``encoder``), ``config.augment`` (one view) and ``config.method``:
    ``num_clusters`` K, ``num_examples`` N (the training-set size: the pseudo-labels are an [N] array
    of the state), ``pca_dim`` (256), ``pca_eps`` (1e-5), ``kmeans_iters`` (20), ``cluster_chunk``
    (rows per device per encoder call / k-means chunk, 1024), ``sobel`` (False),
    ``uniform_sampling`` (True).
    """
    del total_steps
    m = config.method
    k = int(m.num_clusters)
    n_examples = int(m.get("num_examples", 0))
    pca_dim = int(m.get("pca_dim", 256))
    pca_eps = float(m.get("pca_eps", 1e-5))
    iters = int(m.get("kmeans_iters", 20))
    chunk = int(m.get("cluster_chunk", 1024))
    sobel = bool(m.get("sobel", False))
    uniform = bool(m.get("uniform_sampling", True))
    if n_examples < 1:
        raise ValueError("deepcluster: config.method.num_examples must be the training-set size (> 0), e.g. "
                         "--config.method.num_examples=60000 for fashion_mnist; the pseudo-labels are a state "
                         "array of that length.")
    if not 2 <= k <= n_examples:
        raise ValueError(f"deepcluster: config.method.num_clusters={k} must be in [2, num_examples={n_examples}].")
    if pca_dim < 1 or iters < 1 or chunk < 1 or pca_eps < 0:
        raise ValueError(f"deepcluster: need pca_dim >= 1, kmeans_iters >= 1, cluster_chunk >= 1, pca_eps >= 0; "
                         f"got {pca_dim}, {iters}, {chunk}, {pca_eps}.")
    encoder = build_encoder(config, axis_name)
    head = _Head(k)
    view_fn = augment.make_view_fn({kk: v for kk, v in dict(config.augment).items() if kk != "multicrop"})
    crop = int(config.augment.crop_size)

    def prep(x):
        return sobel_filter(x) if sobel else x

    def init(rng, batch):
        x = prep(jnp.zeros((2, crop, crop, batch["image"].shape[-1]), jnp.float32))
        k1, k2 = jax.random.split(rng)
        ep, es, h = init_module(encoder, k1, x)
        hp = head.init(k2, h)["params"]
        state = {"encoder": es,
                 "pseudo_labels": jnp.arange(n_examples, dtype=jnp.int32) % k,
                 "sample_weights": jnp.full((n_examples,), 1.0 / n_examples, jnp.float32),
                 "num_clusterings": jnp.zeros((), jnp.int32)}
        return {"encoder": ep, "head": hp}, state

    def loss_fn(params, state, batch, rng):
        images = batch["image"]
        b = images.shape[0]
        (view,) = make_views(view_fn, rng, images, axis_name, num_views=1)
        h, enc_stats = apply_train(encoder, params["encoder"], state["encoder"], prep(view))
        logits = head.apply({"params": params["head"]}, h)
        index = batch.get("index")
        index = jnp.zeros((b,), jnp.int32) if index is None else index.astype(jnp.int32)
        targets = state["pseudo_labels"][index]
        loss, aux = softmax_cross_entropy(logits, targets)
        return loss, ({**state, "encoder": enc_stats}, {"pseudo_label_acc": aux["accuracy"]})

    def encode(params, state, images):
        return apply_eval(encoder, params["encoder"], state["encoder"], prep(images_to_float(images)))

    encode_jit = jax.jit(encode)

    def extract(params, state, dataset, devices):
        """Features [N_pad, D] row-sharded over ``devices`` (global row r = example r), mask, true labels."""
        n, p = len(dataset), len(devices)
        per_dev = -(-n // p)
        per_dev = -(-per_dev // chunk) * chunk
        mesh = Mesh(np.asarray(devices), (CLUSTER_AXIS,))
        rows = NamedSharding(mesh, P(CLUSTER_AXIS))
        # Replicate the weights onto these devices once (a pmap replica sits on one device only).
        params, state = jax.device_put((params, state), NamedSharding(mesh, P()))
        outs, labels = [], np.zeros((n,), np.int64)
        for c in range(per_dev // chunk):
            idx = (np.arange(p)[:, None] * per_dev + c * chunk + np.arange(chunk)[None, :]).reshape(-1)
            ok = idx < n
            ex = dataset[np.where(ok, idx, 0)]
            labels[idx[ok]] = ex["label"][ok]
            outs.append(encode_jit(params, state, jax.device_put(ex["image"], rows)))
        feats = _concat_rows_fn(tuple(devices))(outs)
        mask = np.zeros((p * per_dev,), np.float32)
        mask[:n] = 1.0
        return feats, jax.device_put(mask, rows), labels

    def epoch_start(ts, ctx: EpochContext):
        n = len(ctx.dataset)
        if n != n_examples:
            raise ValueError(f"deepcluster: the training set has {n} examples but config.method.num_examples="
                             f"{n_examples}; set --config.method.num_examples={n}.")
        devices = tuple(ctx.devices)
        t0 = time.perf_counter()
        feats, mask, true_labels = extract(ts.params, ts.state, ctx.dataset, devices)
        feats.block_until_ready()
        t1 = time.perf_counter()
        rng = jnp.asarray(jax.device_get(ts.rng))  # uncommitted: usable with the clustering mesh
        key = jax.random.fold_in(jax.random.fold_in(rng, 0x0DC1), ctx.epoch)
        k_clu, k_head = jax.random.split(key)
        fn = sharded_cluster_fn(devices, k, iters, pca_dim, pca_eps, chunk)
        lab, _, aux = fn(feats, mask, k_clu)
        labels = np.asarray(jax.device_get(lab))[:n].astype(np.int32)
        counts = np.asarray(jax.device_get(aux["counts"]))
        t2 = time.perf_counter()
        labels_j = jnp.asarray(labels)
        metrics = {"kmeans_loss": float(aux["loss"]), "num_splits": float(aux["num_splits"]),
                   "cluster_size_max": float(counts.max()), "cluster_size_min": float(counts.min()),
                   "features_seconds": t1 - t0, "kmeans_seconds": t2 - t1,
                   "nmi_true": float(normalized_mutual_info(labels_j, jnp.asarray(true_labels, jnp.int32), k,
                                                            int(ctx.dataset.num_classes)))}
        state = jax.device_get(ts.state)
        if int(state["num_clusterings"]) > 0:
            metrics["nmi_prev"] = float(normalized_mutual_info(labels_j, jnp.asarray(state["pseudo_labels"]), k, k))
        weights = uniform_cluster_weights(labels_j, k) if uniform else jnp.full((n,), 1.0 / n, jnp.float32)
        new_state = {**state, "pseudo_labels": labels_j, "sample_weights": weights.astype(jnp.float32),
                     "num_clusterings": jnp.asarray(state["num_clusterings"] + 1, jnp.int32)}
        params = jax.device_get(ts.params)
        feat_dim = feats.shape[1]
        params = {**params, "head": head.init(k_head, jnp.zeros((1, feat_dim), jnp.float32))["params"]}
        opt_state = reset_opt_state_under(jax.device_get(ts.opt_state), ctx.tx.init(params), "head")
        return ts.replace(params=params, opt_state=opt_state, state=new_state), metrics

    def sampling_weights(state):
        return state["sample_weights"] if uniform else None

    return Method(name="deepcluster", init=init, loss_fn=loss_fn, encode=encode, axis_name=axis_name,
                  epoch_start=epoch_start, sampling_weights=sampling_weights, batch_index=True)


"""Pure pieces of clustering objectives (DeepCluster): k-means steps, pseudo-label loss, NMI.

Everything here is a pure function of arrays. The k-means pieces work on one device's rows
``x [n, D]`` with a row weight ``mask [n]`` (0 for padding rows); when ``axis_name`` is given
they run inside ``shard_map``/``pmap`` and their per-cluster sums are ``lax.psum``-ed, so the
result equals the computation on all rows at once.

* :func:`squared_distances`, :func:`assign_clusters` -- nearest centroid (ties: lowest index).
* :func:`cluster_statistics` -- per-cluster sums ``[K, D]`` and counts ``[K]`` (one-hot matmuls in
  row chunks: deterministic, no scatter-add, bounded memory).
* :func:`update_centroids` -- the Lloyd update (weighted means, or unit-normalised sums for
  spherical k-means; empty clusters keep their centroid): the one update every k-means here uses
  (DeepCluster's sharded k-means, GraphLoG's prototypes, the self-supervised GCN's pseudo-labels).
* :func:`uniform_cluster_weights` -- per-example sampling probabilities that make every non-empty
  cluster equally likely (DeepCluster's uniform sampling over pseudo-labels).
* :func:`contingency_matrix`, :func:`normalized_mutual_info` -- NMI with the arithmetic-mean
  normaliser (scikit-learn's default ``average_method="arithmetic"``).
"""
from __future__ import annotations

import functools
from typing import Optional

import chex
import jax
import jax.numpy as jnp
from jax import lax

from sslx.losses.contrastive import l2_normalize


def _psum(x, axis_name: Optional[str]):
    return x if axis_name is None else lax.psum(x, axis_name)


def squared_distances(x: jax.Array, centroids: jax.Array) -> jax.Array:
    """``||x_i - c_k||^2`` as ``[n, K]`` from ``x [n, D]`` and ``centroids [K, D]`` (clipped at 0)."""
    chex.assert_rank([x, centroids], 2)
    chex.assert_equal_shape_suffix([x, centroids], 1)
    d2 = (jnp.sum(x * x, axis=1, keepdims=True) - 2.0 * (x @ centroids.T)
          + jnp.sum(centroids * centroids, axis=1)[None, :])
    return jnp.maximum(d2, 0.0)


def assign_clusters(x: jax.Array, centroids: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Nearest centroid of every row: ``(labels int32 [n], squared distance [n])``."""
    d2 = squared_distances(x, centroids)
    labels = jnp.argmin(d2, axis=1).astype(jnp.int32)
    return labels, jnp.take_along_axis(d2, labels[:, None], axis=1)[:, 0]


def cluster_statistics(x: jax.Array, labels: jax.Array, mask: jax.Array, num_clusters: int,
                       axis_name: Optional[str] = None, chunk: Optional[int] = None
                       ) -> tuple[jax.Array, jax.Array]:
    """Per-cluster ``sums [K, D]`` of ``mask``-weighted rows and ``counts [K]`` (psum over ``axis_name``).

    Computed as ``one_hot(labels)^T @ x`` over row chunks of ``chunk`` rows (``None``: all rows at
    once; ``n`` must be divisible by ``chunk``), accumulated in order, so the result is deterministic.
    """
    chex.assert_rank([x, labels, mask], [2, 1, 1])
    n, d = x.shape
    chunk = n if chunk is None else int(chunk)
    if chunk < 1 or n % chunk:
        raise ValueError(f"cluster_statistics: chunk={chunk} must divide the {n} local rows.")
    xs = x.reshape(n // chunk, chunk, d)
    ls = labels.reshape(n // chunk, chunk)
    ms = mask.astype(x.dtype).reshape(n // chunk, chunk)

    def body(carry, inp):
        s, c = carry
        xc, lc, mc = inp
        oh = jax.nn.one_hot(lc, num_clusters, dtype=x.dtype) * mc[:, None]
        return (s + oh.T @ xc, c + jnp.sum(oh, axis=0)), None

    init = (jnp.zeros((num_clusters, d), x.dtype), jnp.zeros((num_clusters,), x.dtype))
    (sums, counts), _ = lax.scan(body, init, (xs, ls, ms))
    return _psum(sums, axis_name), _psum(counts, axis_name)


def update_centroids(x: jax.Array, labels: jax.Array, weights: jax.Array, centroids: jax.Array, *,
                     spherical: bool = False, axis_name: Optional[str] = None, chunk: Optional[int] = None
                     ) -> tuple[jax.Array, jax.Array]:
    """The Lloyd update: every non-empty cluster's centroid moves to the ``weights``-weighted mean of
    its rows (``spherical``: the unit-normalised sum, i.e. spherical k-means); an empty one stays.

    x ``[n, D]``, labels int ``[n]``, weights ``[n]`` (0: the row is ignored), centroids ``[K, D]``.
    Returns ``(new centroids [K, D], counts [K])``; sums and counts are psum-ed over ``axis_name``.
    """
    k = centroids.shape[0]
    sums, counts = cluster_statistics(x, labels, weights, k, axis_name, chunk)
    if spherical:
        moved = l2_normalize(sums)
    else:
        moved = sums / jnp.where(counts > 0, counts, 1.0)[:, None]  # weights may be fractional
    return jnp.where((counts > 0)[:, None], moved, centroids), counts


def uniform_cluster_weights(labels: jax.Array, num_clusters: int, mask: Optional[jax.Array] = None
                            ) -> jax.Array:
    """Sampling probabilities ``[N]``: ``1 / (K_nonempty * |cluster(i)|)``, summing to 1.

    Drawing examples with these probabilities picks every non-empty cluster with probability
    ``1 / K_nonempty`` and, within it, every member equally often. ``mask`` [N] (optional)
    excludes rows (probability 0).
    """
    chex.assert_rank(labels, 1)
    m = jnp.ones(labels.shape, jnp.float32) if mask is None else mask.astype(jnp.float32)
    counts = jnp.zeros((num_clusters,), jnp.float32).at[labels].add(m)
    nonempty = jnp.sum(counts > 0)
    w = m / (jnp.maximum(counts[labels], 1.0) * jnp.maximum(nonempty, 1).astype(jnp.float32))
    return w


def contingency_matrix(a: jax.Array, b: jax.Array, num_a: int, num_b: int) -> jax.Array:
    """Counts ``[num_a, num_b]`` of the pairs ``(a_i, b_i)`` (float32)."""
    chex.assert_rank([a, b], 1)
    chex.assert_equal_shape([a, b])
    return jnp.zeros((num_a, num_b), jnp.float32).at[a, b].add(1.0)


def _entropy(p: jax.Array) -> jax.Array:
    return -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0))


@functools.partial(jax.jit, static_argnames=("num_a", "num_b"))
def normalized_mutual_info(a: jax.Array, b: jax.Array, num_a: int, num_b: int) -> jax.Array:
    """NMI of two labelings ``a, b`` int ``[N]`` with values in ``[0, num_a)`` / ``[0, num_b)``.

    ``NMI = I(a; b) / ((H(a) + H(b)) / 2)`` (natural log; the value does not depend on the base),
    with scikit-learn's conventions: 1 when both labelings are a single cluster, and the
    normaliser floored at float64 eps (so a single-cluster vs many-cluster pair gives 0).
    """
    c = contingency_matrix(a, b, num_a, num_b)
    n = jnp.sum(c)
    p = c / n
    pa, pb = jnp.sum(p, axis=1), jnp.sum(p, axis=0)
    outer = pa[:, None] * pb[None, :]
    mi = jnp.sum(jnp.where(p > 0, p * (jnp.log(jnp.where(p > 0, p, 1.0)) - jnp.log(jnp.where(p > 0, outer, 1.0))),
                           0.0))
    mi = jnp.maximum(mi, 0.0)
    ha, hb = _entropy(pa), _entropy(pb)
    both_single = (jnp.sum(pa > 0) == 1) & (jnp.sum(pb > 0) == 1)
    nmi = mi / jnp.maximum(0.5 * (ha + hb), 2.220446049250313e-16)
    return jnp.where(both_single, 1.0, jnp.clip(nmi, 0.0, 1.0))

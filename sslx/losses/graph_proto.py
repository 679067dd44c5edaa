"""GraphLoG's losses (Xu et al. 2021) and the hierarchical k-means that initialises its prototypes.

Pure functions of arrays (and explicit keys). Similarities are cosines divided by a
temperature ``tau``: ``s(a, b) = <a, b> / (||a|| ||b|| tau)``.

Local-instance structure (a graph ``G`` and its correlated, augmented copy ``G'``):

* :func:`graphlog_node_nce` -- node level, within a graph. Anchor: node ``i`` of ``G'``;
  positive: the same node ``i`` of ``G``; negatives: the other real nodes of the same graph
  in ``G``. ``loss_i = -s(z'_i, z_i) + log sum_{j in graph(i)} exp s(z'_i, z_j)``, averaged
  over the anchors (the nodes the augmentation changed).
* :func:`graphlog_graph_nce` -- graph level, across graphs. Anchor: ``G'_k``; positive: ``G_k``;
  negatives: every other real graph ``G_j`` of the (global) batch.

Global-semantic structure (hierarchical prototypes ``C^1`` (finest) ... ``C^L`` (coarsest);
every prototype of level ``l < L`` has a parent in level ``l + 1``):

* :func:`hierarchical_proto_nce` -- top-down search of each graph's most likely prototype path
  (E-step: the most similar active prototype of level ``L``, then the most similar *child* of
  the chosen prototype, and so on down) and the likelihood of the embedding under that path
  (M-step, as a contrast): at level ``L`` the chosen prototype against all active prototypes, at
  lower levels against its siblings (the children of the chosen parent). A second term keeps the
  tree consistent: every active prototype against all active prototypes of the level above,
  its parent positive.
* :func:`spherical_kmeans` / :func:`hierarchical_kmeans` -- the prototypes' initialisation:
  k-means (cosine) on the graph embeddings for level 1, then k-means on each level's active
  prototypes for the next level; the assignments are the parents.

Sharding: with ``axis_name`` the per-anchor means are weighted by this device's share of the
*global* anchor count (``psum``), so the mean of the devices' losses equals the loss of the
global batch; graph-level candidates must be gathered by the caller.
"""
from __future__ import annotations

import functools
from typing import Optional, Sequence

import chex
import jax
import jax.numpy as jnp
from jax import lax

from sslx.losses.clustering import assign_clusters, cluster_statistics, update_centroids
from sslx.losses.contrastive import l2_normalize

__all__ = ["cosine_logits", "graphlog_graph_nce", "graphlog_node_nce", "hierarchical_kmeans",
           "hierarchical_proto_nce", "spherical_kmeans"]

_NEG = -1e30  # masked logits (finite, so 0 * _NEG is 0 and exp underflows to 0)


def cosine_logits(a: jax.Array, b: jax.Array, temperature: float) -> jax.Array:
    """``cos(a_i, b_j) / temperature`` as ``[n, m]`` from ``a [n, D]``, ``b [m, D]`` (float32 or wider)."""
    chex.assert_rank([a, b], 2)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"cosine_logits: a [n, D] and b [m, D] must share D; got {a.shape} and {b.shape}.")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}.")
    dt = jnp.promote_types(a.dtype, jnp.float32)
    return (l2_normalize(a.astype(dt)) @ l2_normalize(b.astype(dt)).T) / temperature


def _global_mean(values: jax.Array, mask: jax.Array, axis_name: Optional[str]) -> jax.Array:
    """Mean of ``values`` over ``mask``; with ``axis_name`` this device's sum times
    ``num_devices / global count`` (so the mean over devices is the global mean)."""
    m = mask.astype(bool)
    s = jnp.sum(jnp.where(m, values, 0.0))
    c = jnp.sum(m).astype(values.dtype)
    if axis_name is None:
        return s / jnp.maximum(c, 1.0)
    tot, ndev = lax.psum((c, jnp.ones((), values.dtype)), axis_name)
    return s * lax.stop_gradient(ndev / jnp.maximum(tot, 1.0))


def _masked_nce(logits: jax.Array, valid: jax.Array, positive: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-row ``-logits[i, positive_i] + logsumexp_{valid} logits[i]`` and whether the row's
    positive wins (argmax over the valid entries)."""
    masked = jnp.where(valid, logits, _NEG)
    pos = jnp.take_along_axis(logits, positive[:, None], axis=1)[:, 0]
    loss = jax.nn.logsumexp(masked, axis=1) - pos
    correct = jnp.argmax(masked, axis=1) == positive
    return loss, correct


def graphlog_node_nce(z: jax.Array, z_mod: jax.Array, node_graph: jax.Array, anchor_mask: jax.Array,
                      node_mask: jax.Array, temperature: float, axis_name: Optional[str] = None
                      ) -> tuple[jax.Array, dict]:
    """GraphLoG's node-level (intra-graph) InfoNCE.

    z ``[N, D]`` node embeddings of the original graphs; z_mod ``[N, D]`` of the augmented graphs
    (row ``i`` is the same node); node_graph ``[N]`` graph id of every node; anchor_mask ``[N]``
    nodes used as anchors; node_mask ``[N]`` real nodes (candidates). All graphs of a node's
    candidates live on one device, so no gathering is needed. Returns ``(loss, {"node_acc"})``
    (the fraction of anchors whose positive is the most similar candidate). No anchor: loss 0.
    """
    chex.assert_rank([z, z_mod, node_graph, anchor_mask, node_mask], [2, 2, 1, 1, 1])
    chex.assert_equal_shape([z, z_mod])
    n = z.shape[0]
    logits = cosine_logits(z_mod, z, temperature)  # [anchor, candidate]
    real = node_mask.astype(bool)
    valid = (node_graph[:, None] == node_graph[None, :]) & real[None, :] & real[:, None]
    loss, correct = _masked_nce(logits, valid, jnp.arange(n))
    anchors = anchor_mask.astype(bool) & real
    return (_global_mean(loss, anchors, axis_name),
            {"node_acc": _global_mean(correct.astype(logits.dtype), anchors, axis_name)})


def graphlog_graph_nce(g_all: jax.Array, g_mod: jax.Array, own_column: jax.Array, graph_mask_all: jax.Array,
                       graph_mask: jax.Array, temperature: float, axis_name: Optional[str] = None
                       ) -> tuple[jax.Array, dict]:
    """GraphLoG's graph-level (inter-graph) InfoNCE.

    g_all ``[Gt, D]`` embeddings of the original graphs of the whole batch (all devices,
    gathered by the caller); g_mod ``[G, D]`` this device's augmented graphs; own_column ``[G]``
    each augmented graph's original in ``g_all``; graph_mask_all ``[Gt]`` / graph_mask ``[G]``
    real graphs. Returns ``(loss, {"graph_acc"})``.
    """
    chex.assert_rank([g_all, g_mod, own_column, graph_mask_all, graph_mask], [2, 2, 1, 1, 1])
    logits = cosine_logits(g_mod, g_all, temperature)
    valid = jnp.broadcast_to(graph_mask_all.astype(bool)[None, :], logits.shape)
    loss, correct = _masked_nce(logits, valid, own_column.astype(jnp.int32))
    m = graph_mask.astype(bool)
    return (_global_mean(loss, m, axis_name),
            {"graph_acc": _global_mean(correct.astype(logits.dtype), m, axis_name)})


def _check_hierarchy(prototypes: Sequence[jax.Array], active: Sequence[jax.Array], parents: Sequence[jax.Array]):
    if len(prototypes) < 1 or len(active) != len(prototypes) or len(parents) != len(prototypes) - 1:
        raise ValueError(f"a prototype hierarchy of L levels needs L prototype arrays, L active masks and L - 1 "
                         f"parent arrays; got {len(prototypes)}, {len(active)} and {len(parents)}.")
    for lvl, (c, a) in enumerate(zip(prototypes, active)):
        if c.ndim != 2 or a.shape != c.shape[:1]:
            raise ValueError(f"level {lvl}: prototypes must be [M, D] with an [M] active mask; got {c.shape} and "
                             f"{a.shape}.")
    for lvl, p in enumerate(parents):
        if p.shape != prototypes[lvl].shape[:1]:
            raise ValueError(f"level {lvl}: parents must be [M] = {prototypes[lvl].shape[:1]}; got {p.shape}.")


def hierarchical_proto_nce(z: jax.Array, prototypes: Sequence[jax.Array], active: Sequence[jax.Array],
                           parents: Sequence[jax.Array], graph_mask: jax.Array, temperature: float,
                           axis_name: Optional[str] = None) -> tuple[jax.Array, dict]:
    """GraphLoG's global-semantic loss (module docstring) for graph embeddings ``z [G, D]``.

    prototypes: ``L`` arrays ``[M_l, D]``, finest first; active: ``L`` masks ``[M_l]``; parents:
    ``L - 1`` int arrays ``[M_l]`` (index of each prototype's parent in level ``l + 1``);
    graph_mask ``[G]`` real graphs. A level whose candidate set is empty for a graph adds 0.

    Returns ``(loss, aux)`` with ``loss = mean_G sum_l path_l + sum_{l<L} tree_l`` and
    aux ``{"proto_path", "proto_tree"}`` (the two parts) plus ``"assign_<l>" [G]`` (the chosen
    prototype of every level, int32; not averaged -- drop it before ``pmean``).
    """
    _check_hierarchy(prototypes, active, parents)
    num_levels = len(prototypes)
    act = [a.astype(bool) for a in active]
    path = jnp.zeros(z.shape[:1], jnp.promote_types(z.dtype, jnp.float32))
    chosen: list = [None] * num_levels
    for lvl in range(num_levels - 1, -1, -1):
        logits = cosine_logits(z, prototypes[lvl], temperature)  # [G, M_l]
        cand = jnp.broadcast_to(act[lvl][None, :], logits.shape)
        if lvl < num_levels - 1:
            cand = cand & (parents[lvl][None, :] == chosen[lvl + 1][:, None])
        masked = jnp.where(cand, logits, _NEG)
        sel = jnp.argmax(masked, axis=1).astype(jnp.int32)
        term = jax.nn.logsumexp(masked, axis=1) - jnp.take_along_axis(logits, sel[:, None], axis=1)[:, 0]
        path = path + jnp.where(jnp.any(cand, axis=1), term, 0.0)
        chosen[lvl] = sel
    tree = jnp.zeros((), path.dtype)
    for lvl in range(num_levels - 1):
        logits = cosine_logits(prototypes[lvl], prototypes[lvl + 1], temperature)  # [M_l, M_{l+1}]
        valid = jnp.broadcast_to(act[lvl + 1][None, :], logits.shape)
        loss, _ = _masked_nce(logits, valid, parents[lvl].astype(jnp.int32))
        rows = act[lvl] & jnp.any(valid, axis=1)
        tree = tree + jnp.sum(jnp.where(rows, loss, 0.0)) / jnp.maximum(jnp.sum(rows), 1).astype(path.dtype)
    path_mean = _global_mean(path, graph_mask, axis_name)
    aux = {"proto_path": path_mean, "proto_tree": tree}
    aux.update({f"assign_{lvl}": chosen[lvl] for lvl in range(num_levels)})
    return path_mean + tree, aux


# ---------------------------------------------------------------- k-means initialisation

@functools.partial(jax.jit, static_argnames=("k", "iters"))
def spherical_kmeans(x: jax.Array, weights: jax.Array, k: int, key: jax.Array, iters: int = 20
                     ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Lloyd's k-means on the unit sphere (cosine similarity) of the rows of ``x [n, D]`` with row
    weights ``weights [n]`` (0: the row is ignored).

    Start: ``k`` distinct rows drawn with probability proportional to the weights (key ``key``).
    Each iteration assigns every row to its most similar centroid (ties: lowest index) and moves
    every non-empty centroid to its members' normalised weighted mean; an empty one stays.
    Returns ``(centroids [k, D] unit rows, labels [n] int32, counts [k])`` -- the final assignment's
    labels and weighted member counts.
    """
    chex.assert_rank([x, weights], [2, 1])
    n = x.shape[0]
    xn = l2_normalize(x.astype(jnp.promote_types(x.dtype, jnp.float32)))
    w = weights.astype(xn.dtype)
    p = w / jnp.maximum(jnp.sum(w), 1e-12)
    first = jax.random.choice(key, n, (k,), replace=k > n, p=jnp.where(jnp.sum(w) > 0, p, 1.0 / n))
    cent = xn[first]

    def step(_, c):
        labels, _ = assign_clusters(xn, c)
        return update_centroids(xn, labels, w, c, spherical=True)[0]

    cent = lax.fori_loop(0, iters, step, cent)
    labels, _ = assign_clusters(xn, cent)
    _, counts = cluster_statistics(xn, labels, w, k)
    return cent, labels, counts


def hierarchical_kmeans(x: jax.Array, weights: jax.Array, sizes: Sequence[int], key: jax.Array, iters: int = 20
                        ) -> tuple[list, list, list]:
    """Hierarchical prototypes from embeddings ``x [n, D]`` (row weights ``weights [n]``).

    Level 1: :func:`spherical_kmeans` of ``x`` with ``sizes[0]`` centroids; level ``l + 1``:
    k-means with ``sizes[l]`` centroids on level ``l``'s *active* prototypes (equal weights).
    A prototype is active when its final cluster is non-empty; each level's labels are the
    parents of the level below. Returns ``(prototypes [M_l, D], active [M_l] bool,
    parents [M_l] int32 for l < L)`` as lists, finest first.
    """
    if len(sizes) < 1 or any(int(s) < 1 for s in sizes):
        raise ValueError(f"prototype sizes must be >= 1 per level, at least one level; got {tuple(sizes)}.")
    keys = jax.random.split(key, len(sizes))
    protos, active, parents = [], [], []
    rows, row_w = x, weights
    for lvl, m in enumerate(sizes):
        cent, labels, counts = spherical_kmeans(rows, row_w, int(m), keys[lvl], iters)
        if lvl > 0:
            parents.append(labels)
        protos.append(cent)
        active.append(counts > 0)
        rows, row_w = cent, (counts > 0).astype(jnp.float32)
    return protos, active, parents

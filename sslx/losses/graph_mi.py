"""Losses of the node-level mutual-information objectives MVGRL, GMI and MERIT (pure: arrays
in, scalar + aux dict out).

* :func:`mvgrl_bce` -- MVGRL's cross-view node/graph discriminator loss (Hassani &
  Khasahmadi 2020): binary cross-entropy with logits over the four score vectors
  (two positive, two negative), label 1 for a clean node of one view against the other
  view's summary, 0 for a corrupted node.
* :func:`gmi_jsd` -- GMI's JSD-style MI loss (Peng et al. 2020) with one positive and ``K``
  negatives per node: ``mean_i softplus(-T_i^+) + mean_{k,i} softplus(T_{k,i}^-)``.
* :func:`gmi_edge_loss` -- GMI's edge MI term: class-balanced binary cross-entropy between
  ``sigmoid(h_i . h_j)`` and the adjacency (with self-loops), weighted as the authors'
  ``reconstruct_loss``.
* :func:`merit_cross_network` / :func:`merit_cross_view` / :func:`merit_loss` -- MERIT's
  (Jin et al. 2021) contrastive terms on cosine similarities (temperature 1) and their
  ``beta`` mix.

``mask [N]`` (optional, bool) marks real nodes; padding nodes are dropped everywhere, so a
padded input with its mask gives the value of the unpadded one.
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from sslx.losses.contrastive import l2_normalize

__all__ = ["gmi_edge_loss", "gmi_edge_loss_sampled", "gmi_jsd", "merit_cross_network", "merit_cross_view",
           "merit_loss", "mvgrl_bce"]


def _mask(n: int, mask: Optional[jax.Array]) -> jax.Array:
    return jnp.ones((n,), bool) if mask is None else mask.astype(bool)


def _mean(x: jax.Array, m: jax.Array) -> jax.Array:
    m = jnp.broadcast_to(m, x.shape).astype(x.dtype)
    return jnp.sum(x * m) / jnp.maximum(jnp.sum(m), 1.0)


def mvgrl_bce(pos: tuple[jax.Array, jax.Array], neg: tuple[jax.Array, jax.Array], mask: Optional[jax.Array] = None
              ) -> tuple[jax.Array, dict]:
    """MVGRL loss: ``BCEWithLogits(cat(pos_1, pos_2, neg_1, neg_2), cat(1, 1, 0, 0))``.

    pos: ``(f(h^diff_i, s^adj), f(h^adj_i, s^diff))`` logits ``[N]`` each; neg: the same with
    the corrupted nodes. Mean over the ``4 M`` real entries. Aux: ``disc_acc``.
    """
    arrs = list(pos) + list(neg)
    if len(arrs) != 4 or any(a.ndim != 1 or a.shape != arrs[0].shape for a in arrs):
        raise ValueError("mvgrl_bce expects two positive and two negative logit vectors of one shape [N]; got "
                         f"{[a.shape for a in arrs]}.")
    m = _mask(arrs[0].shape[0], mask)
    terms = [jax.nn.softplus(-p) for p in pos] + [jax.nn.softplus(q) for q in neg]
    loss = sum(_mean(t, m) for t in terms) / 4.0
    acc = (sum(_mean((p > 0).astype(jnp.float32), m) for p in pos)
           + sum(_mean((q < 0).astype(jnp.float32), m) for q in neg)) / 4.0
    return loss, {"disc_acc": acc}


def gmi_jsd(pos: jax.Array, neg: jax.Array, mask: Optional[jax.Array] = None) -> tuple[jax.Array, dict]:
    """GMI's MI loss (the authors' ``mi_loss_jsd``) with ``K`` negatives per node.

    pos ``[N]`` critic scores of the joint pairs; neg ``[K, N]`` scores of node ``i`` paired
    with ``K`` sampled nodes. ``loss = mean_i softplus(-pos_i) + mean_{k,i} softplus(neg_{k,i})``
    over real nodes ``i`` (``= 2 log 2 - MI_JSD``: 2 log 2 at T = 0).
    """
    if pos.ndim != 1 or neg.ndim != 2 or neg.shape[1] != pos.shape[0]:
        raise ValueError(f"gmi_jsd expects pos [N] and neg [K, N]; got {pos.shape} and {neg.shape}.")
    m = _mask(pos.shape[0], mask)
    e_pos = _mean(jax.nn.softplus(-pos), m)
    e_neg = _mean(jax.nn.softplus(neg), m[None, :])
    return e_pos + e_neg, {"e_pos": e_pos, "e_neg": e_neg}


def gmi_edge_loss(logits: jax.Array, target: jax.Array, mask: Optional[jax.Array] = None) -> tuple[jax.Array, dict]:
    """GMI's edge-MI term (the authors' ``reconstruct_loss``) on pair logits ``s = h h^T``.

    logits ``[N, N]``; target ``[N, N]`` in {0, 1} (adjacency + self-loops). Over the ``M``
    real nodes, with ``E = sum(target) / 2``, ``w1 = (M^2 - E) / E``, ``w2 = M^2 / (M^2 - E)``::

        loss = w2 * mean_{ij} [ w1 a_ij (-log sigmoid(s_ij)) + (1 - a_ij) (-log(1 - sigmoid(s_ij))) ]

    (``-log sigmoid(s) = softplus(-s)``: the authors add 1e-10 inside the log instead, which
    only differs once the sigmoid saturates in float32).
    """
    if logits.ndim != 2 or logits.shape[0] != logits.shape[1] or target.shape != logits.shape:
        raise ValueError(f"gmi_edge_loss expects logits and target of one shape [N, N]; got {logits.shape} and "
                         f"{target.shape}.")
    m = _mask(logits.shape[0], mask)
    pair = (m[:, None] & m[None, :]).astype(logits.dtype)
    a = target.astype(logits.dtype) * pair
    nn2 = jnp.sum(pair)
    e = jnp.maximum(jnp.sum(a) / 2.0, 1e-12)
    w1 = (nn2 - e) / e
    w2 = nn2 / jnp.maximum(nn2 - e, 1e-12)
    per = w1 * a * jax.nn.softplus(-logits) + (1.0 - a) * jax.nn.softplus(logits)
    loss = w2 * jnp.sum(per * pair) / jnp.maximum(nn2, 1.0)
    return loss, {"edge_pos_weight": w1}


def gmi_edge_loss_sampled(pos_logits: jax.Array, pos_valid: jax.Array, sample_logits: jax.Array,
                          sample_is_edge: jax.Array, num_nodes: jax.Array | int) -> tuple[jax.Array, dict]:
    """A sampled estimate of :func:`gmi_edge_loss` that never forms the ``M x M`` logits.

    pos_logits ``[P]``: logits of every pair with ``a_ij = 1`` (both edge directions and the
    self-loops), ``pos_valid [P]`` (bool) drops padding pairs; sample_logits ``[S]``: logits
    of ``S`` pairs drawn uniformly from the ``M^2`` pairs of real nodes, ``sample_is_edge [S]``
    their ``a_ij``. With ``E = #pos / 2``::

        loss = w2 / M^2 (w1 sum_pos softplus(-s) + M^2 / S sum_samples (1 - a) softplus(s))

    -- the positive part exact, the non-edge part unbiased (equal to the dense value when
    the samples are all ``M^2`` pairs once each).
    """
    if pos_logits.shape != pos_valid.shape or sample_logits.shape != sample_is_edge.shape:
        raise ValueError(f"gmi_edge_loss_sampled: pos_logits {pos_logits.shape} / pos_valid {pos_valid.shape} and "
                         f"sample_logits {sample_logits.shape} / sample_is_edge {sample_is_edge.shape} must pair up.")
    dt = pos_logits.dtype
    nn2 = jnp.asarray(num_nodes, dt) ** 2
    pv = pos_valid.astype(dt)
    e = jnp.maximum(jnp.sum(pv) / 2.0, 1e-12)
    w1 = (nn2 - e) / e
    w2 = nn2 / jnp.maximum(nn2 - e, 1e-12)
    pos_sum = jnp.sum(pv * jax.nn.softplus(-pos_logits))
    neg_sum = jnp.sum((1.0 - sample_is_edge.astype(dt)) * jax.nn.softplus(sample_logits))
    loss = w2 / nn2 * (w1 * pos_sum + nn2 / sample_logits.shape[0] * neg_sum)
    return loss, {"edge_pos_weight": w1}


def _cos(a: jax.Array, b: jax.Array) -> jax.Array:
    return l2_normalize(a) @ l2_normalize(b).T


def merit_cross_network(h: jax.Array, z: jax.Array, mask: Optional[jax.Array] = None) -> jax.Array:
    """Per-node cross-network term ``[N]``: ``-log e^{c(h_i, z_i)} / sum_k e^{c(h_i, z_k)}``
    (``h``: online predictions of one view, ``z``: target projections of the other view;
    ``c`` = cosine similarity, temperature 1). Padding ``k`` are excluded."""
    m = _mask(h.shape[0], mask)
    s = jnp.where(m[None, :], _cos(h, z), -jnp.inf)
    return jax.nn.logsumexp(s, axis=1) - jnp.diagonal(_cos(h, z))


def merit_cross_view(h1: jax.Array, h2: jax.Array, mask: Optional[jax.Array] = None) -> jax.Array:
    """Per-node cross-view term ``[N]`` (online predictions of the two views)::

        -log e^{c(h1_i, h2_i)} / (sum_k e^{c(h1_i, h2_k)} + sum_{k != i} e^{c(h1_i, h1_k)})
    """
    n = h1.shape[0]
    m = _mask(n, mask)
    inter = jnp.where(m[None, :], _cos(h1, h2), -jnp.inf)
    intra = jnp.where(m[None, :] & ~jnp.eye(n, dtype=bool), _cos(h1, h1), -jnp.inf)
    return jax.nn.logsumexp(jnp.concatenate([inter, intra], axis=1), axis=1) - jnp.diagonal(_cos(h1, h2))


def merit_loss(p1: jax.Array, p2: jax.Array, t1: jax.Array, t2: jax.Array, beta: float,
               mask: Optional[jax.Array] = None) -> tuple[jax.Array, dict]:
    """MERIT's objective on online predictions ``p1, p2 [N, D]`` and target projections
    ``t1, t2 [N, D]`` (gradients are stopped on the targets here)::

        l_1 = beta cn(p1, t2) + (1 - beta) cv(p1, p2),   l_2 = beta cn(p2, t1) + (1 - beta) cv(p2, p1)
        loss = mean_i (l_1 + l_2) / 2

    Aux: the two terms' node means ``cross_network``, ``cross_view``.
    """
    if not (p1.shape == p2.shape == t1.shape == t2.shape) or p1.ndim != 2:
        raise ValueError(f"merit_loss expects p1, p2, t1, t2 of one shape [N, D]; got {p1.shape}, {p2.shape}, "
                         f"{t1.shape}, {t2.shape}.")
    if not 0.0 <= float(beta) <= 1.0:
        raise ValueError(f"merit_loss: beta must lie in [0, 1], got {beta}.")
    m = _mask(p1.shape[0], mask)
    t1, t2 = jax.lax.stop_gradient(t1), jax.lax.stop_gradient(t2)
    cn = 0.5 * (merit_cross_network(p1, t2, m) + merit_cross_network(p2, t1, m))
    cv = 0.5 * (merit_cross_view(p1, p2, m) + merit_cross_view(p2, p1, m))
    cn, cv = jnp.where(m, cn, 0.0), jnp.where(m, cv, 0.0)
    loss = _mean(beta * cn + (1.0 - beta) * cv, m)
    return loss, {"cross_network": _mean(cn, m), "cross_view": _mean(cv, m)}

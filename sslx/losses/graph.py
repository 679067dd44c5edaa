"""Graph objectives' losses (pure: arrays in, scalar + aux dict out).

* :func:`dgi_bce` -- DGI's discriminator loss (Velickovic et al. 2019): binary cross-entropy
  with logits, label 1 for (clean node, summary) pairs and 0 for (corrupted node, summary),
  averaged over all ``2 M`` real pairs.
* :func:`jsd_mi` -- the Jensen-Shannon mutual-information estimator in its softplus form
  (Hjelm et al. 2019; InfoGraph, GMI): ``E_P[log 2 - softplus(-T)] - E_N[softplus(T) - log 2]``.
* :func:`grace_loss` -- GRACE's symmetric InfoNCE with inter- and intra-view negatives.

Masks exclude padding entries: a padded input with its mask gives the same value as the
unpadded input.
"""
from __future__ import annotations

import math
from typing import Optional

import jax
import jax.numpy as jnp

from sslx.losses.contrastive import l2_normalize

__all__ = ["dgi_bce", "grace_loss", "jsd_mi"]

_LOG2 = math.log(2.0)


def _masked_mean(x: jax.Array, mask: Optional[jax.Array]) -> jax.Array:
    if mask is None:
        return jnp.mean(x)
    m = jnp.broadcast_to(mask, x.shape).astype(bool)
    # where, not a product: a padding entry may be inf, and inf * 0 is NaN.
    return jnp.sum(jnp.where(m, x, 0)) / jnp.maximum(jnp.sum(m.astype(x.dtype)), 1.0)


def dgi_bce(pos_logits: jax.Array, neg_logits: jax.Array, mask: Optional[jax.Array] = None
            ) -> tuple[jax.Array, dict]:
    """DGI loss ``mean(softplus(-pos)) / 2 + mean(softplus(neg)) / 2`` over real nodes.

    pos_logits, neg_logits: ``[N]`` discriminator logits for clean / corrupted nodes;
    mask ``[N]`` (optional, bool) marks real nodes. Equals
    ``BCEWithLogits(cat(pos, neg), cat(1, 0))`` over the ``2 M`` real entries. Aux:
    ``disc_acc`` (fraction of pairs the discriminator gets right).
    """
    if pos_logits.shape != neg_logits.shape or pos_logits.ndim != 1:
        raise ValueError(f"dgi_bce expects pos_logits and neg_logits of one shape [N]; got "
                         f"{pos_logits.shape} and {neg_logits.shape}.")
    loss = 0.5 * (_masked_mean(jax.nn.softplus(-pos_logits), mask) + _masked_mean(jax.nn.softplus(neg_logits), mask))
    acc = 0.5 * (_masked_mean((pos_logits > 0).astype(jnp.float32), mask)
                 + _masked_mean((neg_logits < 0).astype(jnp.float32), mask))
    return loss, {"disc_acc": acc}


def jsd_mi(scores: jax.Array, pos_mask: jax.Array, valid_mask: Optional[jax.Array] = None
           ) -> tuple[jax.Array, dict]:
    """Jensen-Shannon MI estimator; returns ``loss = -MI_JSD`` and ``{"mi": MI_JSD}``.

    scores ``[...]`` critic values ``T``; ``pos_mask`` (same shape, bool) marks pairs drawn
    from the joint, the rest are from the product of marginals; ``valid_mask`` (optional,
    broadcastable) drops padding pairs. ``MI = E_pos[log 2 - softplus(-T)] -
    E_neg[softplus(T) - log 2]`` (means over the valid positive / negative pairs), so the
    loss is ``mean_pos softplus(-T) + mean_neg softplus(T) - 2 log 2``; it is 0 at T = 0 and
    bounded below by ``-2 log 2``.
    """
    if scores.shape != pos_mask.shape:
        raise ValueError(f"jsd_mi: scores {scores.shape} and pos_mask {pos_mask.shape} must have one shape.")
    pos = pos_mask.astype(bool)
    valid = jnp.ones(scores.shape, bool) if valid_mask is None else jnp.broadcast_to(valid_mask, scores.shape).astype(bool)
    e_pos = _masked_mean(_LOG2 - jax.nn.softplus(-scores), pos & valid)
    e_neg = _masked_mean(jax.nn.softplus(scores) - _LOG2, (~pos) & valid)
    mi = e_pos - e_neg
    return -mi, {"mi": mi, "e_pos": e_pos, "e_neg": e_neg}


def grace_loss(z1: jax.Array, z2: jax.Array, temperature: float, mask: Optional[jax.Array] = None
               ) -> tuple[jax.Array, dict]:
    """GRACE's objective (Zhu et al. 2020) on projected embeddings ``z1, z2 [N, D]``.

    With ``s(u, v) = cos(u, v) / temperature``, node i of view 1 has the positive
    ``s(z1_i, z2_i)`` and negatives ``s(z1_i, z2_k)`` (inter-view, k != i) and
    ``s(z1_i, z1_k)`` (intra-view, k != i)::

        l(z1_i, z2_i) = -log e^{s(z1_i,z2_i)} / (e^{s(z1_i,z2_i)} + sum_{k!=i} e^{s(z1_i,z2_k)} + e^{s(z1_i,z1_k)})

    loss = mean over real nodes of ``(l(z1_i, z2_i) + l(z2_i, z1_i)) / 2``. ``mask [N]`` marks
    real nodes (padding rows are excluded as anchors and as negatives).
    """
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"grace_loss expects z1, z2 of one shape [N, D]; got {z1.shape} and {z2.shape}.")
    n = z1.shape[0]
    m = jnp.ones((n,), bool) if mask is None else mask.astype(bool)
    h1, h2 = l2_normalize(z1), l2_normalize(z2)  # zero rows: zero (not NaN) gradients
    eye = jnp.eye(n, dtype=bool)
    neg_inf = jnp.asarray(-jnp.inf, z1.dtype)

    def one_side(a, b):
        inter = a @ b.T / temperature                            # [N, N], diagonal = positives
        intra = a @ a.T / temperature
        inter = jnp.where(m[None, :], inter, neg_inf)
        intra = jnp.where(m[None, :] & ~eye, intra, neg_inf)
        logits = jnp.concatenate([inter, intra], axis=1)
        pos = jnp.sum(a * b, axis=-1) / temperature
        return jax.nn.logsumexp(logits, axis=1) - pos

    per_node = 0.5 * (one_side(h1, h2) + one_side(h2, h1))
    per_node = jnp.where(m, per_node, 0.0)  # padding anchors
    return _masked_mean(per_node, m), {}

"""Graph objectives' losses (pure: arrays in, scalar + aux dict out).

* :func:`dgi_bce` -- DGI's discriminator loss (Velickovic et al. 2019): binary cross-entropy
  with logits, label 1 for (clean node, summary) pairs and 0 for (corrupted node, summary),
  averaged over all ``2 M`` real pairs.
* :func:`jsd_mi` -- the Jensen-Shannon mutual-information estimator in its softplus form
  (Hjelm et al. 2019; InfoGraph, GMI): ``E_P[log 2 - softplus(-T)] - E_N[softplus(T) - log 2]``.
* :func:`grace_loss` -- GRACE's symmetric InfoNCE with inter- and intra-view negatives.
* :func:`masked_cross_entropy` -- softmax cross-entropy averaged over the nodes a mask selects
  (the semi-supervised GCN's loss on the train nodes; the self-supervised GCN's pseudo-label tasks).
* :func:`masked_feature_regression` -- the self-supervised GCN's graph completion: squared error of
  the predicted features of the masked nodes, relative to their squared norm.

Masks exclude padding entries: a padded input with its mask gives the same value as the
unpadded input.
"""
from __future__ import annotations

import math
from typing import Optional

import jax
import jax.numpy as jnp

from sslx.losses.contrastive import l2_normalize

__all__ = ["dgi_bce", "grace_loss", "jsd_mi", "masked_cross_entropy", "masked_feature_regression"]

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

    # one inter-view product serves both directions (view 2's anchors read its transpose)
    inter = h1 @ h2.T / temperature                              # [N, N], diagonal = positives
    pos = jnp.diagonal(inter)

    def one_side(inter_a, a):
        intra = a @ a.T / temperature
        inter_a = jnp.where(m[None, :], inter_a, neg_inf)
        intra = jnp.where(m[None, :] & ~eye, intra, neg_inf)
        return jax.nn.logsumexp(jnp.concatenate([inter_a, intra], axis=1), axis=1) - pos

    per_node = 0.5 * (one_side(inter, h1) + one_side(inter.T, h2))
    per_node = jnp.where(m, per_node, 0.0)  # padding anchors
    return _masked_mean(per_node, m), {}


def masked_cross_entropy(logits: jax.Array, labels: jax.Array, mask: jax.Array) -> tuple[jax.Array, dict]:
    """Mean of ``-log softmax(logits_i)[labels_i]`` over the nodes with ``mask_i`` set.

    logits ``[N, K]``, labels int ``[N]`` (entries outside the mask are ignored and may be
    anything, e.g. -1), mask bool ``[N]``. An empty mask gives 0. Aux: ``accuracy`` over the
    masked nodes (no gradient).
    """
    if logits.ndim != 2 or labels.shape != logits.shape[:1] or mask.shape != logits.shape[:1]:
        raise ValueError(f"masked_cross_entropy expects logits [N, K], labels [N], mask [N]; got "
                         f"{logits.shape}, {labels.shape}, {mask.shape}.")
    m = mask.astype(bool)
    safe = jnp.where(m, labels, 0).astype(jnp.int32)
    logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
    logp = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(logp, safe[:, None], axis=-1)[:, 0]
    hit = (jnp.argmax(logits, axis=-1) == safe).astype(logits.dtype)
    return _masked_mean(nll, m), {"accuracy": jax.lax.stop_gradient(_masked_mean(hit, m))}


def masked_feature_regression(pred: jax.Array, target: jax.Array, mask: jax.Array) -> tuple[jax.Array, dict]:
    """Relative squared error of the masked rows: ``sum_{i in M} ||pred_i - target_i||^2 /
    sum_{i in M} ||target_i||^2`` (``M``: the rows with ``mask_i`` set).

    pred, target ``[N, F]``; mask bool ``[N]``. Predicting 0 gives 1, so the value does not
    depend on the scale of the features (row-normalised bag-of-words rows have a squared norm
    of ~1 / #words). Rows outside the mask do not count. An empty mask (or all-zero masked
    targets) divides by 1e-12 instead of 0. Aux: ``mse`` (mean over masked rows of the
    squared error summed over features).
    """
    if pred.shape != target.shape or pred.ndim != 2 or mask.shape != pred.shape[:1]:
        raise ValueError(f"masked_feature_regression expects pred, target [N, F] and mask [N]; got "
                         f"{pred.shape}, {target.shape}, {mask.shape}.")
    m = mask.astype(bool)[:, None]
    err = jnp.sum(jnp.where(m, (pred - target) ** 2, 0), axis=1)
    energy = jnp.sum(jnp.where(m, target ** 2, 0))
    loss = jnp.sum(err) / jnp.maximum(energy, 1e-12)
    count = jnp.maximum(jnp.sum(m.astype(err.dtype)), 1.0)
    return loss, {"mse": jax.lax.stop_gradient(jnp.sum(err) / count)}

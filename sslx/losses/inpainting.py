"""Inpainting losses (context encoders, Pathak et al. 2016): masked weighted L2 and GAN losses.

Overlap weighting. The paper predicts a region slightly larger than the hole and
weights the reconstruction loss 10x more in the overlapping border (pixels the
network can see in its input but must still reproduce, so the prediction blends
with its context). :func:`overlap_weight_map` expresses this for any mask::

    region  = dilate(mask, overlap)          # square (Chebyshev) dilation by `overlap` px
    weights = mask * 1 + (region - mask) * border_weight        # 0 outside the region

For the central block (:func:`sslx.augment.masks.central_block_mask` removes the
central ``hole_size`` block shrunk by ``overlap``) the region is exactly the
predicted ``hole_size`` block and the weights are the paper's: 1 inside the
removed part, ``border_weight`` (10) in the ``overlap``-wide frame around it. For
random blocks / shapes the same definition gives a border band of width
``overlap`` around every removed pixel.

Reconstruction loss (:func:`masked_weighted_l2`): per example the weighted mean of
the squared error over pixels and channels, ``sum(w (x - y)^2) / (C sum(w))``,
then the mean over examples (an example with no weight contributes 0). Normalising
per example keeps the value independent of how a batch is split over devices.

GAN losses on discriminator logits (sigmoid cross-entropy, the DCGAN losses the
paper uses): :func:`discriminator_loss` ``= mean softplus(-D(real)) + mean
softplus(D(fake))`` and :func:`generator_adversarial_loss` ``= mean
softplus(-D(fake))`` (the non-saturating generator loss, -log D(fake)).
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["discriminator_loss", "generator_adversarial_loss", "masked_weighted_l2", "overlap_weight_map"]


def overlap_weight_map(mask: jax.Array, overlap: int, border_weight: float = 10.0) -> jax.Array:
    """Loss weights ``[..., H, W]`` from removed-pixel masks ``[..., H, W]`` (see module doc).

    ``mask`` is 1 on removed pixels, 0 elsewhere; ``overlap`` (>= 0) the border width in pixels.
    """
    overlap = int(overlap)
    if overlap < 0:
        raise ValueError(f"overlap_weight_map: overlap={overlap} must be >= 0 pixels.")
    if mask.ndim < 2:
        raise ValueError(f"overlap_weight_map: mask must be [..., H, W], got shape {tuple(mask.shape)}.")
    mask = mask.astype(jnp.promote_types(mask.dtype, jnp.float32))
    if overlap == 0:
        return mask
    win = (1,) * (mask.ndim - 2) + (2 * overlap + 1, 2 * overlap + 1)
    pad = [(0, 0)] * (mask.ndim - 2) + [(overlap, overlap), (overlap, overlap)]
    region = lax.reduce_window(mask, jnp.array(-jnp.inf, mask.dtype), lax.max, win, (1,) * mask.ndim, pad)
    return mask + border_weight * (region - mask)


def masked_weighted_l2(pred: jax.Array, target: jax.Array, weights: jax.Array) -> tuple[jax.Array, dict]:
    """Weighted L2 of ``pred`` vs ``target`` ``[B, H, W, C]`` with pixel weights ``[B, H, W]``.

    Returns ``(loss, {"per_example": [B]})``: ``loss = mean_b sum_{hwc} w (p - t)^2 / (C sum_{hw} w)``
    (examples whose weights sum to 0 give 0).
    """
    chex.assert_rank(pred, 4)
    chex.assert_equal_shape([pred, target])
    chex.assert_shape(weights, pred.shape[:3])
    sq = jnp.sum(jnp.square(pred - target), axis=-1)  # [B, H, W]
    num = jnp.sum(weights * sq, axis=(1, 2))
    den = pred.shape[-1] * jnp.sum(weights, axis=(1, 2))
    per = jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0)
    return jnp.mean(per), {"per_example": per}


def discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> tuple[jax.Array, dict]:
    """``mean softplus(-real) + mean softplus(fake)``; logits ``[B]``. Aux: D's accuracies on each."""
    chex.assert_rank([real_logits, fake_logits], 1)
    loss = jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))
    return loss, {"real_acc": jnp.mean((real_logits > 0).astype(jnp.float32)),
                  "fake_acc": jnp.mean((fake_logits < 0).astype(jnp.float32))}


def generator_adversarial_loss(fake_logits: jax.Array) -> jax.Array:
    """Non-saturating generator loss ``mean softplus(-fake) = mean -log sigmoid(fake)``; logits ``[B]``."""
    chex.assert_rank(fake_logits, 1)
    return jnp.mean(jax.nn.softplus(-fake_logits))

"""Regression losses between an online prediction and a (fixed) target: BYOL's normalised MSE.

Pure functions of arrays (no Flax): the caller decides which pairs to compare
(e.g. BYOL's symmetrisation over the two views is done by the method).
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from sslx.losses.contrastive import l2_normalize


def byol_loss(p: jax.Array, z: jax.Array) -> jax.Array:
    """Mean over the batch of ``2 - 2 cos(p_i, stop_gradient(z_i))`` (Grill et al. 2020, eq. 2).

    Equal to ``|| p_i/||p_i|| - z_i/||z_i|| ||^2``: 0 for identical directions,
    2 for orthogonal ones, 4 for opposite ones; invariant to the scale of each
    row. No gradient flows into ``z`` (the target).

    Args:
      p: [B, D] online predictions.
      z: [B, D] target projections (same shape).

    Returns:
      scalar mean loss over the ``B`` rows, in the promoted float dtype of the inputs.
    """
    chex.assert_rank([p, z], 2)
    chex.assert_equal_shape([p, z])
    z = jax.lax.stop_gradient(z)
    cos = jnp.sum(l2_normalize(p) * l2_normalize(z), axis=-1)
    return jnp.mean(2.0 - 2.0 * cos)

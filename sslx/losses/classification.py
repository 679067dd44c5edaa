"""Softmax cross-entropy with integer labels, for pretext tasks that classify a transformation
(rotation prediction: 4 classes; relative patch position: 8 classes)."""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, dict]:
    """Mean softmax cross-entropy ``-log softmax(logits)[label]`` and the top-1 accuracy.

    Args:
      logits: ``[N, K]`` unnormalised class scores (computed in at least float32).
      labels: ``[N]`` integer class indices in ``[0, K)``.

    Returns:
      ``(loss, {"accuracy": acc})``: scalars; ``loss`` is the mean over the N rows and ``acc`` the
      fraction of rows whose arg-max equals the label (no gradient).
    """
    chex.assert_rank(logits, 2)
    chex.assert_rank(labels, 1)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"softmax_cross_entropy: labels must be integer class indices, got dtype {labels.dtype}; "
                         "pass labels.astype(jnp.int32).")
    if logits.shape[0] != labels.shape[0]:
        raise ValueError(f"softmax_cross_entropy: logits {tuple(logits.shape)} and labels {tuple(labels.shape)} "
                         "must have the same number of rows N.")
    logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
    logp = jax.nn.log_softmax(logits, axis=-1)
    picked = jnp.take_along_axis(logp, labels[:, None].astype(jnp.int32), axis=-1)[:, 0]
    loss = -jnp.mean(picked)
    return loss, {"accuracy": accuracy(logits, labels)}


def accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Fraction of rows of ``logits [N, K]`` whose arg-max equals ``labels [N]`` (float scalar)."""
    chex.assert_rank(logits, 2)
    chex.assert_rank(labels, 1)
    hit = jnp.argmax(logits, axis=-1) == labels
    return jax.lax.stop_gradient(jnp.mean(hit.astype(jnp.promote_types(logits.dtype, jnp.float32))))

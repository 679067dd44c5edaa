"""Token-level losses for the text objectives (pure functions)."""
from __future__ import annotations

from typing import Optional

import chex
import jax
import jax.numpy as jnp
from jax import lax


def token_cross_entropy(logits: jax.Array, targets: jax.Array, weights: Optional[jax.Array] = None,
                        axis_name: Optional[str] = None) -> tuple[jax.Array, dict]:
    """Weighted mean cross-entropy of integer ``targets`` under ``logits``.

    Args:
      logits: float [..., V] unnormalised scores.
      targets: int [...] class ids in [0, V).
      weights: float/bool [...] per-token weights (e.g. 1 on masked-LM positions, 0 on
        padding); None means all ones.
      axis_name: when given (inside shard_map/pmap), the normaliser is the weight sum over
        *all* devices, scaled so that ``pmean`` of the per-device losses is the global
        weighted mean (devices may hold different numbers of weighted tokens).

    Returns ``(loss, {"accuracy": weighted top-1 accuracy, "num_tokens": weight sum})``
    (accuracy and num_tokens are global likewise). With no weight at all the loss is 0.
    """
    chex.assert_equal_shape_prefix([logits, targets], targets.ndim)
    chex.assert_rank(logits, targets.ndim + 1)
    if not jnp.issubdtype(targets.dtype, jnp.integer):
        raise ValueError(f"token_cross_entropy: targets must be integer ids, got {targets.dtype}.")
    logits = logits.astype(jnp.float32)
    w = jnp.ones(targets.shape, jnp.float32) if weights is None else weights.astype(jnp.float32)
    chex.assert_equal_shape([w, targets])
    logp = jax.nn.log_softmax(logits, axis=-1)
    # One-hot contraction rather than a gather: its gradient is a dense op (no scatter).
    nll = -jnp.sum(logp * jax.nn.one_hot(targets, logits.shape[-1], dtype=logp.dtype), axis=-1)
    correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
    local = jnp.sum(w)
    if axis_name is None:
        total, scale = local, 1.0
    else:
        total = lax.psum(local, axis_name)
        scale = lax.psum(1, axis_name)  # number of devices: undone by the step's pmean
    denom = jnp.maximum(total, 1e-9)
    loss = scale * jnp.sum(w * nll) / denom
    acc = scale * jnp.sum(w * correct) / denom
    return loss, {"accuracy": acc, "num_tokens": total}

"""word2vec's negative-sampling objective (Mikolov et al. 2013, eq. 4) as a pure function."""
from __future__ import annotations

from typing import Optional

import chex
import jax
import jax.numpy as jnp
from jax import lax


def negative_sampling_loss(inputs: jax.Array, positives: jax.Array, negatives: jax.Array,
                           weights: Optional[jax.Array] = None,
                           axis_name: Optional[str] = None) -> tuple[jax.Array, dict]:
    """Weighted mean over pairs of ``-log s(u.v+) - sum_k log s(-u.v_k)`` (s = sigmoid).

    Args:
      inputs: float [N, D] input vectors u (skip-gram: the centre word's input embedding;
        CBOW: the mean of the context words' input embeddings).
      positives: float [N, D] output vectors v+ of the word to predict.
      negatives: float [N, K, D] output vectors v_k of the K noise words.
      weights: float/bool [N] per-pair weights (0 drops a pair: padding, subsampled words);
        None means all ones.
      axis_name: when given (inside shard_map/pmap), the normaliser is the weight sum over
        all devices, scaled so that ``pmean`` of the per-device losses is the global mean.

    Returns ``(loss, {"pos_prob": weighted mean s(u.v+), "neg_prob": weighted mean s(u.v_k),
    "num_pairs": weight sum})``. With all-zero vectors every pair costs ``(1 + K) log 2``.
    """
    chex.assert_rank([inputs, positives, negatives], [2, 2, 3])
    chex.assert_equal_shape([inputs, positives])
    chex.assert_equal_shape_prefix([inputs, negatives], 1)
    if negatives.shape[-1] != inputs.shape[-1]:
        raise ValueError(f"negative_sampling_loss: negatives {negatives.shape} and inputs {inputs.shape} "
                         "must share the vector size D.")
    u = inputs.astype(jnp.float32)
    pos = jnp.einsum("nd,nd->n", u, positives.astype(jnp.float32))
    neg = jnp.einsum("nd,nkd->nk", u, negatives.astype(jnp.float32))
    per_pair = -jax.nn.log_sigmoid(pos) - jnp.sum(jax.nn.log_sigmoid(-neg), axis=-1)
    w = jnp.ones(pos.shape, jnp.float32) if weights is None else weights.astype(jnp.float32)
    chex.assert_equal_shape([w, pos])
    local = jnp.sum(w)
    if axis_name is None:
        total, scale = local, 1.0
    else:
        total = lax.psum(local, axis_name)
        scale = lax.psum(1, axis_name)  # number of devices: undone by the train step's pmean
    denom = jnp.maximum(total, 1e-9)
    loss = scale * jnp.sum(w * per_pair) / denom
    pos_prob = scale * jnp.sum(w * jax.nn.sigmoid(pos)) / denom
    neg_prob = scale * jnp.sum(w * jnp.mean(jax.nn.sigmoid(neg), axis=-1)) / denom
    return loss, {"pos_prob": pos_prob, "neg_prob": neg_prob, "num_pairs": total}

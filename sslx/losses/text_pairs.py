"""Losses of the sentence-level text objectives (pure functions)."""
from __future__ import annotations

from typing import Optional

import chex
import jax
import jax.numpy as jnp

from sslx.losses.contrastive import l2_normalize


def _similarity_inputs(name: str, temperature: float, normalize: bool, a: jax.Array, b: jax.Array
                       ) -> tuple[jax.Array, jax.Array]:
    """``a``, ``b`` in float32, L2-normalised along the last axis when ``normalize``; checks ``temperature``."""
    if temperature <= 0:
        raise ValueError(f"{name}: temperature must be > 0, got {temperature}.")
    a, b = a.astype(jnp.float32), b.astype(jnp.float32)
    return (l2_normalize(a), l2_normalize(b)) if normalize else (a, b)


def candidate_info_nce(queries: jax.Array, candidates: jax.Array, labels: jax.Array,
                       valid: Optional[jax.Array] = None, temperature: float = 0.1,
                       normalize: bool = True) -> tuple[jax.Array, dict]:
    """InfoNCE over an explicit candidate set per query.

    Args:
      queries: float [B, D] (e.g. the context representation of a masked sentence).
      candidates: float [B, C, D] candidate encodings; ``candidates[b, labels[b]]`` is the positive.
      labels: int [B] slot of the positive.
      valid: bool [B, C] (None: all valid); invalid slots get score -inf.
      temperature: softmax temperature; normalize: cosine similarity when True.

    Returns ``(mean over b of -log softmax_c(q_b . k_bc / tau)[labels[b]], {"accuracy"})``.
    """
    chex.assert_rank([queries, candidates, labels], [2, 3, 1])
    chex.assert_equal_shape_prefix([queries, candidates, labels], 1)
    chex.assert_equal(queries.shape[-1], candidates.shape[-1])
    q, k = _similarity_inputs("candidate_info_nce", temperature, normalize, queries, candidates)
    scores = jnp.einsum("bd,bcd->bc", q, k) / temperature
    if valid is not None:
        chex.assert_equal_shape([valid, scores])
        scores = jnp.where(valid, scores, -jnp.inf)
    logp = jax.nn.log_softmax(scores, axis=-1)
    loss = -jnp.take_along_axis(logp, labels[:, None].astype(jnp.int32), axis=1)[:, 0]
    acc = (jnp.argmax(scores, axis=-1) == labels).astype(jnp.float32)
    return jnp.mean(loss), {"accuracy": jnp.mean(acc)}


def neighbour_contrastive_loss(anchors: jax.Array, candidates: jax.Array, positives: jax.Array,
                               exclude: jax.Array, temperature: float = 1.0, normalize: bool = False
                               ) -> tuple[jax.Array, dict]:
    """Quick-thought loss (Logeswaran & Lee 2018): pick a sentence's neighbours among candidates.

    Args:
      anchors: float [B, D] sentence encodings ``f(s_b)``.
      candidates: float [C, D] context encodings ``g(c)`` of every candidate sentence (the whole
        batch, gathered over devices), among them each anchor's neighbours.
      positives: int [B, P] rows of ``candidates`` that are anchor ``b``'s neighbours.
      exclude: int [B] the row of ``candidates`` holding anchor ``b``'s own sentence; it is
        scored -inf (a sentence is not its own context).
      temperature: scores are ``a . c / temperature`` (the paper: plain inner product, 1.0);
      normalize: cosine similarity instead of the inner product.

    Returns ``(mean over b and p of -log softmax_c(score_b)[positives[b, p]], {"accuracy"})``;
    accuracy: the rate at which an anchor's top-scored candidate is one of its neighbours.
    """
    chex.assert_rank([anchors, candidates, positives, exclude], [2, 2, 2, 1])
    chex.assert_equal_shape_prefix([anchors, positives, exclude], 1)
    chex.assert_equal(anchors.shape[-1], candidates.shape[-1])
    a, c = _similarity_inputs("neighbour_contrastive_loss", temperature, normalize, anchors, candidates)
    scores = a @ c.T / temperature                                     # [B, C]
    own = jnp.arange(c.shape[0])[None, :] == exclude[:, None]
    scores = jnp.where(own, -jnp.inf, scores)
    logp = jax.nn.log_softmax(scores, axis=-1)
    loss = -jnp.mean(jnp.take_along_axis(logp, positives.astype(jnp.int32), axis=1))
    hit = jnp.any(jnp.argmax(scores, axis=-1)[:, None] == positives, axis=1)
    return loss, {"accuracy": jnp.mean(hit.astype(jnp.float32))}

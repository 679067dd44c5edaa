"""Contrastive losses: InfoNCE / NT-Xent with optional cross-device negatives.

All functions are pure: arrays in, scalar (and an aux dict) out. When
``axis_name`` is given the function must run inside ``shard_map`` / ``pmap``
over that axis; it then gathers the other devices' embeddings as negatives so
the loss equals the one computed on the global batch on a single device.
"""
from __future__ import annotations

from typing import Optional

import chex
import jax
import jax.numpy as jnp
from jax import lax


def l2_normalize(x: jax.Array, axis: int = -1, eps: float = 1e-12) -> jax.Array:
    """``x / max(||x||, eps)`` along ``axis`` (the usual cosine-similarity prep).

    Written with ``rsqrt(max(||x||^2, eps^2))`` so an all-zero row has a zero,
    not NaN, gradient (sqrt has an infinite derivative at 0).
    """
    sq = jnp.sum(jnp.square(x), axis=axis, keepdims=True)
    return x * lax.rsqrt(jnp.maximum(sq, eps * eps))


def _gather(x: jax.Array, axis_name: Optional[str]) -> tuple[jax.Array, jax.Array]:
    """All-gather ``x`` [B, D] over ``axis_name`` -> ([N*B, D], offset of this shard)."""
    if axis_name is None:
        return x, jnp.zeros((), jnp.int32)
    gathered = lax.all_gather(x, axis_name, tiled=True)
    offset = lax.axis_index(axis_name) * x.shape[0]
    return gathered, offset


def info_nce(
    queries: jax.Array,
    keys: jax.Array,
    temperature: float = 0.1,
    *,
    negatives: Optional[jax.Array] = None,
    axis_name: Optional[str] = None,
    normalize: bool = True,
) -> tuple[jax.Array, dict]:
    """InfoNCE where ``keys[i]`` is the positive of ``queries[i]``.

    Args:
      queries: [B, D] anchors on this device.
      keys: [B, D] positives; the keys of the other anchors (gathered over
        ``axis_name``) are the in-batch negatives.
      temperature: softmax temperature tau.
      negatives: optional extra negatives [K, D] (e.g. a MoCo queue), shared.
      axis_name: gather keys from all devices over this axis.
      normalize: L2-normalise queries/keys/negatives (cosine similarity).

    Returns:
      (mean loss over the local anchors, {"accuracy": top-1 of the positive}).
    """
    chex.assert_rank([queries, keys], 2)
    chex.assert_equal_shape([queries, keys])
    if normalize:
        queries, keys = l2_normalize(queries), l2_normalize(keys)
        if negatives is not None:
            negatives = l2_normalize(negatives)
    all_keys, offset = _gather(keys, axis_name)
    logits = queries @ all_keys.T / temperature  # [B, N*B]
    if negatives is not None:
        logits = jnp.concatenate([logits, queries @ negatives.T / temperature], axis=1)
    labels = offset + jnp.arange(queries.shape[0])
    logp = jax.nn.log_softmax(logits.astype(jnp.promote_types(logits.dtype, jnp.float32)), axis=-1)
    loss = -jnp.take_along_axis(logp, labels[:, None], axis=1)[:, 0]
    acc = jnp.argmax(logits, axis=-1) == labels
    return jnp.mean(loss), {"accuracy": jnp.mean(acc)}


def nt_xent(
    z1: jax.Array,
    z2: jax.Array,
    temperature: float = 0.5,
    *,
    axis_name: Optional[str] = None,
) -> tuple[jax.Array, dict]:
    """SimCLR's NT-Xent (normalised temperature-scaled cross entropy).

    ``z1[i]`` and ``z2[i]`` are two views of image i. Each of the 2B views is an
    anchor whose positive is its partner and whose negatives are the other
    2(NB) - 2 views of the global batch (N devices when ``axis_name`` is set).

    Args:
      z1, z2: [B, D] projections of view 1 and view 2 on this device.
      temperature: tau.
      axis_name: gather negatives from all devices over this axis.

    Returns:
      (mean loss over the 2B local anchors, {"accuracy": ...}). Averaging the
      returned loss over devices (``lax.pmean``) gives the global-batch loss.
    """
    chex.assert_rank([z1, z2], 2)
    chex.assert_equal_shape([z1, z2])
    b = z1.shape[0]
    ftype = jnp.promote_types(z1.dtype, jnp.float32)  # bf16 -> f32; f64 stays f64
    z1, z2 = l2_normalize(z1.astype(ftype)), l2_normalize(z2.astype(ftype))
    g1, offset = _gather(z1, axis_name)
    g2, _ = _gather(z2, axis_name)
    n = g1.shape[0]
    candidates = jnp.concatenate([g1, g2], axis=0)  # [2n, D]
    anchors = jnp.concatenate([z1, z2], axis=0)  # [2b, D]
    logits = anchors @ candidates.T / temperature  # [2b, 2n]
    local = offset + jnp.arange(b)
    self_idx = jnp.concatenate([local, local + n])
    pos_idx = jnp.concatenate([local + n, local])
    logits = jnp.where(jax.nn.one_hot(self_idx, 2 * n, dtype=bool), -jnp.inf, logits)
    logp = jax.nn.log_softmax(logits, axis=-1)
    loss = -jnp.take_along_axis(logp, pos_idx[:, None], axis=1)[:, 0]
    acc = jnp.argmax(logits, axis=-1) == pos_idx
    return jnp.mean(loss), {"accuracy": jnp.mean(acc)}


def moco_info_nce(
    queries: jax.Array,
    keys: jax.Array,
    queue: jax.Array,
    temperature: float = 0.07,
    *,
    normalize: bool = True,
) -> tuple[jax.Array, dict]:
    """MoCo's InfoNCE (He et al. 2019, eq. 1): one positive key per query plus a queue of negatives.

    For query ``q_i`` the logits are ``[q_i . k_i, q_i . n_1, ..., q_i . n_K] / temperature``
    and the label is 0 (the positive). Unlike :func:`info_nce`, the other
    in-batch keys are *not* negatives: MoCo contrasts only against the queue.
    Keys carry no gradient (call sites pass ``stop_gradient(keys)``); the
    queue is a constant. No cross-device communication is needed: every
    query's logits are local, so ``lax.pmean`` of the per-device means gives
    the global-batch mean.

    Args:
      queries: [B, D] query embeddings.
      keys: [B, D] positive keys, ``keys[i]`` for ``queries[i]``.
      queue: [K, D] negative keys.
      temperature: tau.
      normalize: L2-normalise queries, keys and queue first.

    Returns:
      (mean loss over the B queries, {"accuracy": fraction whose positive has the top logit}).
    """
    chex.assert_rank([queries, keys, queue], 2)
    chex.assert_equal_shape([queries, keys])
    if queue.shape[1] != queries.shape[1]:
        raise ValueError(f"moco_info_nce: queue dim {queue.shape[1]} != embedding dim {queries.shape[1]}.")
    ftype = jnp.promote_types(queries.dtype, jnp.float32)
    queries, keys, queue = queries.astype(ftype), keys.astype(ftype), queue.astype(ftype)
    if normalize:
        queries, keys, queue = l2_normalize(queries), l2_normalize(keys), l2_normalize(queue)
    l_pos = jnp.sum(queries * keys, axis=-1, keepdims=True)  # [B, 1]
    l_neg = queries @ queue.T  # [B, K]
    logits = jnp.concatenate([l_pos, l_neg], axis=1) / temperature
    logp = jax.nn.log_softmax(logits, axis=-1)
    loss = -logp[:, 0]
    acc = jnp.argmax(logits, axis=-1) == 0
    return jnp.mean(loss), {"accuracy": jnp.mean(acc)}

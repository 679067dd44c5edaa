"""SwAV (Caron et al. 2020): Sinkhorn-Knopp codes and the swapped-prediction loss.

Both functions are pure. :func:`sinkhorn` takes this device's prototype scores
``[B_local, K]``; when ``axis_name`` is given it must run inside
``shard_map``/``pmap`` and its sums over the batch are ``lax.psum``-ed, so the
codes equal the single-device computation on the global batch (as the reference
implementation's ``dist.all_reduce``).
"""
from __future__ import annotations

from typing import Optional, Sequence

import chex
import jax
import jax.numpy as jnp
from jax import lax


def _psum(x: jax.Array, axis_name: Optional[str]) -> jax.Array:
    return x if axis_name is None else lax.psum(x, axis_name)


def sinkhorn(scores: jax.Array, eps: float = 0.05, iters: int = 3, axis_name: Optional[str] = None,
             *, rescale: bool = True, mask: Optional[jax.Array] = None) -> jax.Array:
    """Sinkhorn-Knopp codes Q [B_local, K] from prototype scores [B_local, K] (no gradient).

    As the reference ``distributed_sinkhorn`` (in its [K, B] layout: rows = prototypes,
    columns = examples)::

        Q = exp(scores / eps); Q /= sum(Q)
        repeat iters: Q /= row sums; Q /= K        # each prototype gets mass 1/K
                      Q /= column sums; Q /= B     # each example gets mass 1/B
        Q *= B                                     # (rescale) each example's code sums to 1

    ``B`` is the *global* batch: the total and every per-prototype sum run over the
    batch and are psum-ed over ``axis_name``. Here the layout is [B, K], so per-prototype
    sums are over axis 0. The global max score is subtracted before ``exp`` (it cancels
    in the first normalisation) so ``exp`` cannot overflow. Computed in at least float32.
    ``rescale=False`` returns Q before the final ``*B`` (columns 1/B, prototypes ~1/K).
    ``mask`` [B_local] bool: rows that take part (others get zero codes and do not count in
    ``B``), e.g. a feature queue that is not full yet. The result equals running on the
    unmasked rows only.
    """
    chex.assert_rank(scores, 2)
    ftype = jnp.promote_types(scores.dtype, jnp.float32)
    s = lax.stop_gradient(scores).astype(ftype)
    n_local, k = s.shape
    if mask is None:
        keep = None
        b = n_local * (1 if axis_name is None else lax.axis_size(axis_name))
    else:
        chex.assert_shape(mask, (n_local,))
        keep = mask.astype(bool)[:, None]
        s = jnp.where(keep, s, -jnp.inf)
        b = _psum(jnp.sum(mask.astype(ftype)), axis_name)
    m = jnp.max(s)
    if axis_name is not None:
        m = lax.pmax(m, axis_name)
    q = jnp.exp((s - m) / eps)  # masked rows: exp(-inf) = 0
    q = q / _psum(jnp.sum(q), axis_name)
    for _ in range(int(iters)):
        q = q / _psum(jnp.sum(q, axis=0, keepdims=True), axis_name) / k  # prototypes (global batch)
        rows = jnp.sum(q, axis=1, keepdims=True)
        if keep is not None:
            rows = jnp.where(keep, rows, 1.0)  # masked rows stay 0 (no 0/0)
        q = q / rows / b  # examples (local rows)
    if rescale:
        q = q * b
    return lax.stop_gradient(q)


def swav_loss(scores_per_view: Sequence[jax.Array], codes_per_view: Sequence[jax.Array],
              temperature: float = 0.1) -> tuple[jax.Array, dict]:
    """Swapped prediction: every crop predicts the codes of every *other* code crop.

    Args:
      scores_per_view: V arrays [B, K] of scores ``z . c_k`` (z and prototypes unit-norm),
        one per crop; the first ``len(codes_per_view)`` are the crops the codes come from
        (SwAV's large crops), in the same order.
      codes_per_view: N arrays [B, K] of codes (e.g. :func:`sinkhorn`), N <= V; each
        row a distribution over the K prototypes. Gets ``stop_gradient``.
      temperature: softmax temperature of the predictions.

    Returns:
      ``mean over the N (V - 1) pairs (i, v != i) of mean_b -sum_k q_i[b,k] log softmax(s_v[b]/T)_k``
      (the reference's ``sum_i sum_{v!=i} / (V - 1) / N``), and ``{"entropy": ...}``: the mean
      entropy of the codes (log K for uniform codes, 0 for one-hot ones).
    """
    n, v = len(codes_per_view), len(scores_per_view)
    if n < 1 or v < 2 or n > v:
        raise ValueError(f"swav_loss needs 1 <= #codes <= #views and >= 2 views; got {n} codes, {v} views.")
    chex.assert_equal_shape(list(scores_per_view) + list(codes_per_view))
    ftype = jnp.promote_types(scores_per_view[0].dtype, jnp.float32)
    logp = [jax.nn.log_softmax(s.astype(ftype) / temperature, axis=-1) for s in scores_per_view]
    total = 0.0
    for i, q in enumerate(codes_per_view):
        q = lax.stop_gradient(q).astype(ftype)
        sub = sum(jnp.mean(-jnp.sum(q * logp[j], axis=-1)) for j in range(v) if j != i)
        total = total + sub / (v - 1)
    codes = jnp.stack([lax.stop_gradient(q).astype(ftype) for q in codes_per_view])
    ent = -jnp.sum(codes * jnp.log(jnp.maximum(codes, 1e-12)), axis=-1)
    return total / n, {"entropy": jnp.mean(ent)}

"""AMDIM's multi-location NCE (Bachman et al. 2019), as in the reference ``costs.py``.

For a *source* vector ``s_i`` of image i in one view and *target* local features
``t_{j,l}`` (image j, location l) of the other view, the raw score is
``a_{i,j,l} = s_i . t_{j,l} / sqrt(D)``. It is regularised and clipped::

    reg       = reg_weight * mean_{i,j,l} a_{i,j,l}^2        (penalty on the raw scores)
    s_{i,j,l} = tclip * tanh(a_{i,j,l} / tclip)              (soft clip to (-tclip, tclip))

and every positive (image i, location l) is classified against all locations of
every *other* image of the global batch (the other positives of image i are not
in its denominator)::

    nce_{i,l} = -log( exp(s_{i,i,l}) / (exp(s_{i,i,l}) + sum_{j != i} sum_m exp(s_{i,j,m})) )

so there are ``1 + (N - 1) L`` candidates for a global batch of N images with L
locations. The loss is ``mean_{i,l} nce_{i,l}`` (+ ``reg``). With ``axis_name``
the targets are gathered over devices (negatives from every device); the
per-device means are equal-sized, so ``lax.pmean`` of the result is the
global-batch value. The reference defaults are ``tclip = 20`` and
``reg_weight = 5e-2`` (``lgt_reg = 5e-2 * (raw_scores**2).mean()``).
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import chex
import jax
import jax.numpy as jnp

from sslx.losses.contrastive import _gather


def tanh_clip(x: jax.Array, tclip: Optional[float]) -> jax.Array:
    """``tclip * tanh(x / tclip)``: a smooth clip to (-tclip, tclip); ``tclip`` None or <= 0: no clip."""
    if not tclip or tclip <= 0:
        return x
    return tclip * jnp.tanh(x / tclip)


def amdim_nce(src: jax.Array, trg: jax.Array, *, tclip: Optional[float] = 20.0, reg_weight: float = 5e-2,
              axis_name: Optional[str] = None, scale: bool = True) -> tuple[jax.Array, dict]:
    """NCE of source vectors ``src`` [B, D] against target local features ``trg`` [B, L, D].

    ``trg[i]`` (all L locations) are the positives of ``src[i]``; the locations of the
    other images (gathered over ``axis_name``) are the negatives. ``scale`` divides the
    scores by ``sqrt(D)`` (the reference does). Returns ``(nce + reg, {"nce", "reg",
    "accuracy"})`` where accuracy is the fraction of positives scoring above every negative.
    """
    chex.assert_rank([src, trg], [2, 3])
    if src.shape[0] != trg.shape[0] or src.shape[1] != trg.shape[2]:
        raise ValueError(f"amdim_nce: src {src.shape} and trg {trg.shape} must be [B, D] and [B, L, D].")
    ftype = jnp.promote_types(src.dtype, jnp.float32)
    src, trg = src.astype(ftype), trg.astype(ftype)
    b, n_loc, d = trg.shape
    all_trg, offset = _gather(trg, axis_name)  # [N, L, D]
    n = all_trg.shape[0]
    raw = jnp.einsum("id,jld->ijl", src, all_trg)  # [b, N, L]
    if scale:
        raw = raw / jnp.sqrt(jnp.asarray(d, ftype))
    reg = reg_weight * jnp.mean(jnp.square(raw))
    scores = tanh_clip(raw, tclip)
    pos_mask = jax.nn.one_hot(offset + jnp.arange(b), n, dtype=bool)[:, :, None]  # [b, N, 1]
    pos = jnp.sum(jnp.where(pos_mask, scores, 0.0), axis=1)  # [b, L]
    neg = jnp.where(pos_mask, -jnp.inf, scores).reshape(b, n * n_loc)
    neg_lse = jax.nn.logsumexp(neg, axis=1, keepdims=True)  # [b, 1]; -inf when N == 1
    nce = jnp.logaddexp(pos, neg_lse) - pos  # [b, L]
    acc = pos > jnp.max(neg, axis=1, keepdims=True)
    nce = jnp.mean(nce)
    return nce + reg, {"nce": nce, "reg": reg, "accuracy": jnp.mean(acc)}


def source_vector(x: jax.Array) -> jax.Array:
    """A source vector per image: [B, D] as is, a map [B, H, W, D] max-pooled over locations
    (the reference's ``_sample_src_ftr`` for local->local prediction, without its random masks)."""
    if x.ndim == 2:
        return x
    return jnp.max(x.reshape(x.shape[0], -1, x.shape[-1]), axis=1)


def target_locations(x: jax.Array) -> jax.Array:
    """Target features [B, L, D]: a map [B, H, W, D] flattened, a vector [B, D] as one location."""
    if x.ndim == 2:
        return x[:, None, :]
    return x.reshape(x.shape[0], -1, x.shape[-1])


def amdim_loss(feats1: Mapping, feats2: Mapping, pairs: Sequence[tuple], *, tclip: Optional[float] = 20.0,
               reg_weight: float = 5e-2, axis_name: Optional[str] = None) -> tuple[jax.Array, dict]:
    """AMDIM's objective over scale pairs, both directions, as in the reference ``LossMultiNCE``.

    ``feats1`` / ``feats2`` map a scale key to [B, D] (global) or [B, H, W, D] (local) features
    of view 1 / view 2. For each ``(a, b)`` in ``pairs`` (AMDIM: ``1->5, 1->7, 5->5``; YADIM
    a single pair) the source ``a`` of one view predicts the locations ``b`` of the other::

        nce_ab = (nce(src(f1[a]), trg(f2[b])) + nce(src(f2[a]), trg(f1[b]))) / 2
        loss   = sum_pairs nce_ab + sum_pairs (reg_ab(1->2) + reg_ab(2->1)) / 2

    Returns ``(loss, {"nce", "reg", "accuracy", "nce_<a>t<b>", ...})``.
    """
    if not pairs:
        raise ValueError("amdim_loss: `pairs` is empty; give at least one (source, target) scale pair.")
    total_nce, total_reg, accs, metrics = 0.0, 0.0, [], {}
    for a, b_ in pairs:
        for k, f in (("view 1", feats1), ("view 2", feats2)):
            for key in (a, b_):
                if key not in f:
                    raise ValueError(f"amdim_loss: scale {key!r} missing from the {k} features "
                                     f"(keys {sorted(f)}).")
        _, aux12 = amdim_nce(source_vector(feats1[a]), target_locations(feats2[b_]), tclip=tclip,
                             reg_weight=reg_weight, axis_name=axis_name)
        _, aux21 = amdim_nce(source_vector(feats2[a]), target_locations(feats1[b_]), tclip=tclip,
                             reg_weight=reg_weight, axis_name=axis_name)
        nce = 0.5 * (aux12["nce"] + aux21["nce"])
        total_nce = total_nce + nce
        total_reg = total_reg + 0.5 * (aux12["reg"] + aux21["reg"])
        accs.append(0.5 * (aux12["accuracy"] + aux21["accuracy"]))
        metrics[f"nce_{a}t{b_}"] = nce
    metrics.update(nce=total_nce, reg=total_reg, accuracy=sum(accs) / len(accs))
    return total_nce + total_reg, metrics

"""AMDIM (Bachman et al. 2019) and YADIM (Falcon & Cho 2020).

Both use one multi-scale encoder (:class:`sslx.models.AMDIMEncoder`, built from
``config.model.amdim``) that maps a view to ``{1: global [B, D], side: local
[B, side, side, D], ...}``; both views go through it together (BN statistics over
both views of the global batch, synced over ``axis_name``). The objective is
:func:`sslx.losses.amdim_loss` over ``config.method.pairs``, each ``"a->b"`` with
symbolic scales ``1`` (the global feature), ``5`` (the smaller local map) and ``7``
(the larger local map) -- the paper's names for 128 px inputs, whatever the actual
sides are (e.g. 2 and 4 for 8x8 digits):

* AMDIM: ``("1->5", "1->7", "5->5")`` -- global of one view predicts the local
  features of the other at two scales, plus local (max-pooled 5x5) -> local 5x5;
  both directions (view 1 <-> view 2).
* YADIM: ``("1->1",)`` -- one comparison of the *last* feature maps of the two views
  (the encoder's final 1x1 map), same NCE, regularisation and clip.

``config.method``: ``name`` (amdim / yadim), ``pairs`` (default per name as above),
``tclip`` (20, the reference's default) and ``reg_weight`` (5e-2, the reference's
``lgt_reg``). ``encode`` returns the global 1x1 feature in eval mode.
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections

from sslx import augment
from sslx.losses.amdim import amdim_loss
from sslx.methods.base import DATA_AXIS, Method
from sslx.methods.image.common import (apply_eval, apply_train, bn_axis, images_to_float, init_module,
                                       make_views)
from sslx.models.amdim import AMDIMEncoder

DEFAULT_PAIRS = {"amdim": ("1->5", "1->7", "5->5"), "yadim": ("1->1",)}


def build_amdim_encoder(config: ml_collections.ConfigDict, axis_name: Optional[str]) -> AMDIMEncoder:
    """The :class:`AMDIMEncoder` of ``config.model.amdim`` (ndf, n_rkhs, n_depth, stages, local_stages)."""
    kw = dict(config.model.get("amdim", {}) or {})
    return AMDIMEncoder(dtype=jnp.dtype(config.model.get("dtype", "float32")),
                        bn_axis_name=bn_axis(config, axis_name), **kw)


def parse_pairs(pairs) -> tuple[tuple[str, str], ...]:
    """``("1->5", ...)`` -> ``(("1", "5"), ...)``, checking the symbolic scales."""
    out = []
    for p in pairs:
        parts = str(p).replace(" ", "").split("->")
        if len(parts) != 2 or any(s not in ("1", "5", "7") for s in parts):
            raise ValueError(f"config.method.pairs: {p!r} is not 'a->b' with a, b in 1 (global), "
                             "5 (smaller local map), 7 (larger local map).")
        out.append((parts[0], parts[1]))
    if not out:
        raise ValueError("config.method.pairs is empty.")
    return tuple(out)


def resolve_scales(feats: dict) -> dict:
    """Symbolic scale -> output key: 1 -> 1, 5 -> smallest local side, 7 -> largest local side."""
    local = sorted(k for k in feats if k != 1)
    table = {"1": 1}
    if local:
        table["5"], table["7"] = local[0], local[-1]
    return table


def fit_to_crop(x: jax.Array, crop: int) -> jax.Array:
    """Eval images [B, H, W, C] to the training view side ``crop`` (the encoder's kernels are
    size-specific): a centre crop when larger (the reference's 146 -> 128 eval crop), a bilinear
    resize when smaller (28 px Fashion-MNIST -> 32), unchanged when equal."""
    h, w = x.shape[1], x.shape[2]
    if (h, w) == (crop, crop):
        return x
    if h >= crop and w >= crop:
        top, left = (h - crop) // 2, (w - crop) // 2
        return x[:, top:top + crop, left:left + crop]
    return jax.image.resize(x, (x.shape[0], crop, crop, x.shape[3]), "bilinear")


def _multiscale(config: ml_collections.ConfigDict, axis_name: Optional[str], name: str) -> Method:
    encoder = build_amdim_encoder(config, axis_name)
    view_fn = augment.make_view_fn(config.augment)
    pairs = parse_pairs(config.method.get("pairs", None) or DEFAULT_PAIRS[name])
    tclip = float(config.method.get("tclip", 20.0))
    reg_weight = float(config.method.get("reg_weight", 5e-2))
    crop = int(config.augment.crop_size)

    def init(rng, batch):
        x = jnp.zeros((2, crop, crop, batch["image"].shape[-1]), jnp.float32)
        ep, es, feats = init_module(encoder, rng, x)
        table = resolve_scales(feats)
        missing = sorted({s for p in pairs for s in p} - set(table))
        if missing:
            raise ValueError(f"{name}: pairs {config.method.pairs} need scales {missing}, but the encoder "
                             f"gives only {sorted(feats)}; add local_stages to config.model.amdim.")
        return {"encoder": ep}, {"encoder": es}

    def loss_fn(params, state, batch, rng):
        v1, v2 = make_views(view_fn, rng, batch["image"], axis_name)
        feats, stats = apply_train(encoder, params["encoder"], state["encoder"], jnp.concatenate([v1, v2]))
        f1 = {k: v[: v1.shape[0]] for k, v in feats.items()}
        f2 = {k: v[v1.shape[0]:] for k, v in feats.items()}
        table = resolve_scales(feats)
        loss, aux = amdim_loss(f1, f2, [(table[a], table[b]) for a, b in pairs], tclip=tclip,
                               reg_weight=reg_weight, axis_name=axis_name)
        metrics = {"nce": aux["nce"], "score_reg": aux["reg"], "contrastive_acc": aux["accuracy"]}
        return loss, ({"encoder": stats}, metrics)

    def encode(params, state, images):
        x = fit_to_crop(images_to_float(images), crop)
        return apply_eval(encoder, params["encoder"], state["encoder"], x)[1]

    return Method(name=name, init=init, loss_fn=loss_fn, encode=encode, axis_name=axis_name)


def amdim(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
          total_steps: Optional[int] = None) -> Method:
    """AMDIM as a :class:`Method` (multi-scale pairs, default ``1->5, 1->7, 5->5``)."""
    del total_steps
    return _multiscale(config, axis_name, "amdim")


def yadim(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
          total_steps: Optional[int] = None) -> Method:
    """YADIM as a :class:`Method` (one pair: the last maps of the two views, ``1->1``)."""
    del total_steps
    return _multiscale(config, axis_name, "yadim")

"""SwAV (Caron et al. 2020): swapping assignments between multi-crop views.

Encoder f, projector g (Linear-BN-ReLU-Linear, e.g. 2048 -> 128) and K prototypes
C [K, D] (a bias-free linear layer, ``params["prototypes"]``). For every crop
``z = normalize(g(f(x)))`` and its scores are ``z C^T`` [B, K]. The codes of each
large crop are :func:`sslx.losses.sinkhorn` of its (stop-gradient) scores, computed
over the global batch (psum over ``axis_name``); every crop predicts the codes of
every other large crop (:func:`sslx.losses.swav_loss`).

Multi-crop (``config.augment.multicrop``, a tuple of ``(num, size, (scale_lo, scale_hi))``
groups; the first group are the large crops that get codes, e.g.
``((2, 224, (0.14, 1.0)), (6, 96, (0.05, 0.14)))``). Every crop uses ``config.augment``
with its group's ``crop_size`` / ``crop_scale``; the views come from
:func:`sslx.methods.image.common.make_multicrop_views`. The encoder runs once per
resolution group (crops of the same size concatenated, BN over that group, as the
reference), the projector once on all crops' features.

Prototype normalisation. As in the reference, the prototype rows are unit-norm at every
forward pass: they start unit-norm and the method's ``project_params`` hook
(:func:`normalize_prototypes`, run by the train step right after each optimiser update)
renormalises them, so the gradient is taken with respect to the unit rows.

Freezing. ``state["step"]`` counts optimiser steps (``after_update`` sets it to
``step + 1``); while it is < ``config.method.freeze_prototypes_steps`` the prototypes
enter the loss through ``stop_gradient`` (zero gradient; ``jnp.where`` on the counter,
no retrace). With zero gradient SGD/Adam/LARS leave them unchanged except for weight
decay, which only rescales the rows and so does not change the unit-norm prototypes.

state = {"encoder": bn, "projector": bn, "step": int32}. ``encode``: the encoder in eval mode.
The reference's feature queue (for small batches) is not implemented.
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections

from sslx import augment, losses
from sslx.methods.base import DATA_AXIS, Method
from sslx.methods.image.common import (apply_eval, apply_train, build_encoder, build_head, images_to_float,
                                       init_module, make_multicrop_views)


def multicrop_specs(config: ml_collections.ConfigDict) -> list[tuple[int, int, tuple[float, float]]]:
    """``config.augment.multicrop`` as ``[(num, size, (lo, hi)), ...]`` (default: 2 crops of
    ``augment.crop_size`` / ``augment.crop_scale``), validated."""
    spec = config.augment.get("multicrop", None)
    if not spec:
        spec = ((2, int(config.augment.crop_size), tuple(config.augment.crop_scale)),)
    out = []
    for g in spec:
        if len(g) != 3 or len(g[2]) != 2:
            raise ValueError(f"config.augment.multicrop groups are (num, size, (scale_lo, scale_hi)); got {g!r}.")
        out.append((int(g[0]), int(g[1]), (float(g[2][0]), float(g[2][1]))))
    if out[0][0] < 1 or any(n < 0 for n, _, _ in out) or sum(n for n, _, _ in out) < 2:
        raise ValueError(f"config.augment.multicrop={spec!r}: the first group (the crops that get codes) needs "
                         ">= 1 crop and there must be >= 2 crops in all.")
    return out


def make_multicrop_view_fns(config: ml_collections.ConfigDict) -> list:
    """One ``make_view_fn`` per crop, in crop order (large crops first)."""
    base = {k: v for k, v in dict(config.augment).items() if k != "multicrop"}
    fns = []
    for num, size, scale in multicrop_specs(config):
        fn = augment.make_view_fn({**base, "crop_size": size, "crop_scale": scale})
        fns += [fn] * num
    return fns


def normalize_prototypes(params):
    """``params`` with unit-norm prototype rows."""
    return {**params, "prototypes": losses.l2_normalize(params["prototypes"], axis=-1)}


def normalized_prototypes(params) -> jax.Array:
    """The unit-norm prototypes C [K, D] the loss uses."""
    return losses.l2_normalize(params["prototypes"], axis=-1)


def swav(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
         total_steps: Optional[int] = None) -> Method:
    """SwAV as a :class:`Method`.

    Reads ``config.model`` (``encoder``, ``proj_hidden``, ``proj_dim``), ``config.augment``
    (incl. ``multicrop``) and ``config.method``: ``num_prototypes`` K, ``temperature`` (0.1),
    ``sinkhorn_eps`` (0.05), ``sinkhorn_iters`` (3), ``freeze_prototypes_steps`` (0).
    """
    del total_steps  # no schedule-dependent state
    encoder = build_encoder(config, axis_name)
    proj_dim = int(config.model.proj_dim)
    projector = build_head(config, axis_name, config.model.proj_hidden, proj_dim)
    specs = multicrop_specs(config)
    view_fns = make_multicrop_view_fns(config)
    n_large = specs[0][0]
    k_protos = int(config.method.num_prototypes)
    temperature = float(config.method.get("temperature", 0.1))
    eps = float(config.method.get("sinkhorn_eps", 0.05))
    iters = int(config.method.get("sinkhorn_iters", 3))
    freeze = int(config.method.get("freeze_prototypes_steps", 0))
    if k_protos < 1 or eps <= 0 or iters < 1 or temperature <= 0:
        raise ValueError(f"swav: need num_prototypes >= 1, sinkhorn_eps > 0, sinkhorn_iters >= 1, temperature > 0; "
                         f"got {k_protos}, {eps}, {iters}, {temperature}.")
    # Crop order -> resolution groups (crops of one size share an encoder call).
    sizes = [size for num, size, _ in specs for _ in range(num)]
    groups: dict[int, list[int]] = {}
    for i, s in enumerate(sizes):
        groups.setdefault(s, []).append(i)

    def init(rng, batch):
        x = jnp.zeros((2, sizes[0], sizes[0], batch["image"].shape[-1]), jnp.float32)
        k1, k2, k3 = jax.random.split(rng, 3)
        ep, es, h = init_module(encoder, k1, x)
        pp, ps, _ = init_module(projector, k2, h)
        protos = losses.l2_normalize(jax.random.normal(k3, (k_protos, proj_dim), jnp.float32))
        return ({"encoder": ep, "projector": pp, "prototypes": protos},
                {"encoder": es, "projector": ps, "step": jnp.zeros((), jnp.int32)})

    def loss_fn(params, state, batch, rng):
        views = make_multicrop_views(rng, batch["image"], axis_name, view_fns)
        b = batch["image"].shape[0]
        enc_stats = state["encoder"]
        feats = [None] * len(views)
        for _, idx in groups.items():
            h, enc_stats = apply_train(encoder, params["encoder"], enc_stats, jnp.concatenate([views[i] for i in idx]))
            for j, i in enumerate(idx):
                feats[i] = h[j * b:(j + 1) * b]
        z, proj_stats = apply_train(projector, params["projector"], state["projector"], jnp.concatenate(feats))
        z = losses.l2_normalize(z.astype(jnp.promote_types(z.dtype, jnp.float32)))
        c_raw = params["prototypes"]  # unit rows (init + project_params after every update)
        frozen = state["step"] < freeze
        c = jnp.where(frozen, jax.lax.stop_gradient(c_raw), c_raw)
        scores = jnp.split(z @ c.T.astype(z.dtype), len(views), axis=0)
        codes = [losses.sinkhorn(scores[i], eps, iters, axis_name) for i in range(n_large)]
        loss, aux = losses.swav_loss(scores, codes, temperature)
        metrics = {"code_entropy": aux["entropy"], "prototypes_frozen": frozen.astype(jnp.float32)}
        return loss, ({"encoder": enc_stats, "projector": proj_stats, "step": state["step"]}, metrics)

    def after_update(params, state, step):
        del params
        return {**state, "step": jnp.asarray(step, jnp.int32) + 1}

    def encode(params, state, images):
        return apply_eval(encoder, params["encoder"], state["encoder"], images_to_float(images))

    return Method(name="swav", init=init, loss_fn=loss_fn, encode=encode, after_update=after_update,
                  project_params=normalize_prototypes, axis_name=axis_name)

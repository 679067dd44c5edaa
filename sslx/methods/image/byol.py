"""BYOL (Grill et al. 2020): bootstrap your own latent.

Online network: encoder f, projector g, predictor q (``params``, trained).
Target network: encoder f' and projector g' with the architecture of f and g,
whose weights are an exponential moving average of the online ones. The target
is held in the method ``state`` (no gradient, not touched by the optimiser)::

    state = {"online": {"encoder": bn, "projector": bn, "predictor": bn},   # BN running stats
             "target": {"params":      {"encoder": ..., "projector": ...},   # EMA weights
                        "batch_stats": {"encoder": ..., "projector": ...}}}  # copy of online stats

Loss (symmetric): ``byol_loss(q(g(f(v1))), g'(f'(v2))) + byol_loss(q(g(f(v2))), g'(f'(v1)))``
with ``byol_loss = mean(2 - 2 cos(p, stop_gradient(z)))``, so it lies in [0, 8].
As in the reference implementation each view goes through the networks on its
own, so BatchNorm normalises each view over the (global, synced over
``axis_name``) batch of that view. The target runs in training mode: its BN
layers use the current batch statistics, synced across devices like the online ones.
The online running statistics are updated once per view (twice per step), as in
the reference implementation. The two views may use different augmentations
(``config.method.view2_augment``: the paper's blur p 1.0 / 0.1, solarize p 0 / 0.2).

EMA (in ``after_update``, after the optimiser step ``k = 0, 1, ...``)::

    tau_k = 1 - (1 - tau_base) * (cos(pi k / K) + 1) / 2        K = total_steps
    target_params <- tau_k * target_params + (1 - tau_k) * online_params

The target's BN running statistics are a **copy** of the online network's
running statistics after the step (they are never used in training, because the
target runs in training mode; the copy makes the target an eval-ready network).
``encode`` uses the online encoder in eval mode.

Multi-crop (``config.augment.multicrop``): every crop goes through the online network (its
own BN call), the large crops also through the target; every crop's prediction regresses
the target of every *other* large crop, and the loss is
``2 / (n_large (V - 1)) * sum_{i large} sum_{v != i} byol_loss(p_v, z_i)``, which is the
symmetric two-view loss above when there are two crops. ``view2_augment`` applies to crop 1.
"""
from __future__ import annotations

import math
from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections

from sslx import losses
from sslx.methods.base import DATA_AXIS, Method
from sslx.methods.image.common import (apply_eval, apply_train, build_encoder, build_head, images_to_float,
                                       init_module, make_multicrop_view_fns, make_multicrop_views,
                                       num_large_crops)

_TARGET_PARTS = ("encoder", "projector")


def ema_rate(step, total_steps: int, tau_base: float = 0.996) -> jax.Array:
    """BYOL's target EMA rate ``1 - (1 - tau_base) (cos(pi k / K) + 1) / 2``, k clipped to [0, K].

    ``tau_0 = tau_base`` rising to ``tau_K = 1``. Works on Python ints and traced steps.
    """
    if not total_steps or total_steps <= 0:
        raise ValueError(f"BYOL's EMA schedule needs the run length: total_steps={total_steps!r}. Pass "
                         "total_steps to get_method(...) or set config.train.num_steps > 0.")
    k = jnp.clip(jnp.asarray(step, jnp.float32), 0.0, float(total_steps))
    return 1.0 - (1.0 - tau_base) * (jnp.cos(math.pi * k / total_steps) + 1.0) / 2.0


def ema_update(target, online, tau):
    """``tau * target + (1 - tau) * online`` leaf by leaf (kept in the target's dtypes)."""
    return jax.tree.map(lambda t, o: (tau * t + (1.0 - tau) * o).astype(t.dtype), target, online)


def make_view_fns(config: ml_collections.ConfigDict) -> list:
    """One augmentation function per crop (two by default): ``config.augment``, with crop 1
    updated by ``config.method.view2_augment`` (a dict of ``config.augment`` keys), which
    expresses BYOL's asymmetric views (blur p 1.0 / 0.1, solarize p 0.0 / 0.2)."""
    over = dict(config.method.get("view2_augment", None) or {})
    return make_multicrop_view_fns(config, {1: over} if over else None)


def byol(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
         total_steps: Optional[int] = None) -> Method:
    """BYOL as a :class:`Method`.

    Reads ``config.model`` (``encoder``, ``proj_hidden``, ``proj_dim``, ``pred_hidden``
    (default: ``proj_hidden``)), ``config.augment``, ``config.method.tau_base``
    (default 0.996) and ``config.method.view2_augment`` (default: none, both views alike).
    ``total_steps`` (K of the EMA schedule) is required by
    ``after_update``: a ValueError is raised there (at trace time) when it is None or 0,
    so a method built only to ``encode`` a checkpoint does not need it.
    """
    if total_steps is not None and int(total_steps) < 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}.")
    encoder = build_encoder(config, axis_name)
    proj_dim = int(config.model.proj_dim)
    projector = build_head(config, axis_name, config.model.proj_hidden, proj_dim)
    predictor = build_head(config, axis_name, config.model.get("pred_hidden", config.model.proj_hidden), proj_dim)
    view_fns = make_view_fns(config)
    n_large = num_large_crops(config)
    pair_scale = 2.0 / (n_large * (len(view_fns) - 1))
    tau_base = float(config.method.get("tau_base", 0.996))
    if not 0.0 <= tau_base <= 1.0:
        raise ValueError(f"config.method.tau_base must be in [0, 1], got {tau_base}.")
    crop = int(config.augment.crop_size)

    def init(rng, batch):
        x = jnp.zeros((2, crop, crop, batch["image"].shape[-1]), jnp.float32)
        k1, k2, k3 = jax.random.split(rng, 3)
        ep, es, h = init_module(encoder, k1, x)
        pp, ps, z = init_module(projector, k2, h)
        qp, qs, _ = init_module(predictor, k3, z)
        params = {"encoder": ep, "projector": pp, "predictor": qp}
        online_stats = {"encoder": es, "projector": ps, "predictor": qs}
        copy = lambda t: jax.tree.map(jnp.array, t)  # own buffers: the target starts equal to the online net
        target = {"params": copy({"encoder": ep, "projector": pp}),
                  "batch_stats": copy({"encoder": es, "projector": ps})}
        return params, {"online": online_stats, "target": target}

    def online_forward(params, stats, x):
        h, es = apply_train(encoder, params["encoder"], stats["encoder"], x)
        z, ps = apply_train(projector, params["projector"], stats["projector"], h)
        p, qs = apply_train(predictor, params["predictor"], stats["predictor"], z)
        return p, {"encoder": es, "projector": ps, "predictor": qs}

    def target_forward(target, x):
        tp, ts = target["params"], target["batch_stats"]
        h, _ = apply_train(encoder, tp["encoder"], ts["encoder"], x)  # train mode: batch statistics
        z, _ = apply_train(projector, tp["projector"], ts["projector"], h)
        return jax.lax.stop_gradient(z)

    def loss_fn(params, state, batch, rng):
        views = make_multicrop_views(rng, batch["image"], axis_name, view_fns)
        stats, preds = state["online"], []
        for v in views:
            p, stats = online_forward(params, stats, v)
            preds.append(p)
        targets = [target_forward(state["target"], views[i]) for i in range(n_large)]
        loss, cos, n = 0.0, 0.0, 0
        for i in range(n_large):
            for v in range(len(views)):
                if v != i:
                    loss = loss + losses.byol_loss(preds[v], targets[i])
                    cos = cos + jnp.mean(jnp.sum(losses.l2_normalize(preds[v]) * losses.l2_normalize(targets[i]), -1))
                    n += 1
        loss = loss * pair_scale if pair_scale != 1.0 else loss
        return loss, ({"online": stats, "target": state["target"]}, {"pred_target_cos": cos / n})

    def after_update(params, state, step):
        tau = ema_rate(step, total_steps, tau_base)
        online = {k: params[k] for k in _TARGET_PARTS}
        target = {"params": ema_update(state["target"]["params"], online, tau),
                  "batch_stats": {k: state["online"][k] for k in _TARGET_PARTS}}
        return {"online": state["online"], "target": target}

    def encode(params, state, images):
        return apply_eval(encoder, params["encoder"], state["online"]["encoder"], images_to_float(images))

    return Method(name="byol", init=init, loss_fn=loss_fn, encode=encode, after_update=after_update,
                  axis_name=axis_name)

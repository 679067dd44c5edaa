"""SimCLR (Chen et al. 2020): NT-Xent between two augmented views.

Encoder f and projector g; the loss contrasts g(f(v1)) with g(f(v2)) against
every other view in the global batch (negatives gathered across devices, BN
statistics synchronised).
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections

from sslx import augment, losses
from sslx.methods.base import DATA_AXIS, Method
from sslx.methods.image.common import (apply_eval, apply_train, build_encoder, build_head, images_to_float,
                                       init_module, make_views)


def simclr(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
           total_steps: Optional[int] = None) -> Method:
    """SimCLR as a :class:`Method`. Reads ``config.model``, ``config.augment``, ``config.method``."""
    del total_steps  # no schedule-dependent state
    encoder = build_encoder(config, axis_name)
    projector = build_head(config, axis_name, config.model.proj_hidden, config.model.proj_dim)
    view_fn = augment.make_view_fn(config.augment)
    temperature = float(config.method.temperature)
    crop = int(config.augment.crop_size)

    def init(rng, batch):
        x = jnp.zeros((2, crop, crop, batch["image"].shape[-1]), jnp.float32)
        k1, k2 = jax.random.split(rng)
        ep, es, h = init_module(encoder, k1, x)
        pp, ps, _ = init_module(projector, k2, h)
        return {"encoder": ep, "projector": pp}, {"encoder": es, "projector": ps}

    def loss_fn(params, state, batch, rng):
        v1, v2 = make_views(view_fn, rng, batch["image"], axis_name)
        h, enc_stats = apply_train(encoder, params["encoder"], state["encoder"], jnp.concatenate([v1, v2]))
        z, proj_stats = apply_train(projector, params["projector"], state["projector"], h)
        z1, z2 = jnp.split(z, 2, axis=0)
        loss, aux = losses.nt_xent(z1, z2, temperature, axis_name=axis_name)
        return loss, ({"encoder": enc_stats, "projector": proj_stats}, {"contrastive_acc": aux["accuracy"]})

    def encode(params, state, images):
        return apply_eval(encoder, params["encoder"], state["encoder"], images_to_float(images))

    return Method(name="simclr", init=init, loss_fn=loss_fn, encode=encode, axis_name=axis_name)

"""SimCLR (Chen et al. 2020): NT-Xent between two augmented views.

Encoder f and projector g; the loss contrasts g(f(v1)) with g(f(v2)) against
every other view in the global batch (negatives gathered across devices, BN
statistics synchronised).

Multi-crop (``config.augment.multicrop``, as in SwAV's "SimCLR + multi-crop"): the loss
is the mean of NT-Xent over the crop pairs (i, v), i a large crop and v any later crop
(:func:`sslx.methods.image.common.crop_pairs`); with the default two crops that is the
plain SimCLR loss. Crops of one resolution share an encoder call (BN over that group).
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections

from sslx import losses
from sslx.methods.base import DATA_AXIS, Method
from sslx.methods.image.common import (apply_eval, apply_train, build_encoder, build_head, crop_pairs,
                                       encode_crops, images_to_float, init_module, make_multicrop_view_fns,
                                       make_multicrop_views, num_large_crops)


def simclr(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
           total_steps: Optional[int] = None) -> Method:
    """SimCLR as a :class:`Method`. Reads ``config.model``, ``config.augment``, ``config.method``."""
    del total_steps  # no schedule-dependent state
    encoder = build_encoder(config, axis_name)
    projector = build_head(config, axis_name, config.model.proj_hidden, config.model.proj_dim)
    view_fns = make_multicrop_view_fns(config)
    pairs = crop_pairs(len(view_fns), num_large_crops(config))
    temperature = float(config.method.temperature)
    crop = int(config.augment.crop_size)

    def init(rng, batch):
        x = jnp.zeros((2, crop, crop, batch["image"].shape[-1]), jnp.float32)
        k1, k2 = jax.random.split(rng)
        ep, es, h = init_module(encoder, k1, x)
        pp, ps, _ = init_module(projector, k2, h)
        return {"encoder": ep, "projector": pp}, {"encoder": es, "projector": ps}

    def loss_fn(params, state, batch, rng):
        views = make_multicrop_views(rng, batch["image"], axis_name, view_fns)
        feats, enc_stats = encode_crops(encoder, params["encoder"], state["encoder"], views)
        z, proj_stats = apply_train(projector, params["projector"], state["projector"], jnp.concatenate(feats))
        zs = jnp.split(z, len(views), axis=0)
        loss, acc = 0.0, 0.0
        for i, v in pairs:
            pair_loss, aux = losses.nt_xent(zs[i], zs[v], temperature, axis_name=axis_name)
            loss, acc = loss + pair_loss, acc + aux["accuracy"]
        loss, acc = loss / len(pairs), acc / len(pairs)
        return loss, ({"encoder": enc_stats, "projector": proj_stats}, {"contrastive_acc": acc})

    def encode(params, state, images):
        return apply_eval(encoder, params["encoder"], state["encoder"], images_to_float(images))

    return Method(name="simclr", init=init, loss_fn=loss_fn, encode=encode, axis_name=axis_name)

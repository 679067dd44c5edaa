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

from sslx import augment, losses, models
from sslx.methods.base import DATA_AXIS, Method, example_keys


def build_networks(config: ml_collections.ConfigDict, axis_name: Optional[str]):
    """Encoder and projector modules for ``config.model``."""
    dtype = jnp.dtype(config.model.get("dtype", "float32"))
    if not config.model.get("sync_bn", True):
        axis_name = None  # per-device BatchNorm statistics
    encoder = models.make_encoder(config.model.encoder, dtype=dtype, bn_axis_name=axis_name,
                                  **dict(config.model.get("encoder_kwargs", {})))
    projector = models.MLPHead(hidden=tuple(config.model.proj_hidden), out_dim=config.model.proj_dim,
                               dtype=dtype, bn_axis_name=axis_name)
    return encoder, projector


def simclr(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS) -> Method:
    """SimCLR as a :class:`Method`. Reads ``config.model``, ``config.augment``, ``config.method``."""
    encoder, projector = build_networks(config, axis_name)
    view_fn = augment.make_view_fn(config.augment)
    temperature = float(config.method.temperature)
    crop = int(config.augment.crop_size)

    def init(rng, batch):
        c = batch["image"].shape[-1]
        x = jnp.zeros((2, crop, crop, c), jnp.float32)
        k1, k2 = jax.random.split(rng)
        ev = encoder.init(k1, x, train=False)
        feats = encoder.apply(ev, x, train=False)
        pv = projector.init(k2, feats, train=False)
        params = {"encoder": ev["params"], "projector": pv["params"]}
        state = {"encoder": ev.get("batch_stats", {}), "projector": pv.get("batch_stats", {})}
        return params, state

    def loss_fn(params, state, batch, rng):
        images = batch["image"]
        keys = example_keys(rng, images.shape[0], axis_name, num=2)
        v1 = jax.vmap(view_fn)(keys[:, 0], images)
        v2 = jax.vmap(view_fn)(keys[:, 1], images)
        x = jnp.concatenate([v1, v2], axis=0)
        h, enc_upd = encoder.apply({"params": params["encoder"], "batch_stats": state["encoder"]},
                                   x, train=True, mutable=["batch_stats"])
        z, proj_upd = projector.apply({"params": params["projector"], "batch_stats": state["projector"]},
                                      h, train=True, mutable=["batch_stats"])
        z1, z2 = jnp.split(z, 2, axis=0)
        loss, aux = losses.nt_xent(z1, z2, temperature, axis_name=axis_name)
        new_state = {"encoder": enc_upd["batch_stats"], "projector": proj_upd["batch_stats"]}
        return loss, (new_state, {"contrastive_acc": aux["accuracy"]})

    def encode(params, state, images):
        x = jax.vmap(augment.to_float)(images)
        return encoder.apply({"params": params["encoder"], "batch_stats": state["encoder"]}, x, train=False)

    return Method(name="simclr", init=init, loss_fn=loss_fn, encode=encode, axis_name=axis_name)

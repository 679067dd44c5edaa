"""Relative patch position (Doersch, Gupta & Efros 2015, "context prediction").

For every image a 3x3 grid of ``P x P`` patches separated by ``gap`` pixels is placed at random
(the whole grid inside the image); the centre patch and one of its 8 neighbours (the label, uniform
over 0..7, ``sslx.augment.NEIGHBOUR_OFFSETS``) are cut out, each moved by up to ``jitter`` px per
axis. To block low-level shortcuts each patch is, with probability ``resample_p``, downsampled to a
random side in ``[resample_min, P]`` and upsampled back, and for RGB images 1-2 of its colour channels
are replaced by low-amplitude noise (``channel_drop``; one-channel images skip this step, they have
no colour cue to remove). All of it runs on device inside the compiled step, keyed per example by the
global index (:func:`sslx.methods.base.example_keys`).

Two towers with shared weights (the configured encoder) embed the two patches; their pooled
features are concatenated and an MLP (``config.method.head_hidden``, then 8 outputs) predicts the
position; softmax cross-entropy. Both towers run as one batch of 2B patches (synced BatchNorm).

``encode`` (frozen, eval mode), ``config.method.encode``:
  * ``"image"``: the encoder on the whole image (the paper's transfer use of the conv net);
  * ``"grid"``: the encoder on each patch of the centred, un-jittered 3x3 grid, the 9 feature
    vectors concatenated ``[B, 9 D]`` (the input scale the encoder was trained on).
``config.method.probe_block`` picks an intermediate block as in :mod:`sslx.methods.image.rotation`.
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections

from sslx import augment, losses
from sslx.methods.base import DATA_AXIS, Method, example_keys
from sslx.methods.image.common import apply_train, build_encoder, build_head, images_to_float, init_module
from sslx.methods.image.rotation import check_probe_block, count_blocks, encode_block

NUM_POSITIONS = 8
ENCODE_MODES = ("image", "grid")


def patch_settings(config: ml_collections.ConfigDict) -> dict:
    """The patch-sampling keys of ``config.method`` as keyword arguments of
    :func:`sslx.augment.make_relative_patch_fn` (plus ``patch``, ``gap``, ``jitter``)."""
    m = config.method
    return {"patch": int(m.patch_size), "gap": int(m.patch_gap), "jitter": int(m.patch_jitter),
            "resample_p": float(m.get("resample_p", 0.0)), "resample_min": m.get("resample_min", None),
            "channel_drop": bool(m.get("channel_drop", True)), "drop_num": tuple(m.get("drop_num", (1, 2))),
            "noise_ratio": float(m.get("noise_ratio", 0.01))}


def centre_grid(images: jax.Array, patch: int, gap: int) -> jax.Array:
    """``[B, H, W, C] -> [B, 9, P, P, C]``: the 3x3 grid (stride ``P + gap``) centred in each image."""
    span = augment.check_patch_grid(images.shape[1], images.shape[2], patch, gap, 0)
    top, left = (images.shape[1] - span) // 2, (images.shape[2] - span) // 2
    region = images[:, top:top + span, left:left + span]
    grids = jax.vmap(lambda im: augment.extract_patches(im, patch, patch + gap))(region)  # [B, 3, 3, P, P, C]
    return grids.reshape((images.shape[0], 9) + grids.shape[3:])


def relative_patch(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
                   total_steps: Optional[int] = None) -> Method:
    """Relative patch position as a :class:`Method`.

    Reads ``config.model`` (encoder), ``config.method``: ``patch_size``, ``patch_gap``,
    ``patch_jitter``, ``resample_p``, ``resample_min``, ``channel_drop``, ``drop_num``,
    ``noise_ratio``, ``head_hidden``, ``encode`` (``"image"``/``"grid"``), ``probe_block``.
    ``total_steps`` is unused.
    """
    del total_steps
    encoder = build_encoder(config, axis_name)
    head = build_head(config, axis_name, tuple(config.method.get("head_hidden", (256,))), NUM_POSITIONS)
    probe_block = check_probe_block(config, encoder)
    settings = patch_settings(config)
    pair_fn = augment.make_relative_patch_fn(**settings)
    patch, gap, jitter = settings["patch"], settings["gap"], settings["jitter"]
    mode = config.method.get("encode", "image")
    if mode not in ENCODE_MODES:
        raise ValueError(f"config.method.encode={mode!r} is unknown; use one of {ENCODE_MODES}.")

    def init(rng, batch):
        h_img, w_img, c = batch["image"].shape[1:]
        augment.check_patch_grid(h_img, w_img, patch, gap, jitter)
        x = jnp.zeros((2, patch, patch, c), jnp.float32)
        k1, k2 = jax.random.split(rng)
        ep, es, h = init_module(encoder, k1, x)
        hp, hs, _ = init_module(head, k2, jnp.concatenate([h, h], axis=-1))
        if probe_block:
            n = count_blocks(encoder, ep, es, x)
            if probe_block > n:
                raise ValueError(f"config.method.probe_block={probe_block} but the encoder has {n} blocks; "
                                 f"use 1..{n} (or 0 for the last).")
        return {"encoder": ep, "classifier": hp}, {"encoder": es, "classifier": hs}

    def loss_fn(params, state, batch, rng):
        images = batch["image"]
        b = images.shape[0]
        keys = example_keys(rng, b, axis_name, num=1)
        pairs, labels = jax.vmap(pair_fn)(keys[:, 0], images)  # [B, 2, P, P, C], [B]
        x = jnp.concatenate([pairs[:, 0], pairs[:, 1]])  # one batch for both towers
        h, es = apply_train(encoder, params["encoder"], state["encoder"], x)
        feats = jnp.concatenate([h[:b], h[b:]], axis=-1)  # [B, 2D]: (centre, neighbour)
        logits, hs = apply_train(head, params["classifier"], state["classifier"], feats)
        loss, aux = losses.softmax_cross_entropy(logits, labels)
        return loss, ({"encoder": es, "classifier": hs}, {"position_acc": aux["accuracy"]})

    def encode(params, state, images):
        if mode == "image":
            return encode_block(encoder, params["encoder"], state["encoder"], images, probe_block)
        grid = centre_grid(images_to_float(images), patch, gap)  # [B, 9, P, P, C]
        b = grid.shape[0]
        f = encode_block(encoder, params["encoder"], state["encoder"], grid.reshape((b * 9,) + grid.shape[2:]),
                         probe_block)
        return f.reshape(b, -1)

    return Method(name="relative_patch", init=init, loss_fn=loss_fn, encode=encode, axis_name=axis_name)


__all__ = ["ENCODE_MODES", "NUM_POSITIONS", "centre_grid", "patch_settings", "relative_patch"]

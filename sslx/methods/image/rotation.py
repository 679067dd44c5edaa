"""Rotation prediction (Gidaris, Singh & Komodakis 2018, "RotNet").

Every image of the batch is shown at all four rotations 0, 90, 180, 270 degrees (counter-clockwise,
``np.rot90``), as in the paper, and one ConvNet (``config.model.encoder``) followed by a classifier
(``config.method.head_hidden``: () is a linear layer) predicts which of the four was applied::

    x [B, S, S, C] -> rotation_batch -> [4B, S, S, C], labels [4B] (row 4 i + r: image i rotated r * 90)
    loss = softmax_cross_entropy(classifier(encoder(augment(x))), labels)

The four rotations of all (global, synced BatchNorm) images go through the network as one batch.
Before rotating, each image gets the ``config.augment`` view (a random crop and flip in the shipped
configs; ``augment.identity=True`` for none), keyed by its global index.

``encode`` evaluates the frozen encoder in eval mode: with ``config.method.probe_block = k >= 1``
it returns the global-average-pooled feature map of the k-th block (1-based: SmallConvNet's k-th
conv layer, ResNet's k-th stage; the paper finds the 2nd conv block best on CIFAR); 0 (default) is
the encoder's own output (the last block).
"""
from __future__ import annotations

import inspect
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslx import augment, losses
from sslx.methods.base import DATA_AXIS, Method, example_keys
from sslx.methods.image.common import apply_train, build_encoder, build_head, images_to_float, init_module

NUM_ROTATIONS = 4


def rotation_batch(images: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``[B, S, S, C] -> ([4B, S, S, C], labels [4B] int32)``: row ``4 i + r`` is image ``i`` rotated by
    ``r * 90`` degrees counter-clockwise (``np.rot90(images[i], r)``) and its label is ``r``."""
    if images.ndim != 4:
        raise ValueError(f"rotation_batch: expected a batch [B, H, W, C], got shape {tuple(images.shape)}.")
    if images.shape[1] != images.shape[2]:
        raise ValueError(f"rotation_batch: images must be square so all four rotations share one shape, got "
                         f"{images.shape[1]}x{images.shape[2]}. Crop or resize them first (config.augment.crop_size, "
                         "config.dataset.image_size).")
    b = images.shape[0]
    rot = jnp.stack([jnp.rot90(images, r, axes=(1, 2)) for r in range(NUM_ROTATIONS)], axis=1)
    labels = jnp.tile(jnp.arange(NUM_ROTATIONS, dtype=jnp.int32), b)
    return rot.reshape((b * NUM_ROTATIONS,) + images.shape[1:]), labels


def supports_blocks(encoder: nn.Module) -> bool:
    """Whether ``encoder.__call__`` accepts ``return_blocks`` (SmallConvNet, ResNet)."""
    return "return_blocks" in inspect.signature(type(encoder).__call__).parameters


def check_probe_block(config: ml_collections.ConfigDict, encoder: nn.Module) -> int:
    """``config.method.probe_block`` validated against the encoder type (0: the encoder's output)."""
    k = int(config.method.get("probe_block", 0) or 0)
    if k < 0:
        raise ValueError(f"config.method.probe_block={k}: use 0 for the encoder's output or k >= 1 for the "
                         "k-th block (1-based).")
    if k and not supports_blocks(encoder):
        raise ValueError(f"config.method.probe_block={k} needs an encoder that can return its blocks "
                         f"(return_blocks=True); {type(encoder).__name__} cannot. Set probe_block=0.")
    return k


def count_blocks(encoder: nn.Module, params: Any, stats: Any, x: jax.Array) -> int:
    """Number of blocks ``encoder`` returns for input ``x`` (shapes only, nothing is computed)."""
    _, blocks = jax.eval_shape(lambda: encoder.apply({"params": params, "batch_stats": stats}, x, train=False,
                                                     return_blocks=True))
    return len(blocks)


def encode_block(encoder: nn.Module, params: Any, stats: Any, images: jax.Array, block: int) -> jax.Array:
    """Eval-mode features ``[B, D]``: the encoder output (``block == 0``) or the global-average-pooled
    feature map of the ``block``-th block (1-based)."""
    variables = {"params": params, "batch_stats": stats}
    x = images_to_float(images)
    if block == 0:
        return encoder.apply(variables, x, train=False)
    _, blocks = encoder.apply(variables, x, train=False, return_blocks=True)
    if block > len(blocks):
        raise ValueError(f"config.method.probe_block={block} but the encoder has {len(blocks)} blocks; "
                         f"use 1..{len(blocks)} (or 0 for the last).")
    return jnp.mean(blocks[block - 1], axis=(1, 2)).astype(jnp.float32)


def rotation(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
             total_steps: Optional[int] = None) -> Method:
    """Rotation prediction as a :class:`Method`.

    Reads ``config.model`` (``encoder``, ``encoder_kwargs``, ``dtype``, ``sync_bn``),
    ``config.augment`` (the view taken before rotating; ``crop_size`` must give square images),
    ``config.method.head_hidden`` (classifier hidden widths, default () = linear) and
    ``config.method.probe_block`` (see the module docstring). ``total_steps`` is unused.
    """
    del total_steps
    encoder = build_encoder(config, axis_name)
    head = build_head(config, axis_name, tuple(config.method.get("head_hidden", ())), NUM_ROTATIONS)
    probe_block = check_probe_block(config, encoder)
    view_fn = augment.make_view_fn(config.augment)
    crop = int(config.augment.crop_size)

    def init(rng, batch):
        x = jnp.zeros((2, crop, crop, batch["image"].shape[-1]), jnp.float32)
        k1, k2 = jax.random.split(rng)
        ep, es, h = init_module(encoder, k1, x)
        hp, hs, _ = init_module(head, k2, h)
        if probe_block and probe_block > count_blocks(encoder, ep, es, x):
            raise ValueError(f"config.method.probe_block={probe_block} but the encoder has "
                             f"{count_blocks(encoder, ep, es, x)} blocks; use 1..{count_blocks(encoder, ep, es, x)} "
                             "(or 0 for the last).")
        return {"encoder": ep, "classifier": hp}, {"encoder": es, "classifier": hs}

    def loss_fn(params, state, batch, rng):
        images = batch["image"]
        keys = example_keys(rng, images.shape[0], axis_name, num=1)
        views = jax.vmap(view_fn)(keys[:, 0], images)
        x, labels = rotation_batch(views)
        h, es = apply_train(encoder, params["encoder"], state["encoder"], x)
        logits, hs = apply_train(head, params["classifier"], state["classifier"], h)
        loss, aux = losses.softmax_cross_entropy(logits, labels)
        return loss, ({"encoder": es, "classifier": hs}, {"rotation_acc": aux["accuracy"]})

    def encode(params, state, images):
        return encode_block(encoder, params["encoder"], state["encoder"], images, probe_block)

    return Method(name="rotation", init=init, loss_fn=loss_fn, encode=encode, axis_name=axis_name)


__all__ = ["NUM_ROTATIONS", "encode_block", "rotation", "rotation_batch"]

"""Context encoders (Pathak et al. 2016): feature learning by inpainting, with an adversarial loss.

Per step, for every image ``x`` (mapped to [-1, 1]) a region is removed
(``config.method.mask_mode``: ``central`` block, ``random_blocks`` or ``random_shape``;
masks from :mod:`sslx.augment.masks`, made on device with per-example keys from
:func:`sslx.methods.base.example_keys`, so they do not depend on the device split)
and filled with ``method.fill_value`` (0 = mid-grey). The generator G
(:class:`sslx.models.ContextEncoderGenerator`) predicts the image; the loss is::

    L_G = lambda_rec * L_rec + lambda_adv * L_adv            (paper: 0.999 / 0.001)
    L_rec = masked_weighted_l2(G(x_in), x, overlap_weight_map(mask, overlap, overlap_weight))
    L_adv = generator_adversarial_loss(D(fake))               (-log D(fake), non-saturating)
    L_D = discriminator_loss(D(real), D(stop_gradient(fake)))

``fake`` is ``x`` with G's prediction pasted into the *predicted region* (the hole dilated
by ``overlap``: the paper predicts a slightly larger region than the hole, weighting the
overlapping border ``overlap_weight`` = 10x, see :mod:`sslx.losses.inpainting`). In
``central`` mode D sees only the predicted central block (real: the true block), as in the
paper; for the random modes it sees the whole composite image.

Parameters and optimiser state. ``params = {"generator": {"encoder", "decoder"},
"discriminator": ...}``; ``state = {"generator": BN stats, "discriminator": BN stats}``.
The configs give each part its own Adam (``config.optimizer.parts``, built by
``sslx.train.make_optimizer`` as an ``optax.multi_transform``), so both parameter sets and
both optimiser states are one explicit TrainState and the standard train step
(``sslx.train.make_step_fn``) runs both updates in one compiled step.

Why a simultaneous update (not alternation within the step). ``loss_fn`` returns
``L_G + L_D`` built with stop-gradients so that its gradient w.r.t. G's parameters is
exactly ``grad L_G`` (``L_D`` sees ``stop_gradient(fake)``) and w.r.t. D's parameters
exactly ``grad L_D`` (``L_adv`` uses ``stop_gradient(D params)``). One backward pass
gives both gradients, the step averages them over devices (``pmean``) and applies the
two optimisers: G and D are updated simultaneously from the same D. The released
context-encoder code (DCGAN-style Torch) updates D first and then computes G's
adversarial gradient from the D outputs of the forward pass made *before* D's update,
so the difference from strict alternation there is already small; a simultaneous step
keeps the generic train step unchanged (same code path under jit+shard_map and pmap,
same multi-device averaging, same checkpoints), costs one G forward/backward per step,
and with ``lambda_adv = 0.001`` the adversarial term is a small perturbation of the
reconstruction objective. ``L_D`` keeps training D even when ``lambda_adv = 0``.

BatchNorm (synced over ``axis_name``) in G and D: D's running statistics are updated by
its real pass and then its fake pass (the D update); the G-side pass through D runs in
training mode (batch statistics) and its statistic updates are discarded.

``encode``: G's encoder in eval mode on the unmasked image, global-average pooled
``[B, model.gen_features[-1]]``. ``write_artifacts`` saves ``inpainting.png``: a grid
with rows original / masked input / inpainted (G's prediction pasted into the hole),
one column per test image, masks from ``PRNGKey(0)`` folded with the image index.
"""
from __future__ import annotations

import os
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sslx import losses
from sslx.augment.masks import MASK_MODES, make_mask_fn
from sslx.methods.base import DATA_AXIS, Method, example_keys
from sslx.methods.image.common import apply_train, bn_axis, images_to_float
from sslx.models.context_encoder import ContextEncoderDiscriminator, ContextEncoderGenerator

__all__ = ["context_encoder", "image_grid", "save_png"]


def image_grid(rows: Sequence[Any], scale: int = 1, pad: int = 2) -> np.ndarray:
    """Tile ``rows`` (each ``[N, H, W, C]`` floats in [0, 1]) into one uint8 image.

    Output ``[R (H s + pad) + pad, N (W s + pad) + pad, C]`` with cells upscaled ``s = scale``
    times (nearest) and ``pad`` white pixels between and around them.
    """
    rows = [np.asarray(r, np.float32) for r in rows]
    if not rows or any(r.shape != rows[0].shape or r.ndim != 4 for r in rows):
        raise ValueError(f"image_grid: rows must be equal-shape [N, H, W, C] arrays, got "
                         f"{[tuple(r.shape) for r in rows]}.")
    n, h, w, c = rows[0].shape
    hs, ws = h * scale, w * scale
    out = np.full((len(rows) * (hs + pad) + pad, n * (ws + pad) + pad, c), 255, np.uint8)
    for i, r in enumerate(rows):
        cells = np.round(np.clip(r, 0.0, 1.0) * 255).astype(np.uint8)
        cells = cells.repeat(scale, axis=1).repeat(scale, axis=2)
        for j in range(n):
            top, left = pad + i * (hs + pad), pad + j * (ws + pad)
            out[top:top + hs, left:left + ws] = cells[j]
    return out


def save_png(path: str, image: np.ndarray) -> str:
    """Write a uint8 ``[H, W, 1 or 3]`` image as PNG (Pillow); returns ``path``."""
    from PIL import Image
    img = image[..., 0] if image.shape[-1] == 1 else image
    Image.fromarray(np.ascontiguousarray(img, np.uint8)).save(path, format="PNG")  # 2-D: "L", [H, W, 3]: "RGB"
    return path


def _mask_options(config: ml_collections.ConfigDict) -> dict:
    m = config.method
    return {"hole_size": int(m.get("hole_size", 0)), "overlap": int(m.get("overlap", 0)),
            "fraction": float(m.get("mask_fraction", 0.25)), "min_block": int(m.get("min_block", 1)),
            "max_block": int(m.get("max_block", 4)), "max_blocks": int(m.get("max_blocks", 16)),
            "shape_grid": int(m.get("shape_grid", 4))}


def context_encoder(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
                    total_steps: Optional[int] = None) -> Method:
    """Context encoder as a :class:`Method` (see module docstring).

    Reads ``config.model`` (``gen_features``, ``disc_features``, ``dtype``, ``sync_bn``) and
    ``config.method`` (``mask_mode``, ``hole_size`` (central; 0: half the image side),
    ``overlap``, ``overlap_weight``, ``mask_fraction``, ``min_block``, ``max_block``,
    ``max_blocks``, ``shape_grid``, ``lambda_rec``, ``lambda_adv``, ``fill_value``).
    ``total_steps`` is unused (no schedule in the objective).
    """
    del total_steps
    m = config.method
    mode = str(m.get("mask_mode", "central"))
    if mode not in MASK_MODES:
        raise ValueError(f"config.method.mask_mode={mode!r} is unknown; choose one of {list(MASK_MODES)}.")
    lam_rec, lam_adv = float(m.get("lambda_rec", 0.999)), float(m.get("lambda_adv", 0.001))
    if lam_rec < 0 or lam_adv < 0:
        raise ValueError(f"config.method.lambda_rec={lam_rec} and lambda_adv={lam_adv} must be >= 0.")
    overlap_weight = float(m.get("overlap_weight", 10.0))
    fill = float(m.get("fill_value", 0.0))
    opts = _mask_options(config)
    dtype = jnp.dtype(config.model.get("dtype", "float32"))
    bn = bn_axis(config, axis_name)
    gen_features = tuple(int(f) for f in config.model.gen_features)
    disc_features = tuple(int(f) for f in config.model.disc_features)

    def networks(channels: int):
        g = ContextEncoderGenerator(features=gen_features, out_channels=channels, dtype=dtype, bn_axis_name=bn)
        d = ContextEncoderDiscriminator(features=disc_features, dtype=dtype, bn_axis_name=bn)
        return g, d

    def geometry(h: int, w: int):
        """(mask fn, slice of the region D sees): the central block in central mode, else all."""
        mask_fn = make_mask_fn(mode, h, w, **opts)
        if mode == "central":
            hs = opts["hole_size"] or min(h, w) // 2
            t, l = (h - hs) // 2, (w - hs) // 2
            return mask_fn, (slice(t, t + hs), slice(l, l + hs))
        return mask_fn, (slice(0, h), slice(0, w))

    def prepare(images, keys, mask_fn):
        """-> (x in [-1, 1], masked input, mask [B, H, W], loss weights [B, H, W])."""
        x = images_to_float(images).astype(jnp.promote_types(dtype, jnp.float32)) * 2.0 - 1.0
        mask = jax.vmap(mask_fn)(keys).astype(x.dtype)
        weights = losses.overlap_weight_map(mask, opts["overlap"], overlap_weight)
        x_in = x * (1.0 - mask[..., None]) + fill * mask[..., None]
        return x, x_in, mask, weights

    def init(rng, batch):
        _, h, w, c = batch["image"].shape
        g, d = networks(c)
        _, (rs, cs) = geometry(h, w)
        kg, kd = jax.random.split(rng)
        gv = g.init(kg, jnp.zeros((2, h, w, c), jnp.float32), train=False)
        dv = d.init(kd, jnp.zeros((2, rs.stop - rs.start, cs.stop - cs.start, c), jnp.float32), train=False)
        params = {"generator": gv["params"], "discriminator": dv["params"]}
        state = {"generator": gv.get("batch_stats", {}), "discriminator": dv.get("batch_stats", {})}
        return params, state

    def loss_fn(params, state, batch, rng):
        images = batch["image"]
        b, h, w, c = images.shape
        g, d = networks(c)
        mask_fn, (rs, cs) = geometry(h, w)
        keys = example_keys(rng, b, axis_name, num=1)[:, 0]
        x, x_in, mask, weights = prepare(images, keys, mask_fn)
        (recon, _), g_stats = apply_train(g, params["generator"], state["generator"], x_in)
        rec, _ = losses.masked_weighted_l2(recon, x, weights)
        region = (weights > 0).astype(x.dtype)[..., None]
        fake = (x * (1.0 - region) + recon * region)[:, rs, cs]
        real = x[:, rs, cs]
        # Discriminator: gradient only w.r.t. D's parameters (the fake images are constants).
        d_real, d_stats = apply_train(d, params["discriminator"], state["discriminator"], real)
        d_fake, d_stats = apply_train(d, params["discriminator"], d_stats, jax.lax.stop_gradient(fake))
        d_loss, d_aux = losses.discriminator_loss(d_real, d_fake)
        # Generator's adversarial term: gradient only w.r.t. G (D's parameters are constants).
        g_logits, _ = apply_train(d, jax.lax.stop_gradient(params["discriminator"]), state["discriminator"], fake)
        adv = losses.generator_adversarial_loss(g_logits)
        g_loss = lam_rec * rec + lam_adv * adv
        metrics = {"rec_loss": rec, "adv_loss": adv, "g_loss": g_loss, "d_loss": d_loss,
                   "d_real_acc": d_aux["real_acc"], "d_fake_acc": d_aux["fake_acc"],
                   "mask_fraction": jnp.mean(mask)}
        return g_loss + d_loss, ({"generator": g_stats, "discriminator": d_stats}, metrics)

    def _variables(params, state):
        return {"params": params["generator"], "batch_stats": state["generator"]}

    def encode(params, state, images):
        g, _ = networks(images.shape[-1])
        x = images_to_float(images) * 2.0 - 1.0
        return g.apply(_variables(params, state), x, train=False, method=ContextEncoderGenerator.encode)

    def inpaint(params, state, images, rng):
        """Eval-mode inpainting -> (original, masked input, inpainted), each [B, H, W, C] in [0, 1]."""
        b, h, w, c = images.shape
        g, _ = networks(c)
        mask_fn, _ = geometry(h, w)
        keys = example_keys(rng, b, None, num=1)[:, 0]
        x, x_in, mask, _ = prepare(images, keys, mask_fn)
        recon, _ = g.apply(_variables(params, state), x_in, train=False)
        out = x * (1.0 - mask[..., None]) + recon * mask[..., None]
        to01 = lambda t: (t + 1.0) / 2.0
        return to01(x), to01(x_in), to01(out)

    def write_artifacts(params, state, images, workdir):
        rows = jax.jit(inpaint)(params, state, jnp.asarray(images), jax.random.PRNGKey(0))
        scale = max(1, 64 // int(images.shape[1]))
        os.makedirs(workdir, exist_ok=True)
        return [save_png(os.path.join(workdir, "inpainting.png"), image_grid(jax.device_get(rows), scale))]

    return Method(name="context_encoder", init=init, loss_fn=loss_fn, encode=encode, axis_name=axis_name,
                  write_artifacts=write_artifacts)

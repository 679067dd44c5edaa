"""CPC v2 (van den Oord et al. 2018; Henaff et al. 2019): predict patch embeddings rows below.

Each image is cut into a G x G grid of overlapping P x P patches (stride S),
every patch augmented with its own key. The patch encoder g_enc (the
configured encoder, shared over patches: one batch of B*G*G) gives
z [B, G, G, D]; the context network g_ar, masked so that c[i, j] only sees
rows <= i, gives c; the predictions W_k c[i, j] (k = 1..K) are scored against
every patch embedding of the global batch, the positive being z[i+k, j]
(:func:`sslx.losses.cpc_loss`). ``encode`` is the mean of the (eval-mode,
unaugmented) patch embeddings over the grid.

Config: ``config.method`` — ``patch_size``, ``patch_stride``, ``num_preds``
(K), ``temperature``, ``normalize``, ``context_dim``, ``context_hidden``,
``context_blocks``; ``config.model`` — ``encoder``, ``encoder_kwargs``,
``encoder_norm`` ("layer": :mod:`sslx.models.cpc` LayerNorm twins, as in
CPC v2; "batch": the library's BatchNorm encoders, synced over
``axis_name`` unless ``sync_bn`` is False); ``config.augment`` — the
per-patch augmentation (:func:`sslx.augment.make_view_fn` keys; ``crop_size``
is forced to the patch size).
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections

from sslx import losses, models
from sslx.augment.patches import grid_size, make_patch_view_fn
from sslx.methods.base import DATA_AXIS, Method, example_keys
from sslx.methods.image.common import bn_axis
from sslx.models.cpc import ContextNetwork, CPCPredictor


def build_patch_encoder(config: ml_collections.ConfigDict, axis_name: Optional[str]):
    """g_enc from ``config.model`` (``encoder_norm`` 'layer' or 'batch')."""
    norm = config.model.get("encoder_norm", "layer")
    if norm not in ("layer", "batch"):
        raise ValueError(f"config.model.encoder_norm={norm!r}; use 'layer' or 'batch'.")
    dtype = jnp.dtype(config.model.get("dtype", "float32"))
    return models.make_encoder(config.model.encoder, dtype=dtype, bn_axis_name=bn_axis(config, axis_name),
                               norm=norm, **dict(config.model.get("encoder_kwargs", {})))


def _apply(module, params, stats, x, train):
    """Apply with optional BatchNorm statistics -> (output, new stats)."""
    variables = {"params": params, **({"batch_stats": stats} if stats else {})}
    if train and stats:
        y, upd = module.apply(variables, x, train=True, mutable=["batch_stats"])
        return y, upd["batch_stats"]
    return module.apply(variables, x, train=train), stats


def cpc(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
        total_steps: Optional[int] = None) -> Method:
    """CPC v2 as a :class:`Method` (see the module docstring for the config keys)."""
    del total_steps
    m = config.method
    patch, stride = int(m.patch_size), int(m.patch_stride)
    k_preds = int(m.num_preds)
    temperature = float(m.get("temperature", 1.0))
    normalize = bool(m.get("normalize", False))
    dtype = jnp.dtype(config.model.get("dtype", "float32"))
    encoder = build_patch_encoder(config, axis_name)
    context = ContextNetwork(features=int(m.context_dim), hidden=int(m.context_hidden),
                             num_blocks=int(m.context_blocks), dtype=dtype)
    train_patches = make_patch_view_fn(patch, stride, config.augment)
    eval_patches = make_patch_view_fn(patch, stride, None)
    predictor_cache = {}

    def predictor(d):
        if d not in predictor_cache:
            predictor_cache[d] = CPCPredictor(num_preds=k_preds, out_dim=d, dtype=dtype)
        return predictor_cache[d]

    def check_grid(images):
        if images.ndim != 4:
            raise ValueError(f"cpc: expected images [B, H, W, C], got shape {tuple(images.shape)}.")
        g = grid_size(images.shape[1], patch, stride)
        if not 1 <= k_preds < g:
            raise ValueError(f"cpc: num_preds={k_preds} must be in [1, G-1] for the {g}x{g} grid of "
                             f"{patch}px patches (stride {stride}) of {images.shape[1]}px images.")
        return g

    def embed(params, stats, patches, train):
        b, gh, gw = patches.shape[:3]
        flat = patches.reshape((b * gh * gw,) + patches.shape[3:])
        z, stats = _apply(encoder, params, stats, flat, train)
        return z.reshape(b, gh, gw, -1), stats

    def init(rng, batch):
        images = batch["image"]
        g = check_grid(images)
        k1, k2, k3 = jax.random.split(rng, 3)
        x = jnp.zeros((2, patch, patch, images.shape[-1]), jnp.float32)
        v = encoder.init(k1, x, train=False)
        d = encoder.apply(v, x, train=False).shape[-1]
        zg = jnp.zeros((1, g, g, d), jnp.float32)
        cp = context.init(k2, zg)["params"]
        c = context.apply({"params": cp}, zg)
        pp = predictor(d).init(k3, c)["params"]
        return ({"encoder": v["params"], "context": cp, "predictor": pp},
                {"encoder": v.get("batch_stats", {})})

    def loss_fn(params, state, batch, rng):
        images = batch["image"]
        check_grid(images)
        keys = example_keys(rng, images.shape[0], axis_name)[:, 0]
        patches = jax.vmap(train_patches)(keys, images)  # [B, G, G, P, P, C]
        z, stats = embed(params["encoder"], state["encoder"], patches, True)
        c = context.apply({"params": params["context"]}, z)
        preds = predictor(z.shape[-1]).apply({"params": params["predictor"]}, c)  # [K, B, G, G, D]
        loss, aux = losses.cpc_loss(z, preds, temperature=temperature, normalize=normalize,
                                    axis_name=axis_name)
        return loss, ({"encoder": stats}, {"cpc_acc": aux["accuracy"], "cpc_acc_k1": aux["accuracy_k1"]})

    def encode(params, state, images):
        check_grid(images)
        patches = jax.vmap(eval_patches)(jnp.zeros((images.shape[0], 2), jnp.uint32), images)
        z, _ = embed(params["encoder"], state["encoder"], patches, False)
        return jnp.mean(z, axis=(1, 2))

    return Method(name="cpc", init=init, loss_fn=loss_fn, encode=encode, axis_name=axis_name)

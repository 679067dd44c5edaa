"""Pieces shared by the image objectives: networks from a config, views, BN-aware apply."""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslx import models
from sslx.methods.base import example_keys


def bn_axis(config: ml_collections.ConfigDict, axis_name: Optional[str]) -> Optional[str]:
    """The BatchNorm sync axis: ``axis_name`` unless ``config.model.sync_bn`` is False."""
    return axis_name if config.model.get("sync_bn", True) else None


def build_encoder(config: ml_collections.ConfigDict, axis_name: Optional[str]) -> nn.Module:
    """The encoder named by ``config.model`` (compute dtype, BN sync axis)."""
    dtype = jnp.dtype(config.model.get("dtype", "float32"))
    return models.make_encoder(config.model.encoder, dtype=dtype, bn_axis_name=bn_axis(config, axis_name),
                               **dict(config.model.get("encoder_kwargs", {})))


def build_head(config: ml_collections.ConfigDict, axis_name: Optional[str], hidden: Sequence[int],
               out_dim: int, **kwargs) -> nn.Module:
    """An :class:`sslx.models.MLPHead` with the config's dtype and BN sync axis."""
    dtype = jnp.dtype(config.model.get("dtype", "float32"))
    return models.MLPHead(hidden=tuple(hidden), out_dim=out_dim, dtype=dtype,
                          bn_axis_name=bn_axis(config, axis_name), **kwargs)


def init_module(module: nn.Module, rng: jax.Array, x: jax.Array) -> tuple[Any, Any, jax.Array]:
    """Init ``module`` on ``x`` in eval mode -> (params, batch_stats, output)."""
    v = module.init(rng, x, train=False)
    return v["params"], v.get("batch_stats", {}), module.apply(v, x, train=False)


def apply_train(module: nn.Module, params: Any, stats: Any, x: jax.Array) -> tuple[jax.Array, Any]:
    """Training-mode apply -> (output, new batch_stats)."""
    y, upd = module.apply({"params": params, "batch_stats": stats}, x, train=True, mutable=["batch_stats"])
    return y, upd["batch_stats"]


def apply_eval(module: nn.Module, params: Any, stats: Any, x: jax.Array) -> jax.Array:
    """Eval-mode apply (running BN statistics)."""
    return module.apply({"params": params, "batch_stats": stats}, x, train=False)


def make_views(view_fn: Callable, rng: jax.Array, images: jax.Array, axis_name: Optional[str],
               num_views: int = 2) -> list[jax.Array]:
    """``num_views`` augmented views [B, S, S, C] of a uint8/float batch, keyed per global example."""
    keys = example_keys(rng, images.shape[0], axis_name, num=num_views)
    return [jax.vmap(view_fn)(keys[:, v], images) for v in range(num_views)]


def images_to_float(images: jax.Array) -> jax.Array:
    """uint8 [B, H, W, C] -> float32 in [0, 1] (floats pass through as float32)."""
    if images.dtype == jnp.uint8:
        return images.astype(jnp.float32) / 255.0
    return images.astype(jnp.float32)


def make_multicrop_views(rng: jax.Array, images: jax.Array, axis_name: Optional[str],
                         view_fns: Sequence[Callable]) -> list[jax.Array]:
    """One view per function in ``view_fns`` (e.g. SwAV's 2 large + V small crops of other sizes).

    Returns a list of [B, S_v, S_v, C] float32 arrays, ``view_fns[v]`` applied to every image
    with per-example keys from :func:`example_keys` (keyed by the global example index and the
    view index, so the views do not depend on how the batch is split over devices; the same
    ``rng`` gives the same views).
    """
    if not view_fns:
        raise ValueError("make_multicrop_views: view_fns is empty; pass one view function per crop.")
    keys = example_keys(rng, images.shape[0], axis_name, num=len(view_fns))
    return [jax.vmap(fn)(keys[:, v], images) for v, fn in enumerate(view_fns)]

"""Pieces shared by the image objectives: networks from a config, views, BN-aware apply."""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslx import augment, models
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


# ---------------------------------------------------------------------------- multi-crop

def multicrop_specs(config: ml_collections.ConfigDict) -> list[tuple[int, int, tuple[float, float]]]:
    """``config.augment.multicrop`` as ``[(num, size, (lo, hi)), ...]``, validated.

    The first group are the *large* crops (SwAV's code crops, BYOL's target crops, the crops
    SimCLR contrasts with every other crop). Unset or empty: two crops of
    ``augment.crop_size`` / ``augment.crop_scale`` (the plain two-view setting).
    """
    spec = config.augment.get("multicrop", None)
    if not spec:
        spec = ((2, int(config.augment.crop_size), tuple(config.augment.crop_scale)),)
    out = []
    for g in spec:
        if len(g) != 3 or len(g[2]) != 2:
            raise ValueError(f"config.augment.multicrop groups are (num, size, (scale_lo, scale_hi)); got {g!r}.")
        out.append((int(g[0]), int(g[1]), (float(g[2][0]), float(g[2][1]))))
    if out[0][0] < 1 or any(n < 0 for n, _, _ in out) or sum(n for n, _, _ in out) < 2:
        raise ValueError(f"config.augment.multicrop={spec!r}: the first group (the large crops) needs "
                         ">= 1 crop and there must be >= 2 crops in all.")
    return out


def make_multicrop_view_fns(config: ml_collections.ConfigDict,
                            overrides: Optional[dict[int, dict]] = None) -> list[Callable]:
    """One augmentation function per crop, in crop order (large crops first).

    Every crop uses ``config.augment`` with its group's ``crop_size`` / ``crop_scale``;
    ``overrides[i]`` (a dict of ``config.augment`` keys) updates crop ``i`` (BYOL's asymmetric
    second view). Unknown override keys are a ValueError naming them.
    """
    base = {k: v for k, v in dict(config.augment).items() if k != "multicrop"}
    overrides = dict(overrides or {})
    for i, over in overrides.items():
        unknown = set(over) - set(base)
        if unknown:
            raise ValueError(f"augmentation override for crop {i} has keys {sorted(unknown)} that are not in "
                             f"config.augment; valid keys are {sorted(base)}.")
    fns, i = [], 0
    for num, size, scale in multicrop_specs(config):
        for _ in range(num):
            fns.append(augment.make_view_fn({**base, "crop_size": size, "crop_scale": scale,
                                             **overrides.get(i, {})}))
            i += 1
    return fns


def num_large_crops(config: ml_collections.ConfigDict) -> int:
    """How many crops the first (large) multi-crop group has."""
    return multicrop_specs(config)[0][0]


def encode_crops(module: nn.Module, params: Any, stats: Any, views: Sequence[jax.Array],
                 ) -> tuple[list[jax.Array], Any]:
    """Training-mode ``module`` on every crop, one call per resolution -> (outputs per crop, stats).

    Crops of the same size are concatenated into one call (BatchNorm normalises over that
    group, as the multi-crop reference does); groups run in order of first appearance.
    """
    groups: dict[tuple, list[int]] = {}
    for i, v in enumerate(views):
        groups.setdefault(tuple(v.shape[1:]), []).append(i)
    out: list = [None] * len(views)
    for idx in groups.values():
        b = views[idx[0]].shape[0]
        y, stats = apply_train(module, params, stats, jnp.concatenate([views[i] for i in idx]))
        for j, i in enumerate(idx):
            out[i] = y[j * b:(j + 1) * b]
    return out, stats


def crop_pairs(num_crops: int, num_large: int) -> list[tuple[int, int]]:
    """Unordered crop pairs (i, v), i < v, with i among the large crops: the positives of a
    multi-crop contrastive loss. Two crops -> ``[(0, 1)]``."""
    return [(i, v) for i in range(num_large) for v in range(i + 1, num_crops)]

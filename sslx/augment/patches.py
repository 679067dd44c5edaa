"""Patch grids for CPC-style objectives: pure, static-shape, per-patch augmentation.

``extract_patches(image[H, W, C], patch, stride) -> [G, G, P, P, C]`` with
``G = (H - P) // stride + 1`` (square images; the grid covers the top-left
``(G - 1) * stride + P`` pixels). Examples: 256 px, P=64, stride 32 -> 7x7
(CPC's 50 % overlap); 32 px, P=8, stride 4 -> 7x7; 28 px -> 6x6; 8 px, P=4,
stride 2 -> 3x3.

:func:`make_patch_view_fn` turns an augmentation config (the keys of
:func:`sslx.augment.make_view_fn`, with ``crop_size`` set to the patch size)
into ``fn(key, image) -> [G, G, P, P, C]`` where every patch is augmented with
its own key (``jax.random.split(key, G * G)``), so the output depends only on
``(key, image)``.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from sslx.augment.image import make_view_fn, to_float

__all__ = ["grid_size", "extract_patches", "augment_patches", "make_patch_view_fn"]


def grid_size(image_size: int, patch: int, stride: int) -> int:
    """Number of patches per side, ``(image_size - patch) // stride + 1`` (ValueError if < 1)."""
    image_size, patch, stride = int(image_size), int(patch), int(stride)
    if patch < 1 or stride < 1:
        raise ValueError(f"grid_size: patch ({patch}) and stride ({stride}) must be >= 1.")
    if patch > image_size:
        raise ValueError(f"grid_size: patch size {patch} is larger than the image ({image_size} px); "
                         "use a smaller patch or resize the images.")
    return (image_size - patch) // stride + 1


def extract_patches(image: Any, patch: int, stride: int) -> jax.Array:
    """``[H, W, C] -> [G, G, P, P, C]``: ``out[i, j] = image[i*s : i*s+P, j*s : j*s+P]``.

    Dtype is kept (uint8 stays uint8). Pure gather with static indices, so it
    jits and vmaps; non-square images use ``G_h x G_w``.
    """
    x = jnp.asarray(image)
    if x.ndim != 3:
        raise ValueError(f"extract_patches: expected one image [H, W, C], got shape {tuple(x.shape)}; "
                         "vmap over a batch.")
    gh, gw = grid_size(x.shape[0], patch, stride), grid_size(x.shape[1], patch, stride)
    rows = stride * np.arange(gh)[:, None] + np.arange(patch)[None, :]  # [Gh, P]
    cols = stride * np.arange(gw)[:, None] + np.arange(patch)[None, :]  # [Gw, P]
    return x[rows[:, None, :, None], cols[None, :, None, :]]  # [Gh, Gw, P, P, C]


def augment_patches(key: jax.Array, patches: jax.Array, patch_fn: Callable) -> jax.Array:
    """Apply ``patch_fn(key, patch)`` to each patch of ``[G, G, P, P, C]`` with its own key."""
    gh, gw = patches.shape[:2]
    flat = patches.reshape((gh * gw,) + patches.shape[2:])
    out = jax.vmap(patch_fn)(jax.random.split(key, gh * gw), flat)
    return out.reshape((gh, gw) + out.shape[1:])


def make_patch_view_fn(patch: int, stride: int, augment_cfg: Mapping | None = None) -> Callable:
    """``fn(key, image[H, W, C]) -> [G, G, P, P, C]`` float32 in [0, 1].

    ``augment_cfg`` is None (no augmentation: the patches as float) or a
    :func:`make_view_fn` config applied to each patch (its ``crop_size`` is
    forced to ``patch``: a random crop inside the patch resized back to P x P,
    flip, colour jitter, grayscale, ...).
    """
    if augment_cfg is None:
        return lambda key, image: jax.vmap(jax.vmap(to_float))(extract_patches(image, patch, stride))
    cfg = dict(augment_cfg.to_dict() if hasattr(augment_cfg, "to_dict") else augment_cfg)
    cfg["crop_size"] = int(patch)
    patch_fn = make_view_fn(cfg)

    def fn(key, image):
        return augment_patches(key, extract_patches(image, patch, stride), patch_fn)

    return fn

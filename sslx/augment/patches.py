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

Relative patch position (Doersch et al. 2015): :func:`make_relative_patch_fn` samples a centre
patch and one of its 8 neighbours on a jittered 3x3 grid with gaps, pixelates some patches and
drops colour channels (see the section at the end of this file).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

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


# --------------------------------------------------------------------------- relative patch position
# Doersch et al. 2015: a centre patch and one of its 8 neighbours on a 3x3 grid of P x P patches
# separated by ``gap`` pixels; every patch is moved by up to ``jitter`` pixels per axis, some are
# down- then up-sampled (pixelation) and, for RGB, 1-2 colour channels are replaced by noise, so the
# network cannot solve the task from low-level cues (edge continuation, chromatic aberration).

#: Grid offsets ``(d_row, d_col)`` of the neighbour for labels 0..7 (row-major, centre skipped):
#: 0 up-left, 1 up, 2 up-right, 3 left, 4 right, 5 down-left, 6 down, 7 down-right.
NEIGHBOUR_OFFSETS = np.array([(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)], np.int32)

__all__ += ["NEIGHBOUR_OFFSETS", "check_patch_grid", "sample_patch_pair_positions", "sample_relative_patch_pair",
            "resample_patch", "random_resample", "drop_channels", "make_relative_patch_fn"]


def check_patch_grid(height: int, width: int, patch: int, gap: int, jitter: int) -> int:
    """Validate the 3x3 grid geometry for an ``height x width`` image; returns the grid span ``3P + 2G``.

    The whole jittered grid must fit: ``3 * patch + 2 * gap + 2 * jitter <= min(height, width)``.
    """
    patch, gap, jitter = int(patch), int(gap), int(jitter)
    if patch < 1 or gap < 0 or jitter < 0:
        raise ValueError(f"relative patches: need patch >= 1, gap >= 0, jitter >= 0; got patch={patch}, gap={gap}, "
                         f"jitter={jitter}.")
    span = 3 * patch + 2 * gap
    if span + 2 * jitter > min(int(height), int(width)):
        raise ValueError(
            f"relative patches: the 3x3 grid of {patch}-px patches with gap {gap} and jitter {jitter} needs "
            f"{span + 2 * jitter} px per side (3*patch + 2*gap + 2*jitter) but the image is {height}x{width}. "
            "Use smaller patch/gap/jitter (config.method.patch_size, patch_gap, patch_jitter) or larger images "
            "(config.dataset.image_size).")
    return span


def sample_patch_pair_positions(key: jax.Array, height: int, width: int, patch: int, gap: int, jitter: int,
                                label: Any) -> jax.Array:
    """Top-left corners ``[2, 2]`` int32 ((row, col) of the centre patch, then of the neighbour).

    The 3x3 grid (cell stride ``patch + gap``) is placed uniformly at random such that every
    jittered patch of it lies inside the image (so the patch positions carry no information about
    the label); each of the two patches then moves by an independent integer offset in
    ``[-jitter, jitter]`` per axis. ``label`` (int, may be traced) picks the neighbour's grid offset
    ``NEIGHBOUR_OFFSETS[label]``.
    """
    span = check_patch_grid(height, width, patch, gap, jitter)
    k_origin, k_jit = jax.random.split(key)
    room = jnp.array([height - span - 2 * jitter, width - span - 2 * jitter], jnp.int32)
    origin = jitter + jax.random.randint(k_origin, (2,), 0, room + 1, dtype=jnp.int32)
    stride = patch + gap
    offset = jnp.asarray(NEIGHBOUR_OFFSETS)[jnp.asarray(label, jnp.int32)]
    corners = jnp.stack([origin + stride, origin + (1 + offset) * stride])
    return corners + jax.random.randint(k_jit, (2, 2), -jitter, jitter + 1, dtype=jnp.int32)


def sample_relative_patch_pair(key: jax.Array, image: Any, patch: int, gap: int, jitter: int,
                               label: Any = None) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``image [H, W, C] -> (pair [2, P, P, C] float32, label int32 [], corners [2, 2] int32)``.

    ``pair[0]`` is the centre patch, ``pair[1]`` its neighbour at grid offset
    ``NEIGHBOUR_OFFSETS[label]``; ``label`` is drawn uniformly from 0..7 when None. No pixel
    augmentation (see :func:`make_relative_patch_fn`). uint8 is scaled to [0, 1]; float images pass
    through unchanged.
    """
    x = jnp.asarray(image)
    if x.ndim != 3:
        raise ValueError(f"sample_relative_patch_pair: expected one image [H, W, C], got shape {tuple(x.shape)}; "
                         "vmap over a batch.")
    x = x.astype(jnp.float32) / 255.0 if x.dtype == jnp.uint8 else x.astype(jnp.float32)
    k_label, k_pos = jax.random.split(key)
    if label is None:
        label = jax.random.randint(k_label, (), 0, 8, dtype=jnp.int32)
    label = jnp.asarray(label, jnp.int32)
    corners = sample_patch_pair_positions(k_pos, x.shape[0], x.shape[1], patch, gap, jitter, label)
    size = (int(patch), int(patch), x.shape[2])
    zero = jnp.zeros((), corners.dtype)
    pair = jnp.stack([jax.lax.dynamic_slice(x, (corners[i, 0], corners[i, 1], zero), size) for i in range(2)])
    return pair, label, corners


def _down_up_matrix(n: int, size: jax.Array) -> jax.Array:
    """``[n, n]`` linear map of one axis: anti-aliased linear downsampling of ``n`` pixels to ``size``
    (traced, 1..n) pixels, then linear upsampling back to ``n``. Identity when ``size == n``."""
    s = jnp.asarray(size, jnp.float32)
    idx = jnp.arange(n, dtype=jnp.float32) + 0.5
    valid = (jnp.arange(n) < size)  # rows/cols of the small grid that exist
    step = n / s
    centres = idx * step  # small-grid pixel i covers [i*step, (i+1)*step) of the input
    width = jnp.maximum(step, 1.0)
    down = jnp.maximum(0.0, 1.0 - jnp.abs(idx[None, :] - centres[:, None]) / width)
    down = jnp.where(valid[:, None], down / jnp.maximum(jnp.sum(down, 1, keepdims=True), 1e-12), 0.0)
    coords = idx * (s / n)  # output pixel j samples the small grid at this coordinate
    up = jnp.where(valid[None, :], jnp.maximum(0.0, 1.0 - jnp.abs(idx[None, :] - coords[:, None])), 0.0)
    up = up / jnp.maximum(jnp.sum(up, 1, keepdims=True), 1e-12)
    return jnp.matmul(up, down, precision=jax.lax.Precision.HIGHEST)


def resample_patch(patch: jax.Array, size: Any) -> jax.Array:
    """Pixelate ``patch [P, P, C]``: downsample to ``size x size`` (may be traced, 1..P), upsample
    back to ``P x P`` (both linear, separable); the shape is static. ``size == P`` is the identity."""
    m = _down_up_matrix(patch.shape[0], size)
    m2 = _down_up_matrix(patch.shape[1], size) if patch.shape[1] != patch.shape[0] else m
    hi = jax.lax.Precision.HIGHEST
    out = jnp.einsum("ij,jkc->ikc", m, patch, precision=hi)
    return jnp.einsum("lk,ikc->ilc", m2, out, precision=hi)


def random_resample(key: jax.Array, patch: jax.Array, p: float, min_size: int) -> jax.Array:
    """With probability ``p`` :func:`resample_patch` to a side drawn uniformly from ``[min_size, P]``."""
    n = int(patch.shape[0])
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"random_resample: p must be in [0, 1], got {p}.")
    if not 1 <= int(min_size) <= n:
        raise ValueError(f"random_resample: min_size must be in [1, {n}] (the patch side), got {min_size}.")
    k_do, k_size = jax.random.split(key)
    size = jax.random.randint(k_size, (), int(min_size), n + 1)
    return jnp.where(jax.random.uniform(k_do, ()) < p, resample_patch(patch, size), patch)


def drop_channels(key: jax.Array, patch: jax.Array, num: Sequence[int] = (1, 2), noise_ratio: float = 0.01,
                  return_mask: bool = False):
    """Replace ``k`` random colour channels of an RGB ``patch [P, P, 3]`` by Gaussian noise.

    ``k`` is drawn uniformly from ``num = (lo, hi)`` (inclusive, 1 <= lo <= hi <= 2: at least one
    channel is kept). The noise has the mean of the kept channels and ``noise_ratio`` times their
    standard deviation (Doersch et al.: ~1/100). With ``return_mask`` also the dropped-channel mask [3].
    """
    if patch.ndim != 3 or patch.shape[-1] != 3:
        raise ValueError(f"drop_channels: expected an RGB patch [P, P, 3], got shape {tuple(patch.shape)}; "
                         "channel dropping is only defined for 3-channel images.")
    lo, hi = (int(v) for v in num)
    if not 1 <= lo <= hi <= 2:
        raise ValueError(f"drop_channels: num must be (lo, hi) with 1 <= lo <= hi <= 2, got {tuple(num)}.")
    k_num, k_perm, k_noise = jax.random.split(key, 3)
    k = jax.random.randint(k_num, (), lo, hi + 1)
    rank = jnp.argsort(jnp.argsort(jax.random.uniform(k_perm, (3,))))  # a random permutation of 0, 1, 2
    drop = rank < k
    keep = (~drop).astype(patch.dtype)
    count = jnp.sum(keep) * patch.shape[0] * patch.shape[1]
    mean = jnp.sum(patch * keep) / count
    std = jnp.sqrt(jnp.sum(jnp.square(patch - mean) * keep) / count)
    noise = mean + noise_ratio * std * jax.random.normal(k_noise, patch.shape, patch.dtype)
    out = jnp.where(drop[None, None, :], noise, patch)
    return (out, drop) if return_mask else out


def make_relative_patch_fn(patch: int, gap: int, jitter: int, *, resample_p: float = 0.0,
                           resample_min: int | None = None, channel_drop: bool = True,
                           drop_num: Sequence[int] = (1, 2), noise_ratio: float = 0.01) -> Callable:
    """``fn(key, image [H, W, C]) -> (pair [2, P, P, C] float32, label int32 [])`` for relative patch position.

    :func:`sample_relative_patch_pair` (random label, grid placement and jitter), then for each of
    the two patches with its own key: :func:`random_resample` with probability ``resample_p``
    (side from ``[resample_min, P]``; default ``max(1, P // 4)``) and, when ``channel_drop`` and
    the image is RGB, :func:`drop_channels`. One-channel images skip channel dropping (there is no
    colour to drop). Output depends only on ``(key, image)``.
    """
    patch, gap, jitter = int(patch), int(gap), int(jitter)
    check_patch_grid(3 * patch + 2 * gap + 2 * jitter, 3 * patch + 2 * gap + 2 * jitter, patch, gap, jitter)
    resample_min = max(1, patch // 4) if resample_min is None else int(resample_min)
    if not 0.0 <= float(resample_p) <= 1.0:
        raise ValueError(f"make_relative_patch_fn: resample_p must be in [0, 1], got {resample_p}.")
    if not 1 <= resample_min <= patch:
        raise ValueError(f"make_relative_patch_fn: resample_min must be in [1, patch={patch}], got {resample_min}.")

    def fn(key: jax.Array, image: Any) -> tuple[jax.Array, jax.Array]:
        k_pair, k_aug = jax.random.split(key)
        pair, label, _ = sample_relative_patch_pair(k_pair, image, patch, gap, jitter)
        out = []
        for i, k in enumerate(jax.random.split(k_aug, 2)):
            k_res, k_drop = jax.random.split(k)
            x = pair[i]
            if resample_p > 0:
                x = random_resample(k_res, x, resample_p, resample_min)
            if channel_drop and x.shape[-1] == 3:
                x = drop_channels(k_drop, x, drop_num, noise_ratio)
            out.append(x)
        return jnp.stack(out), label

    return fn

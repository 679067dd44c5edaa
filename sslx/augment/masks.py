"""Region masks for inpainting objectives (context encoders): pure, static-shape, vmappable.

Every function returns a float32 mask ``[H, W]`` with 1 on the pixels that are
*removed* from the input (the hole) and 0 on the visible context. Three modes
(Pathak et al. 2016, Sec. 3.3):

* ``central_block_mask(H, W, hole_size, overlap)`` -- deterministic. The
  *predicted* region is the central ``hole_size x hole_size`` block; the removed
  region is that block shrunk by ``overlap`` pixels on every side (the paper
  predicts a region slightly larger than the hole: 64 px predicted, 7 px overlap
  at 128 px input; its released code erases 56 px of a 64 px block). Dilating
  the returned mask by ``overlap`` (see :func:`sslx.losses.overlap_weight_map`)
  gives back the predicted block exactly.
* ``random_blocks_mask(key, H, W, fraction, min_size, max_size, max_blocks)`` --
  up to ``max_blocks`` possibly overlapping squares with uniform random side in
  ``[min_size, max_size]`` and uniform position. Blocks are drawn in turn and a
  block is added only while the covered fraction is still below ``fraction``, so
  the coverage lands in ``[fraction, fraction + max_size**2 / (H W))`` unless all
  ``max_blocks`` are used up first.
* ``random_shape_mask(key, H, W, fraction, grid)`` -- arbitrary smooth shapes made
  on device: i.i.d. normal noise on a ``grid x grid`` lattice is upsampled
  bilinearly to ``H x W`` and the pixels above the ``1 - fraction`` quantile of
  that smooth field are removed: exactly ``max(1, round(fraction H W))`` pixels
  (ties broken by position); smaller ``grid`` gives
  larger, blobbier regions. (The paper pastes PASCAL VOC object shapes; a
  thresholded smooth random field needs no data set and runs inside the step.)

:func:`make_mask_fn` builds ``fn(key) -> [H, W]`` for a mode from keyword
options, for ``jax.vmap`` over per-example keys.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["MASK_MODES", "central_block_mask", "make_mask_fn", "random_blocks_mask", "random_shape_mask"]

MASK_MODES = ("central", "random_blocks", "random_shape")


def _check_fraction(fraction: float, what: str) -> float:
    fraction = float(fraction)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"{what}: fraction={fraction} must lie in (0, 1) (the share of pixels to remove).")
    return fraction


def central_block_mask(height: int, width: int, hole_size: int, overlap: int = 0) -> jax.Array:
    """Removed pixels ``[H, W]``: the central ``hole_size`` block shrunk by ``overlap`` on each side.

    The block starts at ``((H - hole_size) // 2, (W - hole_size) // 2)``. ValueError when the
    block does not fit or nothing would be removed (``hole_size <= 2 * overlap``).
    """
    height, width, hole_size, overlap = int(height), int(width), int(hole_size), int(overlap)
    if not 0 < hole_size <= min(height, width):
        raise ValueError(f"central_block_mask: hole_size={hole_size} must be in [1, {min(height, width)}] "
                         f"for {height}x{width} images.")
    if overlap < 0 or hole_size - 2 * overlap < 1:
        raise ValueError(f"central_block_mask: overlap={overlap} leaves no hole inside the {hole_size} px "
                         f"block; use 0 <= overlap < hole_size / 2 (= {hole_size / 2}).")
    top, left = (height - hole_size) // 2 + overlap, (width - hole_size) // 2 + overlap
    side = hole_size - 2 * overlap
    m = np.zeros((height, width), np.float32)
    m[top:top + side, left:left + side] = 1.0
    return jnp.asarray(m)


def _check_blocks(height, width, fraction, min_size, max_size, max_blocks):
    fraction = _check_fraction(fraction, "random_blocks_mask")
    min_size, max_size, max_blocks = int(min_size), int(max_size), int(max_blocks)
    if not 1 <= min_size <= max_size <= min(height, width):
        raise ValueError(f"random_blocks_mask: need 1 <= min_size ({min_size}) <= max_size ({max_size}) <= "
                         f"image side ({min(height, width)}).")
    if max_blocks < 1:
        raise ValueError(f"random_blocks_mask: max_blocks={max_blocks} must be >= 1.")
    return fraction, min_size, max_size, max_blocks


def random_blocks_mask(key: jax.Array, height: int, width: int, fraction: float = 0.25, min_size: int = 1,
                       max_size: int = 4, max_blocks: int = 16) -> jax.Array:
    """Union of random squares covering about ``fraction`` of the image -> ``[H, W]`` (see module doc)."""
    fraction, min_size, max_size, max_blocks = _check_blocks(height, width, fraction, min_size, max_size,
                                                             max_blocks)
    ks, ky, kx = jax.random.split(key, 3)
    sizes = jax.random.randint(ks, (max_blocks,), min_size, max_size + 1)
    # Uniform top-left corner such that the block lies inside the image.
    tops = jnp.floor(jax.random.uniform(ky, (max_blocks,)) * (height - sizes + 1)).astype(jnp.int32)
    lefts = jnp.floor(jax.random.uniform(kx, (max_blocks,)) * (width - sizes + 1)).astype(jnp.int32)
    rows, cols = jnp.arange(height)[:, None], jnp.arange(width)[None, :]

    def add(mask, blk):
        s, t, l = blk
        box = ((rows >= t) & (rows < t + s) & (cols >= l) & (cols < l + s)).astype(jnp.float32)
        keep_going = jnp.mean(mask) < fraction
        return jnp.where(keep_going, jnp.maximum(mask, box), mask), None

    mask, _ = jax.lax.scan(add, jnp.zeros((height, width), jnp.float32), (sizes, tops, lefts))
    return mask


def random_shape_mask(key: jax.Array, height: int, width: int, fraction: float = 0.25, grid: int = 4) -> jax.Array:
    """Top-``fraction`` pixels of an upsampled ``grid x grid`` normal field -> ``[H, W]`` (see module doc)."""
    fraction = _check_fraction(fraction, "random_shape_mask")
    grid = int(grid)
    if grid < 2:
        raise ValueError(f"random_shape_mask: grid={grid} must be >= 2 (the noise lattice side).")
    noise = jax.random.normal(key, (grid, grid), jnp.float32)
    field = jax.image.resize(noise, (height, width), method="linear")
    # Remove the k largest values, k = round(fraction * H * W) >= 1 (ties, e.g. in the clamped
    # borders of the upsampled field, broken by position so exactly k pixels go).
    n = height * width
    k = max(1, int(round(fraction * n)))
    order = jnp.argsort(field.reshape(-1), stable=True)
    return jnp.zeros((n,), jnp.float32).at[order[n - k:]].set(1.0).reshape(height, width)


def make_mask_fn(mode: str, height: int, width: int, *, hole_size: int = 0, overlap: int = 0,
                 fraction: float = 0.25, min_block: int = 1, max_block: int = 4, max_blocks: int = 16,
                 shape_grid: int = 4) -> Callable[[jax.Array], jax.Array]:
    """``fn(key) -> float32 [H, W]`` (1 = removed) for ``mode`` in :data:`MASK_MODES`.

    ``central`` ignores the key and uses ``hole_size`` (0: half the shorter side) and
    ``overlap``; ``random_blocks`` uses ``fraction, min_block, max_block, max_blocks``;
    ``random_shape`` uses ``fraction, shape_grid``. Options are validated here, once.
    """
    if mode == "central":
        m = central_block_mask(height, width, hole_size or min(height, width) // 2, overlap)
        return lambda key: m
    if mode == "random_blocks":
        _check_blocks(height, width, fraction, min_block, max_block, max_blocks)
        return lambda key: random_blocks_mask(key, height, width, fraction, min_block, max_block, max_blocks)
    if mode == "random_shape":
        _check_fraction(fraction, "random_shape_mask")
        if int(shape_grid) < 2:
            raise ValueError(f"random_shape_mask: grid={shape_grid} must be >= 2 (the noise lattice side).")
        return lambda key: random_shape_mask(key, height, width, fraction, shape_grid)
    raise ValueError(f"mask mode {mode!r} is unknown; choose one of {list(MASK_MODES)}.")

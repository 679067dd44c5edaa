"""On-device image augmentation in pure JAX.

Every random transform here is a pure function of ``(key, image, ...)`` acting
on a *single* image of shape ``[H, W, C]`` with ``C`` in ``{1, 3}``.  Inputs may
be ``uint8`` (values ``0..255``) or floating point (values in ``[0, 1]``); every
function returns ``float32`` in ``[0, 1]`` with a static output shape, so all of
them can be used inside ``jax.jit`` and batched with
``jax.vmap(fn)(keys, images)``.

Probabilities, strengths and ranges (``p``, ``scale``, ``sigma``, ...) are
static Python floats; randomness comes only from ``key``.  The same key always
gives the same output.

Input checks (rank, dtype, channel count) happen at trace time, because shapes
and dtypes are static under ``jit``; they raise ``ValueError`` with a message
that says which argument was wrong, what was received, what was expected and
how to fix it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "to_float",
    "rgb_to_grayscale",
    "rgb_to_hsv",
    "hsv_to_rgb",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_saturation",
    "adjust_hue",
    "sample_crop_box",
    "random_resized_crop",
    "random_flip",
    "color_jitter",
    "random_grayscale",
    "gaussian_blur",
    "solarize",
    "rotate90",
    "make_view_fn",
    "augment_batch",
]

Array = jax.Array
ViewFn = Callable[[Array, Array], Array]

# ITU-R BT.601 luma weights.
_LUMA = (0.299, 0.587, 0.114)


# --------------------------------------------------------------------------- #
# Validation helpers
# --------------------------------------------------------------------------- #


def _check_image(image: Any, fn_name: str, arg: str = "image") -> None:
    """Trace-time checks that ``image`` is a single ``[H, W, C]`` image."""
    shape = tuple(getattr(image, "shape", np.shape(image)))
    dtype = getattr(image, "dtype", None)
    if dtype is None:
        dtype = np.asarray(image).dtype
    dtype = np.dtype(dtype)
    if len(shape) != 3:
        hint = (
            " It looks like a batch was passed; to augment a batch use "
            "jax.vmap(fn)(keys, images) or sslx.augment.augment_batch(key, images, view_fn)."
            if len(shape) == 4
            else " Reshape it to [H, W, C] (add a trailing channel axis for grayscale, e.g. image[..., None])."
        )
        raise ValueError(
            f"{fn_name}: argument `{arg}` must be a single image of rank 3 with shape "
            f"[H, W, C], but got shape {shape} (rank {len(shape)}).{hint}"
        )
    if not (dtype == np.uint8 or np.issubdtype(dtype, np.floating)):
        raise ValueError(
            f"{fn_name}: argument `{arg}` must have dtype uint8 (values 0..255) or a "
            f"floating dtype (values in [0, 1]), but got dtype {dtype} with shape {shape}. "
            f"Fix: cast it first, e.g. image.astype(jnp.uint8) if the values are 0..255, "
            f"or image.astype(jnp.float32) / 255.0."
        )
    if shape[-1] not in (1, 3):
        hint = ""
        if shape[0] in (1, 3):
            hint = (
                " The first axis has size "
                f"{shape[0]}; if the image is channels-first [C, H, W], transpose it "
                "with jnp.transpose(image, (1, 2, 0))."
            )
        raise ValueError(
            f"{fn_name}: argument `{arg}` must be channels-last [H, W, C] with C = 1 "
            f"(grayscale) or C = 3 (RGB), but got shape {shape} with C = {shape[-1]}."
            f"{hint} Otherwise convert it to grayscale or RGB first."
        )
    if shape[0] < 1 or shape[1] < 1:
        raise ValueError(
            f"{fn_name}: argument `{arg}` must have a non-empty spatial size, got shape {shape}."
        )


def _as_float(image: Any, fn_name: str) -> Array:
    _check_image(image, fn_name)
    x = jnp.asarray(image)
    if x.dtype == jnp.uint8:
        return x.astype(jnp.float32) / 255.0
    return x.astype(jnp.float32)


def _check_prob(p: float, fn_name: str, arg: str = "p") -> float:
    try:
        p = float(p)
    except TypeError as e:  # traced value
        raise ValueError(
            f"{fn_name}: argument `{arg}` must be a static Python float in [0, 1], "
            f"got {type(p).__name__}. Pass a constant (e.g. functools.partial)."
        ) from e
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{fn_name}: argument `{arg}` must be in [0, 1], got {p}.")
    return p


def _check_range(
    rng: Sequence[float], fn_name: str, arg: str, lo: float, hi: float, lo_open: bool = False
) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in rng)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"{fn_name}: argument `{arg}` must be a pair of static floats (min, max), got {rng!r}."
        ) from e
    bad_lo = a <= lo if lo_open else a < lo
    if bad_lo or b > hi or a > b:
        interval = f"({lo}, {hi}]" if lo_open else f"[{lo}, {hi}]"
        raise ValueError(
            f"{fn_name}: argument `{arg}` must satisfy min <= max inside {interval}, "
            f"got {(a, b)}."
        )
    return a, b


def _bernoulli(key: Array, p: float) -> Array:
    """Scalar boolean that is True with probability ``p`` (exact at 0 and 1)."""
    return jax.random.uniform(key, ()) < p


# --------------------------------------------------------------------------- #
# Deterministic colour helpers
# --------------------------------------------------------------------------- #


def to_float(image: Any) -> Array:
    """Validate a ``[H, W, C]`` image and convert it to float32 in ``[0, 1]``.

    uint8 is divided by 255; floating inputs (incl. float64) are cast to float32.
    """
    return _as_float(image, "to_float")


def rgb_to_grayscale(image: Any) -> Array:
    """ITU-R 601 luma of an image, ``[H, W, C] -> [H, W, 1]`` float32.

    For ``C == 1`` the (float) image is returned unchanged.
    """
    x = _as_float(image, "rgb_to_grayscale")
    return _gray(x)


def _gray(x: Array) -> Array:
    if x.shape[-1] == 1:
        return x
    w = jnp.asarray(_LUMA, dtype=x.dtype)
    return jnp.sum(x * w, axis=-1, keepdims=True)


def rgb_to_hsv(rgb: Array) -> Array:
    """RGB -> HSV on the last axis. ``[..., 3]`` float in [0, 1] -> ``[..., 3]``.

    Hue is expressed in turns, i.e. in ``[0, 1)``; saturation and value in [0, 1].
    """
    rgb = jnp.asarray(rgb, jnp.float32)
    if rgb.shape[-1] != 3:
        raise ValueError(
            f"rgb_to_hsv: argument `rgb` must have 3 channels on the last axis, got shape {rgb.shape}."
        )
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v = jnp.max(rgb, axis=-1)
    mn = jnp.min(rgb, axis=-1)
    c = v - mn
    s = jnp.where(v > 0, c / jnp.where(v > 0, v, 1.0), 0.0)
    safe_c = jnp.where(c > 0, c, 1.0)
    h_r = jnp.mod((g - b) / safe_c, 6.0)
    h_g = (b - r) / safe_c + 2.0
    h_b = (r - g) / safe_c + 4.0
    h = jnp.where(v == r, h_r, jnp.where(v == g, h_g, h_b))
    h = jnp.where(c > 0, h / 6.0, 0.0)
    h = jnp.mod(h, 1.0)
    return jnp.stack([h, s, v], axis=-1)


def hsv_to_rgb(hsv: Array) -> Array:
    """HSV (hue in turns) -> RGB on the last axis. ``[..., 3] -> [..., 3]``."""
    hsv = jnp.asarray(hsv, jnp.float32)
    if hsv.shape[-1] != 3:
        raise ValueError(
            f"hsv_to_rgb: argument `hsv` must have 3 channels on the last axis, got shape {hsv.shape}."
        )
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    h6 = jnp.mod(h, 1.0) * 6.0

    def channel(n: float) -> Array:
        k = jnp.mod(n + h6, 6.0)
        return v - v * s * jnp.clip(jnp.minimum(k, 4.0 - k), 0.0, 1.0)

    return jnp.stack([channel(5.0), channel(3.0), channel(1.0)], axis=-1)


def _blend(a: Array, b: Array, factor: Array) -> Array:
    """``factor * a + (1 - factor) * b`` clipped to [0, 1]."""
    return jnp.clip(factor * a + (1.0 - factor) * b, 0.0, 1.0)


def adjust_brightness(image: Any, factor: float | Array) -> Array:
    """Multiply by ``factor`` and clip. ``[H, W, C] -> [H, W, C]`` float32."""
    x = _as_float(image, "adjust_brightness")
    return jnp.clip(x * factor, 0.0, 1.0)


def adjust_contrast(image: Any, factor: float | Array) -> Array:
    """Blend with the mean gray level (``factor=0`` gives a flat gray image)."""
    x = _as_float(image, "adjust_contrast")
    return _blend(x, jnp.mean(_gray(x)), factor)


def adjust_saturation(image: Any, factor: float | Array) -> Array:
    """Blend with the grayscale image (``factor=0`` gives equal channels).

    Identity for ``C == 1``.
    """
    x = _as_float(image, "adjust_saturation")
    if x.shape[-1] == 1:
        return x
    return _blend(x, _gray(x), factor)


def adjust_hue(image: Any, delta: float | Array) -> Array:
    """Rotate hue by ``delta`` turns (any real; a full turn is identity).

    Identity for ``C == 1``.
    """
    x = _as_float(image, "adjust_hue")
    if x.shape[-1] == 1:
        return x
    return _hue(x, delta)


def _hue(x: Array, delta: Array | float) -> Array:
    hsv = rgb_to_hsv(x)
    hsv = hsv.at[..., 0].set(jnp.mod(hsv[..., 0] + delta, 1.0))
    return jnp.clip(hsv_to_rgb(hsv), 0.0, 1.0)


# --------------------------------------------------------------------------- #
# Random resized crop
# --------------------------------------------------------------------------- #


def sample_crop_box(
    key: Array,
    height: int,
    width: int,
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0),
    num_tries: int = 10,
) -> Array:
    """Sample an Inception-style crop box inside a ``height x width`` image.

    Returns a float32 array ``[4]`` = ``(top, left, box_h, box_w)`` in pixels
    (continuous, sub-pixel positions are allowed).

    Sampling scheme (fixed shapes, jittable): ``num_tries`` candidates are drawn
    at once, each with area fraction ``s ~ U(scale)`` and aspect ratio
    ``r = w / h`` log-uniform in ``ratio``.  The first candidate that fits in the
    image is used.  If none fits, the *last* candidate keeps its area but its
    aspect ratio is clamped to the feasible range ``[A / H^2, W^2 / A]``, so the
    box spans the full height or full width of the image.  Hence the area
    fraction is always within ``scale``, and the aspect ratio is within
    ``ratio`` whenever the box does not span a full image side.  The position is
    uniform over all positions that keep the box inside the image.  Output is
    used by :func:`random_resized_crop`; with the same key both see the same box.
    """
    fn = "sample_crop_box"
    s0, s1 = _check_range(scale, fn, "scale", 0.0, 1.0, lo_open=True)
    r0, r1 = _check_range(ratio, fn, "ratio", 0.0, math.inf, lo_open=True)
    height, width, num_tries = int(height), int(width), int(num_tries)
    if height < 1 or width < 1 or num_tries < 1:
        raise ValueError(
            f"{fn}: `height`, `width` and `num_tries` must be positive ints, "
            f"got {height}, {width}, {num_tries}."
        )
    H, W = float(height), float(width)
    # One draw for everything keeps the compiled program small.
    u = jax.random.uniform(key, (2 * num_tries + 2,))
    area = H * W * (s0 + (s1 - s0) * u[:num_tries])
    log_r0, log_r1 = math.log(r0), math.log(r1)
    r = jnp.exp(log_r0 + (log_r1 - log_r0) * u[num_tries : 2 * num_tries])
    w = jnp.sqrt(area * r)
    h = jnp.sqrt(area / r)
    eps = 1e-4
    fits = (w <= W + eps) & (h <= H + eps)
    first = jnp.argmax(fits)  # index of first True (0 if none)
    any_fit = jnp.any(fits)

    # Fallback: clamp the last candidate's ratio into the feasible range.
    a_last = area[-1]
    r_last = jnp.clip(r[-1], a_last / (H * H), (W * W) / a_last)
    w_fb = jnp.sqrt(a_last * r_last)
    h_fb = jnp.sqrt(a_last / r_last)

    box_h = jnp.minimum(jnp.where(any_fit, h[first], h_fb), H)
    box_w = jnp.minimum(jnp.where(any_fit, w[first], w_fb), W)
    top = u[-2] * (H - box_h)
    left = u[-1] * (W - box_w)
    return jnp.stack([top, left, box_h, box_w]).astype(jnp.float32)


def _normalize_size(size: int | Sequence[int], fn: str, arg: str) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        size = (int(size), int(size))
    try:
        oh, ow = (int(v) for v in size)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{fn}: argument `{arg}` must be an int or (height, width), got {size!r}.") from e
    if oh < 1 or ow < 1:
        raise ValueError(f"{fn}: argument `{arg}` must be positive, got {(oh, ow)}.")
    return oh, ow


def _interp_weights(n_out: int, n_in: int, start: Array, length: Array, antialias: bool) -> Array:
    """Linear-interpolation weights ``[n_out, n_in]`` for one spatial axis.

    Output pixel ``i`` samples the input at continuous coordinate
    ``start + (i + 0.5) * length / n_out`` (pixel ``j`` covers ``[j, j + 1)``)
    with a triangle kernel, widened by ``length / n_out`` when shrinking and
    ``antialias`` is set.  Rows are normalised over in-bounds pixels, matching
    ``jax.image.scale_and_translate(..., method="linear")``.
    """
    step = length / n_out  # input pixels per output pixel
    centers = start + (jnp.arange(n_out, dtype=jnp.float32) + 0.5) * step
    width = jnp.maximum(step, 1.0) if antialias else jnp.float32(1.0)
    dist = (jnp.arange(n_in, dtype=jnp.float32) + 0.5)[None, :] - centers[:, None]
    w = jnp.maximum(0.0, 1.0 - jnp.abs(dist) / width)
    total = jnp.sum(w, axis=1, keepdims=True)
    return w / jnp.where(total > 0, total, 1.0)


def _crop_resize(x: Array, box: Array, out_size: tuple[int, int], antialias: bool) -> Array:
    """Bilinearly resample the continuous box ``(top, left, h, w)`` to ``out_size``.

    ``[H, W, C] -> [oh, ow, C]``; separable, as two small matrix products.
    """
    oh, ow = out_size
    wy = _interp_weights(oh, x.shape[0], box[0], box[2], antialias)
    wx = _interp_weights(ow, x.shape[1], box[1], box[3], antialias)
    hi = jax.lax.Precision.HIGHEST
    out = jnp.einsum("oh,hwc->owc", wy, x, precision=hi)
    out = jnp.einsum("pw,owc->opc", wx, out, precision=hi)
    return jnp.clip(out, 0.0, 1.0)


def random_resized_crop(
    key: Array,
    image: Any,
    out_size: int | tuple[int, int],
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0),
    num_tries: int = 10,
    antialias: bool = True,
    return_box: bool = False,
) -> Array | tuple[Array, Array]:
    """Inception-style random resized crop. ``[H, W, C] -> [oh, ow, C]`` float32.

    The box is drawn by :func:`sample_crop_box` (vectorised rejection sampling
    with a ratio-clamping fallback; see there) and resampled bilinearly with a
    separable triangle kernel (anti-aliased when shrinking if ``antialias``),
    numerically the same as ``jax.image.scale_and_translate(method="linear")``
    but with a smaller compiled program.  With ``return_box=True`` also returns the box
    ``[4] = (top, left, box_h, box_w)``.
    """
    fn = "random_resized_crop"
    x = _as_float(image, fn)
    size = _normalize_size(out_size, fn, "out_size")
    box = sample_crop_box(key, x.shape[0], x.shape[1], scale, ratio, num_tries)
    out = _crop_resize(x, box, size, antialias)
    if return_box:
        return out, box
    return out


# --------------------------------------------------------------------------- #
# Other random transforms
# --------------------------------------------------------------------------- #


def random_flip(key: Array, image: Any, p: float = 0.5) -> Array:
    """Horizontal flip (``image[:, ::-1]``) with probability ``p``. ``[H, W, C]``."""
    x = _as_float(image, "random_flip")
    p = _check_prob(p, "random_flip")
    return jnp.where(_bernoulli(key, p), x[:, ::-1], x)


def color_jitter(
    key: Array,
    image: Any,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
    hue: float = 0.1,
    p: float = 0.8,
) -> Array:
    """SimCLR-style colour jitter, applied with probability ``p``. ``[H, W, C]``.

    When applied, the ops run in a uniformly random order with factors
    brightness ``~U[max(0,1-b), 1+b]`` (multiply), contrast ``~U[max(0,1-c), 1+c]``
    (blend with mean gray), saturation ``~U[max(0,1-s), 1+s]`` (blend with
    grayscale) and hue shift ``~U[-h, h]`` turns (via HSV).  The image is
    clipped to [0, 1] after every op.  For ``C == 1`` only brightness and
    contrast are used.
    """
    fn = "color_jitter"
    x = _as_float(image, fn)
    p = _check_prob(p, fn)
    strengths = {}
    for name, val in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
        try:
            val = float(val)
        except TypeError as e:
            raise ValueError(f"{fn}: argument `{name}` must be a static float >= 0, got {val!r}.") from e
        if val < 0:
            raise ValueError(f"{fn}: argument `{name}` must be >= 0, got {val}.")
        strengths[name] = val
    hue = float(hue)
    if not 0.0 <= hue <= 0.5:
        raise ValueError(f"{fn}: argument `hue` must be in [0, 0.5] (turns), got {hue}.")

    n_ops = 4 if x.shape[-1] == 3 else 2
    # One draw: [apply, brightness, contrast, saturation, hue, order keys...].
    u = jax.random.uniform(key, (5 + n_ops,))

    def factor(v: Array, s: float) -> Array:
        lo = max(0.0, 1.0 - s)
        return lo + (1.0 + s - lo) * v

    apply = u[0] < p
    fb = factor(u[1], strengths["brightness"])
    fc = factor(u[2], strengths["contrast"])
    fs = factor(u[3], strengths["saturation"])
    dh = hue * (2.0 * u[4] - 1.0)

    def op_brightness(y: Array) -> Array:
        return jnp.clip(y * fb, 0.0, 1.0)

    def op_contrast(y: Array) -> Array:
        return _blend(y, jnp.mean(_gray(y)), fc)

    def op_saturation(y: Array) -> Array:
        return _blend(y, _gray(y), fs)

    def op_hue(y: Array) -> Array:
        return _hue(y, dh) if hue > 0 else y

    if x.shape[-1] == 3:
        ops = [op_brightness, op_contrast, op_saturation, op_hue]
    else:
        ops = [op_brightness, op_contrast]
    order = jnp.argsort(u[5:])  # uniformly random permutation of the ops
    # A loop (rather than an unrolled Python loop) keeps the compiled program
    # small: the switch over the ops appears once instead of once per step.
    y = jax.lax.fori_loop(0, len(ops), lambda i, y: jax.lax.switch(order[i], ops, y).astype(x.dtype), x)
    return jnp.where(apply, jnp.clip(y, 0.0, 1.0), x)


def random_grayscale(key: Array, image: Any, p: float = 0.2) -> Array:
    """With probability ``p`` replace RGB by its ITU-R 601 luma on all 3 channels.

    ``[H, W, C] -> [H, W, C]``; identity (besides float conversion) for ``C == 1``.
    """
    fn = "random_grayscale"
    x = _as_float(image, fn)
    p = _check_prob(p, fn)
    if x.shape[-1] == 1:
        return x
    g = jnp.broadcast_to(_gray(x), x.shape)
    return jnp.where(_bernoulli(key, p), g, x)


def _default_kernel_size(height: int, width: int) -> int:
    k = int(round(0.1 * min(height, width)))
    if k % 2 == 0:
        k += 1
    return max(k, 3)


def _blur_1d(x: Array, weights: Array, axis: int) -> Array:
    """Correlate ``x`` with odd-length ``weights`` along ``axis`` (reflect pad)."""
    k = weights.shape[0]
    r = k // 2
    pad = [(0, 0)] * x.ndim
    pad[axis] = (r, r)
    xp = jnp.pad(x, pad, mode="reflect")
    n = x.shape[axis]
    out = jnp.zeros_like(x)
    for i in range(k):
        out = out + weights[i] * jax.lax.slice_in_dim(xp, i, i + n, axis=axis)
    return out


def gaussian_blur(
    key: Array,
    image: Any,
    p: float = 0.5,
    sigma: Sequence[float] = (0.1, 2.0),
    kernel_size: int | None = None,
) -> Array:
    """Separable Gaussian blur with probability ``p``. ``[H, W, C] -> [H, W, C]``.

    ``sigma ~ U(sigma)`` in pixels.  ``kernel_size`` (odd) defaults to about 10%
    of the shorter side (at least 3) and is capped so that reflect padding fits
    in the image.  Borders use reflect padding.
    """
    fn = "gaussian_blur"
    x = _as_float(image, fn)
    p = _check_prob(p, fn)
    s0, s1 = _check_range(sigma, fn, "sigma", 0.0, math.inf, lo_open=True)
    H, W = x.shape[0], x.shape[1]
    if kernel_size is None:
        ks = _default_kernel_size(H, W)
    else:
        ks = int(kernel_size)
        if ks < 1 or ks % 2 == 0:
            raise ValueError(f"{fn}: argument `kernel_size` must be a positive odd int, got {kernel_size}.")
    # Reflect padding needs pad < side length.
    max_r = max(min(H, W) - 1, 0)
    r = min(ks // 2, max_r)
    if r == 0:
        return x
    u = jax.random.uniform(key, (2,))
    s = s0 + (s1 - s0) * u[1]
    t = jnp.arange(-r, r + 1, dtype=jnp.float32)
    w = jnp.exp(-0.5 * (t / s) ** 2)
    w = w / jnp.sum(w)
    y = _blur_1d(_blur_1d(x, w, axis=0), w, axis=1)
    return jnp.where(u[0] < p, jnp.clip(y, 0.0, 1.0), x)


def solarize(key: Array, image: Any, p: float = 0.0, threshold: float = 0.5) -> Array:
    """With probability ``p`` map ``x -> 1 - x`` where ``x >= threshold``. ``[H, W, C]``."""
    fn = "solarize"
    x = _as_float(image, fn)
    p = _check_prob(p, fn)
    y = jnp.where(x >= threshold, 1.0 - x, x)
    return jnp.where(_bernoulli(key, p), y, x)


def rotate90(image: Any, k: int | Array) -> Array:
    """Rotate a square image by ``k * 90`` degrees counter-clockwise.

    ``k`` may be a traced integer (taken modulo 4).  ``[S, S, C] -> [S, S, C]``
    float32; equals ``np.rot90(image, k, axes=(0, 1))``.
    """
    fn = "rotate90"
    x = _as_float(image, fn)
    if x.shape[0] != x.shape[1]:
        raise ValueError(
            f"{fn}: argument `image` must be square so the output shape is static, got "
            f"shape {x.shape}. Fix: crop/resize to [S, S, C] first (e.g. random_resized_crop)."
        )
    k = jnp.mod(jnp.asarray(k, dtype=jnp.int32), 4)
    branches = [lambda y, i=i: jnp.rot90(y, i, axes=(0, 1)) for i in range(4)]
    return jax.lax.switch(k, branches, x)


# --------------------------------------------------------------------------- #
# Composition
# --------------------------------------------------------------------------- #

_VIEW_DEFAULTS: dict[str, Any] = {
    "crop_scale": (0.08, 1.0),
    "crop_ratio": (3.0 / 4.0, 4.0 / 3.0),
    "flip_p": 0.5,
    "jitter_p": 0.8,
    "jitter_strength": 0.5,
    "grayscale_p": 0.2,
    "blur_p": 0.0,
    "blur_sigma": (0.1, 2.0),
    "solarize_p": 0.0,
    "solarize_threshold": 0.5,
    "identity": False,
}


def _cfg_get(cfg: Any, name: str, default: Any) -> Any:
    if isinstance(cfg, Mapping) or hasattr(cfg, "get"):
        try:
            return cfg.get(name, default)
        except (KeyError, AttributeError):
            return default
    return getattr(cfg, name, default)


def make_view_fn(cfg: Any) -> ViewFn:
    """Build ``view_fn(key, image[H, W, C]) -> view[S, S, C]`` float32 from a config.

    ``cfg`` is a dict or ``ml_collections.ConfigDict`` with keys ``crop_size``
    (int or (h, w), required), ``crop_scale`` ((0.08, 1)), ``crop_ratio``
    ((3/4, 4/3)), ``flip_p`` (0.5), ``jitter_p`` (0.8), ``jitter_strength`` s
    (0.5; brightness = contrast = saturation = 0.8 s, hue = 0.2 s),
    ``grayscale_p`` (0.2), ``blur_p`` (0.0), ``blur_sigma`` ((0.1, 2)),
    ``solarize_p`` (0.0), ``solarize_threshold`` (0.5).  Other keys are ignored.
    Order: crop -> flip -> colour jitter -> grayscale -> blur -> solarize; each
    transform uses its own split of ``key``.
    """
    crop_size = _cfg_get(cfg, "crop_size", None)
    if crop_size is None:
        raise ValueError(
            "make_view_fn: config key `crop_size` (int output side) is required, "
            f"got config with keys {list(cfg.keys()) if hasattr(cfg, 'keys') else cfg!r}."
        )
    keys = set(cfg.keys()) if hasattr(cfg, "keys") else set()
    unknown = keys - set(_VIEW_DEFAULTS) - {"crop_size"}
    if unknown:
        raise ValueError(f"make_view_fn: unknown augmentation keys {sorted(unknown)}; "
                         f"valid keys are {sorted(set(_VIEW_DEFAULTS) | {'crop_size'})}.")
    c = {k: _cfg_get(cfg, k, v) for k, v in _VIEW_DEFAULTS.items()}
    size = _normalize_size(crop_size, "make_view_fn", "crop_size")
    if c["identity"]:
        # No augmentation: only resize the full image to crop_size (benchmarks, ablations).
        return lambda key, image: random_resized_crop(key, image, size, scale=(1.0, 1.0),
                                                      ratio=(image.shape[1] / image.shape[0],) * 2)
    scale = tuple(float(v) for v in c["crop_scale"])
    ratio = tuple(float(v) for v in c["crop_ratio"])
    s = float(c["jitter_strength"])
    flip_p = _check_prob(c["flip_p"], "make_view_fn", "flip_p")
    jitter_p = _check_prob(c["jitter_p"], "make_view_fn", "jitter_p")
    gray_p = _check_prob(c["grayscale_p"], "make_view_fn", "grayscale_p")
    blur_p = _check_prob(c["blur_p"], "make_view_fn", "blur_p")
    sol_p = _check_prob(c["solarize_p"], "make_view_fn", "solarize_p")
    blur_sigma = tuple(float(v) for v in c["blur_sigma"])
    sol_thr = float(c["solarize_threshold"])
    # Validate ranges eagerly so config errors surface at construction time.
    _check_range(scale, "make_view_fn", "crop_scale", 0.0, 1.0, lo_open=True)
    _check_range(ratio, "make_view_fn", "crop_ratio", 0.0, math.inf, lo_open=True)
    _check_range(blur_sigma, "make_view_fn", "blur_sigma", 0.0, math.inf, lo_open=True)
    if not 0.0 <= 0.2 * s <= 0.5:
        raise ValueError(f"make_view_fn: `jitter_strength` must be in [0, 2.5], got {s}.")

    def view_fn(key: Array, image: Array) -> Array:
        k_crop, k_flip, k_jit, k_gray, k_blur, k_sol = jax.random.split(key, 6)
        x = random_resized_crop(k_crop, image, size, scale=scale, ratio=ratio)
        x = random_flip(k_flip, x, p=flip_p)
        if jitter_p > 0:
            x = color_jitter(
                k_jit, x, brightness=0.8 * s, contrast=0.8 * s, saturation=0.8 * s,
                hue=0.2 * s, p=jitter_p,
            )
        if gray_p > 0:
            x = random_grayscale(k_gray, x, p=gray_p)
        if blur_p > 0:
            x = gaussian_blur(k_blur, x, p=blur_p, sigma=blur_sigma)
        if sol_p > 0:
            x = solarize(k_sol, x, p=sol_p, threshold=sol_thr)
        return x

    return view_fn


def augment_batch(key: Array, images: Any, view_fn: ViewFn) -> Array:
    """Apply ``view_fn`` to each image with its own key. ``[B, H, W, C] -> [B, ...]``.

    Keys are ``jax.random.split(key, B)``; the map is ``jax.vmap(view_fn)``.
    """
    shape = tuple(getattr(images, "shape", np.shape(images)))
    if len(shape) != 4:
        raise ValueError(
            f"augment_batch: argument `images` must be a batch of shape [B, H, W, C] "
            f"(rank 4), got shape {shape} (rank {len(shape)}). For a single image call "
            f"view_fn(key, image) directly, or add a batch axis with image[None]."
        )
    keys = jax.random.split(key, shape[0])
    return jax.vmap(view_fn)(keys, images)

"""Tests for sslx.augment (pure-JAX single-image augmentations)."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslx import augment as aug

H = W = 16
N_STAT = 4000


def _rgb_u8(seed: int = 0, h: int = H, w: int = W, c: int = 3) -> np.ndarray:
    return np.random.RandomState(seed).randint(0, 256, size=(h, w, c)).astype(np.uint8)


def _rgb_f(seed: int = 0, h: int = H, w: int = W, c: int = 3) -> np.ndarray:
    return np.random.RandomState(seed).uniform(0, 1, size=(h, w, c)).astype(np.float32)


def _keys(n: int, seed: int = 0) -> jax.Array:
    return jax.random.split(jax.random.PRNGKey(seed), n)


def _binomial_tol(n: int, p: float, n_sd: float = 5.0) -> float:
    return n_sd * np.sqrt(n * p * (1 - p))


# Random functions with parameters that make them actually random: (key, image) -> image.
RANDOM_FNS = {
    "crop": functools.partial(aug.random_resized_crop, out_size=(12, 12)),
    "flip": functools.partial(aug.random_flip, p=0.5),
    "jitter": functools.partial(aug.color_jitter, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, p=1.0),
    "grayscale": functools.partial(aug.random_grayscale, p=0.5),
    "blur": functools.partial(aug.gaussian_blur, p=1.0, sigma=(0.1, 2.0), kernel_size=5),
    "solarize": functools.partial(aug.solarize, p=0.5),
    "view": aug.make_view_fn({"crop_size": 12, "blur_p": 0.5, "solarize_p": 0.3}),
}


# --------------------------------------------------------------------------- #
# Determinism, shapes, dtypes, uint8 vs float, vmap vs loop
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("name", sorted(RANDOM_FNS))
def test_same_key_same_output_different_keys_differ(name):
    fn = jax.jit(jax.vmap(RANDOM_FNS[name]))
    img = _rgb_f(1)
    keys = _keys(16)
    imgs = jnp.broadcast_to(img, (16,) + img.shape)
    out1 = np.asarray(fn(keys, imgs))
    out2 = np.asarray(fn(keys, imgs))
    np.testing.assert_array_equal(out1, out2)
    # Different keys: not all outputs are identical (a single pair may coincide,
    # e.g. two keys that both decide "no flip").
    n_distinct = len({o.tobytes() for o in out1})
    assert n_distinct >= 2, f"{name}: 16 different keys gave identical outputs"
    # Same key also gives the same result without jit/vmap (for the composed
    # view this is covered by test_vmap_under_jit_equals_python_loop_of_single_calls).
    if name != "view":
        np.testing.assert_allclose(np.asarray(RANDOM_FNS[name](keys[3], img)), out1[3], atol=1e-5)


@pytest.mark.parametrize("name", sorted(RANDOM_FNS))
def test_uint8_and_float_inputs_agree_and_shapes(name):
    fn = RANDOM_FNS[name]
    u8 = _rgb_u8(2)
    f32 = u8.astype(np.float32) / 255.0
    f64 = u8.astype(np.float64) / 255.0
    key = jax.random.PRNGKey(7)
    a = fn(key, u8)
    b = fn(key, f32)
    c = fn(key, f64)
    chex.assert_type([a, b, c], jnp.float32)
    chex.assert_equal_shape([a, b, c])
    chex.assert_rank(a, 3)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
    np.testing.assert_allclose(np.asarray(a), np.asarray(c), atol=1e-6)
    assert float(jnp.min(a)) >= 0.0 and float(jnp.max(a)) <= 1.0


def test_vmap_under_jit_equals_python_loop_of_single_calls():
    view = aug.make_view_fn({"crop_size": 12, "blur_p": 0.5, "solarize_p": 0.5, "grayscale_p": 0.5})
    imgs = np.stack([_rgb_u8(s) for s in range(6)])
    keys = _keys(6, seed=3)
    batched = jax.jit(jax.vmap(view))(keys, imgs)
    chex.assert_shape(batched, (6, 12, 12, 3))
    chex.assert_type(batched, jnp.float32)
    single = jax.jit(view)
    looped = jnp.stack([single(keys[i], imgs[i]) for i in range(6)])
    np.testing.assert_allclose(np.asarray(batched), np.asarray(looped), atol=1e-5)
    # Views of the same image with different keys differ.
    assert not np.allclose(batched[0], batched[1])


def test_augment_batch_splits_keys_and_vmaps():
    # A cheap view (crop + flip) keeps compile time down; the full view is
    # covered by test_vmap_under_jit_equals_python_loop_of_single_calls.
    view = aug.make_view_fn({"crop_size": 8, "jitter_p": 0.0, "grayscale_p": 0.0})
    imgs = np.stack([_rgb_u8(s) for s in range(4)])
    key = jax.random.PRNGKey(11)
    out = aug.augment_batch(key, imgs, view)
    chex.assert_shape(out, (4, 8, 8, 3))
    chex.assert_type(out, jnp.float32)
    expected = jax.vmap(view)(jax.random.split(key, 4), imgs)
    np.testing.assert_allclose(np.asarray(out), np.asarray(expected), atol=1e-5)
    with pytest.raises(ValueError, match="rank 4"):
        aug.augment_batch(key, imgs[0], view)


def test_make_view_fn_configdict_and_missing_crop_size():
    ml_collections = pytest.importorskip("ml_collections")
    cfg = ml_collections.ConfigDict({"crop_size": 8, "crop_scale": (0.5, 1.0), "jitter_strength": 1.0})
    view = aug.make_view_fn(cfg)
    out = view(jax.random.PRNGKey(0), _rgb_u8(0))
    chex.assert_shape(out, (8, 8, 3))
    gray_view = aug.make_view_fn({"crop_size": 8})
    out1 = gray_view(jax.random.PRNGKey(0), _rgb_u8(0, c=1))
    chex.assert_shape(out1, (8, 8, 1))
    with pytest.raises(ValueError, match="crop_size"):
        aug.make_view_fn({"flip_p": 0.5})
    with pytest.raises(ValueError, match="flip_p"):
        aug.make_view_fn({"crop_size": 8, "flip_p": 1.5})


def test_make_view_fn_all_off_is_center_resize_identity():
    # Full-image crop, no flip / jitter / gray / blur / solarize -> identity.
    cfg = {"crop_size": H, "crop_scale": (1.0, 1.0), "crop_ratio": (1.0, 1.0), "flip_p": 0.0,
           "jitter_p": 0.0, "grayscale_p": 0.0}
    img = _rgb_f(4)
    out = aug.make_view_fn(cfg)(jax.random.PRNGKey(5), img)
    np.testing.assert_allclose(np.asarray(out), img, atol=1e-5)


# --------------------------------------------------------------------------- #
# Flip
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
def test_flip_frequency(p):
    img = _rgb_f(5, h=4, w=6)
    flipped = img[:, ::-1]
    out = np.asarray(jax.jit(jax.vmap(lambda k: aug.random_flip(k, img, p=p)))(_keys(N_STAT, seed=1)))
    is_flip = np.all(out == flipped[None], axis=(1, 2, 3))
    is_same = np.all(out == img[None], axis=(1, 2, 3))
    # Every output is exactly either the image or image[:, ::-1].
    assert np.all(is_flip | is_same)
    n_flip = int(is_flip.sum())
    if p in (0.0, 1.0):
        assert n_flip == int(p * N_STAT)
    else:
        assert abs(n_flip - p * N_STAT) < _binomial_tol(N_STAT, p)


# --------------------------------------------------------------------------- #
# Random resized crop
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "hw,scale,ratio",
    [
        ((32, 48), (0.08, 1.0), (3 / 4, 4 / 3)),
        ((32, 32), (0.3, 0.6), (0.5, 2.0)),
        # ratio range that never fits -> the documented clamping fallback.
        ((32, 32), (0.5, 1.0), (4.0, 5.0)),
    ],
)
def test_crop_box_area_and_ratio(hw, scale, ratio):
    hh, ww = hw
    boxes = np.asarray(
        jax.jit(jax.vmap(lambda k: aug.sample_crop_box(k, hh, ww, scale, ratio)))(_keys(N_STAT, seed=2))
    )
    top, left, bh, bw = boxes.T
    tol = 1e-4
    # Inside the image.
    assert np.all(top >= -tol) and np.all(left >= -tol)
    assert np.all(top + bh <= hh + tol) and np.all(left + bw <= ww + tol)
    assert np.all(bh > 0) and np.all(bw > 0)
    # Area fraction always within `scale`.
    frac = bh * bw / (hh * ww)
    assert np.all(frac >= scale[0] - 1e-4) and np.all(frac <= scale[1] + 1e-4)
    # Aspect ratio within `ratio` whenever the box does not span a full side.
    clipped = (bh >= hh - tol) | (bw >= ww - tol)
    r = bw / bh
    ok = (r >= ratio[0] * (1 - 1e-4)) & (r <= ratio[1] * (1 + 1e-4))
    assert np.all(ok | clipped)
    # Sampling is not degenerate: it spans the range of allowed areas (large
    # areas are rejected more often, so only ask for the upper half).
    assert frac.min() < scale[0] + 0.1 * (scale[1] - scale[0])
    assert frac.max() > scale[0] + 0.5 * (scale[1] - scale[0])
    if ratio[0] <= 1.0 <= ratio[1] and scale[1] < 1:
        # Unclipped boxes exist and their ratios spread over the range (log-uniform).
        assert not np.all(clipped)
        assert r[~clipped].min() < 0.8 and r[~clipped].max() > 1.25
    # Position is uniform over the free room, not always at the origin.
    for pos, room in ((top, hh - bh), (left, ww - bw)):
        has_room = room > 2.0
        if has_room.sum() > 100:
            rel = pos[has_room] / room[has_room]
            assert rel.min() < 0.05 and rel.max() > 0.95 and abs(rel.mean() - 0.5) < 0.05


def test_crop_full_scale_square_is_identity():
    img = _rgb_f(6, h=16, w=16)
    out, box = aug.random_resized_crop(
        jax.random.PRNGKey(0), img, (16, 16), scale=(1.0, 1.0), ratio=(1.0, 1.0), return_box=True
    )
    np.testing.assert_allclose(np.asarray(box), [0, 0, 16, 16], atol=1e-4)
    np.testing.assert_allclose(np.asarray(out), img, atol=1e-5)


def test_crop_samples_the_returned_box():
    # On an image linear in x and y, bilinear resampling is exact away from
    # the borders, so each output pixel must equal the ramp at the location
    # it was sampled from inside the returned box.
    # Boxes are smaller than the output (pure bilinear upsampling; with the
    # anti-aliasing kernel used when shrinking, linear ramps are not exact).
    hh, ww, oh, ow = 32, 40, 32, 32
    yy, xx = np.meshgrid(np.arange(hh) + 0.5, np.arange(ww) + 0.5, indexing="ij")
    img = np.stack([yy / hh, xx / ww, 0.5 * np.ones_like(xx)], axis=-1).astype(np.float32)

    def one(k):
        return aug.random_resized_crop(k, img, (oh, ow), scale=(0.1, 0.4), return_box=True)

    outs, boxes = jax.jit(jax.vmap(one))(_keys(8, seed=4))
    for out, (top, left, bh, bw) in zip(np.asarray(outs), np.asarray(boxes)):
        assert bh <= oh and bw <= ow
        v = top + (np.arange(oh) + 0.5) * bh / oh  # continuous input row coordinate
        u = left + (np.arange(ow) + 0.5) * bw / ow
        vv, uu = np.meshgrid(v, u, indexing="ij")
        # Away from the borders by the (anti-aliased) kernel half-width.
        my, mx = max(1.0, bh / oh), max(1.0, bw / ow)
        inner = (vv >= my) & (vv <= hh - my) & (uu >= mx) & (uu <= ww - mx)
        assert inner.sum() > oh * ow // 2
        np.testing.assert_allclose(out[..., 0][inner], (vv / hh)[inner], atol=1e-4)
        np.testing.assert_allclose(out[..., 1][inner], (uu / ww)[inner], atol=1e-4)
        np.testing.assert_allclose(out[..., 2], 0.5, atol=1e-5)


def test_crop_matches_jax_scale_and_translate():
    # Rows mostly shrink (anti-aliased), columns always enlarge.
    img = _rgb_f(17, 24, 20)
    oh, ow = 10, 30

    def one(k):
        out, box = aug.random_resized_crop(k, img, (oh, ow), return_box=True)
        top, left, bh, bw = box
        sy, sx = oh / bh, ow / bw
        ref = jax.image.scale_and_translate(
            img, (oh, ow, 3), (0, 1), jnp.stack([sy, sx]), jnp.stack([-top * sy, -left * sx]),
            method="linear", antialias=True,
        )
        return out, jnp.clip(ref, 0.0, 1.0), box

    outs, refs, boxes = jax.jit(jax.vmap(one))(_keys(16, 9))
    assert np.any(boxes[:, 2] > oh) and np.any(boxes[:, 2] < oh)  # both regimes covered
    np.testing.assert_allclose(np.asarray(outs), np.asarray(refs), atol=1e-5)


def test_crop_int_out_size_and_grayscale():
    out = aug.random_resized_crop(jax.random.PRNGKey(1), _rgb_u8(0, 20, 30, 1), 8)
    chex.assert_shape(out, (8, 8, 1))
    chex.assert_type(out, jnp.float32)


# --------------------------------------------------------------------------- #
# Colour
# --------------------------------------------------------------------------- #


def test_color_jitter_p0_is_identity():
    img = _rgb_u8(7)
    out = jax.vmap(lambda k: aug.color_jitter(k, img, 0.8, 0.8, 0.8, 0.2, p=0.0))(_keys(8))
    np.testing.assert_allclose(np.asarray(out), np.broadcast_to(img / 255.0, out.shape), rtol=1e-6)


def test_color_jitter_range_and_apply_rate():
    img = _rgb_f(8)
    p = 0.8
    out = np.asarray(
        jax.jit(jax.vmap(lambda k: aug.color_jitter(k, img, 0.9, 0.9, 0.9, 0.5, p=p)))(_keys(1000, seed=5))
    )
    assert out.min() >= 0.0 and out.max() <= 1.0
    n_applied = int((~np.all(np.isclose(out, img[None], atol=1e-6), axis=(1, 2, 3))).sum())
    assert abs(n_applied - p * 1000) < _binomial_tol(1000, p)


def test_color_jitter_brightness_on_constant_image():
    c = 0.3
    img = np.full((8, 8, 3), c, np.float32)
    b = 0.5
    out = np.asarray(
        jax.jit(jax.vmap(lambda k: aug.color_jitter(k, img, brightness=b, contrast=0.0, saturation=0.0,
                                                  hue=0.0, p=1.0)))(_keys(500))
    )
    # Output is still constant per image and the factor lies in [1-b, 1+b].
    assert np.allclose(out, out[:, :1, :1, :1], atol=1e-6)
    factors = out[:, 0, 0, 0] / c
    assert factors.min() >= 1 - b - 1e-5 and factors.max() <= 1 + b + 1e-5
    assert factors.min() < 1 - 0.8 * b and factors.max() > 1 + 0.8 * b
    np.testing.assert_allclose(np.asarray(aug.adjust_brightness(img, 1.5)), c * 1.5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(aug.adjust_brightness(img, 10.0)), 1.0)


def test_color_jitter_single_channel():
    # Values in [0.3, 0.6] so no clipping happens between the ops.
    img = 0.3 + 0.3 * _rgb_f(9, c=1)
    out = aug.color_jitter(jax.random.PRNGKey(0), img, 0.4, 0.4, 0.4, 0.1, p=1.0)
    chex.assert_shape(out, img.shape)
    assert not np.allclose(out, img)
    # Only brightness & contrast: a contrast/brightness change is affine per image.
    a, b_ = np.polyfit(img.ravel(), np.asarray(out).ravel(), 1)
    np.testing.assert_allclose(np.asarray(out).ravel(), np.clip(a * img.ravel() + b_, 0, 1), atol=1e-4)


def test_saturation_zero_and_grayscale_give_equal_channels():
    img = _rgb_f(10)
    desat = np.asarray(aug.adjust_saturation(img, 0.0))
    np.testing.assert_allclose(desat[..., 0], desat[..., 1], atol=1e-6)
    np.testing.assert_allclose(desat[..., 1], desat[..., 2], atol=1e-6)
    g = np.asarray(aug.random_grayscale(jax.random.PRNGKey(0), img, p=1.0))
    luma = 0.299 * img[..., 0] + 0.587 * img[..., 1] + 0.114 * img[..., 2]
    for ch in range(3):
        np.testing.assert_allclose(g[..., ch], luma, atol=1e-6)
    np.testing.assert_allclose(desat[..., 0], luma, atol=1e-6)
    # Contrast 0 gives a flat image at the mean gray.
    flat = np.asarray(aug.adjust_contrast(img, 0.0))
    np.testing.assert_allclose(flat, luma.mean(), atol=1e-6)


def test_rgb_hsv_round_trip_and_hue_full_turn():
    rgb = np.random.RandomState(11).uniform(0, 1, size=(64, 3)).astype(np.float32)
    # Include grays, black, white and primaries (hue undefined / edge cases).
    extra = np.array([[0, 0, 0], [1, 1, 1], [0.5, 0.5, 0.5], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]],
                     np.float32)
    rgb = np.concatenate([rgb, extra])
    hsv = np.asarray(aug.rgb_to_hsv(rgb))
    assert hsv.min() >= 0 and hsv[..., 0].max() < 1 and hsv[..., 1:].max() <= 1
    np.testing.assert_allclose(hsv[..., 2], rgb.max(-1), atol=1e-6)
    np.testing.assert_allclose(np.asarray(aug.hsv_to_rgb(hsv)), rgb, atol=1e-5)
    # Primary hues are at 0, 1/3, 2/3 turns.
    np.testing.assert_allclose(hsv[-4:-1, 0], [0.0, 1 / 3, 2 / 3], atol=1e-6)
    img = _rgb_f(12)
    np.testing.assert_allclose(np.asarray(aug.adjust_hue(img, 1.0)), img, atol=1e-5)
    np.testing.assert_allclose(np.asarray(aug.adjust_hue(img, -1.0)), img, atol=1e-5)
    np.testing.assert_allclose(np.asarray(aug.adjust_hue(img, 0.0)), img, atol=1e-5)
    # A third of a turn maps red -> green -> blue.
    prim = extra[3:6].reshape(1, 3, 3)
    np.testing.assert_allclose(np.asarray(aug.adjust_hue(prim, 1 / 3)), np.roll(prim, 1, axis=-1), atol=1e-5)
    # Hue shift keeps value and saturation.
    shifted = np.asarray(aug.rgb_to_hsv(aug.adjust_hue(img, 0.37)))
    orig = np.asarray(aug.rgb_to_hsv(img))
    np.testing.assert_allclose(shifted[..., 1:], orig[..., 1:], atol=1e-5)
    dh = np.mod(shifted[..., 0] - orig[..., 0], 1.0)
    sat = orig[..., 1] > 0.05
    np.testing.assert_allclose(dh[sat], 0.37, atol=1e-3)


def test_grayscale_probability_and_single_channel_identity():
    img = _rgb_f(13, h=4, w=4)
    p = 0.2
    out = np.asarray(jax.jit(jax.vmap(lambda k: aug.random_grayscale(k, img, p=p)))(_keys(N_STAT, seed=6)))
    is_gray = np.all(np.abs(out - out[..., :1]) < 1e-7, axis=(1, 2, 3))
    is_same = np.all(out == img[None], axis=(1, 2, 3))
    assert np.all(is_gray ^ is_same)
    assert abs(is_gray.sum() - p * N_STAT) < _binomial_tol(N_STAT, p)
    one = _rgb_f(13, c=1)
    np.testing.assert_array_equal(np.asarray(aug.random_grayscale(jax.random.PRNGKey(0), one, p=1.0)), one)


# --------------------------------------------------------------------------- #
# Blur, solarize, rotate
# --------------------------------------------------------------------------- #


def test_blur_constant_mean_and_noise_variance():
    const = np.full((32, 32, 3), 0.42, np.float32)
    out = aug.gaussian_blur(jax.random.PRNGKey(0), const, p=1.0)
    np.testing.assert_allclose(np.asarray(out), 0.42, atol=1e-6)
    noise = _rgb_f(14, 32, 32)
    keys = _keys(16, seed=8)
    blurred = np.asarray(
        jax.jit(jax.vmap(lambda k: aug.gaussian_blur(k, noise, p=1.0, sigma=(1.0, 2.0), kernel_size=7)))(keys)
    )
    assert np.all(blurred.var(axis=(1, 2, 3)) < 0.5 * noise.var())
    # Mean is approximately preserved (normalised kernel; reflect borders).
    np.testing.assert_allclose(blurred.mean(axis=(1, 2, 3)), noise.mean(), atol=0.02)
    # p = 0 is identity.
    np.testing.assert_array_equal(np.asarray(aug.gaussian_blur(keys[0], noise, p=0.0)), noise)
    # Larger sigma blurs more (sigma range collapsed to a point).
    v_small = np.asarray(aug.gaussian_blur(keys[0], noise, p=1.0, sigma=(0.5, 0.5), kernel_size=7)).var()
    v_big = np.asarray(aug.gaussian_blur(keys[0], noise, p=1.0, sigma=(2.0, 2.0), kernel_size=7)).var()
    assert v_big < v_small < noise.var()


def test_blur_matches_reference_separable_convolution():
    img = _rgb_f(15, 10, 12)
    sigma, ks = 1.3, 5
    out = np.asarray(aug.gaussian_blur(jax.random.PRNGKey(0), img, p=1.0, sigma=(sigma, sigma), kernel_size=ks))
    t = np.arange(ks) - ks // 2
    w = np.exp(-0.5 * (t / sigma) ** 2)
    w /= w.sum()
    pad = np.pad(img, ((ks // 2,) * 2, (ks // 2,) * 2, (0, 0)), mode="reflect")
    ref = np.zeros_like(img)
    for i in range(ks):
        for j in range(ks):
            ref += w[i] * w[j] * pad[i:i + img.shape[0], j:j + img.shape[1]]
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_solarize_hand_example():
    x = np.array([0.0, 0.2, 0.49, 0.5, 0.7, 1.0], np.float32).reshape(1, 6, 1)
    y = aug.solarize(jax.random.PRNGKey(0), x, p=1.0, threshold=0.5)
    np.testing.assert_allclose(np.asarray(y).ravel(), [0.0, 0.2, 0.49, 0.5, 0.3, 0.0], atol=1e-7)
    np.testing.assert_array_equal(np.asarray(aug.solarize(jax.random.PRNGKey(0), x)), x)  # default p = 0
    # The threshold itself is inverted (x >= threshold).
    y4 = aug.solarize(jax.random.PRNGKey(0), x, p=1.0, threshold=0.2)
    np.testing.assert_allclose(np.asarray(y4).ravel(), [0.0, 0.8, 0.51, 0.5, 0.3, 0.0], atol=1e-6)
    u8 = np.array([[[0], [100], [128], [200], [255]]], np.uint8)
    y8 = np.asarray(aug.solarize(jax.random.PRNGKey(0), u8, p=1.0)).ravel()
    np.testing.assert_allclose(y8, [0, 100 / 255, 1 - 128 / 255, 1 - 200 / 255, 0.0], atol=1e-6)


def test_rotate90_traced_k_matches_numpy():
    img = _rgb_u8(16, 8, 8)
    rot = jax.jit(aug.rotate90)
    for k in range(-1, 6):
        np.testing.assert_array_equal(
            np.asarray(rot(img, jnp.int32(k))), np.asarray(aug.to_float(np.rot90(img, k, axes=(0, 1))))
        )
    ks = jnp.array([0, 1, 2, 3])
    out = jax.vmap(aug.rotate90)(jnp.broadcast_to(img, (4,) + img.shape), ks)
    chex.assert_shape(out, (4, 8, 8, 3))
    with pytest.raises(ValueError, match="square"):
        aug.rotate90(_rgb_u8(0, 8, 6), 1)


# --------------------------------------------------------------------------- #
# Bad inputs
# --------------------------------------------------------------------------- #

ALL_IMAGE_FNS = dict(
    RANDOM_FNS,
    to_float=lambda k, x: aug.to_float(x),
    rotate90=lambda k, x: aug.rotate90(x, 1),
)


@pytest.mark.parametrize("name", sorted(ALL_IMAGE_FNS))
@pytest.mark.parametrize(
    "bad,pattern",
    [
        (np.zeros((2, H, W, 3), np.uint8), r"rank 3.*\(2, 16, 16, 3\).*vmap"),
        (np.zeros((H, W, 3), np.int32), r"dtype.*uint8.*int32.*astype"),
        (np.zeros((H, W, 2), np.float32), r"C = 1.*C = 3.*\(16, 16, 2\)"),
        (np.zeros((H, W), np.float32), r"rank 3.*\(16, 16\)"),
    ],
    ids=["batch_rank4", "int32", "two_channels", "rank2"],
)
def test_bad_inputs_raise_helpful_value_error(name, bad, pattern):
    fn = ALL_IMAGE_FNS[name]
    with pytest.raises(ValueError, match=pattern) as exc:
        fn(jax.random.PRNGKey(0), bad)
    assert "`image`" in str(exc.value)


def test_bad_input_raises_at_trace_time_under_jit():
    fn = jax.jit(functools.partial(aug.random_flip, p=0.5))
    with pytest.raises(ValueError, match="vmap"):
        fn(jax.random.PRNGKey(0), jnp.zeros((4, H, W, 3)))


def test_channels_first_hint_and_bad_params():
    with pytest.raises(ValueError, match="channels-first"):
        aug.to_float(np.zeros((3, 16, 16), np.uint8))
    with pytest.raises(ValueError, match="`p`"):
        aug.random_flip(jax.random.PRNGKey(0), _rgb_f(), p=1.5)
    with pytest.raises(ValueError, match="`scale`"):
        aug.sample_crop_box(jax.random.PRNGKey(0), 16, 16, scale=(0.5, 0.2))
    with pytest.raises(ValueError, match="`hue`"):
        aug.color_jitter(jax.random.PRNGKey(0), _rgb_f(), hue=0.7)
    with pytest.raises(ValueError, match="kernel_size"):
        aug.gaussian_blur(jax.random.PRNGKey(0), _rgb_f(), kernel_size=4)


def test_view_fn_identity_and_unknown_keys():
    import numpy as np
    from sslx.augment import make_view_fn
    img = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    view = make_view_fn({"crop_size": 8, "identity": True})
    np.testing.assert_allclose(view(jax.random.PRNGKey(0), img), img / 255.0, atol=1e-5)
    with pytest.raises(ValueError, match="unknown augmentation keys.*flip_prob"):
        make_view_fn({"crop_size": 8, "flip_prob": 0.5})

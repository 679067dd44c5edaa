"""Relative patch position: the patch-pair sampler (grid offsets, jitter, bounds, pixelation, colour
dropping, keys), the loss, 1 vs 4 devices, a short CPU run, configs."""
import functools
import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslx import augment
from sslx.augment import (NEIGHBOUR_OFFSETS, drop_channels, make_relative_patch_fn, resample_patch,
                          sample_relative_patch_pair)
from sslx.configs import relative_patch as rp_cfg
from sslx.losses import softmax_cross_entropy
from sslx.methods import get_method
from sslx.methods.base import example_keys
from tests.helpers import random_batch, run_steps, tiny_training


def coord_image(h, w):
    """Float image [h, w, 3] whose pixel (r, c) holds (r, c, 0): a patch's top-left pixel is its position."""
    r, c = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return jnp.asarray(np.stack([r, c, np.zeros_like(r)], -1).astype(np.float32))


def tiny_rp_config(**overrides):
    c = rp_cfg.get_config("digits")
    c.model.encoder_kwargs = {"features": (4, 8), "strides": (1, 1)}
    c.method.head_hidden = (8,)
    return tiny_training(c, **overrides)


# --------------------------------------------------------------------------- sampler

def test_neighbour_at_grid_offset_for_each_label():
    img = coord_image(20, 23)
    patch, gap = 4, 2
    fn = jax.jit(lambda k, lab: sample_relative_patch_pair(k, img, patch, gap, 0, label=lab))
    offsets = set()
    for label in range(8):
        for seed in range(3):
            pair, lab, corners = fn(jax.random.PRNGKey(seed), label)
            assert int(lab) == label
            pair, corners = np.asarray(pair), np.asarray(corners)
            chex.assert_shape(pair, (2, 4, 4, 3))
            for i in range(2):  # the patches are the image at the corners (nothing clamped)
                np.testing.assert_array_equal(pair[i], np.asarray(img)[corners[i, 0]:corners[i, 0] + 4,
                                                                       corners[i, 1]:corners[i, 1] + 4])
            delta = (pair[1, 0, 0, :2] - pair[0, 0, 0, :2]).astype(int)
            np.testing.assert_array_equal(delta, NEIGHBOUR_OFFSETS[label] * (patch + gap))
            offsets.add(tuple(NEIGHBOUR_OFFSETS[label]))
    # Row-major 3x3 order without the centre: 0 up-left ... 4 right ... 7 down-right.
    assert offsets == {(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)} - {(0, 0)}
    assert tuple(NEIGHBOUR_OFFSETS[1]) == (-1, 0) and tuple(NEIGHBOUR_OFFSETS[4]) == (0, 1)


def test_jittered_patches_stay_inside_and_cover_the_jitter_range():
    h, w, patch, gap, jitter = 17, 19, 3, 1, 2
    img = coord_image(h, w)
    keys = jax.random.split(jax.random.PRNGKey(0), 400)
    pairs, labels, corners = jax.jit(jax.vmap(lambda k: sample_relative_patch_pair(k, img, patch, gap, jitter)))(keys)
    pairs, labels, corners = map(np.asarray, (pairs, labels, corners))
    assert corners.min() >= 0 and corners[..., 0].max() <= h - patch and corners[..., 1].max() <= w - patch
    np.testing.assert_array_equal(pairs[:, :, 0, 0, :2], corners)  # content = image at the corner
    assert set(labels.tolist()) == set(range(8))
    dev = corners[:, 1] - corners[:, 0] - NEIGHBOUR_OFFSETS[labels] * (patch + gap)  # jitter difference
    assert np.abs(dev).max() <= 2 * jitter and set(np.unique(dev)) == set(range(-2 * jitter, 2 * jitter + 1))
    # The grid is placed anywhere it fits: the centre patch moves over the whole allowed range.
    span = 3 * patch + 2 * gap
    assert corners[:, 0, 0].min() == patch + gap and corners[:, 0, 0].max() == h - span + patch + gap


def test_grid_geometry_errors():
    with pytest.raises(ValueError, match="needs 30 px"):
        sample_relative_patch_pair(jax.random.PRNGKey(0), jnp.zeros((28, 28, 1)), 8, 2, 1)
    with pytest.raises(ValueError, match="gap"):
        make_relative_patch_fn(4, -1, 0)
    with pytest.raises(ValueError, match="resample_min"):
        make_relative_patch_fn(4, 1, 0, resample_p=0.5, resample_min=5)
    c = rp_cfg.get_config("fashion_mnist")
    method = get_method(c, axis_name=None)
    with pytest.raises(ValueError, match="config.method.patch_size"):
        method.init(jax.random.PRNGKey(0), {"image": np.zeros((2, 20, 20, 1), np.uint8)})


def test_resample_matches_jax_image_resize():
    x = jax.random.uniform(jax.random.PRNGKey(0), (8, 8, 3))
    for s in (1, 2, 3, 5, 8):
        want = jax.image.resize(jax.image.resize(x, (s, s, 3), "linear", antialias=True), (8, 8, 3), "linear")
        np.testing.assert_allclose(np.asarray(jax.jit(resample_patch)(x, s)), np.asarray(want), atol=2e-6)
    np.testing.assert_allclose(np.asarray(resample_patch(x, 8)), np.asarray(x), atol=1e-6)  # identity
    assert float(jnp.abs(resample_patch(x, 2) - x).mean()) > 0.05  # pixelation changes the patch


def test_channel_dropping_replaces_one_or_two_channels():
    x = jax.random.uniform(jax.random.PRNGKey(1), (6, 6, 3))
    counts = []
    for k in jax.random.split(jax.random.PRNGKey(2), 60):
        out, mask = drop_channels(k, x, (1, 2), 0.01, return_mask=True)
        out, mask = np.asarray(out), np.asarray(mask)
        changed = np.array([not np.array_equal(out[..., ch], np.asarray(x)[..., ch]) for ch in range(3)])
        np.testing.assert_array_equal(changed, mask)  # exactly the dropped channels differ
        counts.append(int(mask.sum()))
        kept = np.asarray(x)[..., ~mask]
        noise = out[..., mask]
        np.testing.assert_allclose(noise.mean(), kept.mean(), atol=0.01)  # noise around the kept mean...
        assert noise.std() < 0.05 * kept.std()  # ...with ~1/100 of their spread
    assert set(counts) == {1, 2}
    with pytest.raises(ValueError, match="RGB"):
        drop_channels(jax.random.PRNGKey(0), jnp.zeros((4, 4, 1)))


def test_augmented_pairs_drop_colour_only_for_rgb():
    fn = make_relative_patch_fn(3, 1, 1, resample_p=0.0, channel_drop=True)
    rgb = jax.random.uniform(jax.random.PRNGKey(0), (13, 13, 3))
    for k in jax.random.split(jax.random.PRNGKey(3), 10):
        pair, label = fn(k, rgb)
        raw, raw_label, _ = sample_relative_patch_pair(jax.random.split(k)[0], rgb, 3, 1, 1)
        assert int(label) == int(raw_label)
        for i in range(2):
            n = sum(not np.array_equal(np.asarray(pair[i, ..., ch]), np.asarray(raw[i, ..., ch])) for ch in range(3))
            assert n in (1, 2)
    gray = rgb[..., :1]
    k = jax.random.PRNGKey(4)
    np.testing.assert_array_equal(np.asarray(fn(k, gray)[0]),
                                  np.asarray(sample_relative_patch_pair(jax.random.split(k)[0], gray, 3, 1, 1)[0]))


def test_same_keys_same_patches_and_examples_differ():
    fn = make_relative_patch_fn(3, 1, 1, resample_p=0.5, resample_min=1)
    images = jnp.asarray(random_batch(16, size=13, channels=3, seed=0)["image"])
    keys = example_keys(jax.random.PRNGKey(7), 16, None)[:, 0]
    run = jax.jit(jax.vmap(fn))
    p1, l1 = run(keys, images)
    p2, l2 = run(keys, images)
    np.testing.assert_array_equal(np.asarray(p1), np.asarray(p2))
    np.testing.assert_array_equal(np.asarray(l1), np.asarray(l2))
    assert len(set(np.asarray(l1).tolist())) > 2  # labels vary over examples
    same_image = jnp.broadcast_to(images[:1], images.shape)
    p3, _ = run(keys, same_image)  # one image, 16 keys: 16 different pairs
    flat = np.asarray(p3).reshape(16, -1)
    assert len({row.tobytes() for row in flat}) == 16
    p4, _ = run(example_keys(jax.random.PRNGKey(8), 16, None)[:, 0], images)  # another step's key
    assert not np.array_equal(np.asarray(p4), np.asarray(p1))


# --------------------------------------------------------------------------- method

def test_loss_fn_matches_independent_forward():
    from sslx.methods.image.common import build_encoder, build_head
    c = tiny_rp_config()
    method = get_method(c, axis_name=None)
    batch = random_batch(8, seed=3)
    params, state = method.init(jax.random.PRNGKey(0), batch)
    rng = jax.random.PRNGKey(5)
    loss, (new_state, metrics) = jax.jit(method.loss_fn)(params, state, batch, rng)

    fn = make_relative_patch_fn(2, 1, 0, resample_p=0.0, channel_drop=True)
    keys = example_keys(rng, 8, None)[:, 0]
    pairs, labels = jax.vmap(fn)(keys, batch["image"])
    enc, head = build_encoder(c, None), build_head(c, None, (8,), 8)

    @functools.partial(jax.jit, static_argnums=1)
    def forward(pairs, order):
        x = jnp.concatenate([pairs[:, 0], pairs[:, 1]])
        h, u1 = enc.apply({"params": params["encoder"], "batch_stats": state["encoder"]}, x, train=True,
                          mutable=["batch_stats"])
        f = jnp.concatenate([h[:8], h[8:]] if order else [h[8:], h[:8]], axis=-1)
        z, u2 = head.apply({"params": params["classifier"], "batch_stats": state["classifier"]}, f, train=True,
                           mutable=["batch_stats"])
        return z, {"encoder": u1["batch_stats"], "classifier": u2["batch_stats"]}

    z, stats = forward(pairs, True)
    logits, y = np.asarray(z, np.float64), np.asarray(labels)
    want = np.mean([np.log(np.exp(r - r.max()).sum()) + r.max() - r[t] for r, t in zip(logits, y)])
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    np.testing.assert_allclose(float(metrics["position_acc"]), np.mean(logits.argmax(1) == y))
    chex.assert_trees_all_close(new_state, stats, atol=1e-6, rtol=1e-5)
    swapped = float(softmax_cross_entropy(forward(pairs, False)[0], labels)[0])  # tower order matters
    assert abs(swapped - want) > 1e-4
    grads = jax.jit(jax.grad(lambda p: method.loss_fn(p, state, batch, rng)[0]))(params)
    for part in ("encoder", "classifier"):
        assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grads[part])) > 1e-6


def test_encode_modes():
    c = rp_cfg.get_config("fashion_mnist")
    c.model.encoder_kwargs = {"features": (4, 6), "strides": (1, 2)}
    images = random_batch(3, size=28, seed=2)["image"]
    method = get_method(c, axis_name=None)
    params, state = method.init(jax.random.PRNGKey(0), {"image": images})
    grid = np.asarray(jax.jit(method.encode)(params, state, images))
    chex.assert_shape(grid, (3, 9 * 6))
    # The grid features are the encoder on the centred 3x3 grid of 7-px patches (span 25, offset 1).
    c.method.encode = "image"
    whole = get_method(c, axis_name=None).encode
    x = np.asarray(images)
    for cell, (i, j) in enumerate([(i, j) for i in range(3) for j in range(3)]):
        r, col = 1 + 9 * i, 1 + 9 * j
        np.testing.assert_allclose(grid[:, 6 * cell:6 * cell + 6],
                                   np.asarray(whole(params, state, x[:, r:r + 7, col:col + 7])), rtol=1e-5, atol=1e-6)
    chex.assert_shape(whole(params, state, images), (3, 6))
    c.method.encode = "patches"
    with pytest.raises(ValueError, match="encode"):
        get_method(c, axis_name=None)


# --------------------------------------------------------------------------- devices

def test_four_devices_equal_one_device():
    config = tiny_rp_config()
    batches = [random_batch(8, seed=s) for s in range(2)]
    host, s1, m1 = run_steps(config, jax.devices()[:1], "jit", batches)
    _, s4, m4 = run_steps(config, jax.devices(), "jit", batches)
    for a, b in zip(m1, m4):
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=3e-6)
        np.testing.assert_allclose(a["position_acc"], b["position_acc"])
        np.testing.assert_allclose(a["grad_norm"], b["grad_norm"], rtol=1e-4)
    chex.assert_trees_all_close(s1.params, s4.params, atol=6e-5, rtol=1e-5)
    chex.assert_trees_all_close(s1.state, s4.state, atol=6e-5, rtol=1e-5)
    moved = max(jax.tree.leaves(jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), host.params, s1.params)))
    assert moved > 1e-3 and int(s4.step) == 2


def test_four_devices_equal_one_device_float64_rgb():
    # RGB 13-px images exercise pixelation and colour dropping inside the sharded step.
    with jax.enable_x64(True):
        config = tiny_rp_config(**{"model.dtype": "float64", "method.patch_size": 3, "method.patch_jitter": 1,
                                   "method.resample_p": 0.5, "method.resample_min": 1})
        batches = [random_batch(8, size=13, channels=3, seed=s) for s in range(2)]
        _, s1, m1 = run_steps(config, jax.devices()[:1], "jit", batches)
        _, s4, m4 = run_steps(config, jax.devices(), "jit", batches)
    # Step 1 is float64 from the same parameters: equal to rounding. Parameters are stored in float32
    # (model.dtype is the compute dtype), so a last-bit difference in step 1's update shows in step 2's
    # loss at ~1e-8.
    np.testing.assert_allclose(m1[0]["loss"], m4[0]["loss"], rtol=1e-12)
    np.testing.assert_allclose(m1[1]["loss"], m4[1]["loss"], rtol=3e-7)
    for a, b in zip(m1, m4):  # the gradient norm of float32 parameters is float32: 2 ulp
        np.testing.assert_allclose(a["grad_norm"], b["grad_norm"], rtol=3e-7)
    chex.assert_trees_all_close(s1.params, s4.params, atol=1e-7, rtol=1e-6)
    chex.assert_trees_all_close(s1.state, s4.state, atol=1e-7, rtol=1e-6)


# --------------------------------------------------------------------------- short run

def _write_ramp_dataset(root, n=512, size=16):
    """Images whose brightness rises down and to the right (different slopes) plus noise: the
    relative position of two patches is visible from their intensities."""
    rng = np.random.default_rng(0)
    r, c = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    for split in ("train", "test"):
        base = 20 + 9 * r + 3 * c
        imgs = base[None] + rng.integers(0, 60, (n, 1, 1)) + rng.normal(0, 4, (n, size, size))
        os.makedirs(root / "ramps", exist_ok=True)
        np.savez(root / "ramps" / f"{split}.npz", images=np.clip(imgs, 0, 255).astype(np.uint8),
                 labels=rng.integers(0, 2, n).astype(np.uint8))


def test_short_run_learns(tmp_path):
    from sslx.train.loop import train
    _write_ramp_dataset(tmp_path)
    c = rp_cfg.get_config("digits")
    c.dataset.name = "ramps"
    c.dataset.data_dir = str(tmp_path)
    c.batch_size = 64
    c.model.encoder_kwargs = {"features": (8, 16), "strides": (1, 1)}
    c.method.patch_size, c.method.patch_gap, c.method.patch_jitter = 4, 1, 1
    c.method.resample_p, c.method.resample_min = 0.5, 2
    c.method.head_hidden = (32,)
    c.optimizer.lr = 5e-3
    c.optimizer.warmup_steps = 0
    c.train.num_steps = 30
    c.train.log_every = 1
    c.train.checkpoint_every = 1000
    c.train.async_checkpoint = False
    c.eval.at_end = False
    wd = str(tmp_path / "run")
    assert train(c, wd, progress=False)["step"] == 30
    with open(os.path.join(wd, "metrics.jsonl")) as f:
        rows = [r for r in map(json.loads, f) if "loss" in r]
    losses, acc = [r["loss"] for r in rows], [r["position_acc"] for r in rows]
    assert len(losses) == 30 and all(np.isfinite(losses))
    assert np.mean(losses[:3]) > 1.8  # ~log 8 = 2.08 at the start
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.3, losses
    assert np.mean(acc[-5:]) > 0.3, acc  # chance is 0.125


# --------------------------------------------------------------------------- configs

@pytest.mark.parametrize("arg,size,channels,patch", [("digits", 8, 1, 2), ("fashion_mnist", 28, 1, 7),
                                                     ("cifar10_subset", 32, 3, 8), ("cifar10", 32, 3, 8),
                                                     ("imagenet", 400, 3, 96)])
def test_configs_build(arg, size, channels, patch):
    from sslx.train import make_optimizer
    c = rp_cfg.get_config(arg)
    assert c.method.patch_size == patch
    span = 3 * c.method.patch_size + 2 * c.method.patch_gap + 2 * c.method.patch_jitter
    assert span <= size and (c.dataset.image_size in (0, size))
    method = get_method(c, axis_name=None)
    batch = {"image": jnp.zeros((2, size, size, channels), jnp.uint8)}
    params, state = jax.eval_shape(method.init, jax.random.PRNGKey(0), batch)
    assert set(params) == {"encoder", "classifier"}
    assert jax.tree.leaves(params["classifier"])[-1].shape[-1] == 8
    feats = jax.eval_shape(method.encode, params, state, batch["image"])
    assert feats.ndim == 2 and feats.shape[0] == 2
    jax.eval_shape(jax.vmap(augment.make_relative_patch_fn(**_settings(c))), jax.random.split(jax.random.PRNGKey(0), 2),
                   batch["image"])
    tx, _ = make_optimizer(c.optimizer, 1000, c.batch_size)
    jax.eval_shape(tx.init, params)
    if arg == "imagenet":
        assert (c.method.patch_gap, c.method.patch_jitter, c.model.encoder) == (48, 7, "resnet50")
    assert rp_cfg.get_config().dataset.name == "fashion_mnist"
    with pytest.raises(ValueError, match="cifar10_subset"):
        rp_cfg.get_config("cifar")


def _settings(c):
    from sslx.methods.image.relative_patch import patch_settings
    return patch_settings(c)

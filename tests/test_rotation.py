"""Rotation prediction: the cross-entropy loss, the 4-rotation batch, block probes, 1 vs 4 devices,
a short CPU run, configs."""
import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslx import augment, models
from sslx.configs import rotation as rotation_cfg
from sslx.losses import accuracy, softmax_cross_entropy
from sslx.methods import get_method
from sslx.methods.image.rotation import rotation_batch
from tests.helpers import random_batch, run_steps, tiny_training


def tiny_rotation_config(**overrides):
    c = rotation_cfg.get_config("digits")
    c.model.encoder_kwargs = {"features": (4, 8), "strides": (1, 2)}
    return tiny_training(c, **overrides)


# --------------------------------------------------------------------------- loss

def _naive_ce(logits, labels):
    total, hits = 0.0, 0
    for row, y in zip(logits, labels):
        m = max(row)
        lse = m + np.log(sum(np.exp(v - m) for v in row))
        total += lse - row[y]
        hits += int(np.argmax(row) == y)
    return total / len(labels), hits / len(labels)


def test_cross_entropy_matches_naive_loop():
    rng = np.random.default_rng(0)
    for n, k in [(1, 4), (7, 8), (33, 4), (5, 10)]:
        logits = (3 * rng.normal(size=(n, k))).astype(np.float32)
        labels = rng.integers(0, k, n).astype(np.int32)
        loss, aux = softmax_cross_entropy(jnp.asarray(logits), jnp.asarray(labels))
        want_loss, want_acc = _naive_ce(logits.astype(np.float64), labels)
        np.testing.assert_allclose(float(loss), want_loss, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(float(aux["accuracy"]), want_acc, atol=1e-7)
        np.testing.assert_allclose(float(accuracy(jnp.asarray(logits), jnp.asarray(labels))), want_acc, atol=1e-7)


def test_cross_entropy_hand_values_and_gradient():
    for k in (4, 8):
        loss, aux = softmax_cross_entropy(jnp.zeros((6, k)), jnp.arange(6, dtype=jnp.int32) % k)
        np.testing.assert_allclose(float(loss), np.log(k), rtol=1e-6)  # uniform logits: log K
    # Two classes with logits (0, log 3): p = (1/4, 3/4). Label 0 -> log 4, label 1 -> log(4/3).
    logits = jnp.array([[0.0, np.log(3.0)], [0.0, np.log(3.0)]])
    loss, aux = softmax_cross_entropy(logits, jnp.array([0, 1]))
    np.testing.assert_allclose(float(loss), (np.log(4.0) + np.log(4.0 / 3.0)) / 2, rtol=1e-6)
    assert float(aux["accuracy"]) == 0.5
    # d loss / d logits = (softmax - onehot) / N.
    g = jax.grad(lambda z: softmax_cross_entropy(z, jnp.array([0, 1]))[0])(logits)
    np.testing.assert_allclose(np.asarray(g), np.array([[0.25 - 1, 0.75], [0.25, 0.75 - 1]]) / 2, atol=1e-6)
    # Large logits stay finite (log-sum-exp).
    loss, _ = softmax_cross_entropy(jnp.array([[1000.0, 0.0, -1000.0, 0.0]]), jnp.array([1]))
    np.testing.assert_allclose(float(loss), 1000.0, rtol=1e-6)


def test_cross_entropy_bad_inputs():
    with pytest.raises(ValueError, match="integer"):
        softmax_cross_entropy(jnp.zeros((3, 4)), jnp.zeros((3,), jnp.float32))
    with pytest.raises(ValueError, match="same number of rows"):
        softmax_cross_entropy(jnp.zeros((3, 4)), jnp.zeros((2,), jnp.int32))
    with pytest.raises(AssertionError):
        softmax_cross_entropy(jnp.zeros((3,)), jnp.zeros((3,), jnp.int32))


# --------------------------------------------------------------------------- rotation batch

def test_rotation_batch_is_exact_rotations():
    imgs = np.random.default_rng(0).integers(0, 256, (3, 5, 5, 3)).astype(np.uint8)
    x, labels = jax.jit(rotation_batch)(jnp.asarray(imgs))
    chex.assert_shape(x, (12, 5, 5, 3))
    assert x.dtype == jnp.uint8
    np.testing.assert_array_equal(np.asarray(labels), np.tile(np.arange(4), 3))
    for i in range(3):
        for r in range(4):
            np.testing.assert_array_equal(np.asarray(x[4 * i + r]), np.rot90(imgs[i], r, axes=(0, 1)))
            np.testing.assert_allclose(np.asarray(x[4 * i + r]) / 255.0,
                                       np.asarray(augment.rotate90(imgs[i], r)), atol=1e-7)
    # 90 degrees counter-clockwise: the top row becomes the left column, read bottom-up.
    np.testing.assert_array_equal(np.asarray(x[1])[::-1, 0], imgs[0][0, :])
    with pytest.raises(ValueError, match="square"):
        rotation_batch(jnp.zeros((2, 4, 6, 1)))
    with pytest.raises(ValueError, match=r"\[B, H, W, C\]"):
        rotation_batch(jnp.zeros((4, 4, 1)))


# --------------------------------------------------------------------------- method

def test_loss_fn_matches_independent_forward():
    from sslx.methods.base import example_keys
    from sslx.methods.image.common import build_encoder, build_head
    c = tiny_rotation_config(**{"method.head_hidden": (6,)})
    method = get_method(c, axis_name=None)
    batch = random_batch(8, seed=3)
    params, state = method.init(jax.random.PRNGKey(0), batch)
    rng = jax.random.PRNGKey(5)
    loss, (new_state, metrics) = jax.jit(method.loss_fn)(params, state, batch, rng)

    view_fn = augment.make_view_fn(c.augment)
    keys = example_keys(rng, 8, None, num=1)
    views = np.asarray(jax.vmap(view_fn)(keys[:, 0], batch["image"]))
    x = np.stack([np.rot90(v, r, axes=(0, 1)) for v in views for r in range(4)])
    y = np.tile(np.arange(4), 8)
    enc, head = build_encoder(c, None), build_head(c, None, (6,), 4)
    @jax.jit
    def forward(x):
        h, u1 = enc.apply({"params": params["encoder"], "batch_stats": state["encoder"]}, x, train=True,
                          mutable=["batch_stats"])
        z, u2 = head.apply({"params": params["classifier"], "batch_stats": state["classifier"]}, h, train=True,
                           mutable=["batch_stats"])
        return z, u1, u2

    z, u1, u2 = forward(jnp.asarray(x))
    want, want_acc = _naive_ce(np.asarray(z, np.float64), y)
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    np.testing.assert_allclose(float(metrics["rotation_acc"]), want_acc)
    chex.assert_trees_all_close(new_state, {"encoder": u1["batch_stats"], "classifier": u2["batch_stats"]},
                                atol=1e-6, rtol=1e-5)
    # The check can fail: shuffled labels give another loss.
    assert abs(_naive_ce(np.asarray(z, np.float64), (y + 1) % 4)[0] - want) > 1e-3
    grads = jax.jit(jax.grad(lambda p: method.loss_fn(p, state, batch, rng)[0]))(params)
    for part in ("encoder", "classifier"):
        assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grads[part])) > 1e-6


def test_encode_probe_block_is_pooled_intermediate_layer():
    c = tiny_rotation_config()
    batch = random_batch(4, seed=1)
    params, state = get_method(c, axis_name=None).init(jax.random.PRNGKey(0), batch)
    x = jnp.asarray(batch["image"], jnp.float32) / 255.0
    enc = models.SmallConvNet(features=(4, 8), strides=(1, 2))
    v = {"params": params["encoder"], "batch_stats": state["encoder"]}
    # Independent of return_blocks: flax's captured BatchNorm outputs (pre-ReLU).
    _, inter = enc.apply(v, x, train=False, capture_intermediates=True, mutable=["intermediates"])
    bn = [np.asarray(inter["intermediates"][f"BatchNorm_{i}"]["__call__"][0]) for i in range(2)]
    for k, want in ((1, bn[0]), (2, bn[1]), (0, bn[1])):
        c.method.probe_block = k
        got = jax.jit(get_method(c, axis_name=None).encode)(params, state, batch["image"])
        np.testing.assert_allclose(np.asarray(got), np.maximum(want, 0).mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    assert bn[0].shape[-1] == 4 and bn[1].shape[1:] == (4, 4, 8)
    c.method.probe_block = 3
    with pytest.raises(ValueError, match="probe_block=3.*2 blocks"):
        get_method(c, axis_name=None).init(jax.random.PRNGKey(0), batch)
    c.method.probe_block = -1
    with pytest.raises(ValueError, match="probe_block"):
        get_method(c, axis_name=None)


def test_resnet_return_blocks():
    m = models.ResNet(stage_sizes=(1, 1, 1), block=models.resnet.BasicBlock, stem="cifar", width=4)
    x = jax.random.uniform(jax.random.PRNGKey(0), (2, 8, 8, 3))
    v = jax.jit(lambda: m.init(jax.random.PRNGKey(1), x, train=False))()
    pooled, blocks, plain = jax.jit(lambda v: m.apply(v, x, train=False, return_blocks=True)
                                    + (m.apply(v, x, train=False),))(v)
    assert [b.shape for b in blocks] == [(2, 8, 8, 4), (2, 4, 4, 8), (2, 2, 2, 16)]  # one per stage
    np.testing.assert_allclose(np.asarray(pooled), np.asarray(plain), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(pooled), np.asarray(blocks[-1]).mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- devices

def test_four_devices_equal_one_device():
    config = tiny_rotation_config(**{"method.head_hidden": (8,)})
    batches = [random_batch(8, seed=s) for s in range(2)]
    host, s1, m1 = run_steps(config, jax.devices()[:1], "jit", batches)
    _, s4, m4 = run_steps(config, jax.devices(), "jit", batches)
    for a, b in zip(m1, m4):
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=3e-6)
        np.testing.assert_allclose(a["rotation_acc"], b["rotation_acc"])
        np.testing.assert_allclose(a["grad_norm"], b["grad_norm"], rtol=1e-4)
    chex.assert_trees_all_close(s1.params, s4.params, atol=6e-5, rtol=1e-5)
    chex.assert_trees_all_close(s1.state, s4.state, atol=6e-5, rtol=1e-5)  # BN statistics over 4 x 8 images
    moved = max(jax.tree.leaves(jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), host.params, s1.params)))
    assert moved > 1e-3 and int(s4.step) == 2


def test_four_devices_equal_one_device_float64():
    with jax.enable_x64(True):
        config = tiny_rotation_config(**{"model.dtype": "float64"})
        batches = [random_batch(8, seed=s) for s in range(2)]
        _, s1, m1 = run_steps(config, jax.devices()[:1], "jit", batches)
        _, s4, m4 = run_steps(config, jax.devices(), "jit", batches)
    for a, b in zip(m1, m4):
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-8)
        np.testing.assert_allclose(a["grad_norm"], b["grad_norm"], rtol=1e-7)
    chex.assert_trees_all_close(s1.params, s4.params, atol=1e-7, rtol=1e-6)
    chex.assert_trees_all_close(s1.state, s4.state, atol=1e-7, rtol=1e-6)


# --------------------------------------------------------------------------- short run

def test_digits_short_run_learns(tmp_path):
    from sslx.train.loop import train
    c = rotation_cfg.get_config("digits")
    c.batch_size = 64
    c.model.encoder_kwargs = {"features": (16, 32), "strides": (1, 2)}
    c.train.num_steps = 30
    c.train.log_every = 1
    c.train.checkpoint_every = 1000
    c.train.async_checkpoint = False
    c.eval.at_end = False
    wd = str(tmp_path / "run")
    out = train(c, wd, progress=False)
    assert out["step"] == 30
    with open(os.path.join(wd, "metrics.jsonl")) as f:
        rows = [r for r in map(json.loads, f) if "loss" in r]
    losses = [r["loss"] for r in rows]
    acc = [r["rotation_acc"] for r in rows]
    assert len(losses) == 30 and all(np.isfinite(losses))
    assert np.mean(losses[:3]) > 1.3  # ~log 4 at the start
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.2, losses
    assert np.mean(acc[-5:]) > 0.5, acc  # well above chance (0.25)


# --------------------------------------------------------------------------- configs

@pytest.mark.parametrize("arg,size,channels", [("digits", 8, 1), ("fashion_mnist", 28, 1), ("cifar10_subset", 32, 3),
                                               ("cifar10", 32, 3), ("imagenet", 256, 3)])
def test_configs_build(arg, size, channels):
    from sslx.train import make_optimizer
    c = rotation_cfg.get_config(arg)
    method = get_method(c, axis_name=None)
    batch = {"image": jnp.zeros((2, size, size, channels), jnp.uint8)}
    params, state = jax.eval_shape(method.init, jax.random.PRNGKey(0), batch)
    assert set(params) == {"encoder", "classifier"}
    assert jax.tree.leaves(params["classifier"])[-1].shape[-1] == 4  # 4-way rotation classifier
    feats = jax.eval_shape(method.encode, params, state, batch["image"])
    assert feats.ndim == 2 and feats.shape[0] == 2
    tx, _ = make_optimizer(c.optimizer, 1000, c.batch_size)
    jax.eval_shape(tx.init, params)
    if arg == "cifar10":
        assert (c.optimizer.name, c.optimizer.lr, c.optimizer.momentum, c.optimizer.weight_decay, c.batch_size) == \
            ("sgd", 0.1, 0.9, 5e-4, 128)
        assert feats.shape[1] == 128  # probe_block=2: ResNet-18's 2nd stage (128 channels)
    if arg == "imagenet":
        assert c.model.encoder == "resnet50"
    assert rotation_cfg.get_config().dataset.name == "fashion_mnist"
    with pytest.raises(ValueError, match="fashion_mnist"):
        rotation_cfg.get_config("fashion")

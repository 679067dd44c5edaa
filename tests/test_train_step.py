"""The compiled step: jit+shard_map vs pmap, 1 device vs 4, optimiser behaviour."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sslx.methods import get_method
from sslx.train import ParallelStep, make_optimizer, make_step_fn, decay_mask
from tests.helpers import random_batch, run_steps, tiny_simclr_config


@pytest.fixture(scope="module")
def results():
    config = tiny_simclr_config()
    batches = [random_batch(8, seed=s) for s in range(2)]
    devs = jax.devices()
    assert len(devs) == 4
    out = {key: run_steps(config, d, mode, batches) for key, (d, mode) in {
        "jit1": (devs[:1], "jit"), "jit4": (devs, "jit"), "pmap4": (devs, "pmap")}.items()}
    nosync = tiny_simclr_config()
    nosync.model.sync_bn = False
    out["jit4_nosync"] = run_steps(nosync, devs, "jit", batches)
    return out


def _assert_same(a, b, tol=1e-6):
    chex.assert_trees_all_close(a, b, atol=tol, rtol=1e-5)


def test_jit_and_pmap_agree(results):
    _, s_jit, m_jit = results["jit4"]
    _, s_pmap, m_pmap = results["pmap4"]
    for a, b in zip(m_jit, m_pmap):
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-6)
    _assert_same(s_jit.params, s_pmap.params)
    _assert_same(s_jit.state, s_pmap.state)
    assert int(s_jit.step) == int(s_pmap.step) == 2


def test_four_devices_equal_one_device(results):
    host, s1, m1 = results["jit1"]
    _, s4, m4 = results["jit4"]
    for a, b in zip(m1, m4):
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=3e-6)  # float32 summation order
        # float32 sums in a different order (and BN E[x^2]-E[x]^2 cancellation) give ~1e-5 noise.
        np.testing.assert_allclose(a["grad_norm"], b["grad_norm"], rtol=1e-4)
    # Plain SGD (lr 0.5, no momentum/decay): the parameter change is the gradient, so this
    # compares the global-batch gradients of both steps. Float32 reduction order differs
    # between 1 and 4 devices (up to ~3e-5 here after two lr-0.5 steps through BatchNorm);
    # the float64 test below shows the agreement is exact up to rounding. An unsynced BN
    # moves parameters by >1e-4 (test below), a psum-instead-of-pmean by 4x.
    _assert_same(s1.params, s4.params, tol=6e-5)
    _assert_same(s1.state, s4.state, tol=6e-5)  # BatchNorm running statistics synced across devices
    moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), host.params, s1.params)
    assert max(jax.tree.leaves(moved)) > 1e-3


def test_four_devices_equal_one_device_float64():
    # With float64 compute the reduction-order noise vanishes and the global-batch gradients of
    # 1 and 4 devices agree to float32 rounding of the parameters.
    with jax.enable_x64(True):
        config = tiny_simclr_config(**{"model.dtype": "float64"})
        batches = [random_batch(8, seed=s) for s in range(2)]
        host, s1, m1 = run_steps(config, jax.devices()[:1], "jit", batches)
        _, s4, m4 = run_steps(config, jax.devices(), "jit", batches)
    for a, b in zip(m1, m4):
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-8)  # params are float32
        np.testing.assert_allclose(a["grad_norm"], b["grad_norm"], rtol=1e-7)
    chex.assert_trees_all_close(s1.params, s4.params, atol=1e-7, rtol=1e-6)
    chex.assert_trees_all_close(s1.state, s4.state, atol=1e-7, rtol=1e-6)


def test_unsynced_batchnorm_is_detected(results):
    # The equality test above can fail: per-device BN statistics change the numbers.
    _, s1, m1 = results["jit1"]
    _, s4n, m4n = results["jit4_nosync"]
    assert abs(float(m1[0]["loss"]) - float(m4n[0]["loss"])) > 1e-4
    diff = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), s1.params, s4n.params)
    assert max(jax.tree.leaves(diff)) > 1e-4


def test_batch_not_divisible_by_devices():
    config = tiny_simclr_config()
    method = get_method(config)
    tx, _ = make_optimizer(config.optimizer, 10, 6)
    runner = ParallelStep(make_step_fn(method, tx), devices=jax.devices())
    with pytest.raises(ValueError, match="not divisible by the 4 devices"):
        runner.put_batch(random_batch(6))


def test_unknown_parallel_mode():
    with pytest.raises(ValueError, match="'jit' or 'pmap'"):
        ParallelStep(lambda s, b: (s, {}), mode="xmap")


def test_decay_mask_skips_biases_and_norm_scales():
    params = {"conv": {"kernel": jnp.ones((3, 3, 1, 4)), "bias": jnp.ones(4)}, "bn": {"scale": jnp.ones(4)}}
    assert decay_mask(params) == {"conv": {"kernel": True, "bias": False}, "bn": {"scale": False}}


def test_warmup_cosine_schedule_and_optimizers():
    cfg = tiny_simclr_config().optimizer
    cfg.schedule, cfg.warmup_steps, cfg.lr, cfg.lr_batch_scaling = "warmup_cosine", 10, 0.3, True
    _, sched = make_optimizer(cfg, 110, 512)
    peak = 0.3 * 512 / 256
    np.testing.assert_allclose(float(sched(0)), 0.0, atol=1e-8)
    np.testing.assert_allclose(float(sched(5)), peak / 2, rtol=1e-6)
    np.testing.assert_allclose(float(sched(10)), peak, rtol=1e-6)
    np.testing.assert_allclose(float(sched(60)), peak * 0.5 * (1 + np.cos(np.pi * 0.5)), rtol=1e-5)
    for name in ("sgd", "adamw", "lars"):
        cfg.name = name
        tx, _ = make_optimizer(cfg, 110, 512)
        p = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
        u, _ = tx.update(jax.tree.map(jnp.ones_like, p), tx.init(p), p)
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(u))
    cfg.name = "adagrad"
    with pytest.raises(ValueError, match="adagrad"):
        make_optimizer(cfg, 10, 8)


def test_gradient_accumulation_matches_big_batch():
    # Two micro-steps of 4 with accum_steps=2 equal one SGD step on the mean gradient.
    cfg = tiny_simclr_config().optimizer
    cfg.accum_steps = 2
    tx, _ = make_optimizer(cfg, 10, 8)
    p = {"w": jnp.array([1.0, 2.0])}
    s = tx.init(p)
    g1, g2 = {"w": jnp.array([1.0, 0.0])}, {"w": jnp.array([0.0, 3.0])}
    u1, s = tx.update(g1, s, p)
    p1 = optax.apply_updates(p, u1)
    np.testing.assert_allclose(p1["w"], p["w"])  # no update on the first micro-step
    u2, s = tx.update(g2, s, p1)
    p2 = optax.apply_updates(p1, u2)
    np.testing.assert_allclose(p2["w"], p["w"] - 0.5 * np.array([0.5, 1.5]), rtol=1e-6)


def test_step_schedule_moco_v1():
    from sslx.configs import moco
    c = moco.get_config("imagenet_v1")
    _, sched = make_optimizer(c.optimizer, 200, c.batch_size)  # 200 "epochs" of 1 step
    for step, want in [(0, 0.03), (119, 0.03), (120, 0.003), (159, 0.003), (160, 0.0003), (199, 0.0003)]:
        np.testing.assert_allclose(float(sched(step)), want, rtol=1e-6)
    # With warmup: linear to the peak, then the same boundaries (fractions of the run).
    cfg = tiny_simclr_config().optimizer
    cfg.schedule, cfg.lr, cfg.warmup_steps, cfg.decay_boundaries, cfg.decay_factor = "step", 1.0, 10, (0.5,), 0.5
    _, sched = make_optimizer(cfg, 100, 8)
    np.testing.assert_allclose([float(sched(s)) for s in (0, 5, 10, 49, 50, 99)], [0, 0.5, 1, 1, 0.5, 0.5],
                               rtol=1e-6)
    cfg.decay_boundaries = (0.8, 0.5)
    with pytest.raises(ValueError, match="decay_boundaries"):
        make_optimizer(cfg, 100, 8)
    assert moco.get_config("imagenet_v2").optimizer.schedule == "warmup_cosine"

"""BYOL: the normalised-MSE loss, the EMA schedule and update, 1 vs 4 devices, a short CPU run."""
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslx.checkpoint import Checkpointer
from sslx.configs import byol as byol_cfg
from sslx.losses import byol_loss
from sslx.methods import get_method
from sslx.methods.image.byol import ema_rate
from tests.helpers import assert_learns, random_batch, run_steps, short_run, tiny_training


def tiny_byol_config(**overrides):
    """BYOL on 8x8 grayscale images with a 2-layer convnet (as tests.helpers.tiny_simclr_config)."""
    c = byol_cfg.get_config("digits")
    c.batch_size = 8
    c.model.encoder_kwargs = {"features": (4, 8)}
    c.model.proj_hidden = (8,)
    c.model.proj_dim = 4
    c.model.pred_hidden = (8,)
    c.method.tau_base = 0.9  # a fast target so the EMA visibly matters in two steps
    return tiny_training(c, **overrides)


# --------------------------------------------------------------------------- loss

def _naive_loss(p, z):
    total = 0.0
    for i in range(p.shape[0]):
        cos = np.dot(p[i], z[i]) / (np.linalg.norm(p[i]) * np.linalg.norm(z[i]))
        total += 2.0 - 2.0 * cos
    return total / p.shape[0]


def test_loss_matches_naive_loop():
    rng = np.random.default_rng(0)
    for b, d in [(1, 3), (7, 5), (16, 32)]:
        p = rng.normal(size=(b, d)).astype(np.float32)
        z = rng.normal(size=(b, d)).astype(np.float32)
        np.testing.assert_allclose(float(byol_loss(jnp.asarray(p), jnp.asarray(z))),
                                   _naive_loss(p.astype(np.float64), z.astype(np.float64)), rtol=1e-5, atol=1e-6)


def test_loss_hand_values_and_scale_invariance():
    e1, e2 = jnp.array([[1.0, 0.0, 0.0]]), jnp.array([[0.0, 1.0, 0.0]])
    np.testing.assert_allclose(float(byol_loss(e1, 3.0 * e1)), 0.0, atol=1e-6)   # identical directions
    np.testing.assert_allclose(float(byol_loss(e1, -2.0 * e1)), 4.0, atol=1e-6)  # opposite
    np.testing.assert_allclose(float(byol_loss(e1, e2)), 2.0, atol=1e-6)         # orthogonal
    # Mixed batch: the mean of the per-row values.
    np.testing.assert_allclose(float(byol_loss(jnp.concatenate([e1, e1, e1]), jnp.concatenate([e1, -e1, e2]))),
                               2.0, atol=1e-6)
    rng = np.random.default_rng(1)
    p, z = jnp.asarray(rng.normal(size=(6, 4))), jnp.asarray(rng.normal(size=(6, 4)))
    scales = jnp.asarray(rng.uniform(0.1, 10.0, size=(6, 1)))
    ref = float(byol_loss(p, z))
    np.testing.assert_allclose(float(byol_loss(p * scales, z)), ref, rtol=1e-5)
    np.testing.assert_allclose(float(byol_loss(p, 7.0 * z / scales)), ref, rtol=1e-5)


def test_no_gradient_into_target():
    rng = np.random.default_rng(2)
    p, z = jnp.asarray(rng.normal(size=(5, 4))), jnp.asarray(rng.normal(size=(5, 4)))
    gz = jax.grad(byol_loss, argnums=1)(p, z)
    gp = jax.grad(byol_loss, argnums=0)(p, z)
    np.testing.assert_array_equal(np.asarray(gz), 0.0)
    assert float(jnp.max(jnp.abs(gp))) > 1e-3
    # The online gradient is orthogonal to p (scale invariance) and matches finite differences.
    np.testing.assert_allclose(np.asarray(jnp.sum(gp * p, axis=-1)), 0.0, atol=1e-5)
    eps, d = 1e-3, jnp.zeros_like(p).at[2, 1].set(1.0)
    fd = (float(byol_loss(p + eps * d, z)) - float(byol_loss(p - eps * d, z))) / (2 * eps)
    np.testing.assert_allclose(float(gp[2, 1]), fd, rtol=1e-3, atol=1e-5)


def test_loss_rejects_mismatched_shapes():
    with pytest.raises(AssertionError):
        byol_loss(jnp.ones((4, 3)), jnp.ones((4, 2)))


# --------------------------------------------------------------------------- EMA

def test_tau_schedule():
    K, base = 100, 0.996
    np.testing.assert_allclose(float(ema_rate(0, K, base)), base, rtol=1e-7)
    np.testing.assert_allclose(float(ema_rate(K, K, base)), 1.0, rtol=1e-7)
    np.testing.assert_allclose(float(ema_rate(K // 2, K, base)), 1 - (1 - base) / 2, rtol=1e-7)
    for k in (1, 17, 73, 99):
        want = 1 - (1 - base) * (np.cos(np.pi * k / K) + 1) / 2
        np.testing.assert_allclose(float(ema_rate(k, K, base)), want, rtol=1e-6)
    taus = np.array([float(ema_rate(k, K, base)) for k in range(K + 1)])
    assert np.all(np.diff(taus) >= 0)
    np.testing.assert_allclose(float(ema_rate(2 * K, K, base)), 1.0)  # clipped past the end
    np.testing.assert_allclose(float(jax.jit(lambda k: ema_rate(k, K, 0.99))(jnp.int32(25))),
                               1 - 0.01 * (np.cos(np.pi / 4) + 1) / 2, rtol=1e-6)


def test_missing_total_steps_is_a_clear_error():
    c = tiny_byol_config(**{"train.num_steps": 0})
    method = get_method(c, axis_name=None, total_steps=None)
    params, state = method.init(jax.random.PRNGKey(0), random_batch(2))
    method.encode(params, state, random_batch(2)["image"])  # encoding needs no schedule
    with pytest.raises(ValueError, match="total_steps"):
        method.after_update(params, state, jnp.int32(0))
    with pytest.raises(ValueError, match="total_steps"):
        ema_rate(0, 0)


def test_after_update_is_the_ema_of_online_params():
    c = tiny_byol_config(**{"method.tau_base": 0.99})
    K = 10
    method = get_method(c, axis_name=None, total_steps=K)
    params, state = method.init(jax.random.PRNGKey(0), random_batch(2))
    # Target starts as a copy of the online encoder + projector.
    chex.assert_trees_all_equal(state["target"]["params"], {"encoder": params["encoder"],
                                                            "projector": params["projector"]})
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
    online = jax.tree.unflatten(treedef, [x + jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])
    online_stats = jax.tree.map(lambda x: x + 0.5, state["online"])
    state = {"online": online_stats, "target": state["target"]}
    step = 3
    new = jax.jit(method.after_update)(online, state, jnp.int32(step))
    tau = np.float32(1 - 0.01 * (np.cos(np.pi * step / K) + 1) / 2)
    want = jax.tree.map(lambda t, o: tau * np.asarray(t) + (np.float32(1) - tau) * np.asarray(o),
                        state["target"]["params"], {"encoder": online["encoder"], "projector": online["projector"]})
    chex.assert_trees_all_close(new["target"]["params"], want, atol=0, rtol=2e-7)
    # Target BN statistics are a copy of the online ones; online stats and params untouched.
    chex.assert_trees_all_equal(new["target"]["batch_stats"], {"encoder": online_stats["encoder"],
                                                               "projector": online_stats["projector"]})
    chex.assert_trees_all_equal(new["online"], online_stats)
    # Not the degenerate updates: moved off the old target, but not onto the online params.
    d_old = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), new["target"]["params"],
                         state["target"]["params"])
    d_on = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), new["target"]["params"],
                        {"encoder": online["encoder"], "projector": online["projector"]})
    assert min(jax.tree.leaves(d_old)) > 1e-3 and min(jax.tree.leaves(d_on)) > 0.5


# --------------------------------------------------------------------------- loss_fn

def test_loss_fn_matches_independent_forward():
    """Symmetric loss, per-view train-mode BN in both networks, target from the state, no target grad."""
    from sslx.methods.base import example_keys
    from sslx.methods.image.byol import make_view_fns
    from sslx.methods.image.common import build_encoder, build_head

    c = tiny_byol_config()
    method = get_method(c, axis_name=None, total_steps=4)
    batch = random_batch(8, seed=3)
    params, state = method.init(jax.random.PRNGKey(0), batch)
    # A target distinct from the online network (as after some training).
    noisy = jax.tree.map(lambda x: x + 0.3 * jnp.sin(jnp.arange(x.size, dtype=x.dtype).reshape(x.shape) + 1.0),
                         state["target"]["params"])
    state = {"online": state["online"], "target": {**state["target"], "params": noisy}}
    rng = jax.random.PRNGKey(7)
    loss, (new_state, metrics) = jax.jit(method.loss_fn)(params, state, batch, rng)

    enc, proj = build_encoder(c, None), build_head(c, None, c.model.proj_hidden, c.model.proj_dim)
    pred = build_head(c, None, c.model.pred_hidden, c.model.proj_dim)
    keys = example_keys(rng, 8, None, num=2)
    views = [jax.vmap(fn)(keys[:, i], batch["image"]) for i, fn in enumerate(make_view_fns(c))]

    def run(mod, p, st, x, train):
        if train:
            return mod.apply({"params": p, "batch_stats": st}, x, train=True, mutable=["batch_stats"])
        return mod.apply({"params": p, "batch_stats": st}, x, train=False), {"batch_stats": st}

    def target(v, train=True):
        tp, ts = state["target"]["params"], state["target"]["batch_stats"]
        h, _ = run(enc, tp["encoder"], ts["encoder"], v, train)
        return np.asarray(run(proj, tp["projector"], ts["projector"], h, train)[0], np.float64)

    stats, preds = state["online"], []
    for v in views:
        h, u1 = run(enc, params["encoder"], stats["encoder"], v, True)
        z, u2 = run(proj, params["projector"], stats["projector"], h, True)
        q, u3 = run(pred, params["predictor"], stats["predictor"], z, True)
        stats = {"encoder": u1["batch_stats"], "projector": u2["batch_stats"], "predictor": u3["batch_stats"]}
        preds.append(np.asarray(q, np.float64))
    want = _naive_loss(preds[0], target(views[1])) + _naive_loss(preds[1], target(views[0]))
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    chex.assert_trees_all_close(new_state["online"], stats, atol=1e-6, rtol=1e-5)  # BN stats after both views
    chex.assert_trees_all_equal(new_state["target"], state["target"])  # the EMA happens in after_update
    assert -1.0 <= float(metrics["pred_target_cos"]) <= 1.0
    # The check can fail: an eval-mode target (running statistics) gives another loss.
    wrong = _naive_loss(preds[0], target(views[1], False)) + _naive_loss(preds[1], target(views[0], False))
    assert abs(wrong - want) > 1e-3
    # Gradients reach the online predictor, projector and encoder, and never the state.
    grad_fn = jax.grad(lambda p, s: method.loss_fn(p, s, batch, rng)[0], argnums=(0, 1))
    g_params, g_state = jax.jit(grad_fn)(params, state)
    for part in ("encoder", "projector", "predictor"):
        assert max(float(jnp.max(jnp.abs(x))) for x in jax.tree.leaves(g_params[part])) > 1e-6
    assert all(float(jnp.max(jnp.abs(x))) == 0.0 for x in jax.tree.leaves(g_state["target"]["params"]))


# --------------------------------------------------------------------------- devices

@pytest.fixture(scope="module")
def device_results():
    config = tiny_byol_config()
    batches = [random_batch(8, seed=s) for s in range(2)]
    devs = jax.devices()
    assert len(devs) == 4
    return {"jit1": run_steps(config, devs[:1], "jit", batches),
            "jit4": run_steps(config, devs, "jit", batches)}


def _max_diff(a, b):
    return max(jax.tree.leaves(jax.tree.map(lambda x, y: float(jnp.max(jnp.abs(x - y))), a, b)))


def test_byol_four_devices_equal_one_device(device_results):
    host, s1, m1 = device_results["jit1"]
    _, s4, m4 = device_results["jit4"]
    for a, b in zip(m1, m4):
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=3e-6)
        np.testing.assert_allclose(a["grad_norm"], b["grad_norm"], rtol=1e-4)
    # Same float32 reduction-order tolerances as tests/test_train_step.py (float64 test below).
    chex.assert_trees_all_close(s1.params, s4.params, atol=6e-5, rtol=1e-5)
    chex.assert_trees_all_close(s1.state, s4.state, atol=6e-5, rtol=1e-5)  # target EMA + BN stats
    # The test can fail: training moved params, the target followed by EMA, BN stats changed.
    assert _max_diff(host.params, s1.params) > 1e-3
    assert _max_diff(host.state["target"]["params"], s1.state["target"]["params"]) > 1e-4
    assert _max_diff(host.state["online"], s1.state["online"]) > 1e-3
    online = {"encoder": s1.params["encoder"], "projector": s1.params["projector"]}
    assert _max_diff(online, s1.state["target"]["params"]) > 1e-4
    assert int(s1.step) == int(s4.step) == 2


def test_byol_four_devices_equal_one_device_float64():
    with jax.enable_x64(True):
        config = tiny_byol_config(**{"model.dtype": "float64"})
        batches = [random_batch(8, seed=s) for s in range(2)]
        _, s1, m1 = run_steps(config, jax.devices()[:1], "jit", batches)
        _, s4, m4 = run_steps(config, jax.devices(), "jit", batches)
    # Step 1 is float64 from the same parameters: equal to rounding. Parameters are stored in float32
    # (model.dtype is the compute dtype), so a last-bit difference in step 1's update shows in step 2's
    # loss at ~1e-8 (as in tests/test_relative_patch.py).
    np.testing.assert_allclose(m1[0]["loss"], m4[0]["loss"], rtol=1e-12)
    np.testing.assert_allclose(m1[1]["loss"], m4[1]["loss"], rtol=1e-7)
    for a, b in zip(m1, m4):
        np.testing.assert_allclose(a["grad_norm"], b["grad_norm"], rtol=1e-7)
    chex.assert_trees_all_close(s1.params, s4.params, atol=1e-7, rtol=1e-6)
    chex.assert_trees_all_close(s1.state, s4.state, atol=1e-7, rtol=1e-6)


def test_unsynced_batchnorm_changes_byol():
    # The equality above depends on synced BN in the online *and* target networks.
    config = tiny_byol_config()
    config.model.sync_bn = False
    batches = [random_batch(8, seed=0)]
    _, _, m4 = run_steps(config, jax.devices(), "jit", batches)
    _, _, m1 = run_steps(tiny_byol_config(), jax.devices()[:1], "jit", batches)
    assert abs(float(m1[0]["loss"]) - float(m4[0]["loss"])) > 1e-4


# --------------------------------------------------------------------------- short run

def test_byol_digits_short_run_learns(tmp_path):
    from sslx.train.loop import build, load_split
    c = byol_cfg.get_config("digits")
    c.batch_size = 128
    c.model.encoder_kwargs = {"features": (16, 32, 64), "strides": (1, 2, 1)}
    wd, rows = short_run(c, tmp_path)
    assert_learns(rows)
    # The target moved off its initial value and stays distinct from the online network.
    train_ds = load_split(c, c.dataset.train_split)
    _, _, init, _ = build(c, len(train_ds), train_ds[np.arange(2)])
    final, _ = Checkpointer(os.path.join(wd, "checkpoints")).restore(init)
    assert int(final.step) == 30
    # (tau ~0.99 over 30 steps: the target moves ~1e-3, lagging well behind the online weights.)
    target_moved = _max_diff(init.state["target"]["params"], final.state["target"]["params"])
    online = {"encoder": final.params["encoder"], "projector": final.params["projector"]}
    online_moved = _max_diff({"encoder": init.params["encoder"], "projector": init.params["projector"]}, online)
    assert target_moved > 1e-4
    assert online_moved > 3 * target_moved
    assert _max_diff(online, final.state["target"]["params"]) > 1e-3


# --------------------------------------------------------------------------- configs

@pytest.mark.parametrize("arg,size,channels", [("digits", 8, 1), ("fashion_mnist", 28, 1), ("cifar10", 32, 3),
                                               ("imagenet", 256, 3)])
def test_byol_configs_build(arg, size, channels):
    from sslx.train import make_optimizer
    c = byol_cfg.get_config(arg)
    method = get_method(c, axis_name=None, total_steps=1000)
    batch = {"image": jnp.zeros((2, size, size, channels), jnp.uint8)}
    params, state = jax.eval_shape(method.init, jax.random.PRNGKey(0), batch)
    assert set(params) == {"encoder", "projector", "predictor"}
    assert jax.tree.structure(state["target"]["params"]) == jax.tree.structure(
        {"encoder": params["encoder"], "projector": params["projector"]})
    tx, sched = make_optimizer(c.optimizer, 1000, c.batch_size)
    jax.eval_shape(tx.init, params)
    if arg in ("cifar10", "imagenet"):
        assert params["projector"]["Dense_0"]["kernel"].shape[1] == 4096
        assert params["predictor"]["Dense_1"]["kernel"].shape == (4096, 256)
    if arg == "imagenet":
        assert c.model.encoder == "resnet50" and c.optimizer.name == "lars" and c.batch_size == 4096
        np.testing.assert_allclose(float(sched(c.optimizer.warmup_steps)), 0.2 * 4096 / 256, rtol=1e-2)
        assert (c.augment.blur_p, c.method.view2_augment["blur_p"]) == (1.0, 0.1)
        assert (c.augment.solarize_p, c.method.view2_augment["solarize_p"]) == (0.0, 0.2)


def test_asymmetric_views_and_bad_view2_key():
    from sslx.methods.image.byol import make_view_fns
    c = tiny_byol_config(**{"augment.crop_scale": (1.0, 1.0), "augment.jitter_p": 0.0})
    c.method.view2_augment = {"solarize_p": 1.0}
    f1, f2 = make_view_fns(c)
    img = jnp.asarray(random_batch(1)["image"][0])
    k = jax.random.PRNGKey(0)
    x1 = np.asarray(f1(k, img))
    assert np.any(x1 >= 0.5)
    np.testing.assert_allclose(np.asarray(f2(k, img)), np.where(x1 >= 0.5, 1.0 - x1, x1), atol=1e-6)  # solarised
    c.method.view2_augment = {"solarise_p": 1.0}
    with pytest.raises(ValueError, match="solarise_p"):
        get_method(c, axis_name=None, total_steps=4)
    with pytest.raises(ValueError, match="digitz"):
        byol_cfg.get_config("digitz")

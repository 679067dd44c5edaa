"""SwAV: Sinkhorn (vs NumPy, marginals, sharded), the swapped loss, prototypes, multi-crop, devices, a CPU run."""
from functools import partial

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, PartitionSpec as P

from sslx.configs import swav as swav_cfg
from sslx.losses import sinkhorn, swav_loss
from sslx.methods import get_method
from sslx.methods.image.common import make_multicrop_views
from sslx.methods.image.swav import make_multicrop_view_fns, normalized_prototypes
from tests.helpers import assert_learns, random_batch, run_steps, short_run, tiny_training


def tiny_swav_config(**overrides):
    c = swav_cfg.get_config("digits")
    c.batch_size = 8
    c.model.encoder_kwargs = {"features": (4, 8)}
    c.model.proj_hidden = (8,)
    c.model.proj_dim = 4
    c.method.num_prototypes = 6
    c.method.freeze_prototypes_steps = 0
    return tiny_training(c, **overrides)


# --------------------------------------------------------------------------- sinkhorn

def _naive_sinkhorn(scores, eps, iters, rescale=True):
    """The reference distributed_sinkhorn on one device, float64, in its [K, B] layout."""
    q = np.exp(np.asarray(scores, np.float64) / eps).T
    k, b = q.shape
    q /= q.sum()
    for _ in range(iters):
        q /= q.sum(axis=1, keepdims=True)
        q /= k
        q /= q.sum(axis=0, keepdims=True)
        q /= b
    if rescale:
        q *= b
    return q.T


def _scores(b, k, seed):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(b, 5))
    c = rng.normal(size=(k, 5))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    return (z @ c.T).astype(np.float32)


def test_sinkhorn_matches_numpy():
    for b, k, iters, seed in [(8, 3, 3, 0), (16, 10, 3, 1), (5, 7, 1, 2), (12, 4, 10, 3)]:
        s = _scores(b, k, seed)
        got = np.asarray(sinkhorn(jnp.asarray(s), 0.05, iters))
        np.testing.assert_allclose(got, _naive_sinkhorn(s, 0.05, iters), rtol=2e-5, atol=1e-7)
        got = np.asarray(sinkhorn(jnp.asarray(s), 0.05, iters, rescale=False))
        np.testing.assert_allclose(got, _naive_sinkhorn(s, 0.05, iters, rescale=False), rtol=2e-5, atol=1e-9)
    # The check can fail: another eps gives other codes.
    s = _scores(16, 10, 1)
    assert np.max(np.abs(np.asarray(sinkhorn(jnp.asarray(s), 0.1, 3)) - _naive_sinkhorn(s, 0.05, 3))) > 1e-2


def test_sinkhorn_marginals():
    b, k = 32, 8
    s = jnp.asarray(_scores(b, k, 4))
    q = np.asarray(sinkhorn(s, 0.05, 3, rescale=False), np.float64)
    # Last step normalises examples: each example (row here) has mass exactly 1/B.
    np.testing.assert_allclose(q.sum(axis=1), 1.0 / b, rtol=1e-5)
    # Prototype marginals approach 1/K: closer with every iteration, exact after many
    # (3 iterations at eps 0.05 on peaked scores are still far from converged).
    errs = [np.max(np.abs(np.asarray(sinkhorn(s, 0.05, n, rescale=False)).sum(axis=0) - 1.0 / k)) for n in (1, 3, 10)]
    assert errs[0] > errs[1] > errs[2], errs
    q50 = np.asarray(sinkhorn(s, 0.05, 200, rescale=False), np.float64)
    np.testing.assert_allclose(q50.sum(axis=0), 1.0 / k, rtol=1e-3)
    # The rescaled codes are per-example distributions; non-negative.
    qr = np.asarray(sinkhorn(s, 0.05, 3))
    np.testing.assert_allclose(qr.sum(axis=1), 1.0, rtol=1e-5)
    assert np.all(qr >= 0)
    # No gradient flows through the codes.
    g = jax.grad(lambda x: jnp.sum(sinkhorn(x, 0.05, 3) * jnp.arange(k)))(s)
    np.testing.assert_array_equal(np.asarray(g), 0.0)


def test_sinkhorn_sharded_equals_global():
    devs = jax.devices()
    assert len(devs) == 4
    mesh = Mesh(np.asarray(devs), ("data",))
    s = jnp.asarray(_scores(16, 6, 5))
    want = np.asarray(sinkhorn(s, 0.05, 3))

    def run(axis_name):
        f = jax.shard_map(partial(sinkhorn, eps=0.05, iters=3, axis_name=axis_name), mesh=mesh,
                          in_specs=P("data"), out_specs=P("data"), check_vma=False)
        return np.asarray(jax.jit(f)(s))

    np.testing.assert_allclose(run("data"), want, rtol=2e-5, atol=1e-7)
    # Without the psum (per-shard Sinkhorn) the codes differ.
    assert np.max(np.abs(run(None) - want)) > 1e-2


# --------------------------------------------------------------------------- loss

def _naive_swav_loss(scores, codes, t):
    v, n = len(scores), len(codes)
    total = 0.0
    for i in range(n):
        for j in range(v):
            if j == i:
                continue
            for r in range(scores[0].shape[0]):
                x = np.asarray(scores[j][r], np.float64) / t
                logp = x - np.log(np.sum(np.exp(x - x.max()))) - x.max()
                total += -np.sum(np.asarray(codes[i][r], np.float64) * logp) / scores[0].shape[0]
    return total / (n * (v - 1))


def test_swav_loss_matches_naive_loop():
    rng = np.random.default_rng(0)
    for b, k, v, n in [(4, 5, 2, 2), (6, 7, 5, 2), (3, 4, 3, 1)]:
        scores = [rng.uniform(-1, 1, size=(b, k)).astype(np.float32) for _ in range(v)]
        codes = [np.asarray(jax.nn.softmax(rng.normal(size=(b, k)) * 3, axis=-1), np.float32) for _ in range(n)]
        got, aux = swav_loss([jnp.asarray(x) for x in scores], [jnp.asarray(x) for x in codes], 0.1)
        np.testing.assert_allclose(float(got), _naive_swav_loss(scores, codes, 0.1), rtol=1e-5)
        # Swapping which view a code belongs to changes the value (the loss is not symmetric in general).
        if n == 2:
            other = float(swav_loss([jnp.asarray(x) for x in scores], [jnp.asarray(codes[1]), jnp.asarray(codes[0])],
                                    0.1)[0])
            assert abs(other - float(got)) > 1e-3


def test_swav_loss_hand_values_and_gradients():
    k = 7
    uniform = [jnp.full((3, k), 0.3) for _ in range(4)]
    codes = [jax.nn.one_hot(jnp.array([0, 3, 6]), k) for _ in range(2)]
    loss, aux = swav_loss(uniform, codes, 0.1)
    np.testing.assert_allclose(float(loss), np.log(k), rtol=1e-6)
    np.testing.assert_allclose(float(aux["entropy"]), 0.0, atol=1e-6)
    _, aux = swav_loss(uniform, [jnp.full((3, k), 1.0 / k)] * 2, 0.1)
    np.testing.assert_allclose(float(aux["entropy"]), np.log(k), rtol=1e-6)
    # Codes get no gradient; scores do.
    gs, gq = jax.grad(lambda s, q: swav_loss([s, s + 0.1], [q], 0.1)[0], argnums=(0, 1))(uniform[0], codes[0])
    np.testing.assert_array_equal(np.asarray(gq), 0.0)
    assert float(jnp.max(jnp.abs(gs))) > 1e-2
    with pytest.raises(ValueError):
        swav_loss([uniform[0]], [codes[0]], 0.1)


# --------------------------------------------------------------------------- multi-crop

def test_multicrop_views_shapes_and_determinism():
    c = tiny_swav_config()
    c.augment.multicrop = ((2, 8, (0.4, 1.0)), (3, 6, (0.2, 0.5)), (1, 4, (0.1, 0.2)))
    fns = make_multicrop_view_fns(c)
    images = jnp.asarray(random_batch(5)["image"])
    k = jax.random.PRNGKey(3)
    mc = jax.jit(partial(make_multicrop_views, axis_name=None, view_fns=fns))
    views = mc(k, images)
    assert [v.shape for v in views] == [(5, 8, 8, 1)] * 2 + [(5, 6, 6, 1)] * 3 + [(5, 4, 4, 1)]
    assert all(v.dtype == jnp.float32 for v in views)
    again = mc(k, images)
    for a, b in zip(views, again):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    other = mc(jax.random.PRNGKey(4), images)
    assert np.max(np.abs(np.asarray(other[0]) - np.asarray(views[0]))) > 1e-3
    assert np.max(np.abs(np.asarray(views[0]) - np.asarray(views[1]))) > 1e-3  # crops differ from each other
    with pytest.raises(ValueError, match="multicrop"):
        c.augment.multicrop = ((2, 8),)
        make_multicrop_view_fns(c)


def test_loss_fn_matches_independent_forward():
    """Encoder per resolution group, projector on all crops, codes of the large crops."""
    from sslx.methods.image.common import build_encoder, build_head
    c = tiny_swav_config()
    method = get_method(c, axis_name=None)
    batch = random_batch(8, seed=3)
    params, state = method.init(jax.random.PRNGKey(0), batch)
    rng = jax.random.PRNGKey(7)
    loss, (new_state, metrics) = jax.jit(method.loss_fn)(params, state, batch, rng)
    enc, proj = build_encoder(c, None), build_head(c, None, c.model.proj_hidden, c.model.proj_dim)
    views = jax.jit(partial(make_multicrop_views, axis_name=None, view_fns=make_multicrop_view_fns(c)))(
        rng, jnp.asarray(batch["image"]))

    @jax.jit
    def forward(views):
        st = state["encoder"]
        feats = []
        for group in (views[:2], views[2:]):
            h, u = enc.apply({"params": params["encoder"], "batch_stats": st}, jnp.concatenate(group), train=True,
                             mutable=["batch_stats"])
            st = u["batch_stats"]
            feats.append(h)
        z, _ = proj.apply({"params": params["projector"], "batch_stats": state["projector"]},
                          jnp.concatenate(feats), train=True, mutable=["batch_stats"])
        return z, st

    z, st = forward(views)
    z = np.asarray(z, np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    cn = np.asarray(params["prototypes"], np.float64)
    cn /= np.linalg.norm(cn, axis=1, keepdims=True)
    scores = np.split(z @ cn.T, 4)
    codes = [_naive_sinkhorn(scores[i], 0.05, 3) for i in range(2)]
    np.testing.assert_allclose(float(loss), _naive_swav_loss(scores, codes, 0.1), rtol=1e-4)
    chex.assert_trees_all_close(new_state["encoder"], st, atol=1e-6, rtol=1e-5)
    assert float(metrics["prototypes_frozen"]) == 0.0


# --------------------------------------------------------------------------- prototypes

def _max_diff(a, b):
    return max(jax.tree.leaves(jax.tree.map(lambda x, y: float(jnp.max(jnp.abs(x - y))), a, b)))


def test_prototypes_unit_norm_and_freeze():
    c = tiny_swav_config(**{"method.freeze_prototypes_steps": 2})
    batches = [random_batch(8, seed=s) for s in range(4)]
    method = get_method(c)
    from sslx.train import ParallelStep, create_train_state, make_optimizer, make_step_fn
    tx, sched = make_optimizer(c.optimizer, 10, c.batch_size)
    runner = ParallelStep(make_step_fn(method, tx, sched), mode="jit", devices=jax.devices()[:1])
    host = create_train_state(method, tx, jax.random.PRNGKey(0), batches[0])
    ts = runner.put_state(host)
    protos, frozen = [np.asarray(host.params["prototypes"])], []
    for b in batches:
        ts, m = runner(ts, runner.put_batch(b))
        protos.append(np.asarray(jax.device_get(ts.params["prototypes"])))
        frozen.append(float(m["prototypes_frozen"]))
    assert frozen == [1.0, 1.0, 0.0, 0.0]
    assert int(jax.device_get(ts.state["step"])) == 4
    # Frozen steps 0, 1: unchanged (plain SGD, zero gradient); steps 2, 3: they move.
    # (up to the rounding of renormalising an already unit-norm row)
    np.testing.assert_allclose(protos[1], protos[0], atol=1e-6)
    np.testing.assert_allclose(protos[2], protos[0], atol=1e-6)
    assert np.max(np.abs(protos[3] - protos[2])) > 1e-4
    assert np.max(np.abs(protos[4] - protos[3])) > 1e-4
    # The encoder trains meanwhile.
    assert _max_diff(host.params["encoder"], jax.device_get(ts.params["encoder"])) > 1e-4
    # The stored prototypes have unit rows at init and after every step (the project_params hook).
    for p in protos:
        np.testing.assert_allclose(np.linalg.norm(p, axis=1), 1.0, rtol=1e-6)
        np.testing.assert_allclose(normalized_prototypes({"prototypes": p}), p, atol=1e-6)


# --------------------------------------------------------------------------- devices

def test_swav_four_devices_equal_one_device():
    config = tiny_swav_config()
    batches = [random_batch(8, seed=s) for s in range(2)]
    devs = jax.devices()
    assert len(devs) == 4
    host, s1, m1 = run_steps(config, devs[:1], "jit", batches)
    _, s4, m4 = run_steps(config, devs, "jit", batches)
    for a, b in zip(m1, m4):
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=3e-6)
        np.testing.assert_allclose(a["grad_norm"], b["grad_norm"], rtol=1e-4)
    # float32 reduction order (1 vs 4 devices, and the backend's optimisation level) moves single
    # entries by up to ~7e-5 after two steps.
    chex.assert_trees_all_close(s1.params, s4.params, atol=1e-4, rtol=1e-5)
    # BN running variances (~5-7 here, updated twice per step: one per resolution group) carry
    # float32 E[x^2]-E[x]^2 reduction-order noise of ~4e-5 relative; a float64 run (not kept: ~35 s) matched to rtol ~1e-8.
    chex.assert_trees_all_close(s1.state, s4.state, atol=6e-5, rtol=1e-4)
    assert _max_diff(host.params, s1.params) > 1e-3
    assert _max_diff(host.params["prototypes"], s1.params["prototypes"]) > 1e-4
    assert int(s1.step) == int(s4.step) == 2


# --------------------------------------------------------------------------- short run + configs

def test_swav_digits_short_run_learns(tmp_path):
    c = swav_cfg.get_config("digits")
    c.batch_size = 128
    c.model.encoder_kwargs = {"features": (16, 32, 64), "strides": (1, 2, 1)}
    _, rows = short_run(c, tmp_path)
    assert_learns(rows)


@pytest.mark.parametrize("arg,size,channels", [("digits", 8, 1), ("fashion_mnist", 28, 1), ("cifar10", 32, 3),
                                               ("imagenet", 256, 3)])
def test_swav_configs_build(arg, size, channels):
    from sslx.train import make_optimizer
    c = swav_cfg.get_config(arg)
    method = get_method(c, axis_name=None, total_steps=1000)
    batch = {"image": jnp.zeros((2, size, size, channels), jnp.uint8)}
    params, state = jax.eval_shape(method.init, jax.random.PRNGKey(0), batch)
    assert params["prototypes"].shape == (c.method.num_prototypes, c.model.proj_dim)
    tx, _ = make_optimizer(c.optimizer, 1000, c.batch_size)
    jax.eval_shape(tx.init, params)
    if arg == "imagenet":
        assert c.augment.multicrop == ((2, 224, (0.14, 1.0)), (6, 96, (0.05, 0.14)))
        assert (c.method.num_prototypes, c.batch_size, c.optimizer.lr) == (3000, 4096, 4.8)
        assert c.method.freeze_prototypes_steps == 1281167 // 4096
    if arg == "cifar10":  # solo-learn's recipe: queue of 3840 (15 batches of 256) from epoch 50
        assert state["queue"].shape == (2, 3840, 128)
        assert c.method.queue_start_steps == 50 * (50000 // 256)
    with pytest.raises(ValueError, match="digitz"):
        swav_cfg.get_config("digitz")


# --------------------------------------------------------------------------- feature queue

def test_sinkhorn_mask_equals_subset():
    s = jnp.asarray(_scores(12, 5, 11))
    mask = np.array([1, 0, 1, 1, 0, 0, 1, 1, 1, 0, 1, 1], bool)
    q = np.asarray(sinkhorn(s, 0.05, 3, mask=jnp.asarray(mask)))
    np.testing.assert_allclose(q[mask], _naive_sinkhorn(np.asarray(s)[mask], 0.05, 3), rtol=2e-5, atol=1e-7)
    np.testing.assert_array_equal(q[~mask], 0.0)
    # All rows on: the unmasked result.
    np.testing.assert_allclose(np.asarray(sinkhorn(s, 0.05, 3, mask=jnp.ones(12, bool))),
                               np.asarray(sinkhorn(s, 0.05, 3)), rtol=1e-6)


def test_queue_fills_shifts_and_joins_sinkhorn():
    c = tiny_swav_config(**{"method.queue_length": 16, "method.queue_start_steps": 1,
                            "model.proj_hidden": (32,)})  # wide enough that no embedding row is exactly 0
    method = get_method(c, axis_name=None, total_steps=4)
    batch = random_batch(8, seed=1)
    params, state = method.init(jax.random.PRNGKey(0), batch)
    assert state["queue"].shape == (2, 16, 4) and int(state["queue_count"]) == 0
    loss_fn = jax.jit(method.loss_fn)
    # Step 0 < queue_start_steps: nothing enqueued.
    _, (st, m) = loss_fn(params, state, batch, jax.random.PRNGKey(1))
    np.testing.assert_array_equal(np.asarray(st["queue"]), 0.0)
    assert float(m["queue_used"]) == 0.0
    st = method.after_update(params, st, jnp.int32(0))
    # Step 1: the first 8 rows are this step's unit-norm embeddings of each large crop.
    _, (st1, m1) = loss_fn(params, st, batch, jax.random.PRNGKey(2))
    q1 = np.asarray(st1["queue"])
    np.testing.assert_allclose(np.linalg.norm(q1[:, :8], axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(q1[:, 8:], 0.0)
    assert int(st1["queue_count"]) == 8 and float(m1["queue_used"]) == 0.0
    assert np.max(np.abs(q1[0, :8] - q1[1, :8])) > 1e-3  # two different large crops
    st1 = method.after_update(params, st1, jnp.int32(1))
    # Step 2: newest first, the previous rows shifted down; queue now full.
    _, (st2, m2) = loss_fn(params, st1, batch, jax.random.PRNGKey(3))
    q2 = np.asarray(st2["queue"])
    np.testing.assert_array_equal(q2[:, 8:], q1[:, :8])
    assert int(st2["queue_count"]) == 16 and float(m2["queue_used"]) == 0.0
    st2 = method.after_update(params, st2, jnp.int32(2))
    # Step 3: the full queue joins Sinkhorn. Check the loss against an independent computation.
    rng = jax.random.PRNGKey(4)
    loss, (_, m3) = loss_fn(params, st2, batch, rng)
    assert float(m3["queue_used"]) == 1.0
    views = make_multicrop_views(rng, jnp.asarray(batch["image"]), None, make_multicrop_view_fns(c))
    from sslx.methods.image.common import build_encoder, build_head, encode_crops
    enc, proj = build_encoder(c, None), build_head(c, None, c.model.proj_hidden, c.model.proj_dim)
    feats, _ = encode_crops(enc, params["encoder"], state["encoder"], views)
    z, _ = proj.apply({"params": params["projector"], "batch_stats": state["projector"]}, jnp.concatenate(feats),
                      train=True, mutable=["batch_stats"])
    z = np.asarray(z, np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    protos = np.asarray(normalized_prototypes(params), np.float64)
    scores = np.split(z @ protos.T, len(views))
    codes = [_naive_sinkhorn(np.concatenate([q2[i] @ protos.T, scores[i]]), 0.05, 3)[16:] for i in range(2)]
    np.testing.assert_allclose(float(loss), _naive_swav_loss(scores, codes, 0.1), rtol=1e-4)
    # ...which differs from the batch-only codes (the queue matters).
    batch_codes = [_naive_sinkhorn(scores[i], 0.05, 3) for i in range(2)]
    assert abs(_naive_swav_loss(scores, batch_codes, 0.1) - float(loss)) > 1e-4


def test_queue_four_devices_equal_one_device():
    config = tiny_swav_config(**{"method.queue_length": 16})
    batches = [random_batch(8, seed=s) for s in range(4)]
    _, s1, m1 = run_steps(config, jax.devices()[:1], "jit", batches)
    _, s4, m4 = run_steps(config, jax.devices(), "jit", batches)
    assert [float(m["queue_used"]) for m in m1] == [0.0, 0.0, 1.0, 1.0]
    for a, b in zip(m1, m4):
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)
        assert float(a["queue_used"]) == float(b["queue_used"])
    chex.assert_trees_all_close(s1.params, s4.params, atol=1e-4, rtol=1e-4)
    chex.assert_trees_all_close(s1.state["queue"], s4.state["queue"], atol=1e-5, rtol=1e-4)


def test_bad_queue_length():
    with pytest.raises(ValueError, match="queue_length"):
        get_method(tiny_swav_config(**{"method.queue_length": 12}), axis_name=None, total_steps=4)

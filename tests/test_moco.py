"""MoCo: queue loss, queue updates, momentum encoder, 1 vs 4 devices, shuffling BN, a short run."""
import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, PartitionSpec as P

from sslx import augment
from sslx.configs import moco as moco_cfg
from sslx.losses.contrastive import moco_info_nce
from sslx.methods import get_method
from sslx.methods.image.common import apply_train, build_encoder, build_head, make_views
from sslx.methods.image.moco import shuffled_apply
from sslx.train import ParallelStep, create_train_state, make_optimizer, make_step_fn
from tests.helpers import random_batch

B, K, M = 8, 16, 0.9  # global batch, queue size, key-encoder momentum (0.9: visible in 3 steps)


def tiny_moco_config(**overrides):
    c = moco_cfg.get_config("digits")
    c.batch_size = B
    c.model.encoder_kwargs = {"features": (4, 8)}
    c.model.proj_hidden = (8,)
    c.model.proj_dim = 4
    c.method.queue_size = K
    c.method.momentum = M
    c.optimizer.name = "sgd"
    c.optimizer.lr = 0.5
    c.optimizer.momentum = 0.0
    c.optimizer.warmup_steps = 0
    c.optimizer.schedule = "constant"
    for k, v in overrides.items():
        node = c
        *path, last = k.split(".")
        for p in path:
            node = node[p]
        node[last] = v
    return c


def run_recorded(config, devices, batches):
    """Compile once, run one step per batch; host copies of the state before and after every step."""
    method = get_method(config)
    tx, sched = make_optimizer(config.optimizer, 10, config.batch_size)
    runner = ParallelStep(make_step_fn(method, tx, sched), mode="jit", devices=devices)
    host = create_train_state(method, tx, jax.random.PRNGKey(0), batches[0])
    states, metrics = [jax.device_get(host)], []
    ts = runner.put_state(host)
    for b in batches:
        ts, m = runner(ts, runner.put_batch(b))
        states.append(jax.device_get(runner.get_state(ts)))  # host copy before the next step donates ts
        metrics.append(jax.device_get(m))
    return states, metrics


BATCHES = [random_batch(B, seed=s) for s in range(3)]


@pytest.fixture(scope="module")
def runs():
    devs = jax.devices()
    assert len(devs) == 4
    return {
        "one": run_recorded(tiny_moco_config(**{"method.shuffle_bn": False}), devs[:1], BATCHES),
        "four": run_recorded(tiny_moco_config(**{"method.shuffle_bn": False}), devs, BATCHES),
        "four_shuffle": run_recorded(tiny_moco_config(), devs, BATCHES),
    }


# -- independent reference pieces (eager, single device) ------------------------------------------

def _key_nets(config):
    hidden, dim = tuple(config.model.proj_hidden), int(config.model.proj_dim)
    return build_encoder(config, None), build_head(config, None, hidden, dim, use_bn=False)


def _step_inputs(config, ts_before, batch, step):
    """Key views of the global batch and the permutation key, as the step derives them."""
    rng = jax.random.fold_in(ts_before.rng, step)
    view_rng, perm_rng = jax.random.split(rng)
    view_fn = augment.make_view_fn(config.augment)
    _, xk = make_views(view_fn, view_rng, jnp.asarray(batch["image"]), None)
    return xk, perm_rng


def _keys(config, key_state, x):
    """(L2-normalised keys, new batch stats) of the key encoder in train mode with BN over ``x``."""
    enc, head = _key_nets(config)
    kp, ks = key_state["params"], key_state["batch_stats"]
    h, es = apply_train(enc, kp["encoder"], ks["encoder"], x)
    k, hs = apply_train(head, kp["head"], ks["head"], h)
    k = np.asarray(k, np.float64)
    return k / np.linalg.norm(k, axis=1, keepdims=True), {"encoder": es, "head": hs}


# -- the loss ---------------------------------------------------------------------------------------

def test_moco_loss_matches_naive_loop():
    rng = np.random.default_rng(0)
    q, k, queue = rng.normal(size=(5, 6)), rng.normal(size=(5, 6)), rng.normal(size=(7, 6))
    t = 0.2
    loss, aux = moco_info_nce(jnp.asarray(q, jnp.float32), jnp.asarray(k, jnp.float32),
                              jnp.asarray(queue, jnp.float32), t)
    unit = lambda v: v / np.linalg.norm(v)
    losses, hits = [], []
    for i in range(5):
        pos = unit(q[i]) @ unit(k[i]) / t
        negs = [unit(q[i]) @ unit(n) / t for n in queue]  # only the queue: no in-batch keys
        logits = np.array([pos] + negs)
        losses.append(-(pos - np.log(np.sum(np.exp(logits)))))
        hits.append(np.argmax(logits) == 0)
    np.testing.assert_allclose(float(loss), np.mean(losses), rtol=1e-5)
    np.testing.assert_allclose(float(aux["accuracy"]), np.mean(hits))


def test_moco_loss_hand_value():
    # q = k = e0 (scaled: normalisation), queue = e1, e2, e3 orthogonal: logits [1/t, 0, 0, 0].
    t = 0.5
    q = jnp.array([[3.0, 0, 0, 0]])
    k = jnp.array([[0.5, 0, 0, 0]])
    queue = jnp.eye(4)[1:] * 2.0
    loss, aux = moco_info_nce(q, k, queue, t)
    np.testing.assert_allclose(float(loss), -np.log(np.exp(2.0) / (np.exp(2.0) + 3.0)), rtol=1e-6)
    assert float(aux["accuracy"]) == 1.0
    # Other in-batch keys are not negatives: a second query whose key equals the first's changes nothing.
    loss2, _ = moco_info_nce(jnp.concatenate([q, q]), jnp.concatenate([k, k]), queue, t)
    np.testing.assert_allclose(float(loss2), float(loss), rtol=1e-6)


# -- queue, momentum encoder, devices ---------------------------------------------------------------

def test_queue_size_must_be_multiple_of_global_batch():
    with pytest.raises(ValueError, match="multiple of the global batch size 8"):
        get_method(tiny_moco_config(**{"method.queue_size": 12}))
    get_method(tiny_moco_config(**{"method.queue_size": 24}))


@pytest.mark.parametrize("run", ["one", "four"])
def test_queue_holds_global_keys_in_order(runs, run):
    config = tiny_moco_config(**{"method.shuffle_bn": False})
    states, metrics = runs[run]
    init_queue = np.asarray(states[0].state["queue"])
    np.testing.assert_allclose(np.linalg.norm(init_queue, axis=1), 1.0, rtol=1e-5)
    expected = init_queue.astype(np.float64).copy()
    for t, batch in enumerate(BATCHES):
        before, after = states[t], states[t + 1]
        xk, _ = _step_inputs(config, before, batch, t)
        keys, _ = _keys(config, before.state["key"], xk)  # synced BN over the global batch
        rows = slice((t * B) % K, (t * B) % K + B)
        expected[rows] = keys  # enqueue the newest, overwriting the oldest
        np.testing.assert_allclose(after.state["queue"], expected, atol=2e-5)
        assert int(after.state["queue_ptr"]) == ((t + 1) * B) % K
        assert int(after.state["queue_count"]) == min((t + 1) * B, K)
        np.testing.assert_allclose(metrics[t]["queue_fill"], min((t + 1) * B, K) / K)
    # The third step wrapped around: rows 0..7 now hold step 2's keys, rows 8..15 step 1's.
    assert not np.allclose(states[3].state["queue"][:B], states[1].state["queue"][:B], atol=1e-3)
    np.testing.assert_array_equal(states[3].state["queue"][B:], states[2].state["queue"][B:])


@pytest.mark.parametrize("run", ["one", "four_shuffle"])
def test_momentum_update_is_exact(runs, run):
    states, _ = runs[run]
    init = states[0]
    chex.assert_trees_all_close(init.state["key"]["params"], init.params)  # key encoder starts as a copy
    for before, after in zip(states[:-1], states[1:]):
        expected = jax.tree.map(lambda k, q: M * np.asarray(k, np.float64) + (1 - M) * np.asarray(q, np.float64),
                                before.state["key"]["params"], after.params)
        chex.assert_trees_all_close(after.state["key"]["params"], expected, atol=1e-7, rtol=1e-6)
        # The query encoder moved, so the key encoder is neither the old copy nor the new query.
        moved = jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), before.params, after.params)
        assert max(jax.tree.leaves(moved)) > 1e-3
        gap = jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), after.state["key"]["params"], after.params)
        assert max(jax.tree.leaves(gap)) > 1e-4


def test_four_devices_equal_one_device(runs):
    s1, m1 = runs["one"]
    s4, m4 = runs["four"]
    for a, b in zip(m1, m4):
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)
        np.testing.assert_allclose(a["contrastive_acc"], b["contrastive_acc"])
    tol = dict(atol=6e-5, rtol=1e-5)  # float32 reduction order (see test_train_step)
    chex.assert_trees_all_close(s1[-1].params, s4[-1].params, **tol)
    chex.assert_trees_all_close(s1[-1].state["key"], s4[-1].state["key"], **tol)
    chex.assert_trees_all_close(s1[-1].state["queue"], s4[-1].state["queue"], **tol)
    chex.assert_trees_all_close(s1[-1].state, s4[-1].state, **tol)
    assert int(s1[-1].state["queue_ptr"]) == int(s4[-1].state["queue_ptr"]) == (3 * B) % K


# -- shuffling BN -----------------------------------------------------------------------------------

def test_shuffled_apply_unshuffles():
    # A BN-free fn that tags each row with the device that processed it: the values must come back
    # in global order, and the tags show that rows really were processed on other devices.
    devs = jax.devices()
    n, b = len(devs), 3
    x = jnp.arange(n * b * 2, dtype=jnp.float32).reshape(n * b, 2)
    rng = jax.random.PRNGKey(3)

    def fn(xl):
        tag = jnp.full((xl.shape[0], 1), jax.lax.axis_index("data"), jnp.float32)
        return jnp.concatenate([xl * 10.0, tag], axis=1), None

    def per_device(xl):
        y_local, y_global, _ = shuffled_apply(fn, xl, rng, "data")
        return y_local, y_global[None]

    mesh = Mesh(np.asarray(devs), ("data",))
    y_local, y_global = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=P("data"),
                                              out_specs=(P("data"), P("data")), check_vma=False))(x)
    np.testing.assert_array_equal(y_local[:, :2], np.asarray(x) * 10.0)
    for d in range(n):
        np.testing.assert_array_equal(y_global[d], y_local)  # every device sees the same global keys
    perm = np.asarray(jax.random.permutation(rng, n * b))
    expected_tag = np.empty(n * b)
    expected_tag[perm] = np.arange(n * b) // b  # example perm[j] was processed by device j // b
    np.testing.assert_array_equal(y_local[:, 2], expected_tag)
    assert not np.array_equal(expected_tag, np.arange(n * b) // b)  # the shuffle moved rows
    # Without shuffling each device processes its own rows.
    mapped = jax.shard_map(lambda xl: shuffled_apply(fn, xl, rng, "data", shuffle=False)[0], mesh=mesh,
                           in_specs=P("data"), out_specs=P("data"), check_vma=False)
    np.testing.assert_array_equal(jax.jit(mapped)(x)[:, 2], np.arange(n * b) // b)


def test_shuffle_bn_keys_use_per_device_stats_of_shuffled_batch(runs):
    # Reproduce step 0 of the 4-device shuffle-BN run by hand: device d encodes the global rows
    # perm[2d:2d+2] with BN statistics of those two rows only; keys are un-shuffled into the queue.
    config = tiny_moco_config()
    states, _ = runs["four_shuffle"]
    before, after = states[0], states[1]
    xk, perm_rng = _step_inputs(config, before, BATCHES[0], 0)
    n = 4
    b = B // n
    perm = np.asarray(jax.random.permutation(perm_rng, B))
    keys = np.zeros((B, config.model.proj_dim))
    stats = []
    for d in range(n):
        rows = perm[d * b:(d + 1) * b]
        k, s = _keys(config, before.state["key"], xk[rows])
        keys[rows] = k
        stats.append(s)
    np.testing.assert_allclose(after.state["queue"][:B], keys, atol=2e-5)
    # The key encoder's running statistics: per-device ones, averaged so all devices hold the same.
    mean_stats = jax.tree.map(lambda *s: np.mean(np.stack(s), axis=0), *stats)
    chex.assert_trees_all_close(after.state["key"]["batch_stats"], mean_stats, atol=1e-6, rtol=1e-5)
    # The test can fail: synced BN, or per-device BN on the unshuffled rows, gives other keys.
    synced, _ = _keys(config, before.state["key"], xk)
    assert np.max(np.abs(synced - keys)) > 1e-2
    unshuffled = np.concatenate([_keys(config, before.state["key"], xk[d * b:(d + 1) * b])[0] for d in range(n)])
    assert np.max(np.abs(unshuffled - keys)) > 1e-2


# -- a short real run --------------------------------------------------------------------------------

def test_training_run_on_digits(tmp_path):
    from sslx.train.loop import train
    c = moco_cfg.get_config("digits")
    c.batch_size = 64
    c.method.queue_size = 256
    c.train.num_steps = 30
    c.train.log_every = 1
    c.train.checkpoint_every = 1000
    c.train.prefetch = 1
    c.optimizer.warmup_steps = 5
    c.eval.at_end = False
    out = train(c, str(tmp_path), progress=False)
    assert out["step"] == 30
    with open(os.path.join(tmp_path, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    loss = [r["loss"] for r in rows if "loss" in r]
    fill = [r["queue_fill"] for r in rows if "queue_fill" in r]
    assert len(loss) == len(fill) == 30 and all(np.isfinite(loss))
    assert fill[0] == 64 / 256 and fill[3:] == [1.0] * 27  # 4 global batches of 64 fill K = 256
    # While the queue still holds its random initial unit vectors (steps 1-4) the negatives are
    # nearly orthogonal to everything and the loss is artificially low (~1.6 at step 1 vs ~ln 257 =
    # 5.5 once the queue holds real keys), so "first 5" means the first 5 steps with a full queue.
    first = loss[4:9]
    assert np.mean(loss[-5:]) < np.mean(first) - 0.2, loss


@pytest.mark.parametrize("arg,size,channels", [("digits", 8, 1), ("fashion_mnist", 28, 1), ("cifar10", 32, 3),
                                               ("imagenet_v1", 256, 3), ("imagenet_v2", 256, 3)])
def test_moco_configs_build(arg, size, channels):
    c = moco_cfg.get_config(arg)
    method = get_method(c, axis_name=None)
    batch = {"image": jnp.zeros((2, size, size, channels), jnp.uint8), "label": jnp.zeros((2,), jnp.int32)}
    params, state = jax.eval_shape(method.init, jax.random.PRNGKey(0), batch)
    assert state["queue"].shape == (c.method.queue_size, c.model.proj_dim)
    assert c.method.queue_size % c.batch_size == 0
    assert jax.tree.structure(state["key"]["params"]) == jax.tree.structure(params)
    tx, sched = make_optimizer(c.optimizer, 1000, c.batch_size)
    jax.eval_shape(tx.init, params)
    if arg.startswith("imagenet"):
        v2 = arg.endswith("v2")
        assert c.model.encoder == "resnet50" and c.batch_size == 256 and c.method.queue_size == 65536
        assert c.method.temperature == (0.2 if v2 else 0.07) and c.augment.blur_p == (0.5 if v2 else 0.0)
        assert ("Dense_1" in params["head"]) == v2  # v2: MLP head; v1: one linear layer
        np.testing.assert_allclose(float(sched(0)), 0.03, rtol=1e-6)
    if arg == "cifar10":
        np.testing.assert_allclose(float(sched(0)), 0.06, rtol=1e-6)  # 0.03 x 512/256
    with pytest.raises(ValueError, match="imagenet_v2"):
        moco_cfg.get_config("imagenet")

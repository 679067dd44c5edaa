"""DGI: the BCE and JSD losses vs naive numpy and hand values, padding invariance, the method's
loss vs a dense reference, the full-graph driver (one step = one Adam update, early stopping),
a short run that learns, the node probe, configs."""
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sslx.configs import dgi as dgi_cfg
from sslx.data.graph import _dedup_edges, load_planetoid, pad_graph, to_graphs_tuple
from sslx.eval.node import logreg_runs, node_probe
from sslx.losses import dgi_bce, jsd_mi
from sslx.methods import Method, get_method
from sslx.methods.graph.dgi import shuffle_permutation
from sslx.train import make_optimizer
from sslx.train.graph import fit_full_graph


def _softplus(x):
    return math.log1p(math.exp(-abs(x))) + max(x, 0.0)


# --------------------------------------------------------------------------- losses

def test_dgi_bce_matches_naive_and_hand_values():
    rng = np.random.default_rng(0)
    for n in (1, 5, 33):
        pos, neg = rng.normal(size=n) * 3, rng.normal(size=n) * 3
        # naive BCE with logits over cat(pos, neg) with labels cat(1, 0)
        want = sum(-math.log(1 / (1 + math.exp(-p))) for p in pos) + sum(-math.log(1 - 1 / (1 + math.exp(-q)))
                                                                         for q in neg)
        loss, aux = dgi_bce(jnp.asarray(pos, jnp.float32), jnp.asarray(neg, jnp.float32))
        np.testing.assert_allclose(float(loss), want / (2 * n), rtol=1e-5)
        np.testing.assert_allclose(float(aux["disc_acc"]), (np.sum(pos > 0) + np.sum(neg < 0)) / (2 * n), rtol=1e-6)
    np.testing.assert_allclose(float(dgi_bce(jnp.zeros(4), jnp.zeros(4))[0]), math.log(2), rtol=1e-6)
    l3 = math.log(3.0)
    np.testing.assert_allclose(float(dgi_bce(jnp.array([l3]), jnp.array([-l3]))[0]), math.log(4 / 3), rtol=1e-6)
    with pytest.raises(ValueError, match="one shape"):
        dgi_bce(jnp.zeros(3), jnp.zeros(4))


def test_dgi_bce_padding_invariance():
    rng = np.random.default_rng(1)
    pos, neg = jnp.asarray(rng.normal(size=6)), jnp.asarray(rng.normal(size=6))
    pad = lambda a: jnp.concatenate([a, jnp.asarray([50.0, -7.0, 3.0])])
    mask = jnp.arange(9) < 6
    np.testing.assert_allclose(float(dgi_bce(pad(pos), pad(neg), mask)[0]), float(dgi_bce(pos, neg)[0]), rtol=1e-6)


def _naive_jsd_loss(scores, pos_mask, valid):
    ep, en = [], []
    for t, p, v in zip(scores.ravel(), pos_mask.ravel(), valid.ravel()):
        if not v:
            continue
        (ep if p else en).append((math.log(2) - _softplus(-t)) if p else (_softplus(t) - math.log(2)))
    return -(np.mean(ep) - np.mean(en))


def test_jsd_mi_matches_naive_hand_values_and_padding():
    rng = np.random.default_rng(2)
    scores = rng.normal(size=(7, 3)) * 2
    pos = np.zeros((7, 3), bool)
    pos[np.arange(7), rng.integers(0, 3, 7)] = True  # node i belongs to one graph (InfoGraph layout)
    valid = np.ones((7, 3), bool)
    valid[5:] = False
    loss, aux = jsd_mi(jnp.asarray(scores), jnp.asarray(pos), jnp.asarray(valid))
    np.testing.assert_allclose(float(loss), _naive_jsd_loss(scores, pos, valid), rtol=1e-5)
    np.testing.assert_allclose(float(aux["mi"]), -float(loss), rtol=1e-6)
    # padding invariance: the valid rows alone give the same value
    np.testing.assert_allclose(float(jsd_mi(jnp.asarray(scores[:5]), jnp.asarray(pos[:5]))[0]), float(loss), rtol=1e-5)
    # hand values: T = 0 -> 0; T_pos = log 3, T_neg = -log 3 -> 2 log(4/3) - 2 log 2 = 2 log(2/3)
    np.testing.assert_allclose(float(jsd_mi(jnp.zeros((2, 2)), jnp.eye(2, dtype=bool))[0]), 0.0, atol=1e-7)
    l3 = math.log(3.0)
    hand = jsd_mi(jnp.array([[l3], [-l3]]), jnp.array([[True], [False]]))[0]
    np.testing.assert_allclose(float(hand), 2 * math.log(2 / 3), rtol=1e-6)
    assert float(hand) > -2 * math.log(2)


# --------------------------------------------------------------------------- method

def sbm_graph(n_per=20, k=3, f=12, seed=0):
    """A k-community graph (dense inside, sparse across) with noisy community features."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), n_per)
    n = len(y)
    p = np.where(y[:, None] == y[None, :], 0.3, 0.02)
    a = np.triu(rng.random((n, n)) < p, 1)
    s, r = _dedup_edges(*np.nonzero(a), n, symmetric=True, self_loops=False)
    x = rng.random((n, f)).astype(np.float32) * 0.5
    x[np.arange(n), y * (f // k)] += 1.0
    x /= x.sum(1, keepdims=True)
    return to_graphs_tuple(x, s, r), y


def tiny_dgi_config(**kw):
    c = dgi_cfg.get_config("cora")
    c.model.features = (16,)
    for k, v in kw.items():
        c[k.split(".")[0]][k.split(".")[1]] = v
    return c


def test_shuffle_permutation_permutes_real_nodes_only():
    key = jax.random.PRNGKey(3)
    p = np.asarray(shuffle_permutation(key, 6))
    assert sorted(p.tolist()) == list(range(6)) and not np.array_equal(p, np.arange(6))
    pp = np.asarray(shuffle_permutation(key, 10, jnp.arange(10) < 6))
    np.testing.assert_array_equal(pp[:6], p)  # independent of the padding
    np.testing.assert_array_equal(pp[6:], np.arange(6, 10))


def _dense_dgi_loss(params, x, s, r, perm):
    """DGI loss computed independently: dense normalised adjacency, GCN on the shuffled X."""
    n = len(x)
    a = np.zeros((n, n))
    a[r, s] = 1
    a += np.eye(n)
    d = 1 / np.sqrt(a.sum(1))
    a = d[:, None] * a * d[None, :]
    w = np.asarray(params["conv0"]["linear"]["kernel"], np.float64)
    b = np.asarray(params["conv0"]["bias"], np.float64)
    alpha = float(params["act0"]["negative_slope"])
    prelu = lambda z: np.where(z >= 0, z, alpha * z)
    h = prelu(a @ x @ w + b)
    hn = prelu(a @ x[perm] @ w + b)
    summ = 1 / (1 + np.exp(-h.mean(0)))
    wd, bd = np.asarray(params["disc"]["kernel"], np.float64), float(params["disc"]["bias"])
    lp, ln = h @ wd @ summ + bd, hn @ wd @ summ + bd
    return (np.sum(np.logaddexp(0, -lp)) + np.sum(np.logaddexp(0, ln))) / (2 * n)


def test_dgi_loss_matches_dense_reference_and_padding():
    g, _ = sbm_graph()
    m = get_method(tiny_dgi_config())
    params, state = m.init(jax.random.PRNGKey(0), {"graph": g})
    chex.assert_shape(params["conv0"]["linear"]["kernel"], (12, 16))
    params = jax.tree.map(lambda p: p + 0.05, params)  # non-zero biases
    key = jax.random.PRNGKey(7)
    loss_fn = jax.jit(m.loss_fn)
    loss, (_, aux) = loss_fn(params, state, {"graph": g}, key)
    perm = np.asarray(shuffle_permutation(key, g.nodes.shape[0]))
    want = _dense_dgi_loss(params, g.nodes.astype(np.float64), g.senders, g.receivers, perm)
    np.testing.assert_allclose(float(loss), want, rtol=1e-4)
    assert 0.0 <= float(aux["disc_acc"]) <= 1.0

    padded, masks = pad_graph(g, (128, 512, 2))
    pbatch = {"graph": padded, "node_mask": jnp.asarray(masks["node_mask"])}
    lp, _ = loss_fn(params, state, pbatch, key)
    np.testing.assert_allclose(float(lp), float(loss), rtol=1e-5)
    grad = jax.jit(jax.grad(lambda p, b: m.loss_fn(p, state, b, key)[0]))
    chex.assert_trees_all_close(grad(params, pbatch), grad(params, {"graph": g}), rtol=1e-4, atol=1e-6)
    emb = m.encode(params, state, g)
    chex.assert_shape(emb, (60, 16))


def test_fit_full_graph_step_is_one_adam_update_and_keeps_best():
    g, _ = sbm_graph()
    c = tiny_dgi_config()
    m = get_method(c)
    tx, _ = make_optimizer(c.optimizer, 1, 1)
    key = jax.random.PRNGKey(0)
    res = fit_full_graph(m, tx, {"graph": g}, key, max_epochs=1, patience=0, progress=False)
    # Manual: the same init, the loss at step 0's key, one Adam step.
    init_key, step_key = jax.random.split(key)
    p0, st = m.init(init_key, {"graph": g})
    loss, grads = jax.value_and_grad(lambda p: m.loss_fn(p, st, {"graph": g}, jax.random.fold_in(step_key, 0))[0])(p0)
    upd, _ = optax.adam(1e-3).update(grads, optax.adam(1e-3).init(p0), p0)
    chex.assert_trees_all_close(res.train_state.params, optax.apply_updates(p0, upd), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(res.losses[0], float(loss), rtol=1e-5)
    chex.assert_trees_all_close(res.params, p0)  # the best (only) loss was produced by the initial params


def test_fit_full_graph_early_stopping():
    """A loss that rises after epoch 2 stops training after `patience` more epochs and returns
    the parameters that produced the lowest loss."""
    table = jnp.array([3.0, 2.0, 1.0, 2.0, 5.0])

    def loss_fn(params, state, batch, rng):
        # value table[t], gradient -1: SGD with lr 1 moves t = 0, 1, 2, ...
        t = params["t"]
        value = jax.lax.stop_gradient(jnp.interp(t, jnp.arange(5.0), table))
        return value - t + jax.lax.stop_gradient(t), (state, {})

    method = Method(name="toy", init=lambda rng, b: ({"t": jnp.zeros(())}, {}), loss_fn=loss_fn,
                    encode=lambda p, s, x: x)
    res = fit_full_graph(method, optax.sgd(1.0), {"x": jnp.zeros(1)}, jax.random.PRNGKey(0), max_epochs=50,
                         patience=2, progress=False)
    np.testing.assert_allclose(res.losses, [3.0, 2.0, 1.0, 2.0, 5.0], rtol=1e-6)
    assert res.epochs == 5 and res.best_epoch == 2 and res.best_loss == pytest.approx(1.0)
    np.testing.assert_allclose(float(res.params["t"]), 2.0)
    with pytest.raises(ValueError, match="max_epochs"):
        fit_full_graph(method, optax.sgd(1.0), {"x": jnp.zeros(1)}, jax.random.PRNGKey(0), max_epochs=0)


def test_short_dgi_run_learns_communities():
    g, y = sbm_graph(n_per=30, seed=1)
    c = tiny_dgi_config()
    c.optimizer.lr = 1e-2
    m = get_method(c)
    tx, _ = make_optimizer(c.optimizer, 1, 1)
    res = fit_full_graph(m, tx, {"graph": g}, jax.random.PRNGKey(0), max_epochs=60, patience=0, progress=False)
    assert np.mean(res.losses[-5:]) < 0.5 * res.losses[0]
    emb = np.asarray(m.encode(res.params, res.state, g))
    train = np.zeros(len(y), bool)
    train[[0, 1, 30, 31, 60, 61]] = True
    out = node_probe(emb, y, train, ~train, runs=4, epochs=100)
    assert out["test_acc_mean"] > 80.0, out


# --------------------------------------------------------------------------- probe and configs

def test_node_probe_separable_chance_and_errors():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    emb = np.eye(3)[y] * 3 + rng.normal(size=(60, 3)) * 0.1
    train = np.zeros(60, bool)
    train[::4] = True
    out = node_probe(emb, y, train, ~train, val_mask=~train, runs=5)
    assert out["test_acc_mean"] == 100.0 and out["test_acc_std"] == 0.0 and out["test_accs"].shape == (5,)
    assert out["val_acc_mean"] == 100.0
    scaled = emb * rng.uniform(0.01, 100.0, size=(60, 1))  # per-row scales vanish with l2_normalize
    np.testing.assert_array_equal(node_probe(scaled, y, train, ~train, runs=5, l2_normalize=True)["test_accs"],
                                  node_probe(emb, y, train, ~train, runs=5, l2_normalize=True)["test_accs"])
    noise = node_probe(rng.normal(size=(600, 8)), rng.integers(0, 4, 600), np.arange(600) < 300,
                       np.arange(600) >= 300, runs=5)
    assert 10.0 < noise["test_acc_mean"] < 40.0
    # vmapped runs equal single runs
    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    args = (jnp.asarray(emb[train], jnp.float32), jnp.asarray(y[train]), jnp.asarray(emb, jnp.float32))
    allp = logreg_runs(keys, *args, num_classes=3)
    np.testing.assert_array_equal(np.asarray(allp[1]), np.asarray(logreg_runs(keys[1:2], *args, num_classes=3)[0]))
    with pytest.raises(ValueError, match="test_mask selects no nodes"):
        node_probe(emb, y, train, np.zeros(60, bool))
    with pytest.raises(ValueError, match="without a label"):
        node_probe(emb, np.where(train, y, -1), train, ~train)
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        node_probe(emb[:, 0], y, train, ~train)


def test_configs_build_and_reject_unknown():
    for arg in ("cora", "citeseer"):
        c = dgi_cfg.get_config(arg)
        assert c.dataset.name == arg and c.method.name == "dgi" and tuple(c.model.features) == (512,)
        assert c.train.patience == 20 and c.optimizer.lr == 1e-3
        assert get_method(c).name == "dgi"
    with pytest.raises(ValueError, match="cora, citeseer"):
        dgi_cfg.get_config("pubmedx")
    bad = dgi_cfg.get_config("cora")
    bad.model.features = (0,)
    with pytest.raises(ValueError, match="features"):
        get_method(bad)


def test_dgi_runs_on_real_cora(shared_data):
    ds = load_planetoid("cora", shared_data / "graph")
    c = dgi_cfg.get_config("cora")
    m = get_method(c)
    tx, _ = make_optimizer(c.optimizer, 1, 1)
    res = fit_full_graph(m, tx, {"graph": ds.graph}, jax.random.PRNGKey(0), max_epochs=2, patience=0, progress=False)
    assert res.losses[0] == pytest.approx(math.log(2), abs=0.05) and res.losses[-1] < res.losses[0]
    emb = jax.jit(m.encode)(res.params, res.state, jax.tree.map(jnp.asarray, ds.graph))
    chex.assert_shape(emb, (2708, 512))


def test_benchmark_on_a_tiny_planetoid(tmp_path):
    from sslx.train.graph import benchmark_graph_config
    from tests.test_graph_data import _write_planetoid

    _write_planetoid(tmp_path / "cora")
    c = tiny_dgi_config()
    out = benchmark_graph_config(c, epochs=2, repeats=1, warmup=0, data_dir=str(tmp_path))
    assert out["nodes"] == 10 and out["ms_per_epoch"] > 0 and out["cpu_ms_per_epoch"] > 0

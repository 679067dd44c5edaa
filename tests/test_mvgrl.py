"""MVGRL: the BCE loss vs naive and hand values, the PPR diffusion / top-k / sparse x W helpers vs
numpy, the method's loss vs a dense numpy reference, padding invariance, permutation
equivariance of the embeddings, a short run that learns, a real-Cora smoke run, configs."""
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslx.augment.graph_views import (diffusion_propagate, ppr_diffusion, ppr_matrix, sparse_features,
                                      sparse_transform)
from sslx.configs import mvgrl as mvgrl_cfg
from sslx.data.graph import load_planetoid, pad_graph
from sslx.eval.node import node_probe
from sslx.losses import mvgrl_bce
from sslx.methods import get_method
from sslx.methods.graph.dgi import shuffle_permutation
from sslx.train import make_optimizer
from sslx.train.graph import fit_full_graph
from tests.helpers import assert_node_permutation_equivariant, cut_out_window
from tests.test_dgi import sbm_graph


def _sig(z):
    return 1.0 / (1.0 + math.exp(-z))


def test_mvgrl_bce_matches_naive_hand_values_and_padding():
    rng = np.random.default_rng(0)
    n = 7
    p1, p2, q1, q2 = (rng.normal(size=n) * 2 for _ in range(4))
    want = (sum(-math.log(_sig(v)) for v in np.concatenate([p1, p2]))
            + sum(-math.log(1 - _sig(v)) for v in np.concatenate([q1, q2]))) / (4 * n)
    j = lambda a: jnp.asarray(a, jnp.float32)
    loss, aux = mvgrl_bce((j(p1), j(p2)), (j(q1), j(q2)))
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    acc = (np.sum(p1 > 0) + np.sum(p2 > 0) + np.sum(q1 < 0) + np.sum(q2 < 0)) / (4 * n)
    np.testing.assert_allclose(float(aux["disc_acc"]), acc, rtol=1e-6)
    # hand values: all-zero logits -> log 2; pos = log 3, neg = -log 3 -> -log(3/4)
    z = jnp.zeros(3)
    np.testing.assert_allclose(float(mvgrl_bce((z, z), (z, z))[0]), math.log(2), rtol=1e-6)
    l3 = jnp.full(2, math.log(3.0))
    np.testing.assert_allclose(float(mvgrl_bce((l3, l3), (-l3, -l3))[0]), math.log(4 / 3), rtol=1e-6)
    # padding
    pad = lambda a: jnp.concatenate([j(a), jnp.asarray([9.0, -4.0])])
    lp, _ = mvgrl_bce((pad(p1), pad(p2)), (pad(q1), pad(q2)), jnp.arange(n + 2) < n)
    np.testing.assert_allclose(float(lp), want, rtol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        mvgrl_bce((z, z), (z, jnp.zeros(4)))


def _dense_norm_adj(s, r, n):
    a = np.zeros((n, n))
    a[r, s] = 1
    a += np.eye(n)
    d = 1 / np.sqrt(a.sum(1))
    return d[:, None] * a * d[None, :]


def test_ppr_diffusion_topk_and_sparse_transform_match_numpy():
    g, _ = sbm_graph(n_per=8, k=3, f=10, seed=3)
    n = g.nodes.shape[0]
    t = _dense_norm_adj(g.senders, g.receivers, n)
    want = 0.2 * np.linalg.inv(np.eye(n) - 0.8 * t)
    s = np.asarray(ppr_matrix(jnp.asarray(g.senders), jnp.asarray(g.receivers), n, 0.2))
    np.testing.assert_allclose(s, want, rtol=2e-4, atol=2e-6)
    np.testing.assert_allclose(s, s.T, atol=1e-5)  # symmetric normalisation -> symmetric S
    h = np.random.default_rng(0).normal(size=(n, 5)).astype(np.float32)
    dense = ppr_diffusion(g.senders, g.receivers, n, 0.2)
    np.testing.assert_allclose(np.asarray(diffusion_propagate(jnp.asarray(h), dense)), want @ h, rtol=1e-3, atol=1e-5)
    k = 4
    sp = ppr_diffusion(g.senders, g.receivers, n, 0.2, topk=k)
    chex.assert_shape(sp["weights"], (n * k,))
    kept = np.zeros((n, n))
    for i in range(n):  # naive top-k per row
        cols = np.argsort(-want[i])[:k]
        kept[i, cols] = want[i, cols]
    np.testing.assert_allclose(np.asarray(diffusion_propagate(jnp.asarray(h), sp)), kept @ h, rtol=1e-3, atol=1e-5)
    # x W through the non-zeros
    x = np.asarray(g.nodes) * (np.random.default_rng(1).random(g.nodes.shape) < 0.3)
    w = np.random.default_rng(2).normal(size=(x.shape[1], 6)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(sparse_transform(sparse_features(x), jnp.asarray(w), n)), x @ w,
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="alpha"):
        ppr_matrix(jnp.asarray(g.senders), jnp.asarray(g.receivers), n, 1.0)


def tiny_config(**method):
    c = mvgrl_cfg.get_config("cora")
    c.model.features = (16,)
    c.method.diffusion_topk = 0
    for k, v in method.items():
        c.method[k] = v
    return c


def _dense_mvgrl_loss(params, x, s, r, perm):
    n = len(x)
    a = _dense_norm_adj(s, r, n)
    dif = 0.2 * np.linalg.inv(np.eye(n) - 0.8 * a)
    prelu = lambda z, al: np.where(z >= 0, z, al * z)
    f = lambda a: np.asarray(a, np.float64)
    wa, ba = f(params["conv_a"]["linear"]["kernel"]), f(params["conv_a"]["bias"])
    wd, bd = f(params["conv_d"]["linear"]["kernel"]), f(params["conv_d"]["bias"])
    sa_, sd_ = float(params["act_a"]["negative_slope"]), float(params["act_d"]["negative_slope"])
    ha, hd = prelu(a @ x @ wa + ba, sa_), prelu(dif @ x @ wd + bd, sd_)
    han, hdn = prelu(a @ x[perm] @ wa + ba, sa_), prelu(dif @ x[perm] @ wd + bd, sd_)
    sum_a, sum_d = 1 / (1 + np.exp(-ha.mean(0))), 1 / (1 + np.exp(-hd.mean(0)))
    W, b = np.asarray(params["disc"]["kernel"], np.float64), float(params["disc"]["bias"])
    pos = [hd @ W @ sum_a + b, ha @ W @ sum_d + b]
    neg = [hdn @ W @ sum_a + b, han @ W @ sum_d + b]
    return (sum(np.logaddexp(0, -p).sum() for p in pos) + sum(np.logaddexp(0, q).sum() for q in neg)) / (4 * n)


def test_mvgrl_loss_matches_dense_reference_padding_and_sparse_features():
    g, _ = sbm_graph()
    m = get_method(tiny_config())
    params, state = m.init(jax.random.PRNGKey(0), {"graph": g})
    params = jax.tree.map(lambda p: p + 0.05, params)
    key = jax.random.PRNGKey(5)
    loss_fn = jax.jit(m.loss_fn)
    loss, (_, aux) = loss_fn(params, state, {"graph": g}, key)
    perm = np.asarray(shuffle_permutation(key, g.nodes.shape[0]))
    want = _dense_mvgrl_loss(params, np.asarray(g.nodes, np.float64), g.senders, g.receivers, perm)
    np.testing.assert_allclose(float(loss), want, rtol=1e-4)
    assert 0.0 <= float(aux["disc_acc"]) <= 1.0
    # x W through the features' non-zeros: the same loss
    ls, _ = loss_fn(params, state, {"graph": g, "x_sparse": sparse_features(g.nodes)}, key)
    np.testing.assert_allclose(float(ls), float(loss), rtol=1e-5)
    # padding: a padded graph (own diffusion from init) with its node mask gives the same loss
    padded, masks = pad_graph(g, (128, 512, 2))
    pbatch = {"graph": padded, "node_mask": jnp.asarray(masks["node_mask"])}
    _, pstate = m.init(jax.random.PRNGKey(0), pbatch)
    lp, _ = loss_fn(params, pstate, pbatch, key)
    np.testing.assert_allclose(float(lp), float(loss), rtol=1e-4)


def test_mvgrl_embeddings_are_permutation_equivariant():
    g, _ = sbm_graph(seed=2)
    m = get_method(tiny_config(diffusion_topk=8))
    params, state = m.init(jax.random.PRNGKey(1), {"graph": g})
    assert_node_permutation_equivariant(lambda graph: m.encode(params, state, graph), g, 16)


def test_short_mvgrl_run_learns():
    g, y = sbm_graph(n_per=30, seed=1)
    c = tiny_config()
    c.optimizer.lr = 1e-2
    m = get_method(c)
    tx, _ = make_optimizer(c.optimizer, 1, 1)
    res = fit_full_graph(m, tx, {"graph": g}, jax.random.PRNGKey(0), max_epochs=40, patience=0, progress=False)
    assert np.mean(res.losses[-5:]) < 0.7 * res.losses[0], res.losses
    emb = np.asarray(m.encode(res.params, res.state, g))
    train = np.zeros(len(y), bool)
    train[[0, 1, 30, 31, 60, 61]] = True
    assert node_probe(emb, y, train, ~train, runs=4)["test_acc_mean"] > 80.0


@pytest.mark.parametrize("topk", [0, 8])
def test_mvgrl_subgraph_windows_average_the_losses_of_the_cut_out_subgraphs(topk):
    g, _ = sbm_graph()
    n = g.nodes.shape[0]
    full = get_method(tiny_config(diffusion_topk=topk))
    params, state = full.init(jax.random.PRNGKey(0), {"graph": g})
    params = jax.tree.map(lambda p: p + 0.05, params)
    key = jax.random.PRNGKey(7)
    xs = sparse_features(g.nodes)
    # one window as large as the graph: the full-graph loss (with that window's key)
    one = get_method(tiny_config(diffusion_topk=topk, subgraph_size=n, subgraphs_per_step=1))
    l_one, _ = one.loss_fn(params, state, {"graph": g, "x_sparse": xs}, key)
    l_full, _ = full.loss_fn(params, state, {"graph": g}, jax.random.split(key, 1)[0])
    np.testing.assert_allclose(float(l_one), float(l_full), rtol=1e-5)
    # 3 windows of 25 nodes: the mean of the losses on the subgraphs cut out on the host
    size, k = 25, 3
    win = get_method(tiny_config(diffusion_topk=topk, subgraph_size=size, subgraphs_per_step=k))
    l_win, (_, aux) = jax.jit(win.loss_fn)(params, state, {"graph": g, "x_sparse": xs}, key)
    want, starts = [], set()
    for kk in jax.random.split(key, k):
        start = int(jax.random.randint(jax.random.fold_in(kk, 1), (), 0, n - size + 1))
        starts.add(start)
        sub, dsub = cut_out_window(g, state["diffusion"], start, size)
        want.append(float(full.loss_fn(params, state, {"graph": sub, "diffusion": dsub}, kk)[0]))
    assert len(starts) > 1
    np.testing.assert_allclose(float(l_win), np.mean(want), rtol=1e-5)
    assert 0.0 <= float(aux["disc_acc"]) <= 1.0
    # padding after the real nodes changes nothing: the windows lie inside the real nodes
    padded, masks = pad_graph(g, (128, 512, 2))
    pbatch = {"graph": padded, "node_mask": jnp.asarray(masks["node_mask"])}
    _, pstate = win.init(jax.random.PRNGKey(0), pbatch)
    l_pad, _ = jax.jit(win.loss_fn)(params, pstate, pbatch, key)
    np.testing.assert_allclose(float(l_pad), float(l_win), rtol=1e-5)
    with pytest.raises(ValueError, match="subgraph_size"):
        get_method(tiny_config(subgraph_size=n + 1)).loss_fn(params, state, {"graph": g}, key)
    with pytest.raises(ValueError, match="subgraphs_per_step"):
        get_method(tiny_config(subgraph_size=10, subgraphs_per_step=0))


def test_configs_build_and_reject_bad_values():
    for arg in ("cora", "citeseer"):
        c = mvgrl_cfg.get_config(arg)
        assert c.method.name == "mvgrl" and c.method.alpha == 0.2 and tuple(c.model.features) == (512,)
        assert get_method(c).name == "mvgrl"
    with pytest.raises(ValueError, match="cora, citeseer"):
        mvgrl_cfg.get_config("pubmed")
    with pytest.raises(ValueError, match="alpha"):
        get_method(tiny_config(alpha=1.5))
    bad = tiny_config()
    bad.model.features = (16, 16)
    with pytest.raises(ValueError, match="one positive GCN width"):
        get_method(bad)


def test_mvgrl_runs_on_real_cora(shared_data):
    ds = load_planetoid("cora", shared_data / "graph")
    c = mvgrl_cfg.get_config("cora")
    c.model.features = (64,)
    m = get_method(c)
    tx, _ = make_optimizer(c.optimizer, 1, 1)
    batch = {"graph": ds.graph, "x_sparse": sparse_features(ds.graph.nodes)}
    res = fit_full_graph(m, tx, batch, jax.random.PRNGKey(0), max_epochs=2, patience=0, progress=False)
    assert res.losses[0] == pytest.approx(math.log(2), abs=0.05) and np.all(np.isfinite(res.losses))
    chex.assert_shape(res.state["diffusion"]["weights"], (2708 * c.method.diffusion_topk,))

"""GRACE: the loss vs naive loops and a hand value, padding invariance, the views, the method's
loss, a short run that learns, configs."""
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslx.configs import grace as grace_cfg
from sslx.data.graph import pad_graph
from sslx.eval.node import node_probe
from sslx.losses import grace_loss
from sslx.methods import get_method
from sslx.augment.graph_views import sparse_features
from sslx.methods.graph.grace import drop_edges, gcn_forward, mask_features
from sslx.models.gnn import GCN
from sslx.train import make_optimizer
from sslx.train.graph import fit_full_graph
from tests.test_dgi import sbm_graph


def _naive_grace(z1, z2, tau):
    def cos(a, b):
        return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))

    n = len(z1)

    def side(a, b, i):
        pos = math.exp(cos(a[i], b[i]) / tau)
        den = pos + sum(math.exp(cos(a[i], b[k]) / tau) for k in range(n) if k != i) \
            + sum(math.exp(cos(a[i], a[k]) / tau) for k in range(n) if k != i)
        return -math.log(pos / den)

    return sum(0.5 * (side(z1, z2, i) + side(z2, z1, i)) for i in range(n)) / n


def test_grace_loss_matches_naive_and_hand_value():
    rng = np.random.default_rng(0)
    for n, d, tau in [(1, 3, 0.5), (7, 4, 0.4)]:
        z1, z2 = rng.normal(size=(n, d)), rng.normal(size=(n, d))
        got, _ = grace_loss(jnp.asarray(z1, jnp.float32), jnp.asarray(z2, jnp.float32), tau)
        np.testing.assert_allclose(float(got), _naive_grace(z1, z2, tau), rtol=1e-5, atol=1e-6)
    # Hand value: z1 = z2 = (e1, e2), tau 1: positive cos 1, the two negatives cos 0 -> log(e + 2) - 1.
    e = jnp.eye(2)
    np.testing.assert_allclose(float(grace_loss(e, e, 1.0)[0]), math.log(math.e + 2) - 1, rtol=1e-6)
    np.testing.assert_allclose(float(grace_loss(e[:1], e[:1], 0.3)[0]), 0.0, atol=1e-6)  # no negatives
    # a zero row gives finite gradients
    g = jax.grad(lambda z: grace_loss(z, z + 1.0, 0.5)[0])(jnp.zeros((3, 2)).at[1].set(1.0))
    assert np.all(np.isfinite(np.asarray(g)))
    with pytest.raises(ValueError, match="one shape"):
        grace_loss(jnp.zeros((3, 2)), jnp.zeros((2, 2)), 0.5)


def test_grace_loss_padding_invariance():
    rng = np.random.default_rng(1)
    z1, z2 = jnp.asarray(rng.normal(size=(5, 4))), jnp.asarray(rng.normal(size=(5, 4)))
    junk = jnp.asarray(rng.normal(size=(3, 4)) * 10)
    mask = jnp.arange(8) < 5
    padded = grace_loss(jnp.concatenate([z1, junk]), jnp.concatenate([z2, -junk]), 0.5, mask)[0]
    np.testing.assert_allclose(float(padded), float(grace_loss(z1, z2, 0.5)[0]), rtol=1e-5)


def test_views_drop_edges_and_feature_columns():
    keep = drop_edges(jax.random.PRNGKey(0), 20000, 0.3)
    assert keep.dtype == jnp.bool_ and abs(float(keep.mean()) - 0.7) < 0.02
    x = jnp.ones((50, 400))
    xm = mask_features(jax.random.PRNGKey(1), x, 0.4)
    cols = np.asarray(xm[0]) == 0
    assert abs(cols.mean() - 0.4) < 0.08
    np.testing.assert_array_equal(np.asarray(xm) == 0, np.broadcast_to(cols, (50, 400)))  # same columns for all nodes


@pytest.mark.parametrize("activation", ["relu", "prelu"])
def test_gcn_forward_matches_gcn_and_sparse_first_layer(activation):
    g, _ = sbm_graph()
    x = np.asarray(g.nodes, np.float32) * (np.random.default_rng(0).random(g.nodes.shape) < 0.3)  # sparse rows
    gcn = GCN((16, 8), activation=activation)
    params = gcn.init(jax.random.PRNGKey(0), jnp.asarray(x), g.senders, g.receivers)["params"]
    if activation == "prelu":  # distinct slopes per layer, so a swapped layer would show
        params = {**params, "PReLU_0": {"negative_slope": jnp.asarray(0.1)},
                  "PReLU_1": {"negative_slope": jnp.asarray(0.4)}}
    keep = drop_edges(jax.random.PRNGKey(1), g.senders.shape[0], 0.3)
    want = gcn.apply({"params": params}, jnp.asarray(x), g.senders, g.receivers, keep)
    xs = jax.tree.map(jnp.asarray, sparse_features(x))
    for sp in (None, xs):
        got = gcn_forward(params, (16, 8), activation, jnp.asarray(x), g.senders, g.receivers, keep, sp)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)


def test_grace_loss_with_sparse_features_equals_dense():
    g, _ = sbm_graph()
    m = get_method(tiny_grace_config())  # with edge dropping and feature masking
    params, state = m.init(jax.random.PRNGKey(0), {"graph": g})
    xs = jax.tree.map(jnp.asarray, sparse_features(np.asarray(g.nodes)))
    for i in range(2):
        key = jax.random.PRNGKey(10 + i)
        dense = m.loss_fn(params, state, {"graph": g}, key)[0]
        sparse = m.loss_fn(params, state, {"graph": g, "x_sparse": xs}, key)[0]
        np.testing.assert_allclose(float(sparse), float(dense), rtol=1e-5)


def tiny_grace_config(**method):
    c = grace_cfg.get_config("cora")
    c.model.features = (16, 8)
    c.model.proj_hidden = 8
    for k, v in method.items():
        c.method[k] = v
    return c


def test_grace_method_loss_and_padding_without_augmentation():
    g, _ = sbm_graph()
    m = get_method(tiny_grace_config(drop_edge=(0.0, 0.0), drop_feature=(0.0, 0.0)))
    params, state = m.init(jax.random.PRNGKey(0), {"graph": g})
    key = jax.random.PRNGKey(5)
    loss_fn = jax.jit(m.loss_fn)
    loss, _ = loss_fn(params, state, {"graph": g}, key)
    h = m.encode(params, state, g)
    chex.assert_shape(h, (60, 8))
    from sslx.methods.graph.grace import ProjectionHead
    z = ProjectionHead(8, 8).apply({"params": params["head"]}, h)
    np.testing.assert_allclose(float(loss), float(grace_loss(z, z, 0.4)[0]), rtol=1e-5)  # identical views
    padded, masks = pad_graph(g, (128, 512, 2))
    lp, _ = loss_fn(params, state, {"graph": padded, "node_mask": jnp.asarray(masks["node_mask"]),
                                    "edge_mask": jnp.asarray(masks["edge_mask"])}, key)
    np.testing.assert_allclose(float(lp), float(loss), rtol=1e-5)
    # with augmentation the two views differ and the loss changes with the key
    ma = get_method(tiny_grace_config())
    la = [float(jax.jit(ma.loss_fn)(params, state, {"graph": g}, jax.random.PRNGKey(i))[0]) for i in range(2)]
    assert la[0] != la[1]


def test_short_grace_run_learns_communities():
    g, y = sbm_graph(n_per=30, seed=1)
    c = tiny_grace_config()
    c.optimizer.lr = 1e-2
    m = get_method(c)
    tx, _ = make_optimizer(c.optimizer, 1, 1)
    res = fit_full_graph(m, tx, {"graph": g}, jax.random.PRNGKey(0), max_epochs=40, patience=0, progress=False,
                         keep_best=False)
    assert np.mean(res.losses[-5:]) < res.losses[0] - 0.2
    chex.assert_trees_all_close(res.params, res.train_state.params)  # keep_best=False: the last parameters
    train = np.zeros(len(y), bool)
    train[[0, 1, 30, 31, 60, 61]] = True
    out = node_probe(np.asarray(m.encode(res.params, res.state, g)), y, train, ~train, runs=4)
    assert out["test_acc_mean"] > 80.0, out


def test_grace_configs():
    cora, cite = grace_cfg.get_config("cora"), grace_cfg.get_config("citeseer")
    assert tuple(cora.model.features) == (256, 128) and cora.method.temperature == 0.4
    assert cora.train.max_epochs == 300 and cite.train.max_epochs == 200  # cora: chosen on validation accuracy
    assert tuple(cora.method.drop_edge) == (0.2, 0.4) and tuple(cora.method.drop_feature) == (0.3, 0.4)
    assert tuple(cite.model.features) == (512, 256) and cite.method.temperature == 0.9
    assert cite.model.activation == "prelu" and not cite.train.keep_best and cora.eval.probe_l2_normalize
    for c in (cora, cite):
        assert get_method(c).name == "grace"
    with pytest.raises(ValueError, match="cora, citeseer"):
        grace_cfg.get_config("pubmed")
    bad = grace_cfg.get_config("cora")
    bad.method.drop_edge = (0.2, 1.0)
    with pytest.raises(ValueError, match="drop_edge"):
        get_method(bad)

"""GMI: the JSD and edge losses vs naive loops and hand values (and the sampled edge loss vs the
dense one), negative sampling, the row-wise critic, permutation equivariance of the embeddings,
a short run whose loss goes down, a real-Cora smoke run, configs."""
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslx.augment.graph_views import sparse_features
from sslx.configs import gmi as gmi_cfg
from sslx.data.graph import load_planetoid, pad_graph
from sslx.losses import gmi_edge_loss, gmi_edge_loss_sampled, gmi_jsd
from sslx.methods import get_method
from sslx.methods.graph.gmi import PairBilinear, negative_indices, neighbour_mean
from sslx.train import make_optimizer
from sslx.train.graph import fit_full_graph
from tests.helpers import assert_node_permutation_equivariant
from tests.test_dgi import sbm_graph


def _sp(z):
    return math.log1p(math.exp(-abs(z))) + max(z, 0.0)


def test_gmi_jsd_matches_naive_hand_values_and_padding():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(size=6) * 2, rng.normal(size=(3, 6)) * 2
    want = np.mean([_sp(-p) for p in pos]) + np.mean([_sp(q) for q in neg.ravel()])
    loss, _ = gmi_jsd(jnp.asarray(pos), jnp.asarray(neg))
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    np.testing.assert_allclose(float(gmi_jsd(jnp.zeros(4), jnp.zeros((2, 4)))[0]), 2 * math.log(2), rtol=1e-6)
    l3 = math.log(3.0)  # softplus(-log 3) = softplus(log(1/3)) = log(4/3)
    np.testing.assert_allclose(float(gmi_jsd(jnp.full(2, l3), jnp.full((1, 2), -l3))[0]), 2 * math.log(4 / 3),
                               rtol=1e-6)
    mask = jnp.arange(8) < 6
    lp, _ = gmi_jsd(jnp.concatenate([jnp.asarray(pos), jnp.asarray([5.0, -3.0])]),
                    jnp.concatenate([jnp.asarray(neg), jnp.full((3, 2), 7.0)], axis=1), mask)
    np.testing.assert_allclose(float(lp), want, rtol=1e-5)
    with pytest.raises(ValueError, match="neg"):
        gmi_jsd(jnp.zeros(3), jnp.zeros((2, 4)))


def _naive_edge_loss(s, a):
    n = len(a)
    e = a.sum() / 2
    w1, w2 = (n * n - e) / e, n * n / (n * n - e)
    tot = 0.0
    for i in range(n):
        for j in range(n):
            p = 1 / (1 + math.exp(-s[i, j]))
            tot += -w1 * a[i, j] * math.log(p) - (1 - a[i, j]) * math.log(1 - p)
    return tot / (n * n) * w2


def test_gmi_edge_loss_matches_naive_hand_value_padding_and_sampled():
    rng = np.random.default_rng(1)
    n = 6
    a = np.triu(rng.random((n, n)) < 0.4, 1)
    a = (a | a.T | np.eye(n, dtype=bool)).astype(np.float64)
    s = rng.normal(size=(n, n)) * 2
    loss, _ = gmi_edge_loss(jnp.asarray(s), jnp.asarray(a))
    np.testing.assert_allclose(float(loss), _naive_edge_loss(s, a), rtol=1e-5)
    # hand value: 2 nodes, a = I (E = 1), s = 0 -> w1 = 3, w2 = 4/3, mean = (2*3 log2 + 2 log2)/4 -> 8/3 log 2
    np.testing.assert_allclose(float(gmi_edge_loss(jnp.zeros((2, 2)), jnp.eye(2))[0]), 8 / 3 * math.log(2), rtol=1e-6)
    # padding rows / columns are ignored
    sp_ = np.pad(s, ((0, 2), (0, 2)), constant_values=3.0)
    ap = np.pad(a, ((0, 2), (0, 2)), constant_values=1.0)
    lp, _ = gmi_edge_loss(jnp.asarray(sp_), jnp.asarray(ap), jnp.arange(n + 2) < n)
    np.testing.assert_allclose(float(lp), float(loss), rtol=1e-5)
    # the sampled estimate with every pair drawn once equals the dense value
    ii, jj = np.nonzero(a)
    allp = np.stack(np.meshgrid(np.arange(n), np.arange(n), indexing="ij"), -1).reshape(-1, 2)
    ls, _ = gmi_edge_loss_sampled(jnp.asarray(s[ii, jj]), jnp.ones(len(ii), bool),
                                  jnp.asarray(s[allp[:, 0], allp[:, 1]]), jnp.asarray(a[allp[:, 0], allp[:, 1]] > 0), n)
    np.testing.assert_allclose(float(ls), float(loss), rtol=1e-5)


def test_negative_indices_pick_other_real_nodes():
    idx = np.asarray(negative_indices(jax.random.PRNGKey(0), 10, 50, jnp.arange(10) < 7))
    chex.assert_shape(idx, (50, 10))
    assert np.all(idx[:, :7] != np.arange(7)) and np.all(idx[:, :7] < 7) and np.all(idx[:, 7:] == np.arange(7, 10))
    assert set(np.unique(idx[:, 0])) == set(range(1, 7))  # every other real node is drawn


def test_pair_bilinear_and_neighbour_mean_match_numpy():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=(5, 4)).astype(np.float32)
    crit = PairBilinear()
    p = crit.init(jax.random.PRNGKey(0), a, b)
    w, bias = np.asarray(p["params"]["kernel"]), float(p["params"]["bias"])
    np.testing.assert_allclose(np.asarray(crit.apply(p, a, b)), [a[i] @ w @ b[i] + bias for i in range(5)], rtol=1e-5)
    s, r = np.array([0, 1, 2, 1]), np.array([1, 0, 1, 2])
    h = rng.normal(size=(4, 2)).astype(np.float32)
    want = np.stack([h[1], (h[0] + h[2]) / 2, h[1], np.zeros(2)])
    np.testing.assert_allclose(np.asarray(neighbour_mean(jnp.asarray(h), s, r)), want, rtol=1e-6)


def tiny_config(**method):
    c = gmi_cfg.get_config("cora")
    c.model.features = (16, 16)
    for k, v in method.items():
        c.method[k] = v
    return c


def test_gmi_padding_sparse_features_and_permutation_equivariance():
    g, _ = sbm_graph()
    m = get_method(tiny_config(edge_negative_samples=0))
    params, state = m.init(jax.random.PRNGKey(0), {"graph": g})
    key = jax.random.PRNGKey(3)
    loss_fn = jax.jit(m.loss_fn)
    loss, (_, aux) = loss_fn(params, state, {"graph": g}, key)
    ls, _ = loss_fn(params, state, {"graph": g, "x_sparse": sparse_features(g.nodes)}, key)
    np.testing.assert_allclose(float(ls), float(loss), rtol=1e-5)
    assert np.isfinite(float(loss)) and float(aux["edge"]) > 0
    # padding does not change the deterministic (dense edge) terms: FMI depends on the negatives drawn
    padded, masks = pad_graph(g, (128, 512, 2))
    lp, (_, auxp) = loss_fn(params, state, {"graph": padded, "node_mask": jnp.asarray(masks["node_mask"])}, key)
    np.testing.assert_allclose(float(auxp["edge"]), float(aux["edge"]), rtol=1e-4)
    assert_node_permutation_equivariant(lambda graph: m.encode(params, state, graph), g, 16)


@pytest.mark.parametrize("squash", [True, False])
def test_gmi_critic_sigmoid_hand_values(squash):
    # A zero critic kernel with bias b scores every pair b: the feature-MI term is then
    # softplus(-s) + softplus(s) with s = sigmoid(b) (the authors' Discriminator) or s = b (raw).
    g, _ = sbm_graph()
    m = get_method(tiny_config(edge_negative_samples=0, critic_sigmoid=squash))
    params, state = m.init(jax.random.PRNGKey(0), {"graph": g})
    b_x, b_nb = 3.0, -2.0
    params = dict(params, crit_x={"kernel": jnp.zeros_like(params["crit_x"]["kernel"]), "bias": jnp.asarray(b_x)},
                  crit_nb={"kernel": jnp.zeros_like(params["crit_nb"]["kernel"]), "bias": jnp.asarray(b_nb)})
    _, (_, aux) = m.loss_fn(params, state, {"graph": g}, jax.random.PRNGKey(1))
    for b, key in ((b_x, "fmi"), (b_nb, "neighbour_mi")):
        s = 1 / (1 + math.exp(-b)) if squash else b
        np.testing.assert_allclose(float(aux[key]), _sp(-s) + _sp(s), rtol=1e-5)


def test_short_gmi_run_loss_goes_down():
    g, _ = sbm_graph(n_per=20, seed=1)
    c = tiny_config(edge_negative_samples=8)
    c.optimizer.lr = 5e-3
    m = get_method(c)
    tx, _ = make_optimizer(c.optimizer, 1, 1)
    res = fit_full_graph(m, tx, {"graph": g}, jax.random.PRNGKey(0), max_epochs=30, patience=0, progress=False)
    assert np.mean(res.losses[-5:]) < 0.95 * res.losses[0], res.losses


def test_configs_build_and_reject_bad_values():
    assert tuple(gmi_cfg.get_config("cora").model.features) == (512, 512)
    assert tuple(gmi_cfg.get_config("citeseer").model.features) == (512,)
    assert get_method(gmi_cfg.get_config("cora")).name == "gmi"
    with pytest.raises(ValueError, match="cora, citeseer"):
        gmi_cfg.get_config("pubmed")
    with pytest.raises(ValueError, match="num_negatives"):
        get_method(tiny_config(num_negatives=0))
    with pytest.raises(ValueError, match="edge_negative_samples"):
        get_method(tiny_config(edge_negative_samples=-1))


def test_gmi_runs_on_real_cora(shared_data):
    ds = load_planetoid("cora", shared_data / "graph")
    c = gmi_cfg.get_config("cora")
    c.model.features = (64, 64)
    m = get_method(c)
    tx, _ = make_optimizer(c.optimizer, 1, 1)
    batch = {"graph": ds.graph, "x_sparse": sparse_features(ds.graph.nodes)}
    res = fit_full_graph(m, tx, batch, jax.random.PRNGKey(0), max_epochs=3, patience=0, progress=False)
    assert np.all(np.isfinite(res.losses)) and res.losses[-1] < res.losses[0]
    emb = jax.jit(m.encode)(res.params, res.state, jax.tree.map(jnp.asarray, ds.graph))
    chex.assert_shape(emb, (2708, 64))

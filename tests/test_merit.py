"""MERIT: the cross-network / cross-view terms and their beta mix vs naive loops and a hand value,
edge modification, the EMA target update, permutation equivariance of the embeddings, a short
run whose loss goes down, a real-Cora smoke run, configs."""
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslx.augment.graph_views import modify_edges, node_window, sparse_features
from sslx.configs import merit as merit_cfg
from sslx.data.graph import load_planetoid
from sslx.losses import merit_cross_network, merit_cross_view, merit_loss
from sslx.methods import get_method
from sslx.train import make_optimizer
from sslx.train.graph import fit_full_graph
from tests.helpers import assert_node_permutation_equivariant, cut_out_window
from tests.test_dgi import sbm_graph


def _cos(u, v):
    return float(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)))


def _naive_cn(h, z):
    return [-math.log(math.exp(_cos(h[i], z[i])) / sum(math.exp(_cos(h[i], z[k])) for k in range(len(h))))
            for i in range(len(h))]


def _naive_cv(h1, h2):
    out = []
    for i in range(len(h1)):
        den = sum(math.exp(_cos(h1[i], h2[k])) for k in range(len(h1)))
        den += sum(math.exp(_cos(h1[i], h1[k])) for k in range(len(h1)) if k != i)
        out.append(-math.log(math.exp(_cos(h1[i], h2[i])) / den))
    return out


def test_merit_terms_match_naive_hand_value_and_padding():
    rng = np.random.default_rng(0)
    p1, p2, t1, t2 = (rng.normal(size=(5, 4)) for _ in range(4))
    j = jnp.asarray
    np.testing.assert_allclose(np.asarray(merit_cross_network(j(p1), j(t2))), _naive_cn(p1, t2), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(merit_cross_view(j(p1), j(p2))), _naive_cv(p1, p2), rtol=1e-5)
    beta = 0.6
    want = np.mean(beta * (np.array(_naive_cn(p1, t2)) + _naive_cn(p2, t1)) / 2
                   + (1 - beta) * (np.array(_naive_cv(p1, p2)) + _naive_cv(p2, p1)) / 2)
    loss, aux = merit_loss(j(p1), j(p2), j(t1), j(t2), beta)
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    # hand value: 2 nodes, orthogonal unit rows, views identical: cn = -log(e / (e + 1)) = log(1 + 1/e);
    # cv = -log(e / (e + 1 + 1)) = log(1 + 2/e)
    e2 = jnp.eye(2)
    l_h, a_h = merit_loss(e2, e2, e2, e2, 0.5)
    np.testing.assert_allclose(float(a_h["cross_network"]), math.log(1 + 1 / math.e), rtol=1e-6)
    np.testing.assert_allclose(float(a_h["cross_view"]), math.log(1 + 2 / math.e), rtol=1e-6)
    np.testing.assert_allclose(float(l_h), 0.5 * (math.log(1 + 1 / math.e) + math.log(1 + 2 / math.e)), rtol=1e-6)
    # padding rows are neither anchors nor negatives
    pad = lambda a: jnp.concatenate([j(a), j(rng.normal(size=(2, 4)))])
    lp, _ = merit_loss(pad(p1), pad(p2), pad(t1), pad(t2), beta, jnp.arange(7) < 5)
    np.testing.assert_allclose(float(lp), want, rtol=1e-5)
    # no gradient flows into the targets
    g = jax.grad(lambda t: merit_loss(j(p1), j(p2), t, j(t2), beta)[0])(j(t1))
    assert float(jnp.abs(g).max()) == 0.0
    with pytest.raises(ValueError, match="beta"):
        merit_loss(j(p1), j(p2), j(t1), j(t2), 1.5)


def test_modify_edges_drops_and_adds_real_edges():
    s = jnp.arange(1000) % 50
    r = (jnp.arange(1000) + 1) % 50
    ns, nr, keep = modify_edges(jax.random.PRNGKey(0), s, r, 0.2, 40)
    chex.assert_shape((ns, nr, keep), [(1200,)] * 3)
    np.testing.assert_array_equal(np.asarray(ns[:1000]), np.asarray(s))
    assert 0.74 < float(jnp.mean(keep[:1000])) < 0.86
    added_s, added_r = np.asarray(ns[1000:]), np.asarray(nr[1000:])
    assert added_s.max() < 40 and added_r.max() < 40
    np.testing.assert_array_equal(np.asarray(keep[1000:]), added_s != added_r)
    _, _, k0 = modify_edges(jax.random.PRNGKey(0), s, r, 0.0, 50)
    assert k0.shape == (1000,) and bool(k0.all())
    with pytest.raises(ValueError, match="rate"):
        modify_edges(jax.random.PRNGKey(0), s, r, 1.0, 50)


def test_modify_edges_adds_in_proportion_to_the_real_edges():
    s = jnp.arange(1000) % 50
    r = (jnp.arange(1000) + 1) % 50
    real = jnp.arange(1000) < 250  # a quarter of the slots are real edges
    ns, _, keep = modify_edges(jax.random.PRNGKey(1), s, r, 0.4, 40, real)
    chex.assert_shape(ns, (1400,))
    assert not bool(keep[250:1000].any())  # padding edges stay masked
    assert 0.5 < float(jnp.mean(keep[:250])) < 0.7
    added = int(keep[1000:].sum())  # ~ 0.4 * 250 = 100 of the 400 slots (minus self-loops)
    assert 70 < added < 130, added


def test_node_window_keeps_exactly_the_edges_inside_relabelled():
    rng = np.random.default_rng(0)
    s, r = rng.integers(0, 30, 200), rng.integers(0, 30, 200)
    em = rng.random(200) < 0.8
    ws, wr, m = node_window(jnp.asarray(7), 12, jnp.asarray(s), jnp.asarray(r), jnp.asarray(em))
    want = (s >= 7) & (s < 19) & (r >= 7) & (r < 19) & em
    np.testing.assert_array_equal(np.asarray(m), want)
    np.testing.assert_array_equal(np.asarray(ws)[want], s[want] - 7)
    np.testing.assert_array_equal(np.asarray(wr)[want], r[want] - 7)
    assert int(np.asarray(ws)[~want].max()) == 0 and int(np.asarray(wr)[~want].max()) == 0


def tiny_config(**method):
    c = merit_cfg.get_config("cora")
    c.model.features = (16,)
    c.model.proj_hidden = 16
    c.model.proj_dim = 8
    c.method.diffusion_topk = 0
    c.method.loss_nodes = 0
    for k, v in method.items():
        c.method[k] = v
    return c


def test_merit_ema_update_and_permutation_equivariance():
    g, _ = sbm_graph()
    c = tiny_config()
    m = get_method(c)
    params, state = m.init(jax.random.PRNGKey(0), {"graph": g})
    chex.assert_trees_all_close(state["target"]["conv"], params["conv"])
    moved = jax.tree.map(lambda p: p + 1.0, params)
    new = m.after_update(moved, state, jnp.asarray(0))
    mom = c.method.momentum
    chex.assert_trees_all_close(new["target"]["projector"],
                                jax.tree.map(lambda t, o: mom * t + (1 - mom) * o, state["target"]["projector"],
                                             moved["projector"]), rtol=1e-6)
    assert "predictor" not in new["target"]
    # the loss with the features' non-zeros equals the dense one
    key = jax.random.PRNGKey(4)
    loss_fn = jax.jit(m.loss_fn)
    l_dense, _ = loss_fn(params, state, {"graph": g}, key)
    l_sp, _ = loss_fn(params, state, {"graph": g, "x_sparse": sparse_features(g.nodes)}, key)
    np.testing.assert_allclose(float(l_sp), float(l_dense), rtol=1e-5)
    assert_node_permutation_equivariant(lambda graph: m.encode(params, state, graph), g, 16)


@pytest.mark.parametrize("topk", [0, 8])
def test_merit_subgraph_window_equals_the_loss_on_the_cut_out_subgraph(topk):
    g, _ = sbm_graph()
    n = g.nodes.shape[0]
    params, state = get_method(tiny_config(diffusion_topk=topk)).init(jax.random.PRNGKey(0), {"graph": g})
    key = jax.random.PRNGKey(3)
    full = get_method(tiny_config(diffusion_topk=topk))
    l_full, _ = full.loss_fn(params, state, {"graph": g}, key)
    # a window as large as the graph is the full-graph step (same augmentation draws)
    l_all, _ = get_method(tiny_config(diffusion_topk=topk, subgraph_size=n)).loss_fn(
        params, state, {"graph": g, "x_sparse": sparse_features(g.nodes)}, key)
    np.testing.assert_allclose(float(l_all), float(l_full), rtol=1e-5)
    # a window of 25 nodes: the loss of the subgraph cut out on the host (edges, diffusion entries and
    # features inside the window, relabelled). No edge modification here: it draws per edge slot, and
    # the window keeps all E slots (masked) where the cut-out graph has fewer.
    size = 25
    start = int(jax.random.randint(jax.random.fold_in(key, 1), (), 0, n - size + 1))
    sub, dsub = cut_out_window(g, state["diffusion"], start, size)
    win = get_method(tiny_config(diffusion_topk=topk, subgraph_size=size, drop_edge=0.0))
    l_win, _ = jax.jit(win.loss_fn)(params, state, {"graph": g, "x_sparse": sparse_features(g.nodes)}, key)
    cut = get_method(tiny_config(diffusion_topk=topk, drop_edge=0.0))
    l_cut, _ = cut.loss_fn(params, state, {"graph": sub, "diffusion": dsub}, key)
    np.testing.assert_allclose(float(l_win), float(l_cut), rtol=1e-5)
    with pytest.raises(ValueError, match="subgraph_size"):
        get_method(tiny_config(subgraph_size=n + 1)).loss_fn(params, state, {"graph": g}, key)


def test_short_merit_run_loss_goes_down():
    g, _ = sbm_graph(n_per=20, seed=1)
    c = tiny_config(loss_nodes=32)
    c.optimizer.lr = 1e-2
    m = get_method(c)
    tx, _ = make_optimizer(c.optimizer, 1, 1)
    res = fit_full_graph(m, tx, {"graph": g}, jax.random.PRNGKey(0), max_epochs=60, patience=0, progress=False)
    # the same 8 augmentation draws before and after training (the per-step losses are noisy, and the
    # cosine-similarity InfoNCE terms cannot fall far below ~log(1 + (n - 1) / e^2) anyway)
    p0, s0 = m.init(jax.random.PRNGKey(0), {"graph": g})
    f = jax.jit(lambda p, st, k: m.loss_fn(p, st, {"graph": g}, k)[0])
    keys = [jax.random.PRNGKey(100 + i) for i in range(8)]
    before = np.mean([float(f(p0, s0, k)) for k in keys])
    after = np.mean([float(f(res.params, res.state, k)) for k in keys])
    assert after < before - 0.15, (before, after, res.losses)


def test_configs_build_and_reject_bad_values():
    for arg in ("cora", "citeseer"):
        c = merit_cfg.get_config(arg)
        assert c.method.name == "merit" and 0 <= c.method.beta <= 1 and c.method.momentum == 0.8
        assert get_method(c).name == "merit"
    with pytest.raises(ValueError, match="cora, citeseer"):
        merit_cfg.get_config("pubmed")
    with pytest.raises(ValueError, match="beta"):
        get_method(tiny_config(beta=2.0))
    with pytest.raises(ValueError, match="drop_edge"):
        get_method(tiny_config(drop_edge=1.0))


def test_merit_runs_on_real_cora(shared_data):
    ds = load_planetoid("cora", shared_data / "graph")
    c = merit_cfg.get_config("cora")
    c.model.features = (64,)
    c.model.proj_hidden = c.model.proj_dim = 64
    m = get_method(c)
    tx, _ = make_optimizer(c.optimizer, 1, 1)
    batch = {"graph": ds.graph, "x_sparse": sparse_features(ds.graph.nodes)}
    res = fit_full_graph(m, tx, batch, jax.random.PRNGKey(0), max_epochs=2, patience=0, progress=False)
    assert np.all(np.isfinite(res.losses))
    emb = jax.jit(m.encode)(res.params, res.state, jax.tree.map(jnp.asarray, ds.graph))
    chex.assert_shape(emb, (2708, 64))

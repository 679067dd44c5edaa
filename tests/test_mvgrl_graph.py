"""Graph-level MVGRL: the host PPR diffusion vs a dense inverse (and its row sums), the two-view
dataset, the loss vs a naive loop, the whole method vs a dense numpy forward, padding and
node-relabelling invariance, 1 vs 4 devices, a short run that learns, configs, a MUTAG smoke run."""
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslx.augment.graph_views import ppr_matrix, ppr_matrix_host, sparsify_diffusion
from sslx.configs import mvgrl as mvgrl_cfg
from sslx.data.graph import GraphDataset, with_ppr_view
from sslx.data.graph_batch import make_graph_batch, unflatten
from sslx.methods import get_method
from sslx.methods.graph.mvgrl import mvgrl_graph_loss
from sslx.train.graph_level import embed_dataset, load_graph_dataset, train_graph_level
from tests.helpers import apply_overrides, run_steps
from tests.test_infograph import random_graph_dataset

LOG2 = math.log(2.0)


def tiny_config(**overrides):
    c = mvgrl_cfg.get_config("mutag")
    c.model.hidden = 8
    c.model.num_layers = 2
    c.batch_size = 8
    return apply_overrides(c, overrides)


def _dense_ppr(adj: np.ndarray, alpha: float = 0.2) -> np.ndarray:
    """Independent reference: alpha (I - (1 - alpha) D^-1/2 (A + I) D^-1/2)^-1 by np.linalg.inv."""
    a = adj + np.eye(len(adj))
    d = np.diag(1.0 / np.sqrt(a.sum(1)))
    return alpha * np.linalg.inv(np.eye(len(adj)) - (1 - alpha) * d @ a @ d)


def _edges(pairs):
    pairs = sorted({(a, b) for a, b in pairs} | {(b, a) for a, b in pairs})
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


# ---------------------------------------------------------------- diffusion


def test_ppr_host_matches_dense_inverse_and_row_sums():
    # a triangle with a tail (0-1-2-0, 2-3), a separate edge 4-5, an isolated node 6
    s, r = _edges([(0, 1), (1, 2), (2, 0), (2, 3), (4, 5)])
    n = 7
    adj = np.zeros((n, n))
    adj[r, s] = 1
    S = ppr_matrix_host(s, r, n, 0.2)
    np.testing.assert_allclose(S, _dense_ppr(adj), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(S, np.asarray(ppr_matrix(jnp.asarray(s), jnp.asarray(r), n, 0.2)), atol=1e-5)
    np.testing.assert_allclose(S, S.T, atol=1e-12)
    # S d^1/2 = d^1/2 (d: degrees with the self-loop): T d^1/2 = d^1/2 and alpha sum (1-alpha)^k = 1
    d = adj.sum(1) + 1
    np.testing.assert_allclose(S @ np.sqrt(d), np.sqrt(d), rtol=1e-10)
    assert np.all(S[:4, 4:] == 0) and np.all(S[4:6, 6] == 0)  # no mass across components
    assert S[6, 6] == pytest.approx(1.0)  # an isolated node keeps all of its mass
    np.testing.assert_allclose(S[4:6, 4:6].sum(1), 1.0, rtol=1e-10)  # a regular component: rows sum to 1
    # a cycle (2-regular): every row sums to 1, the diagonal is the largest entry of its row
    cs, cr = _edges([(i, (i + 1) % 6) for i in range(6)])
    C = ppr_matrix_host(cs, cr, 6, 0.2)
    np.testing.assert_allclose(C.sum(1), 1.0, rtol=1e-10)
    assert np.all(np.argmax(C, axis=1) == np.arange(6))
    with pytest.raises(ValueError, match="alpha"):
        ppr_matrix_host(s, r, n, 0.0)
    with pytest.raises(ValueError, match="node ids"):
        ppr_matrix_host(s, r, 3)


def test_sparsify_diffusion_matches_naive():
    rng = np.random.default_rng(0)
    S = rng.random((6, 6)) * (rng.random((6, 6)) < 0.7)
    for eps, k in [(0.0, 0), (0.3, 0), (0.0, 2), (0.25, 3)]:
        snd, rcv, w = sparsify_diffusion(S, eps, k)
        want = {}
        for i in range(6):
            row = [(S[i, j], j) for j in range(6) if S[i, j] > 0 and S[i, j] >= eps]
            row.sort(key=lambda t: (-t[0], t[1]))
            for v, j in (row[:k] if k else row):
                want[(i, j)] = v
        got = {(int(a), int(b)): float(v) for a, b, v in zip(rcv, snd, w)}
        assert got == pytest.approx(want)
        assert list(zip(rcv, snd)) == sorted(zip(rcv, snd))  # sorted by (receiver, sender)
    with pytest.raises(ValueError, match="square"):
        sparsify_diffusion(np.zeros((2, 3)))


def test_with_ppr_view_holds_both_views():
    ds = random_graph_dataset(6, seed=3)
    view = with_ppr_view(ds, 0.2, eps=1e-3, topk=4)
    assert view.edges.shape == (len(view.senders), 2) and view.n_edge.sum() == len(view.senders)
    np.testing.assert_array_equal(view.nodes, ds.nodes)
    for i in range(len(ds)):
        g, v = ds.graph(i), view.graph(i)
        n = int(g.n_node[0])
        adj = np.zeros((n, n))
        adj[g.receivers, g.senders] = 1
        got_a, got_s = np.zeros((n, n)), np.zeros((n, n))
        got_a[v.receivers, v.senders] = v.edges[:, 0]
        got_s[v.receivers, v.senders] = v.edges[:, 1]
        np.testing.assert_array_equal(got_a, adj)
        S = _dense_ppr(adj)
        want = np.zeros((n, n))
        for row in range(n):  # naive: entries >= eps, the 4 largest per row
            cols = [j for j in np.argsort(-S[row], kind="stable")[:4] if S[row, j] >= 1e-3]
            want[row, cols] = S[row, cols]
        np.testing.assert_allclose(got_s, want, rtol=1e-6, atol=1e-8)
        assert np.all((v.edges[:, 0] > 0) | (v.edges[:, 1] > 0))  # only edges of one view or the other
    # batches carry the edge features; padding edges are 0 in both views
    b = make_graph_batch(view, np.arange(6), 1, sizes=(64, 256, 8))
    chex.assert_shape(b["edges"], (256, 2))
    assert np.all(b["edges"][~b["edge_mask"]] == 0)
    np.testing.assert_array_equal(b["edges"][b["edge_mask"]], view.edges)
    with pytest.raises(ValueError, match="already has edge features"):
        with_ppr_view(view)


# ---------------------------------------------------------------- loss


def _sp(x):
    return math.log1p(math.exp(-abs(x))) + max(x, 0.0)


def naive_direction(l, g, node_graph):
    """E_neg - E_pos of the JSD estimator over every (node, graph) pair, by loops."""
    pos, neg = [], []
    for i in range(len(l)):
        for j in range(len(g)):
            t = float(np.dot(l[i], g[j]))
            (pos if node_graph[i] == j else neg).append(t)
    return np.mean([_sp(t) - LOG2 for t in neg]) - np.mean([LOG2 - _sp(-t) for t in pos])


def test_loss_matches_naive_loop_and_ignores_padding():
    rng = np.random.default_rng(0)
    la, ld = (rng.normal(size=(8, 4)).astype(np.float32) for _ in range(2))
    ga, gd = (rng.normal(size=(3, 4)).astype(np.float32) for _ in range(2))
    node_graph = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    j = jnp.asarray
    loss, aux = mvgrl_graph_loss(j(la), j(ld), j(ga), j(gd), j(node_graph), jnp.ones(8, bool), jnp.ones(3, bool))
    want_ad, want_da = naive_direction(la, gd, node_graph), naive_direction(ld, ga, node_graph)
    np.testing.assert_allclose(float(loss), want_ad + want_da, rtol=1e-5)
    np.testing.assert_allclose(float(aux["mi_a_d"]), -want_ad, rtol=1e-5)
    np.testing.assert_allclose(float(aux["mi"]), -(want_ad + want_da) / 2, rtol=1e-5)
    # padding node rows and graph columns (huge values) change nothing
    pad = lambda x, k: j(np.concatenate([x, 80 * rng.normal(size=(k, 4))]).astype(np.float32))  # noqa: E731
    lp, _ = mvgrl_graph_loss(pad(la, 3), pad(ld, 3), pad(ga, 2), pad(gd, 2), j(np.r_[node_graph, 4, 4, 4]),
                             jnp.arange(11) < 8, jnp.arange(5) < 3)
    np.testing.assert_allclose(float(lp), float(loss), rtol=1e-6)
    with pytest.raises(ValueError, match="one shape"):
        mvgrl_graph_loss(j(la), j(ld[:, :3]), j(ga), j(gd), j(node_graph), jnp.ones(8, bool), jnp.ones(3, bool))


def _prelu(x, a):
    return np.where(x >= 0, x, a * x)


def _np_forward(params, ds, idx):
    """Dense numpy forward of the whole model on the graphs ``idx`` of the plain dataset ``ds``:
    block-diagonal D^-1/2 (A + I) D^-1/2 and dense PPR S from np.linalg.inv, per-graph loops."""
    def enc(p, mats, xs):
        nodes, reads = [], []
        for m, x in zip(mats, xs):
            h, rd = x, []
            for li in range(len(p)):
                lp = p[f"layer{li}"]
                h = _prelu(m @ (h @ np.asarray(lp["linear"]["kernel"], np.float64)) + lp["bias"],
                           float(lp["act"]["negative_slope"]))
                rd.append(h.sum(0))
            nodes.append(h)
            reads.append(np.concatenate(rd))
        return np.concatenate(nodes), np.stack(reads)

    def mlp(p, x):
        h = x
        for k in range(3):
            h = _prelu(h @ p[f"block_{k}"]["kernel"] + p[f"block_{k}"]["bias"], float(p[f"act_{k}"]["negative_slope"]))
        return h + x @ p["shortcut"]["kernel"] + p["shortcut"]["bias"]

    params = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    adjs, diffs, xs = [], [], []
    for i in idx:
        g = ds.graph(int(i))
        n = int(g.n_node[0])
        a = np.zeros((n, n))
        a[g.receivers, g.senders] = 1
        al = a + np.eye(n)
        d = 1 / np.sqrt(al.sum(1))
        adjs.append(d[:, None] * al * d[None, :])
        diffs.append(_dense_ppr(a))
        xs.append(np.asarray(g.nodes, np.float64))
    ha, ra = enc(params["enc_a"], adjs, xs)
    hd, rd = enc(params["enc_d"], diffs, xs)
    return (mlp(params["proj_node"], ha), mlp(params["proj_graph"], ra), mlp(params["proj_node"], hd),
            mlp(params["proj_graph"], rd))


def test_method_matches_dense_numpy_forward_and_naive_loss():
    ds = random_graph_dataset(5, seed=4)
    view = with_ppr_view(ds, 0.2, eps=0.0)  # every entry of S
    c = tiny_config()
    m = get_method(c, axis_name=None)
    b = make_graph_batch(view, np.arange(5), 1)
    params, state = m.init(jax.random.PRNGKey(0), b)
    # scale the graph projection up so that the scores are far from 0 (a sharper check)
    params = jax.tree.map(lambda a: a, params)
    params["proj_graph"]["shortcut"]["kernel"] = params["proj_graph"]["shortcut"]["kernel"] * 3.0
    la, ga, ld, gd = _np_forward(params, ds, np.arange(5))
    node_graph = np.repeat(np.arange(5), ds.n_node[:5])
    want = naive_direction(la, gd, node_graph) + naive_direction(ld, ga, node_graph)
    loss, (new_state, aux) = jax.jit(m.loss_fn)(params, state, b, jax.random.PRNGKey(1))
    assert new_state == {}
    np.testing.assert_allclose(float(loss), want, rtol=2e-4, atol=1e-5)
    assert abs(want) > 0.05  # not a trivial value
    emb = jax.jit(lambda p, bb: m.encode(p, {}, unflatten(bb), bb["node_mask"]))(params, b)[:5]
    np.testing.assert_allclose(np.asarray(emb), ga + gd, rtol=2e-4, atol=1e-4)


# ---------------------------------------------------------------- invariances and devices


def _permute_graph0(ds: GraphDataset) -> GraphDataset:
    """``ds`` with graph 0's nodes listed in reverse order (same graphs)."""
    n0 = int(ds.n_node[0])
    p = np.r_[np.arange(n0)[::-1], np.arange(n0, len(ds.nodes))]
    inv = np.argsort(p)
    s, r = inv[ds.senders], inv[ds.receivers]
    order = np.lexsort((s, r))  # keep edges grouped by graph (receiver order)
    return GraphDataset(name=ds.name, nodes=ds.nodes[p], senders=s[order].astype(np.int32),
                        receivers=r[order].astype(np.int32), n_node=ds.n_node, n_edge=ds.n_edge, labels=ds.labels,
                        num_classes=ds.num_classes)


def test_padding_and_relabelling_invariance():
    ds = random_graph_dataset(6, seed=1)
    view = with_ppr_view(ds)
    m = get_method(tiny_config(), axis_name=None)
    idx = np.arange(6)
    small = make_graph_batch(view, idx, 1)
    big = make_graph_batch(view, idx, 1, sizes=(128, 512, 16))
    assert big["nodes"].shape[0] > small["nodes"].shape[0] and big["edges"].shape[0] > small["edges"].shape[0]
    params, state = m.init(jax.random.PRNGKey(0), small)
    # non-zero biases everywhere: a padding node would then hold PReLU(b) != 0, which must not leak
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(2), len(leaves))
    params = jax.tree.unflatten(tree, [a + 0.1 * jax.random.normal(k, a.shape) for a, k in zip(leaves, keys)])
    vg = jax.jit(jax.value_and_grad(m.loss_fn, has_aux=True))
    key = jax.random.PRNGKey(1)
    (l1, _), g1 = vg(params, state, small, key)
    (l2, _), g2 = vg(params, state, big, key)
    np.testing.assert_allclose(float(l1), float(l2), rtol=1e-5)
    chex.assert_trees_all_close(g1, g2, rtol=1e-4, atol=1e-6)
    enc = jax.jit(lambda b: m.encode(params, state, unflatten(b), b["node_mask"])[:6])
    e1, e2 = np.asarray(enc(small)), np.asarray(enc(big))
    chex.assert_shape(e1, (6, 8))
    np.testing.assert_allclose(e1, e2, rtol=1e-5, atol=1e-5)
    # relabelling graph 0's nodes (before the diffusion is computed) leaves every embedding and the loss unchanged
    pview = with_ppr_view(_permute_graph0(ds))
    assert not np.array_equal(pview.nodes, view.nodes)
    pb = make_graph_batch(pview, idx, 1, sizes=(128, 512, 16))
    np.testing.assert_allclose(np.asarray(enc(pb)), e2, rtol=1e-5, atol=1e-5)
    (l3, _), _ = vg(params, state, pb, key)
    np.testing.assert_allclose(float(l3), float(l2), rtol=1e-5)
    # a dataset without the diffusion view is refused with a pointer to with_ppr_view
    with pytest.raises(ValueError, match="with_ppr_view"):
        m.loss_fn(params, state, make_graph_batch(ds, idx, 1), key)


def test_one_vs_four_devices_equal():
    """Graphs split 3/3/3/1 over 4 devices (unequal node and pair counts) give the 1-device step:
    gathered graph representations of both views and the count-weighted loss."""
    assert len(jax.devices()) >= 4
    view = with_ppr_view(random_graph_dataset(10, seed=2))
    c = tiny_config()
    c.optimizer.lr = 0.01
    orders = [np.arange(10), np.random.default_rng(0).permutation(10)]
    h1, s1, m1 = run_steps(c, jax.devices()[:1], "jit", [make_graph_batch(view, o, 1) for o in orders])
    h4, s4, m4 = run_steps(c, jax.devices()[:4], "jit", [make_graph_batch(view, o, 4) for o in orders])
    chex.assert_trees_all_close(h1.params, h4.params)
    for a, b in zip(m1, m4):
        for k in ("loss", "mi", "mi_a_d", "mi_d_a"):
            np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(a["grad_norm"], b["grad_norm"], rtol=1e-4)
    assert not np.allclose(m1[0]["loss"], m1[1]["loss"])  # the first step changed the parameters
    flat = [jax.tree_util.tree_flatten_with_path(t)[0] for t in (h1.params, s1.params, s4.params)]
    for (path, p0), (_, p1), (_, p4) in zip(*flat):
        d1, d4 = np.asarray(p1) - np.asarray(p0), np.asarray(p4) - np.asarray(p0)
        assert np.linalg.norm(d1 - d4) <= 1e-3 * np.linalg.norm(d1) + 1e-7, path


# ---------------------------------------------------------------- training, configs, real data


def test_short_training_lowers_the_loss():
    view = with_ppr_view(random_graph_dataset(16, seed=5, max_nodes=9))
    c = tiny_config(**{"model.hidden": 16, "optimizer.lr": 5e-3, "train.num_epochs": 15})
    out = train_graph_level(c, view, devices=jax.devices()[:2], seed=0)
    assert out["steps"] == 15 * 2
    losses = out["losses"]
    assert np.mean(losses[-4:]) < np.mean(losses[:4]) - 0.3, np.round(losses, 3)
    x, y = embed_dataset(get_method(c, axis_name=None), out["params"], out["state"], view)
    chex.assert_shape(x, (16, 16))
    assert np.all(np.isfinite(x))


def test_configs_select_the_level():
    for arg in ("mutag", "MUTAG", "imdb_binary", "IMDB-MULTI", "ptc_mr", "proteins"):
        c = mvgrl_cfg.get_config(arg)
        assert c.method.level == "graph" and c.dataset.diffusion.alpha == 0.2 and c.model.num_layers == 4
        assert c.optimizer.lr == 1e-3 and c.batch_size == 128 and c.train.num_epochs == 20
        assert get_method(c).name == "mvgrl"
    assert mvgrl_cfg.get_config("mutag").model.hidden == 512
    assert mvgrl_cfg.get_config("imdb_binary").dataset.node_features == "degree"
    for arg in ("cora", "citeseer"):
        assert mvgrl_cfg.get_config(arg).method.level == "node"
    bad = tiny_config()
    bad.method.level = "edge"
    with pytest.raises(ValueError, match="'node' or 'graph'"):
        get_method(bad)
    with pytest.raises(ValueError, match="mutag"):
        mvgrl_cfg.get_config("pubmed")


def test_mutag_smoke(shared_data):
    c = tiny_config(**{"batch_size": 128, "model.hidden": 16, "train.num_epochs": 4, "optimizer.lr": 5e-3})
    ds = load_graph_dataset(c, shared_data / "graph")
    assert len(ds) == 188 and ds.edges.shape == (len(ds.senders), 2)
    assert int(ds.edges[:, 0].sum()) == 7442  # MUTAG's directed adjacency edges, all kept
    assert ds.nodes.shape[1] == 7 + 5  # one-hot atom type + one-hot degree 0..4
    out = train_graph_level(c, ds, devices=jax.devices()[:2], seed=0)
    assert out["steps"] == 4 * 2 and np.all(np.isfinite(out["losses"]))
    assert np.mean(out["losses"][-2:]) < np.mean(out["losses"][:2]), out["losses"]
    x, y = embed_dataset(get_method(c, axis_name=None), out["params"], out["state"], ds)
    chex.assert_shape(x, (188, 16))
    assert np.all(np.isfinite(x)) and np.std(x, axis=0).max() > 0


@pytest.mark.parametrize("name", ["infograph", "mvgrl"])
def test_benchmark_graph_level_config(name):
    """scripts/benchmark.py's graph-level path: ms per step on one padded batch, sharded over 2 devices."""
    from sslx.configs import infograph as infograph_cfg
    from sslx.train.graph_level import benchmark_graph_level_config
    ds = random_graph_dataset(20)
    if name == "mvgrl":
        c, ds = tiny_config(), with_ppr_view(ds)
    else:  # the paper's optimiser (Adam 1e-3), small widths
        c = apply_overrides(infograph_cfg.get_config("mutag"), {"model.hidden": 8, "model.num_layers": 2})
    c.batch_size = 8
    out = benchmark_graph_level_config(c, steps=2, repeats=2, warmup=0, ds=ds, devices=jax.devices()[:2])
    assert out["method"] == name and out["graphs"] == 20 and out["graphs_per_batch"] == 8 and out["devices"] == 2
    assert 0 < out["best_ms_per_step"] <= out["ms_per_step"]
    np.testing.assert_allclose(out["ms_per_epoch"], 3 * out["ms_per_step"])  # ceil(20 / 8) steps per epoch
    np.testing.assert_allclose(out["graphs_per_sec"], 8 / (out["ms_per_step"] / 1000))
    assert np.isfinite(out["loss"]) and out["compile_s"] > 0

"""InfoGraph: loss vs a naive implementation and hand values, padded graph batches, padding
invariance, 1-device vs 4-device equality, the SVM cross-validation protocol, a short run."""
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslx.configs import infograph as infograph_cfg
from sslx.data.graph import GraphDataset
from sslx.data.graph_batch import dataset_budget, epoch_batches, make_graph_batch, split_for_devices, unflatten
from sslx.eval.graph_level import svm_cross_validation
from sslx.methods import get_method
from sslx.methods.graph.infograph import infograph_loss
from sslx.train.graph_level import embed_dataset, load_graph_dataset, train_graph_level

from tests.helpers import run_steps, tiny_training

LOG2 = math.log(2.0)


def random_graph_dataset(num_graphs=10, feats=3, seed=0, max_nodes=7) -> GraphDataset:
    """Random small undirected graphs (one-hot node labels), edges both ways, grouped by graph."""
    rng = np.random.default_rng(seed)
    n_node = rng.integers(2, max_nodes + 1, num_graphs)
    senders, receivers, n_edge, off = [], [], [], 0
    for n in n_node:
        pairs = {(int(a), int(b)) for a, b in rng.integers(0, n, (n + 1, 2)) if a != b}
        pairs |= {(b, a) for a, b in pairs}
        pairs = sorted(pairs, key=lambda p: (p[1], p[0]))
        senders += [off + a for a, _ in pairs]
        receivers += [off + b for _, b in pairs]
        n_edge.append(len(pairs))
        off += n
    nodes = np.eye(feats, dtype=np.float32)[rng.integers(0, feats, off)]
    return GraphDataset(name="random", nodes=nodes, senders=np.asarray(senders, np.int32),
                        receivers=np.asarray(receivers, np.int32), n_node=n_node.astype(np.int32),
                        n_edge=np.asarray(n_edge, np.int32), labels=rng.integers(0, 2, num_graphs).astype(np.int32),
                        num_classes=2)


def tiny_config(**kw):
    c = infograph_cfg.get_config("mutag")
    c = tiny_training(c)
    c.model.hidden = 8
    c.model.num_layers = 2
    for k, v in kw.items():
        node = c
        *path, last = k.split(".")
        for p in path:
            node = node[p]
        node[last] = v
    return c


# ---------------------------------------------------------------- loss

def naive_infograph_loss(l, g, node_graph):
    """The authors' form: E_pos = sum over (node, own graph) of (log2 - softplus(-T)) / num_nodes,
    E_neg = sum over other pairs of (softplus(T) - log2) / (num_nodes * (num_graphs - 1)); loss E_neg - E_pos."""
    n, k = l.shape[0], g.shape[0]
    sp = lambda x: math.log1p(math.exp(-abs(x))) + max(x, 0.0)  # noqa: E731
    e_pos = e_neg = 0.0
    for i in range(n):
        for j in range(k):
            t = float(np.dot(l[i], g[j]))
            if node_graph[i] == j:
                e_pos += LOG2 - sp(-t)
            else:
                e_neg += sp(t) - LOG2
    return e_neg / (n * (k - 1)) - e_pos / n


def test_loss_matches_naive_and_hand_values():
    rng = np.random.default_rng(0)
    l, g = rng.normal(size=(9, 4)).astype(np.float32), rng.normal(size=(3, 4)).astype(np.float32)
    node_graph = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    loss, aux = infograph_loss(jnp.asarray(l), jnp.asarray(g), jnp.asarray(node_graph),
                               jnp.ones(9, bool), jnp.ones(3, bool))
    chex.assert_shape(loss, ())
    np.testing.assert_allclose(float(loss), naive_infograph_loss(l, g, node_graph), rtol=1e-5)
    np.testing.assert_allclose(float(aux["mi"]), -float(loss), rtol=1e-6)
    # Hand values: T = 0 everywhere gives 0; one node in graph 0, T(own) = a, T(other) = b:
    # loss = softplus(-a) + softplus(b) - 2 log 2.
    zero, _ = infograph_loss(jnp.zeros((3, 2)), jnp.zeros((2, 2)), jnp.array([0, 1, 1]), jnp.ones(3, bool),
                             jnp.ones(2, bool))
    assert abs(float(zero)) < 1e-7
    a, b = 2.0, -1.0
    val, _ = infograph_loss(jnp.array([[1.0]]), jnp.array([[a], [b]]), jnp.array([0]), jnp.ones(1, bool),
                            jnp.ones(2, bool))
    hand = math.log1p(math.exp(-a)) + math.log1p(math.exp(b)) - 2 * LOG2
    np.testing.assert_allclose(float(val), hand, rtol=1e-6)
    # Padding rows / columns (masked) change nothing.
    lp = np.concatenate([l, 50 * rng.normal(size=(3, 4))]).astype(np.float32)
    gp = np.concatenate([g, 50 * rng.normal(size=(2, 4))]).astype(np.float32)
    padded, _ = infograph_loss(jnp.asarray(lp), jnp.asarray(gp), jnp.asarray(np.r_[node_graph, 4, 4, 4]),
                               jnp.arange(12) < 9, jnp.arange(5) < 3)
    np.testing.assert_allclose(float(padded), float(loss), rtol=1e-6)
    with pytest.raises(ValueError, match="share D"):
        infograph_loss(jnp.zeros((3, 2)), jnp.zeros((2, 3)), jnp.zeros(3, int), jnp.ones(3, bool), jnp.ones(2, bool))


# ---------------------------------------------------------------- batches

def test_graph_batches_blocks_and_budgets():
    ds = random_graph_dataset(10)
    idx = np.array([3, 1, 4, 0, 9, 2, 6, 5, 8, 7])
    groups = split_for_devices(idx, 4)
    assert [len(g) for g in groups] == [3, 3, 3, 1]
    b = make_graph_batch(ds, idx, 4, labels=True)
    nb, gb = b["nodes"].shape[0] // 4, b["n_node"].shape[0] // 4
    eb = b["senders"].shape[0] // 4
    for d, grp in enumerate(groups):
        blk = {k: v[d * s:(d + 1) * s] for k, v, s in
               [(k, v, {"nodes": nb, "node_mask": nb, "senders": eb, "receivers": eb, "edge_mask": eb}.get(k, gb))
                for k, v in b.items()]}
        np.testing.assert_array_equal(blk["n_node"][:len(grp)], ds.n_node[grp])
        np.testing.assert_array_equal(blk["label"][:len(grp)], ds.labels[grp])
        assert blk["graph_mask"].sum() == len(grp) and blk["node_mask"].sum() == ds.n_node[grp].sum()
        ref = ds.batch(grp)
        np.testing.assert_array_equal(blk["nodes"][:blk["node_mask"].sum()], ref.nodes)
        np.testing.assert_array_equal(blk["senders"][:len(ref.senders)], ref.senders)
        assert blk["senders"].max() < nb  # ids local to the block
    # A budget for the whole dataset fits every batch of an epoch, with one shape.
    sizes = dataset_budget(ds, 4, 2)
    shapes = {tuple(v.shape for v in bb.values()) for bb in epoch_batches(ds, 4, jax.random.PRNGKey(0), 2, sizes)}
    assert len(shapes) == 1
    with pytest.raises(ValueError, match="too small"):
        make_graph_batch(ds, idx, 1, sizes=(8, 8, 4))
    with pytest.raises(ValueError, match="empty"):
        make_graph_batch(ds, [], 1)


def test_padding_invariance_and_encode():
    """A batch padded to a larger budget gives the same loss, gradients and embeddings."""
    ds = random_graph_dataset(6, seed=1)
    c = tiny_config()
    m = get_method(c, axis_name=None)
    idx = np.arange(6)
    small = make_graph_batch(ds, idx, 1)
    big = make_graph_batch(ds, idx, 1, sizes=(128, 256, 16))
    assert big["nodes"].shape[0] > small["nodes"].shape[0]
    params, state = m.init(jax.random.PRNGKey(0), small)
    key = jax.random.PRNGKey(1)
    vg = jax.jit(jax.value_and_grad(m.loss_fn, has_aux=True))
    (l1, (s1, _)), g1 = vg(params, state, small, key)
    (l2, (s2, _)), g2 = vg(params, state, big, key)
    np.testing.assert_allclose(float(l1), float(l2), rtol=1e-5)
    chex.assert_trees_all_close(g1, g2, rtol=1e-4, atol=1e-5)
    chex.assert_trees_all_close(s1, s2, rtol=1e-5, atol=1e-6)  # BatchNorm statistics: real nodes only
    enc = jax.jit(lambda b: m.encode(params, s1, unflatten(b), b["node_mask"])[:6])
    e1, e2 = enc(small), enc(big)
    chex.assert_shape(e1, (6, c.model.hidden * c.model.num_layers))
    np.testing.assert_allclose(np.asarray(e1), np.asarray(e2), rtol=1e-5, atol=1e-5)
    # Graph embeddings are invariant to relabelling the nodes inside a graph.
    perm_ds = random_graph_dataset(6, seed=1)
    n0 = int(ds.n_node[0])
    p = np.r_[np.arange(n0)[::-1], np.arange(n0, len(ds.nodes))]  # reverse graph 0's nodes
    inv = np.argsort(p)
    perm_ds.nodes = ds.nodes[p]
    perm_ds.senders, perm_ds.receivers = inv[ds.senders].astype(np.int32), inv[ds.receivers].astype(np.int32)
    pb = make_graph_batch(perm_ds, idx, 1, sizes=(128, 256, 16))
    e3 = enc(pb)
    np.testing.assert_allclose(np.asarray(e3), np.asarray(e2), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- devices

def test_one_vs_four_devices_equal():
    """The 4-device step (graphs split 3/3/3/1, unequal node counts) equals the 1-device step:
    gathered graph embeddings, count-weighted loss and synchronised BatchNorm."""
    assert len(jax.devices()) >= 4
    ds = random_graph_dataset(10, seed=2)
    c = tiny_config()
    c.optimizer.lr = 0.05
    orders = [np.arange(10), np.random.default_rng(0).permutation(10)]
    one = [make_graph_batch(ds, o, 1) for o in orders]
    four = [make_graph_batch(ds, o, 4) for o in orders]
    h1, s1, m1 = run_steps(c, jax.devices()[:1], "jit", one)
    h4, s4, m4 = run_steps(c, jax.devices()[:4], "jit", four)
    chex.assert_trees_all_close(h1.params, h4.params)
    for a, b in zip(m1, m4):
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)
        np.testing.assert_allclose(a["mi"], b["mi"], rtol=1e-5)
        np.testing.assert_allclose(a["grad_norm"], b["grad_norm"], rtol=1e-4)
    assert not np.allclose(m1[0]["loss"], m1[1]["loss"])  # the step changed the parameters
    # The parameter updates agree leaf by leaf up to float32 summation order (1e-3 of each update).
    flat = [jax.tree_util.tree_flatten_with_path(t)[0] for t in (h1.params, s1.params, s4.params)]
    for (path, p0), (_, p1), (_, p4) in zip(*flat):
        d1, d4 = np.asarray(p1) - np.asarray(p0), np.asarray(p4) - np.asarray(p0)
        assert np.linalg.norm(d1 - d4) <= 1e-3 * np.linalg.norm(d1) + 1e-7, path
    chex.assert_trees_all_close(s1.state, s4.state, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- evaluation

def test_svm_cross_validation_protocol():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    x = rng.normal(size=(80, 5)) + 4.0 * y[:, None]  # separable
    r = svm_cross_validation(x, y, seed=0)
    assert r["mean"] == 100.0 and r["std"] == 0.0 and len(r["fold_acc"]) == 10
    assert set(r["chosen_c"]) <= {1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0}
    quick = dict(folds=5, inner_folds=3, cs=(1e-2, 1.0, 1e2))
    lin = svm_cross_validation(x, y, kernel="linear", seed=0, **quick)
    assert lin["mean"] == 100.0 and len(lin["fold_acc"]) == 5
    noise = svm_cross_validation(rng.normal(size=(80, 5)), y, seed=0, **quick)
    assert 20.0 < noise["mean"] < 80.0  # features unrelated to the labels: chance level
    x_hard = x + rng.normal(size=x.shape) * 3.0
    a, b = (svm_cross_validation(x_hard, y, seed=3, **quick) for _ in range(2))
    assert a["fold_acc"] == b["fold_acc"] and a["chosen_c"] == b["chosen_c"]  # deterministic given the seed
    # standardize=True: z-scored within each training fold, so per-feature rescaling and shifts
    # cannot change the result; without it, one huge noise feature swamps the RBF kernel.
    scaled = x_hard * np.array([1.0, 1e3, 1e-3, 5.0, 1.0]) + np.array([0.0, 7.0, -3.0, 0.0, 1e3])
    s1, s2 = (svm_cross_validation(v, y, seed=3, standardize=True, **quick) for v in (x_hard, scaled))
    assert s1["fold_acc"] == pytest.approx(s2["fold_acc"]) and s1["chosen_c"] == s2["chosen_c"]
    swamped = np.concatenate([x_hard, 1e3 * rng.normal(size=(80, 1))], axis=1)
    raw_sw = svm_cross_validation(swamped, y, seed=3, **quick)
    std_sw = svm_cross_validation(swamped, y, seed=3, standardize=True, **quick)
    assert std_sw["mean"] > raw_sw["mean"] + 10.0
    with pytest.raises(ValueError, match="two classes"):
        svm_cross_validation(x, np.zeros(80, int))
    with pytest.raises(ValueError, match="lower folds"):
        svm_cross_validation(x[:45], y[:45])
    with pytest.raises(ValueError, match="kernel"):
        svm_cross_validation(x, y, kernel="poly")
    with pytest.raises(ValueError, match="max_iter"):
        svm_cross_validation(x, y, max_iter=0)


def test_svm_cross_validation_bounds_and_reports_unconverged_fits():
    """libsvm has no iteration limit of its own; a fit that hits max_iter is counted and warned
    about, and its score is still used (nothing dropped)."""
    from sklearn.exceptions import ConvergenceWarning

    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 30)
    x = rng.normal(size=(60, 4)) + 0.3 * y[:, None]  # overlapping classes: large C needs many iterations
    quick = dict(folds=3, inner_folds=2, cs=(1e3,), kernel="linear", seed=0)
    with pytest.warns(ConvergenceWarning, match=r"stopped at max_iter=5 .*Raise max_iter"):
        capped = svm_cross_validation(x, y, max_iter=5, **quick)
    assert capped["unconverged_fits"] == 3 * 2 + 3  # every inner fit and every refit
    assert len(capped["fold_acc"]) == 3 and 0.0 <= capped["mean"] <= 100.0
    full = svm_cross_validation(x, y, **quick)
    assert full["unconverged_fits"] == 0


# ---------------------------------------------------------------- configs and a short run

def test_configs_build():
    for arg in ("mutag", "imdb_binary", "ptc_mr", "proteins", "imdb_multi"):
        c = infograph_cfg.get_config(arg)
        assert get_method(c).name == "infograph"
        assert c.optimizer.lr == 1e-3 and c.batch_size == 128 and c.model.hidden == 32
        # sets without node labels get the one-hot degree (issue 5), the others their labels
        assert c.dataset.node_features == ("degree" if arg.startswith("imdb") else "labels")
    with pytest.raises(ValueError, match="mutag"):
        infograph_cfg.get_config("cora")


def test_short_training_on_mutag(shared_data):
    c = infograph_cfg.get_config("mutag")
    c.model.num_layers = 2
    c.model.hidden = 16
    c.train.num_epochs = 6
    ds = load_graph_dataset(c, shared_data / "graph")
    assert len(ds) == 188
    out = train_graph_level(c, ds, devices=jax.devices()[:2], seed=0)
    assert out["steps"] == 6 * 2
    assert np.mean(out["losses"][-2:]) < np.mean(out["losses"][:2]) - 1.0, out["losses"]
    x, y = embed_dataset(get_method(c, axis_name=None), out["params"], out["state"], ds)
    chex.assert_shape(x, (188, 32))
    assert np.all(np.isfinite(x))

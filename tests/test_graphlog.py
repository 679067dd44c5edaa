"""GraphLoG: view augmentation (counts, uniformity, key determinism), the three losses vs naive
loops and hand values, hierarchical k-means, the prototype hook, padding invariance, 1-device vs
4-device equality, configs and a short training run through train_graph_level."""
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslx.configs import graphlog as graphlog_cfg
from sslx.data.graph_batch import make_graph_batch, unflatten
from sslx.losses.graph_proto import (graphlog_graph_nce, graphlog_node_nce, hierarchical_kmeans,
                                     hierarchical_proto_nce, spherical_kmeans)
from sslx.methods import get_method
from sslx.methods.base import EpochContext
from sslx.methods.graph.graphlog import global_graph_index, perturb_nodes, within_graph_rank
from sslx.models.gnn import graph_ids
from sslx.train import ParallelStep, create_train_state, make_optimizer, make_step_fn
from sslx.train.graph_level import embed_dataset, load_graph_dataset, train_graph_level

from tests.helpers import apply_overrides
from test_infograph import random_graph_dataset


def tiny_config(**overrides):
    c = graphlog_cfg.get_config("tiny")
    c.optimizer.name = "sgd"  # a parameter change is the gradient
    c.optimizer.lr = 0.05
    c.optimizer.momentum = 0.0
    return apply_overrides(c, overrides)


# ---------------------------------------------------------------- augmentation

def _block(ds, idx, sizes=None):
    b = make_graph_batch(ds, idx, 1, sizes)
    return b, graph_ids(jnp.asarray(b["n_node"]), b["nodes"].shape[0])


def test_within_graph_rank():
    vals = jnp.array([0.5, 0.1, 0.9, 0.3, 0.3, 0.0, 7.0])
    gid = jnp.array([0, 0, 0, 1, 1, 1, 2])
    rank = within_graph_rank(vals, gid, jnp.array([3, 3, 1]))
    np.testing.assert_array_equal(np.asarray(rank), [1, 0, 2, 1, 2, 0, 0])  # tie 0.3/0.3: node order


def test_perturb_nodes_counts_uniformity_and_keys():
    ds = random_graph_dataset(10, feats=3, seed=3, max_nodes=9)
    b, gid = _block(ds, np.arange(10), sizes=(128, 256, 16))
    real = b["node_mask"]
    gidx = jnp.arange(16)
    f = jax.jit(lambda k: perturb_nodes(k, jnp.asarray(b["nodes"]), jnp.asarray(b["n_node"]), jnp.asarray(real),
                                        gidx, 0.25, 0.3))
    nodes, present, masked = f(jax.random.PRNGKey(0))
    present, masked, nodes = np.asarray(present), np.asarray(masked), np.asarray(nodes)
    gid = np.asarray(gid)
    for g in range(10):
        sel = (gid == g) & real
        n = int(sel.sum())
        keep = n - int(n * 0.25 + 1e-9)
        assert present[sel].sum() == keep
        assert masked[sel].sum() == min(keep, int(keep * 0.3 + 1e-9) + 1)
    assert not present[~real].any() and not masked[~present].any()
    changed = masked | (real & ~present)
    np.testing.assert_array_equal(nodes[changed], 0.0)
    np.testing.assert_array_equal(nodes[~changed], b["nodes"][~changed])
    # Deterministic in the key; another key gives another view.
    again = f(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(np.asarray(again[2]), masked)
    assert not np.array_equal(np.asarray(f(jax.random.PRNGKey(1))[2]), masked)
    # Uniform: over many keys every real node of a graph is masked equally often (mask only).
    g = jax.jit(jax.vmap(lambda k: perturb_nodes(k, jnp.asarray(b["nodes"]), jnp.asarray(b["n_node"]),
                                                 jnp.asarray(real), gidx, 0.0, 0.3)[2]))
    freq = np.asarray(g(jax.random.split(jax.random.PRNGKey(5), 2000))).mean(0)
    for gg in range(10):
        sel = (gid == gg) & real
        n = int(sel.sum())
        expect = min(n, int(n * 0.3 + 1e-9) + 1) / n
        np.testing.assert_allclose(freq[sel], expect, atol=4 * math.sqrt(expect * (1 - expect) / 2000) + 1e-9)


def test_perturb_nodes_depends_only_on_the_global_graph_index():
    """Graph 6 alone in a block (global index 6) gets the same view as inside the full block."""
    ds = random_graph_dataset(8, seed=4)
    key = jax.random.PRNGKey(9)
    full, gid = _block(ds, np.arange(8))
    out_full = perturb_nodes(key, jnp.asarray(full["nodes"]), jnp.asarray(full["n_node"]),
                             jnp.asarray(full["node_mask"]), jnp.arange(full["n_node"].shape[0]), 0.2, 0.4)
    alone, _ = _block(ds, [6])
    gi = jnp.full((alone["n_node"].shape[0],), 6)
    out_alone = perturb_nodes(key, jnp.asarray(alone["nodes"]), jnp.asarray(alone["n_node"]),
                              jnp.asarray(alone["node_mask"]), gi, 0.2, 0.4)
    sel = np.asarray(gid) == 6
    n6 = int(ds.n_node[6])
    for a, b in zip(out_full, out_alone):
        np.testing.assert_array_equal(np.asarray(a)[sel], np.asarray(b)[:n6])
    with pytest.raises(ValueError, match="drop_rate"):
        perturb_nodes(key, jnp.zeros((4, 1)), jnp.array([4]), jnp.ones(4, bool), jnp.zeros(1, int), 1.0, 0.1)


def test_global_graph_index_across_devices():
    from jax.sharding import Mesh, PartitionSpec as P
    mask = np.zeros((4, 4), bool)
    mask[0, :3] = mask[1, :3] = mask[2, :1] = True  # 3, 3, 1, 0 real graphs
    mesh = Mesh(np.asarray(jax.devices()[:4]), ("d",))
    fn = jax.jit(jax.shard_map(lambda m: global_graph_index(m, "d"), mesh=mesh, in_specs=P("d"), out_specs=P("d"),
                                 check_vma=False))
    out = np.asarray(fn(jnp.asarray(mask.reshape(-1)))).reshape(4, 4)
    np.testing.assert_array_equal(out[:, 0], [0, 3, 6, 7])
    np.testing.assert_array_equal(out[0], [0, 1, 2, 3])


# ---------------------------------------------------------------- losses

def _cos(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def naive_node_nce(z, zm, gid, anchors, real, tau):
    tot, cnt = 0.0, 0
    for i in range(len(z)):
        if not (anchors[i] and real[i]):
            continue
        den = [math.exp(_cos(zm[i], z[j]) / tau) for j in range(len(z)) if gid[j] == gid[i] and real[j]]
        tot += math.log(sum(den)) - _cos(zm[i], z[i]) / tau
        cnt += 1
    return tot / max(cnt, 1)


def naive_graph_nce(g_all, gm, own, mask_all, mask, tau):
    tot, cnt = 0.0, 0
    for k in range(len(gm)):
        if not mask[k]:
            continue
        den = sum(math.exp(_cos(gm[k], g_all[j]) / tau) for j in range(len(g_all)) if mask_all[j])
        tot += math.log(den) - _cos(gm[k], g_all[own[k]]) / tau
        cnt += 1
    return tot / cnt


def naive_proto(z, protos, active, parents, mask, tau):
    """Top-down: best active top prototype, then the best active child of the choice, ...; plus the tree term."""
    num_levels = len(protos)
    total, cnt = 0.0, 0
    for gi in range(len(z)):
        if not mask[gi]:
            continue
        choice = None
        for lvl in range(num_levels - 1, -1, -1):
            cands = [m for m in range(len(protos[lvl])) if active[lvl][m]
                     and (lvl == num_levels - 1 or parents[lvl][m] == choice)]
            if not cands:
                continue
            sims = {m: _cos(z[gi], protos[lvl][m]) / tau for m in cands}
            choice = max(cands, key=lambda m: (sims[m], -m))
            total += math.log(sum(math.exp(s) for s in sims.values())) - sims[choice]
        cnt += 1
    path = total / cnt
    tree = 0.0
    for lvl in range(num_levels - 1):
        up = [u for u in range(len(protos[lvl + 1])) if active[lvl + 1][u]]
        terms = []
        for c in range(len(protos[lvl])):
            if not active[lvl][c]:
                continue
            sims = [_cos(protos[lvl][c], protos[lvl + 1][u]) / tau for u in up]
            terms.append(math.log(sum(math.exp(s) for s in sims))
                         - _cos(protos[lvl][c], protos[lvl + 1][parents[lvl][c]]) / tau)
        tree += sum(terms) / max(len(terms), 1)
    return path + tree


def test_node_and_graph_nce_match_naive_and_hand_values():
    rng = np.random.default_rng(0)
    z, zm = rng.normal(size=(12, 5)), rng.normal(size=(12, 5))
    gid = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 3])
    anchors = rng.random(12) < 0.6
    real = np.ones(12, bool)
    real[-2:] = False  # two padding rows (graph 3 keeps one real node)
    loss, aux = graphlog_node_nce(jnp.asarray(z, jnp.float32), jnp.asarray(zm, jnp.float32), jnp.asarray(gid),
                                  jnp.asarray(anchors), jnp.asarray(real), 0.3)
    chex.assert_shape(loss, ())
    np.testing.assert_allclose(float(loss), naive_node_nce(z, zm, gid, anchors, real, 0.3), rtol=1e-5)
    assert 0.0 <= float(aux["node_acc"]) <= 1.0
    # Padding rows hold huge values: nothing changes.
    z2 = z.copy()
    z2[-2:] = 1e6
    loss2, _ = graphlog_node_nce(jnp.asarray(z2, jnp.float32), jnp.asarray(zm, jnp.float32), jnp.asarray(gid),
                                 jnp.asarray(anchors), jnp.asarray(real), 0.3)
    np.testing.assert_allclose(float(loss2), float(loss), rtol=1e-6)
    # Hand value: two orthogonal nodes in one graph, tau 1, anchor node 0: log(1 + e^-1).
    eye = jnp.eye(2)
    hand, acc = graphlog_node_nce(eye, eye, jnp.array([0, 0]), jnp.array([True, False]), jnp.ones(2, bool), 1.0)
    np.testing.assert_allclose(float(hand), math.log1p(math.exp(-1.0)), rtol=1e-6)
    assert float(acc["node_acc"]) == 1.0

    g_all, gm = rng.normal(size=(8, 4)), rng.normal(size=(4, 4))
    own = np.array([4, 5, 6, 7])
    mask_all = np.array([1, 1, 1, 0, 1, 1, 1, 0], bool)
    mask = np.array([1, 1, 1, 0], bool)
    gl, _ = graphlog_graph_nce(jnp.asarray(g_all, jnp.float32), jnp.asarray(gm, jnp.float32), jnp.asarray(own),
                               jnp.asarray(mask_all), jnp.asarray(mask), 0.5)
    np.testing.assert_allclose(float(gl), naive_graph_nce(g_all, gm, own, mask_all, mask, 0.5), rtol=1e-5)
    # Hand value: positive cos 1, one negative cos 0, tau 0.5: log(1 + e^-2).
    hv, _ = graphlog_graph_nce(jnp.eye(2), jnp.eye(2)[:1], jnp.array([0]), jnp.ones(2, bool), jnp.ones(1, bool), 0.5)
    np.testing.assert_allclose(float(hv), math.log1p(math.exp(-2.0)), rtol=1e-6)


def test_proto_nce_matches_naive_and_hand_value():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(9, 6))
    protos = [rng.normal(size=(7, 6)), rng.normal(size=(4, 6)), rng.normal(size=(2, 6))]
    active = [np.array([1, 1, 0, 1, 1, 1, 1], bool), np.array([1, 1, 1, 0], bool), np.ones(2, bool)]
    parents = [np.array([0, 0, 1, 1, 2, 2, 1]), np.array([0, 1, 1, 0])]
    mask = np.ones(9, bool)
    mask[-1] = False
    loss, aux = hierarchical_proto_nce(jnp.asarray(z, jnp.float32), [jnp.asarray(p, jnp.float32) for p in protos],
                                       [jnp.asarray(a) for a in active], [jnp.asarray(p) for p in parents],
                                       jnp.asarray(mask), 0.2)
    np.testing.assert_allclose(float(loss), naive_proto(z, protos, active, parents, mask, 0.2), rtol=1e-5)
    np.testing.assert_allclose(float(aux["proto_path"] + aux["proto_tree"]), float(loss), rtol=1e-6)
    # The chosen bottom prototype of each graph is a child of its chosen middle one.
    np.testing.assert_array_equal(parents[0][np.asarray(aux["assign_0"])], np.asarray(aux["assign_1"]))
    # Hand value (module docstring's structure), tau 1: top [e1, e2]; bottom [e1, (0.6, 0.8), e2] with
    # parents [0, 0, 1]; z = e1 chooses top 0 then bottom 0 among {0, 1}.
    top = jnp.eye(2)
    bottom = jnp.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    hv, _ = hierarchical_proto_nce(jnp.array([[1.0, 0.0]]), [bottom, top], [jnp.ones(3, bool), jnp.ones(2, bool)],
                                   [jnp.array([0, 0, 1])], jnp.ones(1, bool), 1.0)
    l1 = math.log1p(math.exp(-1.0))
    hand = l1 + math.log1p(math.exp(-0.4)) + (2 * l1 + math.log1p(math.exp(0.2))) / 3
    np.testing.assert_allclose(float(hv), hand, rtol=1e-6)
    with pytest.raises(ValueError, match="L - 1"):
        hierarchical_proto_nce(jnp.zeros((2, 2)), [top, top], [jnp.ones(2, bool)] * 2, [], jnp.ones(2, bool), 1.0)


def test_spherical_and_hierarchical_kmeans():
    rng = np.random.default_rng(2)
    centers = np.eye(6)[:4] * 5
    truth = rng.integers(0, 4, 200)
    x = centers[truth] + rng.normal(size=(200, 6)) * 0.3
    cent, labels, counts = spherical_kmeans(jnp.asarray(x, jnp.float32), jnp.ones(200), 4, jax.random.PRNGKey(0),
                                            iters=15)
    labels = np.asarray(labels)
    # The clusters are the true groups (up to relabelling) and a fixed point of Lloyd's step.
    assert len({(t, l) for t, l in zip(truth, labels)}) == 4
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    np.testing.assert_array_equal(labels, np.argmax(xn @ np.asarray(cent).T, axis=1))
    for k in range(4):
        mean = xn[labels == k].sum(0)
        np.testing.assert_allclose(np.asarray(cent)[k], mean / np.linalg.norm(mean), atol=1e-5)
    np.testing.assert_array_equal(np.asarray(counts), np.bincount(labels, minlength=4))
    # Zero-weight rows are ignored.
    w = np.ones(200)
    w[truth == 3] = 0
    _, _, c3 = spherical_kmeans(jnp.asarray(x, jnp.float32), jnp.asarray(w), 3, jax.random.PRNGKey(1), iters=15)
    assert float(np.sum(c3)) == np.sum(w)

    protos, active, parents = hierarchical_kmeans(jnp.asarray(x, jnp.float32), jnp.ones(200), (8, 3, 5),
                                                  jax.random.PRNGKey(3), iters=10)
    assert [p.shape for p in protos] == [(8, 6), (3, 6), (5, 6)] and len(parents) == 2
    assert int(np.sum(active[2])) <= 3  # 5 clusters over at most 3 active prototypes: some empty
    for lvl in range(2):
        lower, upper = np.asarray(protos[lvl]), np.asarray(protos[lvl + 1])
        par = np.asarray(parents[lvl])
        act = np.asarray(active[lvl])
        np.testing.assert_array_equal(par[act], np.argmax(lower[act] @ upper.T, axis=1))
        # A prototype is active exactly when some active prototype below chose it.
        np.testing.assert_array_equal(np.asarray(active[lvl + 1]), np.isin(np.arange(len(upper)), par[act]))
    with pytest.raises(ValueError, match="sizes"):
        hierarchical_kmeans(jnp.asarray(x), jnp.ones(200), (4, 0), jax.random.PRNGKey(0))


# ---------------------------------------------------------------- method

def _init(c, ds, idx):
    m = get_method(c, axis_name=None)
    b = make_graph_batch(ds, idx, 1)
    params, state = m.init(jax.random.PRNGKey(0), b)
    return m, b, params, state


def test_padding_invariance_and_encode():
    """A batch padded to a larger budget gives the same loss, gradients and embeddings."""
    ds = random_graph_dataset(6, seed=1)
    c = tiny_config()
    m, small, params, state = _init(c, ds, np.arange(6))
    big = make_graph_batch(ds, np.arange(6), 1, sizes=(128, 256, 16))
    state = {**state, "proto_ready": jnp.ones(())}  # the prototype term counts too
    vg = jax.jit(jax.value_and_grad(m.loss_fn, has_aux=True))
    key = jax.random.PRNGKey(1)
    (l1, (s1, m1)), g1 = vg(params, state, small, key)
    (l2, (s2, m2)), g2 = vg(params, state, big, key)
    np.testing.assert_allclose(float(l1), float(l2), rtol=1e-5)
    for k in ("node_nce", "graph_nce", "proto_nce"):
        np.testing.assert_allclose(float(m1[k]), float(m2[k]), rtol=1e-5)
    # Leaf by leaf up to float32 summation order, relative to the gradient's scale (biases before a
    # BatchNorm have a true gradient of 0: only rounding noise is left there).
    scale = max(float(np.max(np.abs(v))) for v in jax.tree.leaves(g1))
    chex.assert_trees_all_close(g1, g2, rtol=1e-4, atol=1e-5 * scale)
    chex.assert_trees_all_close(s1, s2, rtol=1e-5, atol=1e-6)
    enc = jax.jit(lambda b: m.encode(params, s1, unflatten(b), b["node_mask"])[:6])
    e1, e2 = enc(small), enc(big)
    chex.assert_shape(e1, (6, c.model.hidden * c.model.num_layers))
    np.testing.assert_allclose(np.asarray(e1), np.asarray(e2), rtol=1e-5, atol=1e-5)


def test_prototype_hook():
    """Prototypes: no gradient before the hook; hook at local_epochs runs hierarchical k-means on
    the projected embeddings, sets ready and resets their optimiser moments; other epochs no-op."""
    ds = random_graph_dataset(24, seed=5)
    c = tiny_config(**{"method.local_epochs": 1, "method.proto_refresh_every": 2, "method.num_prototypes": (6, 3, 2),
                       "method.kmeans_iters": 50})
    c.optimizer.name = "adamw"
    c.optimizer.lr = 0.01
    m = get_method(c)
    tx, _ = make_optimizer(c.optimizer, 10, c.batch_size)
    b = make_graph_batch(ds, np.arange(8), 1)
    ts = create_train_state(m, tx, jax.random.PRNGKey(0), b)
    runner = ParallelStep(make_step_fn(m, tx), devices=jax.devices()[:1])
    dts = runner(runner.put_state(ts), runner.put_batch(b))[0]
    after = jax.device_get(dts)
    chex.assert_trees_all_equal(after.params["prototypes"], ts.params["prototypes"])  # ready = 0: no gradient
    assert not np.allclose(after.params["encoder"]["conv0"]["mlp_0"]["kernel"],
                           ts.params["encoder"]["conv0"]["mlp_0"]["kernel"])

    def ctx(e):
        return EpochContext(epoch=e, step=e, dataset=ds, devices=(jax.devices()[0],), tx=tx)

    same, metrics = m.epoch_start(after, ctx(0))
    assert same is after and metrics == {}
    init_ts, metrics = m.epoch_start(after, ctx(1))
    assert float(init_ts.state["proto_ready"]) == 1.0
    assert set(metrics) == {"proto_active_0", "proto_active_1", "proto_active_2"}
    assert metrics["proto_active_0"] == float(np.sum(init_ts.state["proto_active"]["level_0"])) >= 2
    # Bottom prototypes are k-means centroids of the projected embeddings: unit rows, and every
    # active one is the normalised mean of the graphs closest to it.
    z = np.concatenate([np.asarray(jax.jit(lambda p, s, bb: _project_for_test(m, p, s, bb))(
        after.params, after.state, make_graph_batch(ds, np.arange(i, i + 8), 1)))[:8] for i in range(0, 24, 8)])
    p0 = np.asarray(init_ts.params["prototypes"]["level_0"])
    np.testing.assert_allclose(np.linalg.norm(p0, axis=1), 1.0, rtol=1e-5)
    zn = z / np.linalg.norm(z, axis=1, keepdims=True)
    lab = np.argmax(zn @ p0.T, axis=1)
    for k in np.unique(lab):
        mean = zn[lab == k].sum(0)
        np.testing.assert_allclose(p0[k], mean / np.linalg.norm(mean), atol=1e-4)
    np.testing.assert_array_equal(init_ts.state["proto_active"]["level_0"], np.isin(np.arange(6), lab))
    mu = init_ts.opt_state[0].mu["prototypes"]["level_0"]
    np.testing.assert_array_equal(np.asarray(mu), 0.0)
    # A step now moves the prototypes (the prototype loss is on).
    moved = jax.device_get(runner(runner.put_state(init_ts), runner.put_batch(b))[0])
    assert not np.allclose(moved.params["prototypes"]["level_0"], p0)
    assert np.any(np.asarray(moved.opt_state[0].mu["prototypes"]["level_0"]) != 0)
    # Epoch 2: no-op; epoch 3 = 1 + refresh_every: re-clustered, moments reset again.
    assert m.epoch_start(moved, ctx(2))[0] is moved
    again, _ = m.epoch_start(moved, ctx(3))
    np.testing.assert_array_equal(np.asarray(again.opt_state[0].mu["prototypes"]["level_0"]), 0.0)
    chex.assert_trees_all_equal(again.params["encoder"], moved.params["encoder"])


def _project_for_test(m, params, state, batch):
    """The graph projections the hook clusters: train-mode BatchNorm on the batch, graph head."""
    from sslx.methods.graph.graphlog import ProjectionHead
    from sslx.methods.graph.infograph import InfoGraphEncoder
    c = tiny_config()
    enc = InfoGraphEncoder(c.model.hidden, c.model.num_layers, torch_init=True)
    (ge, _), _ = enc.apply({"params": params["encoder"], "batch_stats": state["batch_stats"]}, unflatten(batch),
                           batch["node_mask"], train=True, mutable=["batch_stats"])
    d = c.model.hidden * c.model.num_layers
    return ProjectionHead(d, d).apply({"params": params["graph_head"]}, ge)


def _run(method, tx, host, devices, batches_by_d):
    runner = ParallelStep(make_step_fn(method, tx), mode="jit", devices=devices)
    ts = runner.put_state(host)
    ms = []
    for b in batches_by_d:
        ts, m = runner(ts, runner.put_batch(b))
        ms.append(jax.device_get(m))
    return jax.device_get(runner.get_state(ts)), ms


def test_one_vs_four_devices_equal():
    """4 devices (graphs split 3/3/3/1): same views (global graph indices), same losses (gathered
    graph negatives, count-weighted means, synchronised BatchNorm), same updates."""
    assert len(jax.devices()) >= 4
    ds = random_graph_dataset(10, seed=2)
    c = tiny_config(**{"method.drop_rate": 0.2, "batch_size": 10})
    orders = [np.arange(10), np.random.default_rng(0).permutation(10)]
    method = get_method(c)
    tx, _ = make_optimizer(c.optimizer, 10, c.batch_size)
    h1 = create_train_state(method, tx, jax.random.PRNGKey(0), make_graph_batch(ds, orders[0], 1))
    # Prototypes from the hook (local_epochs = 0: at epoch 0), so the prototype term is on.
    h1, _ = method.epoch_start(h1, EpochContext(epoch=0, step=0, dataset=ds, devices=(), tx=tx))
    assert float(h1.state["proto_ready"]) == 1.0
    s1, m1 = _run(method, tx, h1, jax.devices()[:1], [make_graph_batch(ds, o, 1) for o in orders])
    s4, m4 = _run(method, tx, h1, jax.devices()[:4], [make_graph_batch(ds, o, 4) for o in orders])
    for a, b in zip(m1, m4):
        for k in ("loss", "node_nce", "graph_nce", "proto_nce", "node_acc", "graph_acc"):
            np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)
        np.testing.assert_allclose(a["grad_norm"], b["grad_norm"], rtol=1e-4)
    assert not np.allclose(m1[0]["loss"], m1[1]["loss"])
    flat = [jax.tree_util.tree_flatten_with_path(t)[0] for t in (h1.params, s1.params, s4.params)]
    for (path, p0), (_, p1), (_, p4) in zip(*flat):
        d1, d4 = np.asarray(p1) - np.asarray(p0), np.asarray(p4) - np.asarray(p0)
        assert np.linalg.norm(d1 - d4) <= 1e-3 * np.linalg.norm(d1) + 1e-7, path
    chex.assert_trees_all_close(s1.state, s4.state, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- configs and a short run

def test_configs_build_and_bad_values():
    for arg in ("mutag", "imdb_binary", "ptc_mr", "proteins", "imdb_multi", "tiny"):
        c = graphlog_cfg.get_config(arg)
        assert get_method(c).name == "graphlog" and c.method.temperature == 0.1 and c.optimizer.lr == 1e-3
        assert c.method.gamma == 0.1 and len(c.method.num_prototypes) >= 2
    with pytest.raises(ValueError, match="mutag"):
        graphlog_cfg.get_config("cora")
    for key, val, match in [("method.temperature", 0.0, "temperature"), ("method.mask_rate", 0.0, "not both 0"),
                            ("method.num_prototypes", (4, 0), "num_prototypes"), ("model.init", "x", "init")]:
        with pytest.raises(ValueError, match=match):
            get_method(tiny_config(**{key: val}))


def test_short_training_on_mutag(shared_data):
    c = graphlog_cfg.get_config("mutag")
    c.model.num_layers = 2
    c.model.hidden = 16
    c.train.num_epochs = 6
    c.method.local_epochs = 3
    ds = load_graph_dataset(c, shared_data / "graph")
    out = train_graph_level(c, ds, devices=jax.devices()[:2], seed=0)
    assert out["steps"] == 6 * 2
    assert [e["epoch"] for e in out["epoch_metrics"]] == [3]
    assert out["epoch_metrics"][0]["proto_active_0"] >= 2
    # Local-only phase: the two InfoNCE terms fall; after the prototypes start, still below the start.
    assert np.mean(out["losses"][4:6]) < np.mean(out["losses"][:2]) - 0.5, out["losses"]
    assert np.mean(out["losses"][-2:]) < np.mean(out["losses"][:2]) - 0.5, out["losses"]
    assert float(out["state"]["proto_ready"]) == 1.0
    x, y = embed_dataset(get_method(c, axis_name=None), out["params"], out["state"], ds)
    chex.assert_shape(x, (188, 32))
    assert np.all(np.isfinite(x)) and len(y) == 188

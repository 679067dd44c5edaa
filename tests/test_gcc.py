"""GCC: RWR ego subgraphs, Laplacian positional features, padded instance batches, the queue
loss against a naive implementation and a hand value, queue and momentum updates, 1 vs 4
devices, padding invariance, a short pre-training run that learns, configs, real-data transfer."""
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslx.augment.graph_subgraph import (CsrGraph, induced_subgraph, instance_budget, laplacian_eigvecs,
                                         normalized_laplacian, pack_instances, positional_features,
                                         rwr_subgraph, subgraph_instance, whole_graph_instance)
from sslx.configs import gcc as gcc_cfg
from sslx.losses.contrastive import moco_info_nce
from sslx.methods import get_method
from sslx.methods.graph.gcc import (GCCEncoder, EgoSampler, embed_graphs, gcc_transfer, load_source_graphs,
                                    pair_batch, pretrain_gcc, view_graph)
from sslx.train import ParallelStep, create_train_state, make_optimizer, make_step_fn

from tests.helpers import apply_overrides


# ---------------------------------------------------------------- synthetic graphs

def _edges(pairs):
    pairs = np.asarray(list(pairs), np.int64).reshape(-1, 2)
    return pairs[:, 0], pairs[:, 1]


def cycle(n):
    return _edges((i, (i + 1) % n) for i in range(n)), n


def path(n):
    return _edges((i, i + 1) for i in range(n - 1)), n


def star(n):
    return _edges((0, i) for i in range(1, n)), n


def clique(n):
    return _edges((i, j) for i in range(n) for j in range(i + 1, n)), n


def grid(h, w):
    pairs = [(r * w + c, r * w + c + 1) for r in range(h) for c in range(w - 1)]
    pairs += [(r * w + c, (r + 1) * w + c) for r in range(h - 1) for c in range(w)]
    return _edges(pairs), h * w


def random_graph(n, p, seed):
    rng = np.random.default_rng(seed)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n) if rng.random() < p]
    pairs += [(i, i + 1) for i in range(n - 1)]  # connected
    return _edges(pairs), n


def csr(spec):
    (s, r), n = spec
    return CsrGraph.from_edges(s, r, n)


def pool(seed=0):
    """A disconnected graph with varied structure (cycles, paths, stars, cliques, grids, random)."""
    parts = [cycle(12), path(10), star(9), clique(6), grid(4, 5), random_graph(20, 0.2, seed), cycle(7), star(5),
             grid(3, 3), random_graph(16, 0.35, seed + 1)]
    return CsrGraph.disjoint_union([csr(p) for p in parts])


def adjacency(g: CsrGraph) -> np.ndarray:
    a = np.zeros((g.num_nodes, g.num_nodes), bool)
    for i in range(g.num_nodes):
        a[i, g.neighbours(i)] = True
    return a


def connected(n, senders, receivers) -> bool:
    seen, stack = {0}, [0]
    nbrs = {i: set() for i in range(n)}
    for s, r in zip(senders, receivers):
        nbrs[int(s)].add(int(r))
    while stack:
        for j in nbrs[stack.pop()] - seen:
            seen.add(j)
            stack.append(j)
    return len(seen) == n


# ---------------------------------------------------------------- subgraphs

def test_csr_from_edges_and_union():
    g = CsrGraph.from_edges(np.array([0, 1, 1, 2, 2]), np.array([1, 0, 2, 2, 0]), 4)  # dup, self-loop, isolated 3
    np.testing.assert_array_equal(g.degree, [2, 2, 2, 0])
    a = adjacency(g)
    assert np.array_equal(a, a.T) and not a.diagonal().any() and a.sum() == 6
    u = CsrGraph.disjoint_union([g, csr(path(3))])
    assert u.num_nodes == 7 and u.neighbours(5).tolist() == [4, 6]
    with pytest.raises(ValueError, match="0..3"):
        CsrGraph.from_edges(np.array([0]), np.array([4]), 4)


def test_rwr_subgraph_contains_ego_connected_within_budget_and_seeded():
    g = pool()
    a = adjacency(g)
    sizes = []
    for ego in (0, 13, 25, 40, 60, 90, 110):
        for seed in range(3):
            nodes = rwr_subgraph(g, ego, 8, 0.8, 256, np.random.default_rng(seed))
            assert nodes[0] == ego and len(set(nodes.tolist())) == len(nodes) <= 8
            s, r = induced_subgraph(g, nodes)
            # The induced edges are exactly the graph's edges among the nodes, in local ids.
            expected = {(i, j) for i in range(len(nodes)) for j in range(len(nodes)) if a[nodes[i], nodes[j]]}
            assert set(zip(s.tolist(), r.tolist())) == expected and len(s) == len(expected)
            assert connected(len(nodes), s, r)
            again = rwr_subgraph(g, ego, 8, 0.8, 256, np.random.default_rng(seed))
            np.testing.assert_array_equal(nodes, again)
            sizes.append(len(nodes))
    assert max(sizes) == 8 and min(sizes) < 8  # the cap binds around hubs, small components stay small
    # Different generator states give different walks somewhere.
    walks = {tuple(rwr_subgraph(g, 90, 8, 0.5, 256, np.random.default_rng(s))) for s in range(10)}
    assert len(walks) > 1
    # Step cap: 0 steps -> the ego alone; 1 step -> at most one more node. Isolated ego -> itself.
    assert rwr_subgraph(g, 90, 8, 0.0, 0, np.random.default_rng(0)).tolist() == [90]
    assert len(rwr_subgraph(g, 90, 8, 0.0, 1, np.random.default_rng(0))) == 2
    iso = CsrGraph.from_edges(np.array([0]), np.array([1]), 3)
    assert rwr_subgraph(iso, 2, 8, 0.5, 100, np.random.default_rng(0)).tolist() == [2]
    # With restart 0.8 the walk rarely leaves the ego's neighbourhood: on a long path from node 0
    # it needs 6 non-restart steps in a row to reach node 6.
    far = [rwr_subgraph(csr(path(40)), 0, 40, 0.8, 256, np.random.default_rng(s)).max() for s in range(20)]
    assert np.median(far) < 6
    with pytest.raises(ValueError, match="restart_prob"):
        rwr_subgraph(g, 0, 8, 1.0, 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match="ego"):
        rwr_subgraph(g, g.num_nodes, 8, 0.5, 10, np.random.default_rng(0))


# ---------------------------------------------------------------- positional features

def test_laplacian_eigvecs_cycle_and_path():
    n = 8
    (s, r), _ = cycle(n)
    s, r = np.r_[s, r], np.r_[r, s]
    lap = normalized_laplacian(s, r, n)
    vals, vecs = laplacian_eigvecs(s, r, n, n)
    np.testing.assert_allclose(vals, np.sort(1 - np.cos(2 * np.pi * np.arange(n) / n)), atol=1e-12)
    np.testing.assert_allclose(lap @ vecs, vecs * vals[None, :], atol=1e-12)
    np.testing.assert_allclose(vecs.T @ vecs, np.eye(n), atol=1e-12)
    # k = 3 spans the eigenspaces of {0, 1 - cos(pi/4) (twice)}: the same projector as numpy's eigh.
    _, v3 = laplacian_eigvecs(s, r, n, 3)
    _, ref = np.linalg.eigh(lap)
    np.testing.assert_allclose(v3 @ v3.T, ref[:, :3] @ ref[:, :3].T, atol=1e-10)
    # A path has simple eigenvalues 1 - cos(pi j / (n - 1)): eigenvectors unique up to sign.
    (s, r), _ = path(n)
    s, r = np.r_[s, r], np.r_[r, s]
    vals, vecs = laplacian_eigvecs(s, r, n, 5)
    np.testing.assert_allclose(vals, 1 - np.cos(np.pi * np.arange(5) / (n - 1)), atol=1e-12)
    _, ref = np.linalg.eigh(normalized_laplacian(s, r, n))
    np.testing.assert_allclose(np.abs(vecs), np.abs(ref[:, :5]), atol=1e-10)
    for j in range(5):  # sign convention: the largest-magnitude entry is positive
        assert vecs[np.argmax(np.abs(vecs[:, j]) > np.abs(vecs[:, j]).max() - 1e-9), j] > 0
    # Eigenvector 0 is D^1/2 1 / |D^1/2 1|.
    d = np.sqrt(np.bincount(r, minlength=n))
    np.testing.assert_allclose(vecs[:, 0], d / np.linalg.norm(d), atol=1e-10)


def test_positional_features_rows_padding_and_sign_flips():
    (s, r), n = path(6)
    s, r = np.r_[s, r], np.r_[r, s]
    base = positional_features(s, r, n, 10)
    chex.assert_shape(base, (6, 10))
    assert base.dtype == np.float32
    np.testing.assert_array_equal(base[:, 6:], 0.0)  # zero-padded: only 6 eigenvectors exist
    np.testing.assert_allclose(np.linalg.norm(base, axis=1), 1.0, rtol=1e-6)  # rows L2-normalised
    _, vecs = laplacian_eigvecs(s, r, n, 10)
    np.testing.assert_allclose(base[:, :6], vecs / np.linalg.norm(vecs, axis=1, keepdims=True), atol=1e-6)
    flipped = [positional_features(s, r, n, 10, np.random.default_rng(seed)) for seed in range(4)]
    for f in flipped:
        signs = np.sign(np.sum(f[:, :6] * base[:, :6], axis=0))
        np.testing.assert_allclose(f[:, :6], base[:, :6] * signs, atol=1e-6)  # only column signs change
    assert any(np.any(f != base) for f in flipped)
    np.testing.assert_array_equal(flipped[0], positional_features(s, r, n, 10, np.random.default_rng(0)))
    # More nodes than k: the k smallest eigenvalues' vectors.
    (s, r), n = grid(3, 4)
    s, r = np.r_[s, r], np.r_[r, s]
    assert positional_features(s, r, n, 4).shape == (12, 4)


def test_instances_and_padded_batches():
    (s, r), n = star(5)
    s, r = np.r_[s, r], np.r_[r, s]
    inst = whole_graph_instance(s, r, n, 4)
    chex.assert_shape(inst.nodes, (5, 6))
    np.testing.assert_array_equal(inst.nodes[:, 4], [1, 0, 0, 0, 0])  # ego = the hub (largest degree)
    np.testing.assert_array_equal(inst.nodes[:, 5], [4, 1, 1, 1, 1])  # degrees
    g = pool()
    rng = np.random.default_rng(0)
    insts = [subgraph_instance(g, e, size=6, restart_prob=0.8, max_steps=32, k=4, rng=rng) for e in range(0, 100, 9)]
    assert all(i.nodes[0, 4] == 1 and i.nodes[:, 4].sum() == 1 for i in insts)  # the ego is local node 0
    insts = insts[:8]
    b = pack_instances(insts, 4)
    nb, eb, gb = instance_budget(insts, 4)
    assert b["nodes"].shape == (4 * nb, 6) and b["senders"].shape == (4 * eb,) and b["n_node"].shape == (4 * gb,)
    for d in range(4):
        blk = slice(d * nb, (d + 1) * nb)
        mine = insts[2 * d:2 * d + 2]
        np.testing.assert_array_equal(b["n_node"][d * gb:d * gb + 2], [i.num_nodes for i in mine])
        real = sum(i.num_nodes for i in mine)
        assert b["node_mask"][blk].sum() == real and b["graph_mask"][d * gb:(d + 1) * gb].sum() == 2
        np.testing.assert_array_equal(b["nodes"][blk][:real], np.concatenate([i.nodes for i in mine]))
        np.testing.assert_array_equal(b["nodes"][blk][real:], 0.0)
        assert b["senders"][d * eb:(d + 1) * eb].max() < nb  # ids local to the block
    with pytest.raises(ValueError, match="too small"):
        pack_instances(insts, 1, sizes=(8, 8, 4))
    with pytest.raises(ValueError, match="evenly"):
        pair_batch(insts[:3], insts[:3], 2)


# ---------------------------------------------------------------- the loss

def test_queue_info_nce_matches_naive_and_hand_value():
    rng = np.random.default_rng(0)
    unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)  # noqa: E731
    q, k, queue = unit(rng.normal(size=(6, 5))), unit(rng.normal(size=(6, 5))), unit(rng.normal(size=(9, 5)))
    t = 0.07
    f32 = lambda v: jnp.asarray(v, jnp.float32)  # noqa: E731
    loss, aux = moco_info_nce(f32(q), f32(k), f32(queue), t)
    naive, hits = [], []
    for i in range(6):
        logits = np.array([q[i] @ k[i]] + [q[i] @ n for n in queue]) / t
        mx = logits.max()
        naive.append(-(logits[0] - mx - math.log(np.sum(np.exp(logits - mx)))))
        hits.append(np.argmax(logits) == 0)
    np.testing.assert_allclose(float(loss), np.mean(naive), rtol=1e-5)
    np.testing.assert_allclose(float(aux["accuracy"]), np.mean(hits))
    # Hand value: q = k = e0 and a queue of K orthogonal keys: logits [1/t, 0, ..., 0] ->
    # loss = log(1 + K exp(-1/t)).
    # (t = 0.5 here: at 0.07 the value, ~2.5e-6, is below float32 resolution of log-softmax.)
    kq, t = 4, 0.5
    e = jnp.eye(kq + 1)
    hand, aux = moco_info_nce(e[:1], e[:1], e[1:], t)
    np.testing.assert_allclose(float(hand), math.log1p(kq * math.exp(-1 / t)), rtol=1e-5)
    assert float(aux["accuracy"]) == 1.0
    # A queue key equal to the positive: two equal logits 1/t -> log(2 + (K - 1) exp(-1/t)).
    same = jnp.concatenate([e[:1], e[2:]])
    val, _ = moco_info_nce(e[:1], e[:1], same, t)
    np.testing.assert_allclose(float(val), math.log(2 + (kq - 1) * math.exp(-1 / t)), rtol=1e-5)


# ---------------------------------------------------------------- method: queue, momentum, devices

B, K, M = 8, 16, 0.9


def tiny_config(**kw):
    c = gcc_cfg.get_config("tiny")
    c.optimizer.name = "sgd"
    c.optimizer.lr = 0.5
    c.optimizer.momentum = 0.0
    c.optimizer.weight_decay = 0.0
    c.optimizer.grad_clip = 0.0
    return apply_overrides(c, kw)


def _pairs(seed, n=B):
    sampler = EgoSampler.from_config(pool(), tiny_config())
    return sampler.pairs(np.random.default_rng(seed), n)


PAIRS = [_pairs(s) for s in range(3)]


def run_recorded(config, devices):
    nd = len(devices)
    batches = [pair_batch(q, k, nd) for q, k in PAIRS]
    method = get_method(config)
    tx, sched = make_optimizer(config.optimizer, 10, config.batch_size)
    runner = ParallelStep(make_step_fn(method, tx, sched), mode="jit", devices=devices)
    host = create_train_state(method, tx, jax.random.PRNGKey(0), batches[0])
    states, metrics = [jax.device_get(host)], []
    ts = runner.put_state(host)
    for b in batches:
        ts, m = runner(ts, runner.put_batch(b))
        states.append(jax.device_get(runner.get_state(ts)))
        metrics.append(jax.device_get(m))
    # Every number finite (assert_allclose would let NaN == NaN pass the checks below).
    assert all(np.all(np.isfinite(x)) for s in states for x in jax.tree.leaves((s.params, s.state)))
    assert all(np.isfinite(m["loss"]) for m in metrics)
    return states, metrics


@pytest.fixture(scope="module")
def runs():
    devs = jax.devices()
    assert len(devs) == 4
    return {"one": run_recorded(tiny_config(), devs[:1]), "four": run_recorded(tiny_config(), devs)}


def test_queue_holds_key_encoder_outputs_in_global_order(runs):
    c = tiny_config()
    states, metrics = runs["one"]
    from sslx.methods.graph.gcc import _encoder_kwargs
    enc = GCCEncoder(**_encoder_kwargs(c))
    expected = np.asarray(states[0].state["queue"], np.float64).copy()
    np.testing.assert_allclose(np.linalg.norm(expected, axis=1), 1.0, rtol=1e-5)
    for t, (q, k) in enumerate(PAIRS):
        before, after = states[t], states[t + 1]
        g, mask = view_graph(pair_batch(q, k, 1), "k_")
        key = before.state["key"]
        keys, _ = enc.apply({"params": key["params"]["encoder"], "batch_stats": key["batch_stats"]}, g, mask,
                            train=True, mutable=["batch_stats"])
        rows = slice((t * B) % K, (t * B) % K + B)
        expected[rows] = np.asarray(keys)[:B]
        np.testing.assert_allclose(after.state["queue"], expected, atol=2e-5)
        assert int(after.state["queue_ptr"]) == ((t + 1) * B) % K
        assert int(after.state["queue_count"]) == min((t + 1) * B, K)
        np.testing.assert_allclose(metrics[t]["queue_fill"], min((t + 1) * B, K) / K)
    # Step 2 wrapped around: rows 0..7 now hold its keys, rows 8..15 step 1's.
    assert not np.allclose(states[3].state["queue"][:B], states[1].state["queue"][:B], atol=1e-3)
    np.testing.assert_array_equal(states[3].state["queue"][B:], states[2].state["queue"][B:])


@pytest.mark.parametrize("run", ["one", "four"])
def test_momentum_update_is_exact(runs, run):
    states, _ = runs[run]
    chex.assert_trees_all_close(states[0].state["key"]["params"], states[0].params)  # the key encoder starts as a copy
    for before, after in zip(states[:-1], states[1:]):
        expected = jax.tree.map(lambda k, q: M * np.asarray(k, np.float64) + (1 - M) * np.asarray(q, np.float64),
                                before.state["key"]["params"], after.params)
        chex.assert_trees_all_close(after.state["key"]["params"], expected, atol=1e-7, rtol=1e-6)
        moved = jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), before.params, after.params)
        assert max(jax.tree.leaves(moved)) > 1e-3  # the query encoder moved


def test_four_devices_equal_one_device(runs):
    """Pairs split 2 per device: gathered keys, synchronised BatchNorm and per-pair dropout keyed
    by the global pair index give the 1-device numbers."""
    s1, m1 = runs["one"]
    s4, m4 = runs["four"]
    for a, b in zip(m1, m4):
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)
        np.testing.assert_allclose(a["contrastive_acc"], b["contrastive_acc"])
        np.testing.assert_allclose(a["grad_norm"], b["grad_norm"], rtol=1e-4)
    assert len({round(float(m["loss"]), 5) for m in m1}) == 3
    tol = dict(atol=6e-5, rtol=1e-5)
    chex.assert_trees_all_close(s1[-1].params, s4[-1].params, **tol)
    chex.assert_trees_all_close(s1[-1].state, s4[-1].state, **tol)


def test_dropout_and_padding_invariance():
    c = tiny_config()
    m = get_method(c, axis_name=None)
    q, k = PAIRS[0]
    small = pair_batch(q, k, 1)
    big = pair_batch(q, k, 1, sizes=(256, 512, 16))
    params, state = m.init(jax.random.PRNGKey(0), small)
    vg = jax.jit(jax.value_and_grad(m.loss_fn, has_aux=True))
    (l1, (s1, _)), g1 = vg(params, state, small, jax.random.PRNGKey(1))
    (l2, (s2, _)), g2 = vg(params, state, big, jax.random.PRNGKey(1))
    np.testing.assert_allclose(float(l1), float(l2), rtol=1e-5)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(g1))  # padding graphs (zero outputs) included
    chex.assert_trees_all_close(g1, g2, rtol=1e-4, atol=1e-6)
    chex.assert_trees_all_close(s1, s2, rtol=1e-5, atol=1e-6)
    (l3, _), _ = vg(params, state, small, jax.random.PRNGKey(2))
    assert abs(float(l3) - float(l1)) > 1e-6  # another step key: other dropout masks
    enc = jax.jit(lambda b: m.encode(params, s1, *view_graph(b, "q_"))[:B])
    e1, e2 = enc(small), enc(big)
    chex.assert_shape(e1, (B, c.model.out_dim))
    np.testing.assert_allclose(np.asarray(e1), np.asarray(e2), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(e1), axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="pos_dim"):
        m.init(jax.random.PRNGKey(0), {"q_nodes": np.zeros((4, 9), np.float32)})


def test_whole_graph_embedding_is_permutation_invariant():
    """Relabelled nodes: features permute with them (eigenvectors with the sign convention, ego,
    degrees) and the graph embedding is unchanged; another graph embeds elsewhere."""
    from sslx.data.graph_batch import unflatten
    (s, r), n = random_graph(12, 0.3, seed=3)
    s, r = np.r_[s, r], np.r_[r, s]
    deg = np.bincount(r, minlength=n)
    assert (deg == deg.max()).sum() == 1  # a unique ego
    assert np.min(np.diff(np.linalg.eigvalsh(normalized_laplacian(s, r, n)))) > 1e-6  # simple spectrum
    inv = np.argsort(np.random.default_rng(0).permutation(n))  # old node i is new node inv[i]
    a = whole_graph_instance(s, r, n, 4)
    b = whole_graph_instance(inv[s], inv[r], n, 4)
    np.testing.assert_allclose(b.nodes[inv], a.nodes, atol=1e-6)
    (s2, r2), n2 = random_graph(12, 0.3, seed=4)
    other = whole_graph_instance(np.r_[s2, r2], np.r_[r2, s2], n2, 4)
    m = get_method(tiny_config(), axis_name=None)
    params, state = m.init(jax.random.PRNGKey(0), {})
    batch = pack_instances([a, b, other])
    x = np.asarray(jax.jit(lambda bb: m.encode(params, state, unflatten(bb), bb["node_mask"]))(batch))[:3]
    np.testing.assert_allclose(x[0], x[1], atol=1e-5)
    assert np.max(np.abs(x[0] - x[2])) > 1e-3


# ---------------------------------------------------------------- training, configs, real data

def test_pretraining_learns_and_embeds():
    c = gcc_cfg.get_config("tiny")
    c.batch_size = 16
    c.method.queue_size = 32
    c.model.dropout = 0.0
    c.subgraph.size = 10
    graphs = [pool(0), pool(5)]
    out = pretrain_gcc(c, graphs, seed=0, devices=jax.devices()[:2], num_steps=40)
    losses = out["losses"]
    assert out["steps"] == 40 and len(losses) == 40 and out["shapes"] <= 3
    assert np.mean(losses[-5:]) < np.mean(losses[2:7]) - 0.2, losses  # the queue is full from step 2
    chex.assert_trees_all_equal_structs(out["params"], out["init_params"])
    # Same seed -> the same run.
    again = pretrain_gcc(c, graphs, seed=0, devices=jax.devices()[:2], num_steps=3)
    np.testing.assert_allclose(again["losses"], losses[:3], rtol=1e-6)


def test_configs_build():
    c = gcc_cfg.get_config("transfer")
    assert (c.batch_size, c.method.temperature, c.optimizer.lr, c.subgraph.restart_prob, c.subgraph.pos_dim,
            c.model.num_layers, c.model.hidden) == (32, 0.07, 0.005, 0.8, 32, 5, 64)
    assert c.method.queue_size % c.batch_size == 0
    m = get_method(c, axis_name=None)
    batch = {"q_nodes": np.zeros((4, 34), np.float32)}
    params, state = jax.eval_shape(m.init, jax.random.PRNGKey(0), batch)
    assert state["queue"].shape == (c.method.queue_size, c.model.out_dim)
    assert jax.tree.structure(state["key"]["params"]) == jax.tree.structure(params)
    assert set(params["encoder"]) >= {"degree_embed", "gin0", "gin3", "readout4"} and "gin4" not in params["encoder"]
    tx, _ = make_optimizer(c.optimizer, 100, c.batch_size)
    jax.eval_shape(tx.init, params)
    with pytest.raises(ValueError, match="transfer, tiny"):
        gcc_cfg.get_config("imdb")
    with pytest.raises(ValueError, match="multiple of config.batch_size=8"):
        get_method(tiny_config(**{"method.queue_size": 12}))


def test_transfer_smoke_on_real_data(shared_data):
    graph_dir = shared_data / "graph"
    cora, proteins = load_source_graphs(["cora", "PROTEINS"], graph_dir)
    assert cora.num_nodes == 2708 and int(cora.indptr[-1]) == 10556
    assert proteins.num_nodes == 43471
    c = gcc_cfg.get_config("tiny")
    c.transfer.sources = ("cora",)
    c.train.num_steps = 3
    res = gcc_transfer(c, graph_dir, seed=0)
    assert res["pretrain_steps"] == 3 and res["imdb_binary_graphs"] == 1000 and res["sources"] == "cora"
    for tag in ("pretrained", "random"):
        assert 30.0 < res[f"imdb_binary_{tag}_mean"] <= 100.0
    assert all(isinstance(v, (int, float, str)) for v in res.values())
    # Whole-graph embeddings of IMDB-BINARY: one unit vector per graph.
    from sslx.data.graph import load_tu
    ds = load_tu("IMDB-BINARY", graph_dir)
    m = get_method(c, axis_name=None)
    params, state = m.init(jax.random.PRNGKey(0), {})
    x, y = embed_graphs(m, params, state, ds)
    chex.assert_shape(x, (1000, c.model.out_dim))
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-4)
    assert len(np.unique(np.round(x, 4), axis=0)) > 100 and set(y.tolist()) == {0, 1}

"""DeepCluster: k-means pieces (vs NumPy Lloyd, empty-cluster splitting, sharded = single device), PCA
whitening, NMI vs scikit-learn, uniform-over-clusters sampling, the epoch hook (head reset), devices,
a short training run, exact resume, configs and the benchmark script."""
import json
import os
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score

from sslx.configs import deepcluster as dc_cfg
from sslx.data import global_batch_indices
from sslx.losses.clustering import (assign_clusters, cluster_statistics, update_centroids, normalized_mutual_info,
                                    uniform_cluster_weights)
from sslx.methods import get_method
from sslx.methods.base import EpochContext
from sslx.methods.image.deepcluster import (init_centroids, kmeans, pca_whiten, run_kmeans_sharded,
                                            sobel_filter, split_empty_clusters)
from tests.helpers import COMPILE_BOUND_XLA_FLAGS, random_batch, run_steps, tiny_training

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def blobs(n, k, d, seed, spread=0.3):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 3
    labels = rng.integers(0, k, n)
    return (centers[labels] + spread * rng.normal(size=(n, d))).astype(np.float32), labels


def tiny_dc_config(**overrides):
    c = dc_cfg.get_config("digits")
    c.model.encoder_kwargs = {"features": (4, 8)}
    c.method.num_clusters = 12
    c.method.kmeans_iters = 5
    c.eval.probe_epochs = 5
    c.eval.knn_k = 5
    return tiny_training(c, **overrides)


# --------------------------------------------------------------------------- k-means pieces

def _numpy_lloyd(x, c, iters):
    x, c = np.asarray(x, np.float64), np.asarray(c, np.float64).copy()
    for _ in range(iters):
        d2 = ((x[:, None, :] - c[None, :, :]) ** 2).sum(-1)
        lab = d2.argmin(1)
        for j in range(len(c)):
            if np.any(lab == j):
                c[j] = x[lab == j].mean(0)
    return lab, c


def test_assign_and_statistics_match_loops():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 3)).astype(np.float32)
    c = rng.normal(size=(5, 3)).astype(np.float32)
    mask = (rng.random(24) > 0.2).astype(np.float32)
    lab, d2 = assign_clusters(jnp.asarray(x), jnp.asarray(c))
    for i in range(24):
        dist = [float(np.sum((x[i] - c[j]) ** 2)) for j in range(5)]
        assert int(lab[i]) == int(np.argmin(dist))
        np.testing.assert_allclose(float(d2[i]), min(dist), rtol=1e-5, atol=1e-5)
    sums, counts = cluster_statistics(jnp.asarray(x), lab, jnp.asarray(mask), 5, chunk=8)
    for j in range(5):
        sel = (np.asarray(lab) == j) & (mask > 0)
        np.testing.assert_allclose(np.asarray(sums[j]), x[sel].sum(0), rtol=1e-5, atol=1e-5)
        assert float(counts[j]) == sel.sum()
    with pytest.raises(ValueError, match="chunk"):
        cluster_statistics(jnp.asarray(x), lab, jnp.asarray(mask), 5, chunk=7)


def test_kmeans_matches_numpy_lloyd_from_same_init():
    x, _ = blobs(200, 6, 4, seed=1, spread=1.0)
    mask = np.ones(200, np.float32)
    key = jax.random.PRNGKey(3)
    c0 = np.asarray(init_centroids(jnp.asarray(x), jnp.asarray(mask), jax.random.fold_in(key, 0), 8))
    # Distinct data rows.
    assert len({tuple(r) for r in c0}) == 8 and all(any(np.array_equal(r, xi) for xi in x) for r in c0)
    lab, cen, aux = jax.jit(lambda a, m: kmeans(a, m, key, 8, 4, chunk=50))(jnp.asarray(x), jnp.asarray(mask))
    want_lab, want_c = _numpy_lloyd(x, c0, 4)
    assert int(aux["num_splits"]) == 0
    np.testing.assert_array_equal(np.asarray(lab), want_lab)
    np.testing.assert_allclose(np.asarray(cen), want_c, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(aux["counts"]), np.bincount(want_lab, minlength=8))
    # loss: mean squared distance at the last assignment (to the centroids after 3 iterations).
    np.testing.assert_allclose(float(aux["loss"]), np.mean(((x - _numpy_lloyd(x, c0, 3)[1][want_lab]) ** 2).sum(-1)),
                               rtol=1e-4)
    # The check can fail: fewer iterations give other centroids.
    assert np.max(np.abs(np.asarray(cen) - _numpy_lloyd(x, c0, 1)[1])) > 1e-3


def test_empty_cluster_is_split():
    # 3 centroids, one far away -> after assignment cluster 2 is empty.
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(20, 2)) + [5, 0], rng.normal(size=(30, 2)) - [5, 0]]).astype(np.float32)
    mask = jnp.ones(50)
    cen = jnp.asarray([[5.0, 0.0], [-5.0, 0.0], [100.0, 100.0]])
    lab, _ = assign_clusters(jnp.asarray(x), cen)
    cen2, counts = update_centroids(jnp.asarray(x), lab, mask, cen)
    assert float(counts[2]) == 0
    lab2, cen3, counts2, ns = split_empty_clusters(jnp.asarray(x), mask, lab, cen2, counts, jax.random.PRNGKey(0))
    lab2, counts2 = np.asarray(lab2), np.asarray(counts2)
    assert int(ns) == 1 and np.all(counts2 > 0)
    np.testing.assert_array_equal(counts2, np.bincount(lab2, minlength=3))
    for j in range(3):
        np.testing.assert_allclose(np.asarray(cen3[j]), x[lab2 == j].mean(0), rtol=1e-5, atol=1e-5)
    # Only one cluster's rows were split (the others keep their rows).
    moved = lab2 != np.asarray(lab)
    assert moved.sum() > 0 and len(set(np.asarray(lab)[moved])) == 1
    # Duplicated rows cannot be split by a plane: the rank fallback moves half of them.
    xd = jnp.ones((6, 2))
    lab_d = jnp.zeros(6, jnp.int32)
    l3, _, c3, _ = split_empty_clusters(xd, jnp.ones(6), lab_d, jnp.asarray([[1.0, 1.0], [9.0, 9.0]]),
                                        jnp.asarray([6.0, 0.0]), jax.random.PRNGKey(1))
    np.testing.assert_array_equal(np.asarray(c3), [3.0, 3.0])
    # A full k-means run with many more clusters than blobs keeps every cluster non-empty.
    lab, _, aux = run_kmeans_sharded(blobs(120, 3, 2, seed=2, spread=0.01)[0], jax.random.PRNGKey(0),
                                     jax.devices()[:1], num_clusters=10, num_iters=5, whiten=False)
    assert np.all(np.bincount(lab, minlength=10) > 0) and np.all(np.asarray(aux["counts"]) > 0)


def test_pca_whitening_identity_covariance():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 6))
    x = (rng.normal(size=(500, 6)) @ a + 3.0).astype(np.float32)
    mask = np.ones(500, np.float32)
    mask[-20:] = 0  # padding rows: ignored
    x[-20:] = 1e3
    y, aux = pca_whiten(jnp.asarray(x), jnp.asarray(mask), 4, eps=0.0)
    y = np.asarray(y, np.float64)
    assert y.shape == (500, 4)
    np.testing.assert_allclose(y[-20:], 0.0)
    yv = y[:-20]
    np.testing.assert_allclose(yv.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(np.cov(yv.T, bias=True), np.eye(4), atol=2e-4)
    ev = np.linalg.eigvalsh(np.cov(x[:-20].T.astype(np.float64), bias=True))[::-1][:4]
    np.testing.assert_allclose(np.asarray(aux["eigenvalues"]), ev, rtol=1e-3)
    # Sharded (4 devices, psum) = single device.
    from jax.sharding import Mesh, PartitionSpec as P
    mesh = Mesh(np.asarray(jax.devices()), ("r",))
    f = jax.jit(jax.shard_map(lambda a, m: pca_whiten(a, m, 4, "r", 0.0)[0], mesh=mesh, in_specs=(P("r"), P("r")),
                              out_specs=P("r"), check_vma=False))
    np.testing.assert_allclose(np.asarray(f(jnp.asarray(x), jnp.asarray(mask))), y, atol=1e-4)


def test_kmeans_four_devices_equal_one_device():
    feats, true_lab = blobs(1000, 7, 5, seed=4, spread=0.8)  # 1000 rows: padding differs (1 vs 4 shards)
    key = jax.random.PRNGKey(5)
    devs = jax.devices()
    assert len(devs) == 4
    for whiten in (True,):
        l1, c1, a1 = run_kmeans_sharded(feats, key, devs[:1], num_clusters=20, num_iters=6, chunk=64,
                                        pca_dim=3, whiten=whiten)
        l4, c4, a4 = run_kmeans_sharded(feats, key, devs, num_clusters=20, num_iters=6, chunk=64, pca_dim=3,
                                        whiten=whiten)
        np.testing.assert_array_equal(l1, l4)
        np.testing.assert_allclose(c1, c4, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(a1["counts"], a4["counts"])
        np.testing.assert_array_equal(np.bincount(l1, minlength=20), a1["counts"])
    assert c1.shape == (20, 3)
    # The clustering recovers the blobs (every cluster lies inside one blob).
    assert normalized_mutual_info_score(true_lab, l1) > 0.7


# --------------------------------------------------------------------------- NMI, sampling

def test_nmi_matches_sklearn():
    rng = np.random.default_rng(0)
    cases = [(rng.integers(0, 5, 300), rng.integers(0, 8, 300)),
             (np.arange(50) % 4, (np.arange(50) % 4 + 1) % 4),  # a relabelling: NMI 1
             (rng.integers(0, 3, 100), np.zeros(100, int)),  # one cluster vs several: 0
             (np.zeros(10, int), np.zeros(10, int))]  # both single: 1
    for a, b in cases:
        got = float(normalized_mutual_info(jnp.asarray(a), jnp.asarray(b), int(a.max()) + 1, int(b.max()) + 1))
        np.testing.assert_allclose(got, normalized_mutual_info_score(a, b), rtol=1e-5, atol=1e-6)
    # Hand value: a = [0,0,1,1], b = [0,1,0,1] is independent: NMI 0; b = a: 1.
    a = jnp.asarray([0, 0, 1, 1])
    assert abs(float(normalized_mutual_info(a, jnp.asarray([0, 1, 0, 1]), 2, 2))) < 1e-6
    assert abs(float(normalized_mutual_info(a, a, 2, 2)) - 1.0) < 1e-6


def test_uniform_over_clusters_sampling():
    rng = np.random.default_rng(0)
    k = 5
    sizes = np.array([500, 200, 50, 10, 2])
    labels = rng.permutation(np.repeat(np.arange(k), sizes))
    w = np.asarray(uniform_cluster_weights(jnp.asarray(labels), k + 2))  # 2 empty cluster ids
    np.testing.assert_allclose(w.sum(), 1.0, rtol=1e-5)
    np.testing.assert_allclose(w, 1.0 / (k * sizes[labels]), rtol=1e-5)
    draws = np.concatenate([global_batch_indices(s, len(labels), 64, seed=1, sample_weights=w) for s in range(300)])
    freq = np.bincount(labels[draws], minlength=k) / len(draws)
    # 19200 draws, p = 0.2 each: std ~0.003; 0.015 is 5 std.
    np.testing.assert_allclose(freq, 1.0 / k, atol=0.015)
    # Uniform sampling over examples would give the cluster sizes' proportions.
    assert freq[0] < 0.3 and freq[-1] > 0.15
    # Deterministic in (seed, step, weights); another step or seed differs.
    a = global_batch_indices(7, len(labels), 64, seed=1, sample_weights=w)
    np.testing.assert_array_equal(a, global_batch_indices(7, len(labels), 64, seed=1, sample_weights=w.copy()))
    assert not np.array_equal(a, global_batch_indices(8, len(labels), 64, seed=1, sample_weights=w))
    assert not np.array_equal(a, global_batch_indices(7, len(labels), 64, seed=2, sample_weights=w))
    # Zero weights are never drawn; bad weights are rejected.
    w0 = np.where(labels == 0, 0.0, w)
    assert not np.any(labels[global_batch_indices(0, len(labels), 500, 0, sample_weights=w0)] == 0)
    with pytest.raises(ValueError, match="sample_weights"):
        global_batch_indices(0, len(labels), 8, 0, sample_weights=w[:-1])
    with pytest.raises(ValueError, match="sample_weights"):
        global_batch_indices(0, len(labels), 8, 0, sample_weights=-w)


def test_batch_iterator_index_and_weights():
    from sslx.data import BatchIterator, load_image_dataset
    ds = load_image_dataset("digits", "train")
    w = np.zeros(len(ds))
    w[:10] = 1.0
    with BatchIterator(ds, 16, seed=0, process_index=0, process_count=1, sample_weights=w, with_index=True) as it:
        b = next(it)
    assert b["index"].dtype == np.int32 and np.all(b["index"] < 10)
    np.testing.assert_array_equal(b["image"], ds.images[b["index"]])
    with BatchIterator(ds, 16, seed=0, process_index=0, process_count=1) as it:
        assert "index" not in next(it)


def test_sobel_hand_values():
    img = jnp.zeros((1, 5, 5, 3)).at[:, :, 3:, :].set(1.0)  # vertical edge between columns 2 and 3
    s = np.asarray(sobel_filter(img))
    assert s.shape == (1, 5, 5, 2)
    # x-filter [[1,0,-1],[2,0,-2],[1,0,-1]] (cross-correlation): left - right = -4 next to the edge.
    np.testing.assert_allclose(s[0, 2, :, 0], [0, 0, -4, -4, 4])  # last column: zero padding on the right
    np.testing.assert_allclose(s[0, 2, :, 1], 0.0)  # no horizontal edge inside


# --------------------------------------------------------------------------- method, hook, devices

def test_epoch_start_reinitialises_head_and_sets_labels():
    from sslx.data import load_image_dataset
    from sslx.train import create_train_state, make_optimizer
    c = tiny_dc_config()
    method = get_method(c, axis_name=None)
    ds = load_image_dataset("digits", "train")
    c.optimizer.momentum = 0.9
    tx, _ = make_optimizer(c.optimizer, 10, 8)
    ts = create_train_state(method, tx, jax.random.PRNGKey(0), ds[np.arange(2)])
    # Give the optimiser non-zero momentum everywhere.
    ts = ts.replace(opt_state=jax.tree.map(lambda x: jnp.ones_like(x) if x.ndim else x, ts.opt_state))
    ctx = EpochContext(epoch=0, step=0, dataset=ds, devices=tuple(jax.devices()[:1]), tx=tx)
    ts1, m1 = method.epoch_start(ts, ctx)
    labels = np.asarray(ts1.state["pseudo_labels"])
    assert labels.shape == (len(ds),) and labels.min() >= 0 and labels.max() < 12
    assert np.all(np.bincount(labels, minlength=12) > 0)
    np.testing.assert_allclose(np.asarray(ts1.state["sample_weights"]),
                               np.asarray(uniform_cluster_weights(jnp.asarray(labels), 12)), rtol=1e-6)
    assert int(ts1.state["num_clusterings"]) == 1 and "nmi_prev" not in m1
    assert 0.0 < m1["nmi_true"] <= 1.0 and m1["cluster_size_min"] >= 1
    np.testing.assert_allclose(m1["nmi_true"], normalized_mutual_info_score(ds.labels, labels), rtol=1e-4)
    # Head: a fresh init (N(0, 0.01) weights, zero bias), different from before; encoder untouched.
    k_new = np.asarray(ts1.params["head"]["Dense_0"]["kernel"])
    assert not np.allclose(k_new, np.asarray(ts.params["head"]["Dense_0"]["kernel"]))
    assert 0.003 < k_new.std() < 0.02
    np.testing.assert_array_equal(np.asarray(ts1.params["head"]["Dense_0"]["bias"]), 0.0)
    chex.assert_trees_all_equal(ts1.params["encoder"], ts.params["encoder"])
    # Optimiser state: the head's momentum reset to 0, the encoder's kept.
    trace = ts1.opt_state[1][0].trace
    chex.assert_trees_all_equal(trace["head"], jax.tree.map(jnp.zeros_like, trace["head"]))
    chex.assert_trees_all_equal(trace["encoder"], ts.opt_state[1][0].trace["encoder"])
    # Second clustering: NMI to the previous one is reported; the head key depends on the epoch.
    ts2, m2 = method.epoch_start(ts1, EpochContext(epoch=1, step=11, dataset=ds, devices=ctx.devices, tx=tx))
    assert 0.0 < m2["nmi_prev"] <= 1.0
    assert not np.allclose(np.asarray(ts2.params["head"]["Dense_0"]["kernel"]), k_new)
    # Same labels on 4 devices (features sharded over them), also from a state committed to one device
    # (as the pmap runner's replica 0).
    ts_one = jax.device_put(ts, jax.devices()[1])
    ts4, m4 = method.epoch_start(ts_one, EpochContext(epoch=0, step=0, dataset=ds, devices=tuple(jax.devices()),
                                                      tx=tx))
    np.testing.assert_array_equal(np.asarray(ts4.state["pseudo_labels"]), labels)
    bad = EpochContext(epoch=0, step=0, dataset=load_image_dataset("digits", "test"), devices=ctx.devices, tx=tx)
    with pytest.raises(ValueError, match="num_examples"):
        method.epoch_start(ts, bad)


def _indexed_batches(n):
    out = []
    for s in range(n):
        b = random_batch(8, seed=s)
        b["index"] = np.random.default_rng(s).integers(0, 1438, 8).astype(np.int32)
        out.append(b)
    return out


def test_deepcluster_four_devices_equal_one_device():
    config = tiny_dc_config()
    batches = _indexed_batches(2)
    devs = jax.devices()
    host, s1, m1 = run_steps(config, devs[:1], "jit", batches)
    _, s4, m4 = run_steps(config, devs, "jit", batches)
    for a, b in zip(m1, m4):
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)
        np.testing.assert_allclose(a["pseudo_label_acc"], b["pseudo_label_acc"])
    chex.assert_trees_all_close(s1.params, s4.params, atol=2e-5, rtol=1e-5)
    chex.assert_trees_all_close(s1.state, s4.state, atol=2e-5, rtol=1e-4)
    diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(host.params), jax.tree.leaves(s1.params)))
    assert diff > 1e-3
    # The targets come from the indices: other indices -> another loss.
    other = [dict(b, index=(b["index"] + 1) % 1438) for b in batches]
    _, _, mo = run_steps(config, devs[:1], "jit", other)
    assert abs(float(mo[0]["loss"]) - float(m1[0]["loss"])) > 1e-4


# --------------------------------------------------------------------------- training

def _run_cfg(num_steps, **kw):
    c = dc_cfg.get_config("digits")
    c.model.encoder_kwargs = {"features": (8, 16)}
    c.method.num_clusters = 30
    c.method.kmeans_iters = 10
    c.batch_size = 128  # 11 steps per epoch
    c.train.num_steps = num_steps
    c.train.log_every = 1
    c.train.checkpoint_every = 1000
    c.train.async_checkpoint = False
    c.eval.at_end = False
    for k, v in kw.items():
        c.train[k] = v
    return c


def _rows(wd):
    with open(os.path.join(wd, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_digits_short_run_learns_and_logs_nmi(tmp_path):
    from sslx.train.loop import train
    wd = str(tmp_path / "run")
    c = _run_cfg(88)
    c.batch_size = 32  # 44 steps per epoch
    c.optimizer.lr = 0.5
    out = train(c, wd, progress=False)
    assert out["step"] == 88
    rows = _rows(wd)
    nmi = [r for r in rows if "nmi_true" in r]
    assert [r["step"] for r in nmi] == [0, 44]
    assert "nmi_prev" not in nmi[0] and 0 < nmi[1]["nmi_prev"] <= 1
    assert all(0.2 < r["nmi_true"] <= 1 for r in nmi), nmi
    losses = [r["loss"] for r in rows if "loss" in r]
    assert len(losses) == 88 and all(np.isfinite(losses))
    print("deepcluster digits losses", np.round(losses, 3).tolist(), "nmi", nmi)
    # Within each epoch (the head restarts at every clustering) the loss goes down from ~log K.
    for e in range(2):
        ep = losses[44 * e: 44 * (e + 1)]
        assert abs(ep[0] - np.log(30)) < 0.1
        assert np.mean(ep[-8:]) < np.mean(ep[:4]) - 0.2, ep


def test_resume_equals_straight_run(tmp_path):
    from sslx.checkpoint import Checkpointer
    from sslx.train.loop import train
    straight, resumed = str(tmp_path / "a"), str(tmp_path / "b")
    train(_run_cfg(14), straight, progress=False)
    assert train(_run_cfg(14), resumed, progress=False, stop_at=11)["stopped"]  # stops on an epoch boundary
    train(_run_cfg(14), resumed, progress=False)
    states = [Checkpointer(os.path.join(wd, "checkpoints")) for wd in (straight, resumed)]
    from sslx.data import load_image_dataset
    from sslx.train import create_train_state, make_optimizer
    c = _run_cfg(14)
    method = get_method(c, axis_name=None)
    tx, _ = make_optimizer(c.optimizer, 14, c.batch_size)
    fresh = create_train_state(method, tx, jax.random.PRNGKey(0), load_image_dataset("digits", "train")[np.arange(2)])
    a, ma = states[0].restore(fresh)
    b, mb = states[1].restore(fresh)
    assert ma["step"] == mb["step"] == 14
    chex.assert_trees_all_equal(a.params, b.params)
    chex.assert_trees_all_equal(a.state, b.state)
    chex.assert_trees_all_equal(a.opt_state, b.opt_state)
    assert int(a.state["num_clusterings"]) == 2
    ra = [r for r in _rows(straight) if "loss" in r]
    rb = [r for r in _rows(resumed) if "loss" in r]
    assert [r["loss"] for r in ra] == [r["loss"] for r in rb]


# --------------------------------------------------------------------------- configs, benchmark

@pytest.mark.parametrize("arg,size,channels", [("digits", 8, 1), ("fashion_mnist", 28, 1), ("cifar10_subset", 32, 3),
                                               ("cifar10", 32, 3), ("imagenet", 224, 3)])
def test_configs_build(arg, size, channels):
    from sslx.train import make_optimizer
    c = dc_cfg.get_config(arg)
    method = get_method(c, axis_name=None, total_steps=1000)
    batch = {"image": jnp.zeros((2, size, size, channels), jnp.uint8)}
    params, state = jax.eval_shape(method.init, jax.random.PRNGKey(0), batch)
    assert params["head"]["Dense_0"]["kernel"].shape[1] == c.method.num_clusters
    assert state["pseudo_labels"].shape == (c.method.num_examples,)
    tx, _ = make_optimizer(c.optimizer, 1000, c.batch_size)
    jax.eval_shape(tx.init, params)
    if arg == "imagenet":
        assert (c.method.num_clusters, c.batch_size, c.optimizer.lr, c.optimizer.weight_decay) == (10000, 256, 0.05, 1e-5)
        assert c.method.sobel and c.model.encoder == "resnet50"
    with pytest.raises(ValueError, match="digitz"):
        dc_cfg.get_config("digitz")
    with pytest.raises(ValueError, match="num_examples"):
        c.method.num_examples = 0
        get_method(c, axis_name=None)


def test_benchmark_script_runs():
    out = subprocess.run([sys.executable, "scripts/benchmark.py", "--config", "sslx/configs/deepcluster.py:fashion_mnist",
                          "--steps", "2", "--repeats", "1", "--warmup", "0", "--config.batch_size=32"],
                         cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "XLA_FLAGS": COMPILE_BOUND_XLA_FLAGS, "JAX_PLATFORMS": "cpu"})
    assert out.returncode == 0, out.stderr[-3000:]
    row = json.loads(out.stdout.strip().splitlines()[-1])
    assert row["method"] == "deepcluster" and np.isfinite(row["loss"])


@pytest.mark.parametrize("spherical", [False, True])
def test_update_centroids_matches_a_loop(spherical):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    w = (rng.random(40) < 0.7).astype(np.float32) * rng.random(40).astype(np.float32)
    cen = rng.normal(size=(5, 3)).astype(np.float32)
    cen[4] = 100.0  # nobody's nearest: stays where it is
    lab = np.argmin(((x[:, None] - cen[None]) ** 2).sum(-1), axis=1)
    new, counts = update_centroids(jnp.asarray(x), jnp.asarray(lab, jnp.int32), jnp.asarray(w), jnp.asarray(cen),
                                   spherical=spherical)
    for j in range(5):
        members = (lab == j) & (w > 0)
        np.testing.assert_allclose(float(counts[j]), w[lab == j].sum(), rtol=1e-5)
        if not members.any():
            np.testing.assert_array_equal(np.asarray(new[j]), cen[j])
            continue
        s = (w[lab == j, None] * x[lab == j]).sum(0)
        want = s / np.linalg.norm(s) if spherical else s / w[lab == j].sum()
        np.testing.assert_allclose(np.asarray(new[j]), want, rtol=1e-4, atol=1e-5)

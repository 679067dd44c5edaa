"""Tests for sslx.eval: weighted kNN, linear probe and batched feature extraction."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslx.eval import extract_features, knn_accuracy, knn_classify, linear_probe

# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------


def naive_knn(train, train_labels, test, num_classes, k, temperature):
    """Reference weighted kNN with explicit loops (float64), plus tie diagnostics."""
    train = np.asarray(train, np.float64)
    test = np.asarray(test, np.float64)
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    preds, min_gap, min_margin = [], np.inf, np.inf
    for q in test:
        q = q / np.linalg.norm(q)
        sims = np.array([float(np.dot(q, t)) for t in train])
        order = np.argsort(-sims, kind="stable")
        votes = np.zeros(num_classes)
        for j in order[:k]:
            votes[train_labels[j]] += np.exp(sims[j] / temperature)
        preds.append(int(np.argmax(votes)))
        # "ties-free" diagnostics: neighbour-set boundary and winning-vote margin
        if k < len(train):
            min_gap = min(min_gap, sims[order[k - 1]] - sims[order[k]])
        top2 = np.sort(votes)[-2:]
        min_margin = min(min_margin, (top2[1] - top2[0]) / top2[1])
    return np.array(preds), min_gap, min_margin


def clusters(rng, n_per_class, num_classes, dim, noise=0.05):
    centers = rng.normal(size=(num_classes, dim))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    labels = np.repeat(np.arange(num_classes), n_per_class)
    feats = centers[labels] + noise * rng.normal(size=(len(labels), dim))
    perm = rng.permutation(len(labels))
    return feats[perm].astype(np.float32), labels[perm]


@pytest.fixture(scope="module")
def digits_split():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    perm = np.random.default_rng(0).permutation(len(x))
    tr, te = perm[:1200], perm[1200:]
    assert len(te) == 597
    return x[tr], y[tr], x[te], y[te]


# ----------------------------------------------------------------------------
# kNN
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("k,temperature", [(1, 0.1), (7, 0.07), (25, 0.5)])
def test_knn_matches_naive_reference(k, temperature):
    rng = np.random.default_rng(k)
    c = 5
    train = rng.normal(size=(150, 16)).astype(np.float32)
    labels = rng.integers(0, c, size=150)
    test = rng.normal(size=(40, 16)).astype(np.float32)

    ref, gap, margin = naive_knn(train, labels, test, c, k, temperature)
    # The data must be tie-free for exact comparison to be meaningful.
    assert gap > 1e-5 and margin > 1e-4, (gap, margin)
    # Not all one class, so the comparison has teeth.
    assert len(np.unique(ref)) > 1

    ours = knn_classify(train, labels, test, c, k=k, temperature=temperature, batch_size=16)
    assert ours.shape == (40,)
    np.testing.assert_array_equal(ours, ref)


def test_knn_separated_clusters_perfect():
    rng = np.random.default_rng(1)
    xtr, ytr = clusters(rng, 30, 6, 32)
    xte, yte = clusters(np.random.default_rng(1), 10, 6, 32)  # same centers (same seed)
    acc = knn_accuracy(xtr, ytr, xte, yte, num_classes=6, k=20)
    assert acc == 1.0


def test_knn_k_larger_than_n_warns_and_works():
    rng = np.random.default_rng(2)
    xtr, ytr = clusters(rng, 4, 3, 8)  # N = 12
    with pytest.warns(UserWarning, match=r"k=200.*N=12"):
        preds = knn_classify(xtr, ytr, xtr, 3, k=200, temperature=0.05)
    np.testing.assert_array_equal(preds, ytr)
    ref, _, _ = naive_knn(xtr, ytr, xtr, 3, 12, 0.05)
    np.testing.assert_array_equal(preds, ref)


def test_knn_no_warning_when_k_fits():
    rng = np.random.default_rng(3)
    xtr, ytr = clusters(rng, 10, 3, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        knn_classify(xtr, ytr, xtr, 3, k=5)


def test_knn_chunking_invariant():
    rng = np.random.default_rng(4)
    train = rng.normal(size=(200, 12)).astype(np.float32)
    labels = rng.integers(0, 4, size=200)
    test = rng.normal(size=(53, 12)).astype(np.float32)
    one_chunk = knn_classify(train, labels, test, 4, k=15, batch_size=1024)
    for bs in (7, 52):  # neither divides 53; 52 leaves a 1-row last chunk
        np.testing.assert_array_equal(
            knn_classify(train, labels, test, 4, k=15, batch_size=bs), one_chunk
        )


def test_knn_scale_invariant():
    rng = np.random.default_rng(5)
    train = rng.normal(size=(120, 10)).astype(np.float32)
    labels = rng.integers(0, 3, size=120)
    test = rng.normal(size=(30, 10)).astype(np.float32)
    base = knn_classify(train, labels, test, 3, k=10)
    np.testing.assert_array_equal(knn_classify(train * 37.5, labels, test * 0.01, 3, k=10), base)
    np.testing.assert_array_equal(knn_classify(train * 1e-3, labels, test * 8.0, 3, k=10), base)


def test_knn_accepts_jax_arrays():
    rng = np.random.default_rng(6)
    xtr, ytr = clusters(rng, 10, 3, 8)
    np_preds = knn_classify(xtr, ytr, xtr, 3, k=5)
    jx_preds = knn_classify(jnp.asarray(xtr), jnp.asarray(ytr), jnp.asarray(xtr), 3, k=5)
    np.testing.assert_array_equal(np_preds, jx_preds)


# ----------------------------------------------------------------------------
# linear probe
# ----------------------------------------------------------------------------


def test_linear_probe_digits_matches_sklearn(digits_split):
    from sklearn.linear_model import LogisticRegression

    xtr, ytr, xte, yte = digits_split
    sk_acc = LogisticRegression(max_iter=2000).fit(xtr, ytr).score(xte, yte)
    res = linear_probe(xtr, ytr, xte, yte, num_classes=10)
    print(f"digits test acc: sslx={res['test_acc']:.4f} sklearn={sk_acc:.4f}")
    assert abs(res["test_acc"] - sk_acc) <= 0.02, (res["test_acc"], sk_acc)
    assert res["train_acc"] >= res["test_acc"] - 0.02
    assert res["weight_decay"] in res["val_acc"]
    # Returned model reproduces the reported test accuracy.
    logits = ((xte - res["mean"]) / res["std"]) @ res["weights"] + res["bias"]
    assert abs(np.mean(logits.argmax(1) == yte) - res["test_acc"]) < 1e-6
    assert res["weights"].shape == (64, 10) and res["bias"].shape == (10,)


def test_linear_probe_random_noise_is_chance():
    # Also covers a single (scalar) weight decay with full-batch L-BFGS: no selection.
    rng = np.random.default_rng(7)
    x = rng.normal(size=(1000, 32)).astype(np.float32)
    y = rng.integers(0, 10, size=1000)
    res = linear_probe(x[:700], y[:700], x[700:], y[700:], num_classes=10, epochs=50,
                       weight_decay=1e-3)
    assert res["val_acc"] is None and res["weight_decay"] == 1e-3
    assert res["train_acc"] > res["test_acc"]  # it fits the training noise a little
    assert res["test_acc"] < 0.2, res["test_acc"]  # chance = 0.1 (300 test points)


def test_linear_probe_deterministic_and_seeded():
    rng = np.random.default_rng(8)
    xtr, ytr = clusters(rng, 40, 4, 16, noise=0.3)
    xte, yte = clusters(np.random.default_rng(8), 10, 4, 16, noise=0.3)
    kw = dict(num_classes=4, epochs=5, batch_size=32, weight_decay=(1e-4, 1e-2))
    a = linear_probe(xtr, ytr, xte, yte, seed=3, **kw)
    b = linear_probe(xtr, ytr, xte, yte, seed=3, **kw)
    c = linear_probe(xtr, ytr, xte, yte, seed=4, **kw)
    for key in ("weights", "bias"):
        np.testing.assert_array_equal(a[key], b[key])
    assert a["test_acc"] == b["test_acc"] and a["val_acc"] == b["val_acc"]
    # The seed is actually used (mini-batch order and hold-out split change).
    assert not np.array_equal(a["weights"], c["weights"])
    assert a["test_acc"] > 0.5


# ----------------------------------------------------------------------------
# extract_features
# ----------------------------------------------------------------------------


def test_extract_features_all_rows_in_order_one_compile():
    rng = np.random.default_rng(10)
    images = rng.normal(size=(37, 4, 4, 3)).astype(np.float32)
    w = jnp.asarray(rng.normal(size=(48, 5)).astype(np.float32))
    traces = []

    @jax.jit
    def encode(x):
        traces.append(x.shape)
        return jnp.tanh(x.reshape(x.shape[0], -1) @ w)

    feats = extract_features(encode, images, batch_size=8)  # 5 batches, last one padded
    assert isinstance(feats, np.ndarray)
    assert feats.shape == (37, 5)
    assert traces == [(8, 4, 4, 3)]  # one compile: every call saw the same shape
    direct = np.asarray(jnp.tanh(jnp.asarray(images).reshape(37, -1) @ w))
    np.testing.assert_allclose(feats, direct, rtol=1e-5, atol=1e-6)


def test_extract_features_jax_input_and_small_n():
    images = jnp.arange(30, dtype=jnp.float32).reshape(10, 3)
    calls = []

    def encode(x):
        calls.append(x.shape[0])
        return x * 2.0

    out = extract_features(encode, images, batch_size=4, progress=False)
    np.testing.assert_array_equal(out, np.asarray(images) * 2.0)
    assert calls == [4, 4, 4]
    calls.clear()
    out = extract_features(encode, images, batch_size=256)  # N < batch_size: one call of N
    np.testing.assert_array_equal(out, np.asarray(images) * 2.0)
    assert calls == [10]


def test_extract_features_bad_encoder_output():
    images = np.zeros((6, 3), np.float32)
    with pytest.raises(ValueError, match=r"encode_fn must return a \[B, D\].*\(4,\)"):
        extract_features(lambda x: x.sum(1), images, batch_size=4)


# ----------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------


def _ok_data():
    rng = np.random.default_rng(11)
    return (
        rng.normal(size=(20, 4)).astype(np.float32),
        rng.integers(0, 3, size=20),
        rng.normal(size=(6, 4)).astype(np.float32),
        rng.integers(0, 3, size=6),
    )


@pytest.mark.parametrize(
    "mutate,pattern",
    [
        (lambda d: {**d, "train_feats": d["train_feats"][:, :, None]},
         r"train_feats must be a 2-D float array.*\(20, 4, 1\).*reshape"),
        (lambda d: {**d, "test_feats": d["test_feats"][0]},
         r"test_feats must be a 2-D float array.*\(4,\)"),
        (lambda d: {**d, "train_feats": d["train_feats"].astype(np.int64)},
         r"train_feats must have a floating dtype.*int64.*astype"),
        (lambda d: {**d, "test_feats": d["test_feats"][:, :3]},
         r"test_feats has shape \(6, 3\).*train_feats has shape \(20, 4\)"),
        (lambda d: {**d, "train_labels": d["train_labels"][:, None]},
         r"train_labels must be a 1-D integer array.*\(20, 1\).*reshape\(-1\)"),
        (lambda d: {**d, "train_labels": d["train_labels"][:-1]},
         r"train_labels has shape \(19,\) but train_feats has 20 rows"),
        (lambda d: {**d, "train_labels": d["train_labels"].astype(np.float32)},
         r"train_labels must have an integer dtype.*float32"),
        (lambda d: {**d, "train_labels": np.where(np.arange(20) == 3, 3, d["train_labels"])},
         r"train_labels .*must lie in \[0, num_classes=3\).*\[0, 3\]"),
        (lambda d: {**d, "test_labels": d["test_labels"] - 1},
         r"test_labels .*must lie in \[0, num_classes=3\).*\[-1"),
        (lambda d: {**d, "train_feats": np.where(np.arange(4) == 1, np.nan, d["train_feats"])},
         r"train_feats.*NaN"),
    ],
)
def test_bad_inputs_raise(mutate, pattern):
    xtr, ytr, xte, yte = _ok_data()
    d = mutate(dict(train_feats=xtr, train_labels=ytr, test_feats=xte, test_labels=yte))
    with pytest.raises(ValueError, match=pattern):
        knn_accuracy(d["train_feats"], d["train_labels"], d["test_feats"], d["test_labels"], 3, k=5)
    with pytest.raises(ValueError, match=pattern):
        linear_probe(d["train_feats"], d["train_labels"], d["test_feats"], d["test_labels"], 3,
                     epochs=2)


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        (dict(k=0), r"k must be a positive integer"),
        (dict(temperature=0.0), r"temperature must be a positive number"),
        (dict(batch_size=0), r"batch_size must be a positive integer"),
        (dict(num_classes=0), r"num_classes must be a positive integer"),
    ],
)
def test_bad_knn_hyperparameters(kwargs, pattern):
    xtr, ytr, xte, _ = _ok_data()
    args = dict(num_classes=3)
    args.update(kwargs)
    with pytest.raises(ValueError, match=pattern):
        knn_classify(xtr, ytr, xte, **args)


def test_bad_probe_hyperparameters():
    xtr, ytr, xte, yte = _ok_data()
    with pytest.raises(ValueError, match="weight_decay"):
        linear_probe(xtr, ytr, xte, yte, 3, weight_decay=-1.0)
    with pytest.raises(ValueError, match="val_fraction"):
        linear_probe(xtr, ytr, xte, yte, 3, val_fraction=1.5)

"""word2vec (CBOW, skip-gram): negative-sampling loss vs naive and hand values, noise and
subsampling frequencies, windows, the loss_fn vs a naive pair loop, learning on a planted
corpus, 1 vs 4 devices, configs and bad input."""
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslx.configs import word2vec as w2v_cfg
from sslx.losses import negative_sampling_loss
from sslx.methods import get_method
from sslx.methods.text.word2vec import (centre_windows, nearest_neighbours, unigram_tables, window_draws,
                                        word2vec_batch)
from tests.helpers import run_steps, tiny_training

V = 17  # 5 specials + 12 words


def tiny_config(variant, counts=None, **overrides):
    c = w2v_cfg.get_config(f"tiny_{variant}")
    c.model.vocab_size = V
    c.method.counts = tuple(counts if counts is not None else [0.0] * 5 + [float(10 + i) for i in range(V - 5)])
    c.method.sample = 0.0
    c = tiny_training(c, **{"optimizer.lr": 0.5, **overrides})
    return c


def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


# --------------------------------------------------------------------------- the loss

def _naive_ns(u, pos, neg, w):
    tot, ws = 0.0, 0.0
    for n in range(u.shape[0]):
        s = -math.log(_sigmoid(float(np.dot(u[n], pos[n]))))
        for k in range(neg.shape[1]):
            s -= math.log(_sigmoid(-float(np.dot(u[n], neg[n, k]))))
        tot += w[n] * s
        ws += w[n]
    return tot / ws


def test_negative_sampling_loss_matches_naive():
    rng = np.random.default_rng(0)
    u, pos = rng.normal(size=(2, 7, 4))
    neg = rng.normal(size=(7, 3, 4))
    w = (rng.uniform(size=7) < 0.7).astype(np.float64)
    loss, aux = negative_sampling_loss(jnp.asarray(u), jnp.asarray(pos), jnp.asarray(neg), jnp.asarray(w))
    np.testing.assert_allclose(float(loss), _naive_ns(u, pos, neg, w), rtol=1e-5)
    assert float(aux["num_pairs"]) == w.sum()
    want_pos = sum(w[n] * _sigmoid(u[n] @ pos[n]) for n in range(7)) / w.sum()
    np.testing.assert_allclose(float(aux["pos_prob"]), want_pos, rtol=1e-5)
    # No weights = all ones; zero-weight pairs do not matter.
    l1, _ = negative_sampling_loss(jnp.asarray(u), jnp.asarray(pos), jnp.asarray(neg))
    np.testing.assert_allclose(float(l1), _naive_ns(u, pos, neg, np.ones(7)), rtol=1e-5)
    noisy = np.where(w[:, None] > 0, u, 50 * rng.normal(size=u.shape))
    l2, _ = negative_sampling_loss(jnp.asarray(noisy), jnp.asarray(pos), jnp.asarray(neg), jnp.asarray(w))
    np.testing.assert_allclose(float(l2), float(loss), rtol=1e-5)


def test_negative_sampling_loss_hand_values():
    for k in (1, 5):
        loss, aux = negative_sampling_loss(jnp.zeros((3, 4)), jnp.zeros((3, 4)), jnp.zeros((3, k, 4)))
        np.testing.assert_allclose(float(loss), (1 + k) * math.log(2), rtol=1e-6)
        assert float(aux["pos_prob"]) == 0.5 and float(aux["neg_prob"]) == 0.5
    # u = (1, 0), v+ = (2, 0), v- = (-1, 0) and (0, 3): -log s(2) - log s(1) - log s(0).
    u, pos = jnp.asarray([[1.0, 0.0]]), jnp.asarray([[2.0, 0.0]])
    neg = jnp.asarray([[[-1.0, 0.0], [0.0, 3.0]]])
    loss, _ = negative_sampling_loss(u, pos, neg)
    want = -math.log(_sigmoid(2)) - math.log(_sigmoid(1)) - math.log(0.5)
    np.testing.assert_allclose(float(loss), want, rtol=1e-6)
    with pytest.raises(ValueError, match="vector size"):
        negative_sampling_loss(jnp.zeros((2, 4)), jnp.zeros((2, 4)), jnp.zeros((2, 3, 5)))


# --------------------------------------------------------------------------- sampling

def test_negatives_follow_unigram_to_the_075():
    counts = np.array([0, 50, 0, 0, 0, 1, 10, 100, 1000, 5], np.float64)  # id 1 ([UNK]) ignored
    state = unigram_tables(counts, 0.75, 0.0, ignore_ids=(0, 1, 2, 3, 4))
    tokens = jnp.full((1000, 5), 8, jnp.int32)
    _, negs = jax.jit(lambda r: window_draws(r, tokens, state, 5, "skipgram"))(jax.random.PRNGKey(3))
    chex.assert_shape(negs, (1000, 4, 5))
    freq = np.bincount(np.asarray(negs).ravel(), minlength=10)
    n = freq.sum()
    p = np.where(np.arange(10) >= 5, counts, 0.0) ** 0.75
    p /= p.sum()
    assert freq[:5].sum() == 0  # specials never drawn
    # Each bin within 5 binomial standard deviations; and unigram^1 would be far off.
    sd = np.sqrt(n * p * (1 - p))
    assert np.all(np.abs(freq - n * p) <= 5 * sd + 1e-9), (freq, n * p)
    p1 = counts * (np.arange(10) >= 5) / (counts * (np.arange(10) >= 5)).sum()
    assert abs(freq[8] - n * p1[8]) > 20 * sd[8]
    # CBOW: K per example.
    _, negs_c = window_draws(jax.random.PRNGKey(0), tokens, state, 3, "cbow")
    chex.assert_shape(negs_c, (1000, 3))


def test_subsampling_keeps_words_at_sqrt_t_over_f():
    counts = np.array([0, 0, 0, 0, 0, 500, 300, 199, 1], np.float64)  # f = .5, .3, .199, .001
    t = 0.01
    state = unigram_tables(counts, sample=t)
    want = np.minimum(1.0, np.sqrt(t / (counts[5:] / counts.sum())))
    np.testing.assert_allclose(np.asarray(state["keep_prob"][5:]), want, rtol=1e-6)
    assert float(state["keep_prob"][8]) == 1.0 and np.all(np.asarray(state["keep_prob"][:5]) == 0)
    rng = np.random.default_rng(0)
    tokens = jnp.asarray(rng.integers(5, 9, (4000, 5)), jnp.int32)
    keep, _ = window_draws(jax.random.PRNGKey(1), tokens, state, 1, "cbow", dynamic_window=False)
    keep, tokens = np.asarray(keep), np.asarray(tokens)
    for wid, p in zip(range(5, 9), want):
        n = np.sum(tokens == wid)
        rate = keep[tokens == wid].mean()
        assert abs(rate - p) <= 5 * math.sqrt(p * (1 - p) / n) + 1e-9, (wid, rate, p)
    # sample <= 0 keeps every (non-special) word.
    no_sub = np.asarray(unigram_tables(counts, sample=0.0)["keep_prob"])
    assert np.all(no_sub[5:] == 1.0) and np.all(no_sub[:5] == 0.0)  # zero-count ids (padding) never kept


def test_dynamic_window_radius_is_uniform():
    state = unigram_tables(np.array([0, 0, 0, 0, 0, 1.0, 1.0]), sample=0.0)
    tokens = jnp.full((3000, 7), 5, jnp.int32)  # W = 3, everything kept but for the radius
    keep, _ = window_draws(jax.random.PRNGKey(2), tokens, state, 1, "cbow", dynamic_window=True)
    keep = np.asarray(keep)
    radius = keep[:, :3].sum(1)
    assert np.all(keep[:, 3]) and np.array_equal(radius, keep[:, 4:].sum(1))
    # Symmetric, contiguous around the centre, r uniform in 1..3.
    assert np.all(keep[:, 2] >= keep[:, 1]) and np.all(keep[:, 1] >= keep[:, 0])
    np.testing.assert_allclose(np.bincount(radius, minlength=4)[1:] / 3000, [1 / 3] * 3, atol=0.04)


# --------------------------------------------------------------------------- windows / batches

def test_centre_windows_by_hand():
    ids = np.array([10, 11, 12, 13, 14])
    got = centre_windows(ids, np.array([0, 2, 4]), 2)
    want = [[0, 0, 10, 11, 12], [10, 11, 12, 13, 14], [12, 13, 14, 0, 0]]
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(centre_windows(ids, np.array([1]), 1, pad_id=-1), [[10, 11, 12]])
    b1, b2 = word2vec_batch(ids, 3, 6, 2, seed=7), word2vec_batch(ids, 3, 6, 2, seed=7)
    np.testing.assert_array_equal(b1["tokens"], b2["tokens"])
    chex.assert_shape(b1["tokens"], (6, 5))
    long = np.arange(5, 1000)
    assert not np.array_equal(word2vec_batch(long, 0, 8, 2, 0)["tokens"], word2vec_batch(long, 1, 8, 2, 0)["tokens"])
    with pytest.raises(ValueError, match="centres"):
        centre_windows(ids, np.array([5]), 2)
    with pytest.raises(ValueError, match="window"):
        centre_windows(ids, np.array([0]), 0)


@pytest.mark.parametrize("variant", ["skipgram", "cbow"])
def test_loss_fn_is_naive_loss_over_kept_pairs(variant):
    c = tiny_config(variant, **{"method.sample": 0.05, "model.output_init_scale": 0.5})
    method = get_method(c, axis_name=None)
    rng = np.random.default_rng(1)
    tokens = rng.integers(5, V, (6, 5)).astype(np.int32)
    tokens[0, :2] = 0  # padding at the start of the corpus
    batch = {"tokens": tokens}
    params, state = method.init(jax.random.PRNGKey(0), batch)
    key = jax.random.PRNGKey(5)
    loss, (_, aux) = jax.jit(method.loss_fn)(params, state, batch, key)
    keep, negs = window_draws(key, jnp.asarray(tokens), state, c.method.negatives, variant, True)
    keep, negs = np.asarray(keep), np.asarray(negs)
    ein, eout = np.asarray(params["input"], np.float64), np.asarray(params["output"], np.float64)
    u, pos, neg = [], [], []
    for i in range(6):
        if not keep[i, 2]:
            continue
        ctx = [j for j in (0, 1, 3, 4) if keep[i, j]]
        if variant == "skipgram":
            for j in ctx:
                slot = j if j < 2 else j - 1
                u.append(ein[tokens[i, 2]]), pos.append(eout[tokens[i, j]]), neg.append(eout[negs[i, slot]])
        elif ctx:
            u.append(np.mean([ein[tokens[i, j]] for j in ctx], axis=0))
            pos.append(eout[tokens[i, 2]]), neg.append(eout[negs[i]])
    assert len(u) > 0 and float(aux["num_pairs"]) == len(u)
    want = _naive_ns(np.array(u), np.array(pos), np.array(neg), np.ones(len(u)))
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    assert not keep[0, 0] and not keep[0, 1]  # padding never kept
    with pytest.raises(ValueError, match="2W"):
        method.loss_fn(params, state, {"tokens": jnp.zeros((2, 4), jnp.int32)}, key)


def test_encode_averages_real_word_vectors():
    c = tiny_config("cbow")
    method = get_method(c, axis_name=None)
    params, state = method.init(jax.random.PRNGKey(0), {"tokens": jnp.zeros((1, 5), jnp.int32)})
    tokens = jnp.asarray([[2, 7, 9, 3, 0], [2, 6, 1, 3, 0]])  # [CLS] w w [SEP] [PAD]; [UNK]=1 ignored
    mask = jnp.asarray([[1, 1, 1, 1, 0], [1, 1, 1, 1, 0]], bool)
    feats = np.asarray(method.encode(params, state, tokens, mask))
    e = np.asarray(params["input"])
    np.testing.assert_allclose(feats[0], (e[7] + e[9]) / 2, rtol=1e-6)
    np.testing.assert_allclose(feats[1], e[6], rtol=1e-6)


# --------------------------------------------------------------------------- training

def _planted_stream(n_runs=300, run=12, seed=0):
    """Two topics: words 5..10 only ever appear next to each other, as do words 11..16."""
    rng = np.random.default_rng(seed)
    parts = [rng.integers(5, 11, run) if rng.uniform() < 0.5 else rng.integers(11, 17, run) for _ in range(n_runs)]
    return np.concatenate(parts).astype(np.int32)


@pytest.mark.parametrize("variant", ["skipgram", "cbow"])
def test_training_learns_planted_topics(variant):
    ids = _planted_stream()
    counts = np.bincount(ids, minlength=V).astype(float)
    c = tiny_config(variant, counts, **{"optimizer.name": "adamw", "optimizer.lr": 0.05,
                                        "model.dim": 8, "batch_size": 64})
    from sslx.train import ParallelStep, create_train_state, make_optimizer, make_step_fn
    method = get_method(c)
    tx, sched = make_optimizer(c.optimizer, 150, 64)
    runner = ParallelStep(make_step_fn(method, tx, sched), devices=jax.devices()[:1])
    ts = runner.put_state(create_train_state(method, tx, jax.random.PRNGKey(0), word2vec_batch(ids, 0, 64, 2, 0)))
    losses = []
    for step in range(150):
        ts, m = runner(ts, runner.put_batch(word2vec_batch(ids, step, 64, 2, 0)))
        losses.append(float(m["loss"]))
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.5, losses[::10]
    e = np.asarray(jax.device_get(runner.get_state(ts)).params["input"])[5:]
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    sim = e @ e.T
    topic = np.arange(12) < 6
    same = sim[topic[:, None] == topic[None, :]].sum() - 12  # drop the diagonal
    within = same / (2 * 6 * 6 - 12)
    across = sim[topic[:, None] != topic[None, :]].mean()
    assert within > across + 0.5, (within, across)
    # Every word's nearest neighbour is in its own topic.
    nn = nearest_neighbours(e, range(12), k=1)
    assert all(topic[q] == topic[lst[0][0]] for q, lst in enumerate(nn))


@pytest.mark.parametrize("variant", ["skipgram", "cbow"])
def test_four_devices_equal_one_device(variant):
    c = tiny_config(variant, **{"method.sample": 0.1, "model.output_init_scale": 0.5})
    ids = np.random.default_rng(0).integers(5, V, 400).astype(np.int32)
    batches = [word2vec_batch(ids, s, 8, 2, 0) for s in range(2)]
    host, s1, m1 = run_steps(c, jax.devices()[:1], "jit", batches)
    _, s4, m4 = run_steps(c, jax.devices(), "jit", batches)
    for a, b in zip(m1, m4):
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=3e-6)
        np.testing.assert_allclose(a["num_pairs"], b["num_pairs"])
    chex.assert_trees_all_close(s1.params, s4.params, atol=3e-6, rtol=1e-5)
    diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
               for a, b in zip(jax.tree.leaves(host.params), jax.tree.leaves(s1.params)))
    assert diff > 1e-3


# --------------------------------------------------------------------------- configs / bad input

def test_configs_build_and_bad_input():
    for arg in w2v_cfg.ARGS:
        c = w2v_cfg.get_config(arg)
        c.model.vocab_size = V
        c.method.counts = tuple([1.0] * V)
        m = get_method(c, axis_name=None)
        assert m.name == arg.split("_")[1]
        params, state = m.init(jax.random.PRNGKey(0), {"tokens": jnp.zeros((1, 2 * c.method.window + 1), jnp.int32)})
        chex.assert_shape([params["input"], params["output"]], (V, c.model.dim))
        assert float(jnp.abs(params["output"]).max()) == 0.0  # word2vec.c: zero output vectors
    with pytest.raises(ValueError, match="unknown"):
        w2v_cfg.get_config("nope")
    c = w2v_cfg.get_config("tiny_cbow")
    c.model.vocab_size = V
    with pytest.raises(ValueError, match="counts"):
        get_method(c, axis_name=None).init(jax.random.PRNGKey(0), {"tokens": jnp.zeros((1, 5), jnp.int32)})
    c.method.counts = (1.0, 2.0)
    with pytest.raises(ValueError, match="vocab_size"):
        get_method(c, axis_name=None).init(jax.random.PRNGKey(0), {"tokens": jnp.zeros((1, 5), jnp.int32)})
    with pytest.raises(ValueError, match="non-negative"):
        unigram_tables([1.0, -1.0, 2.0])
    c.model.vocab_size = 0
    with pytest.raises(ValueError, match="vocab_size"):
        get_method(c, axis_name=None)

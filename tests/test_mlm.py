"""Masked LM: masking statistics, the loss_fn against an independent forward, 1 vs 4 devices, learning."""
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslx.augment.text import mlm_mask, word_start_mask
from sslx.configs import mlm as mlm_cfg
from sslx.methods import get_method
from sslx.methods.base import example_keys
from sslx.methods.text.common import build_transformer
from tests.helpers import run_steps, tiny_training

SPECIALS = (0, 1, 2, 3, 4)
MASK = 4


def tiny_mlm_config(**overrides):
    c = mlm_cfg.get_config("tiny")
    c.model.vocab_size = 30
    c.model.max_len = 12
    c.dataset.seq_len = 12
    c.model.width = 16
    c.model.num_layers = 2
    c = tiny_training(c, **{"optimizer.lr": 0.1, **overrides})
    return c


def _batch(n=8, t=12, vocab=30, seed=0):
    """[CLS] w ... [SEP] [PAD]... rows with random lengths."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(5, vocab, (n, t)).astype(np.int32)
    lengths = rng.integers(4, t + 1, n)
    mask = np.arange(t)[None, :] < lengths[:, None]
    tokens[:, 0] = 2
    tokens[np.arange(n), lengths - 1] = 3
    tokens[~mask] = 0
    return {"tokens": tokens, "mask": mask}


# --------------------------------------------------------------------------- masking

def test_mlm_mask_rates():
    vocab, n, t = 50, 400, 64
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, vocab, (n, t)).astype(np.int32)  # includes special ids 0..4 (~10%)
    valid = np.arange(t)[None, :] < rng.integers(t // 2, t + 1, n)[:, None]
    keys = jax.random.split(jax.random.PRNGKey(0), n)
    inputs, targets, weights = jax.jit(jax.vmap(
        lambda k, x, v: mlm_mask(k, x, mask_id=MASK, vocab_size=vocab, special_ids=SPECIALS, valid=v)))(
        keys, jnp.asarray(tokens), jnp.asarray(valid))
    inputs, targets, weights = map(np.asarray, (inputs, targets, weights))
    np.testing.assert_array_equal(targets, tokens)
    chosen = weights > 0
    special = np.isin(tokens, SPECIALS)
    maskable = ~special & valid
    assert not chosen[special].any() and not chosen[~valid].any()  # specials and padding never chosen
    np.testing.assert_array_equal(inputs[~chosen], tokens[~chosen])  # unchosen tokens untouched
    rate = chosen[maskable].mean()
    assert abs(rate - 0.15) < 0.01, rate  # ~11000 maskable tokens: std 0.0034
    c_in, c_tok = inputs[chosen], tokens[chosen]
    to_mask = (c_in == MASK).mean()
    kept = (c_in == c_tok).mean()
    other = ((c_in != MASK) & (c_in != c_tok)).mean()
    n_regular = vocab - len(SPECIALS)
    assert abs(to_mask - 0.8) < 0.03, to_mask
    assert abs(kept - (0.1 + 0.1 / n_regular)) < 0.02, kept  # random draws can hit the original
    assert abs(other - 0.1 * (1 - 1 / n_regular)) < 0.02, other
    assert not np.isin(c_in[c_in != MASK], SPECIALS).any()  # random tokens are never special
    # Random replacements cover the regular vocabulary.
    assert len(np.unique(c_in[(c_in != MASK) & (c_in != c_tok)])) > 0.8 * n_regular


def test_mlm_mask_keys_and_settings():
    x = jnp.arange(5, 45, dtype=jnp.int32)
    kw = dict(mask_id=MASK, vocab_size=50, special_ids=SPECIALS, mask_prob=0.5)
    a = mlm_mask(jax.random.PRNGKey(0), x, **kw)
    b = mlm_mask(jax.random.PRNGKey(0), x, **kw)
    c = mlm_mask(jax.random.PRNGKey(1), x, **kw)
    chex.assert_trees_all_equal(a, b)
    assert not np.array_equal(np.asarray(a[2]), np.asarray(c[2]))
    allm = mlm_mask(jax.random.PRNGKey(0), x, mask_id=MASK, vocab_size=50, special_ids=SPECIALS, mask_prob=1.0,
                    mask_token_frac=1.0, random_token_frac=0.0)
    np.testing.assert_array_equal(np.asarray(allm[0]), MASK)
    with pytest.raises(ValueError, match="mask_token_frac"):
        mlm_mask(jax.random.PRNGKey(0), x, mask_id=MASK, vocab_size=50, special_ids=SPECIALS,
                 mask_token_frac=0.95, random_token_frac=0.1)
    with pytest.raises(ValueError, match="special"):
        mlm_mask(jax.random.PRNGKey(0), x, mask_id=1, vocab_size=2, special_ids=(0, 1))


def _words(tokens, valid, word_start):
    """Naive word ids (python loops): -1 on special / padding, else the index of the word each
    piece belongs to (a maskable start, or a maskable piece after a non-maskable one, opens a word)."""
    ids = np.full(tokens.shape, -1)
    w = -1
    for i in range(tokens.shape[0]):
        prev_ok = False
        for j in range(tokens.shape[1]):
            ok = valid[i, j] and tokens[i, j] not in SPECIALS
            if ok:
                if word_start[i, j] or not prev_ok:
                    w += 1
                ids[i, j] = w
            prev_ok = ok
    return ids


def test_whole_word_mask_statistics():
    vocab, n, t = 50, 300, 64
    rng = np.random.default_rng(3)
    tokens = rng.integers(0, vocab, (n, t)).astype(np.int32)  # ~10% special ids
    valid = np.arange(t)[None, :] < rng.integers(t // 2, t + 1, n)[:, None]
    word_start = rng.random((n, t)) < 0.45  # words of ~2.2 pieces
    keys = jax.random.split(jax.random.PRNGKey(1), n)
    inputs, targets, weights = map(np.asarray, jax.jit(jax.vmap(
        lambda k, x, v, w: mlm_mask(k, x, mask_id=MASK, vocab_size=vocab, special_ids=SPECIALS, valid=v,
                                    word_start=w)))(keys, jnp.asarray(tokens), jnp.asarray(valid),
                                                    jnp.asarray(word_start)))
    np.testing.assert_array_equal(targets, tokens)
    chosen = weights > 0
    words = _words(tokens, valid, word_start)
    assert not chosen[words < 0].any()  # specials and padding never chosen
    flat_w, flat_c = words[words >= 0], chosen[words >= 0]
    per_word_min = np.full(flat_w.max() + 1, True)
    per_word_max = np.full(flat_w.max() + 1, False)
    np.minimum.at(per_word_min, flat_w, flat_c)
    np.maximum.at(per_word_max, flat_w, flat_c)
    np.testing.assert_array_equal(per_word_min, per_word_max)  # a word's pieces: all chosen or none
    sizes = np.bincount(flat_w)
    assert sizes.mean() > 1.5 and (sizes > 1).sum() > 2000  # many multi-piece words were tested
    rate = per_word_max.mean()
    assert abs(rate - 0.15) < 0.015, rate  # ~7000 words: std 0.0043
    np.testing.assert_array_equal(inputs[~chosen], tokens[~chosen])
    c_in, c_tok = inputs[chosen], tokens[chosen]
    n_regular = vocab - len(SPECIALS)
    assert abs((c_in == MASK).mean() - 0.8) < 0.03
    assert abs((c_in == c_tok).mean() - (0.1 + 0.1 / n_regular)) < 0.025
    assert abs(((c_in != MASK) & (c_in != c_tok)).mean() - 0.1 * (1 - 1 / n_regular)) < 0.025
    assert not np.isin(c_in[c_in != MASK], SPECIALS).any()
    # 80/10/10 is decided per piece: chosen multi-piece words mix [MASK] and other pieces.
    mixed = [w for w in np.unique(flat_w[flat_c]) if sizes[w] > 2 and
             len(set((inputs[words == w] == MASK).tolist())) == 2]
    assert len(mixed) > 20


def test_whole_word_without_continuation_pieces_is_the_per_token_mask():
    vocab, n, t = 50, 300, 64
    rng = np.random.default_rng(4)
    tokens = jnp.asarray(rng.integers(0, vocab, (n, t)).astype(np.int32))
    valid = jnp.asarray(np.arange(t)[None, :] < rng.integers(t // 2, t + 1, n)[:, None])
    keys = jax.random.split(jax.random.PRNGKey(2), n)
    kw = dict(mask_id=MASK, vocab_size=vocab, special_ids=SPECIALS)
    per_tok = jax.jit(jax.vmap(lambda k, x, v: mlm_mask(k, x, valid=v, **kw)))(keys, tokens, valid)
    whole = jax.jit(jax.vmap(lambda k, x, v: mlm_mask(k, x, valid=v, word_start=jnp.ones(t, bool), **kw)))(
        keys, tokens, valid)
    for a, b in zip(per_tok, whole):  # the same key gives the same draw
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    maskable = np.asarray(valid) & ~np.isin(np.asarray(tokens), SPECIALS)
    assert abs(np.asarray(whole[2])[maskable].mean() - 0.15) < 0.01
    with pytest.raises(ValueError, match="word_start"):
        mlm_mask(keys[0], tokens[0], word_start=jnp.ones(t - 1, bool), **kw)


def test_word_start_mask_from_a_wordpiece_tokenizer():
    from sslx.data.text import train_subword_tokenizer
    words = ["remarkable", "unbelievable", "film", "the", "movie", "characters", "predictable", "a", "is"]
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(words, 6)) + " ." for _ in range(200)]
    tok = train_subword_tokenizer(texts, "wordpiece", vocab_size=60, min_frequency=1)
    assert any(s.startswith("##") for s in tok.itos)
    probe = ["the unbelievably remarkable film , predictable !", "characters movie"]
    for text in probe:
        ids = tok.encode(text)
        enc = tok.hf.encode(text, add_special_tokens=False)
        want = np.r_[True, np.diff(np.asarray(enc.word_ids)) != 0]  # the tokenizer's own word grouping
        got = word_start_mask(ids, tok)
        np.testing.assert_array_equal(got, want)
        assert (~got).any()  # the probe has multi-piece words
    np.testing.assert_array_equal(word_start_mask(np.array([[0, 2, 4]]), tok), [[True, True, True]])  # specials
    with pytest.raises(ValueError, match="vocabulary"):
        word_start_mask(np.array([tok.vocab_size]), tok)


# --------------------------------------------------------------------------- method

@pytest.mark.parametrize("whole_word", [False, True])
def test_mlm_loss_matches_independent_forward(whole_word):
    c = tiny_mlm_config(**{"method.mask_prob": 0.4, "method.whole_word": whole_word})
    method = get_method(c, axis_name=None)
    batch = _batch(6, seed=1)
    word_start = np.random.default_rng(5).random(batch["tokens"].shape) < 0.4
    params, state = method.init(jax.random.PRNGKey(0), batch)
    rng = jax.random.PRNGKey(7)
    if whole_word:
        with pytest.raises(ValueError, match="word_start"):
            jax.eval_shape(lambda p: method.loss_fn(p, state, batch, rng), params)
        batch["word_start"] = word_start

    @jax.jit  # one compile: the loss, its gradient and the features
    def run(p):
        (loss, aux), g = jax.value_and_grad(lambda q: method.loss_fn(q, state, batch, rng), has_aux=True)(p)
        return loss, aux[1], g, method.encode(p, state, jnp.asarray(batch["tokens"]), jnp.asarray(batch["mask"]))

    loss, metrics, g, feats = run(params)
    k_mask, _ = jax.random.split(rng)
    keys = example_keys(k_mask, 6, None)[:, 0]
    one = jax.jit(lambda k, x, v, ws: mlm_mask(k, x, mask_id=MASK, vocab_size=30, special_ids=SPECIALS,
                                               mask_prob=0.4, valid=v, word_start=ws if whole_word else None))
    inputs, weights = [], []
    for i in range(6):  # one sequence at a time with its own key
        inp, _, w = one(keys[i], jnp.asarray(batch["tokens"][i]), jnp.asarray(batch["mask"][i]),
                        jnp.asarray(word_start[i]))
        inputs.append(np.asarray(inp))
        weights.append(np.asarray(w))
    inputs, weights = np.stack(inputs), np.stack(weights)
    model = build_transformer(c, causal=False, output_bias=True)
    logits = np.asarray(jax.jit(model.apply)({"params": params}, jnp.asarray(inputs), jnp.asarray(batch["mask"])),
                        np.float64)
    tot = 0.0
    for i, j in zip(*np.nonzero(weights)):
        z = logits[i, j]
        tot += math.log(np.exp(z - z.max()).sum()) + z.max() - z[batch["tokens"][i, j]]
    assert weights.sum() >= 4
    np.testing.assert_allclose(float(loss), tot / weights.sum(), rtol=1e-5)
    assert float(metrics["masked_tokens"]) == weights.sum()
    # Gradients reach the output bias (the MLM head) and the embeddings.
    assert float(jnp.abs(g["out_bias"]).max()) > 0 and float(jnp.abs(g["tok_emb"]["embedding"]).max()) > 0
    chex.assert_shape(feats, (6, 16))


def test_mlm_four_devices_equal_one_device():
    # Rows have different lengths, so devices hold different numbers of masked tokens: the loss
    # must be normalised by the global count to agree.
    c = tiny_mlm_config()
    batches = [_batch(8, seed=s) for s in range(2)]
    host, s1, m1 = run_steps(c, jax.devices()[:1], "jit", batches)
    _, s4, m4 = run_steps(c, jax.devices(), "jit", batches)
    for a, b in zip(m1, m4):
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=3e-6)
        np.testing.assert_allclose(a["masked_tokens"], b["masked_tokens"])
        np.testing.assert_allclose(a["mlm_accuracy"], b["mlm_accuracy"], atol=1e-6)
    chex.assert_trees_all_close(s1.params, s4.params, atol=3e-5, rtol=1e-5)
    assert max(float(jnp.abs(a - b).max()) for a, b in zip(jax.tree.leaves(host.params),
                                                             jax.tree.leaves(s1.params))) > 1e-3


def test_mlm_learns_a_small_corpus():
    c = tiny_mlm_config(**{"optimizer.name": "adamw", "optimizer.lr": 3e-3, "method.mask_prob": 0.3})
    method = get_method(c, axis_name=None)
    from sslx.train import create_train_state, make_optimizer, make_step_fn
    tx, sched = make_optimizer(c.optimizer, 200, 8)
    step = jax.jit(jax.vmap(make_step_fn(method, tx, sched), in_axes=(None, 0), out_axes=(None, None),
                            axis_name="data"))
    # Deterministic sentences: token i+1 always follows token i, so masked tokens are predictable.
    rows = np.stack([(np.arange(12) + s) % 25 + 5 for s in range(8)]).astype(np.int32)
    batch = {"tokens": rows[None], "mask": np.ones((1, 8, 12), bool)}
    ts = create_train_state(method, tx, jax.random.PRNGKey(0), {"tokens": rows})
    losses = []
    for _ in range(150):
        ts, m = step(ts, batch)
        losses.append(float(m["loss"]))
    assert np.mean(losses[:10]) > math.log(30) - 0.5
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 1.0, losses[-10:]  # ~3.4 -> ~1.7


def test_heldout_perplexity_is_exp_of_the_mean_masked_cross_entropy():
    from scripts.reproduce_text_sentence import mlm_heldout
    c = tiny_mlm_config(**{"method.mask_prob": 0.3})
    batch = _batch(6, seed=2)
    params, _ = get_method(c, axis_name=None).init(jax.random.PRNGKey(0), batch)
    res = mlm_heldout(c, params, batch, seed=0, draws=2, batch_size=4)  # 6 rows: the 2nd batch is padded
    model = build_transformer(c, causal=False, output_bias=True)

    @jax.jit  # one sequence at a time, with the key of its row in its padded batch of 4
    def one(key, tokens, valid):
        inp, _, w = mlm_mask(key, tokens, mask_id=MASK, vocab_size=30, special_ids=SPECIALS, mask_prob=0.3,
                             valid=valid)
        return model.apply({"params": params}, inp[None], valid[None])[0], w

    nll, hits, count = [], 0, 0
    for d in range(2):
        for start in (0, 4):
            keys = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(11), d * 100003 + start), 4)
            for j in range(min(4, 6 - start)):
                i = start + j
                z, w = one(keys[j], jnp.asarray(batch["tokens"][i]), jnp.asarray(batch["mask"][i]))
                z = np.asarray(z, np.float64)
                for t in np.flatnonzero(np.asarray(w)):
                    y = batch["tokens"][i, t]
                    nll.append(np.log(np.exp(z[t] - z[t].max()).sum()) + z[t].max() - z[t, y])
                    hits += int(np.argmax(z[t]) == y)
                    count += 1
    assert res["masked_tokens"] == count > 5
    assert res["perplexity"] == pytest.approx(math.exp(np.mean(nll)), rel=1e-4)
    assert res["accuracy"] == pytest.approx(hits / count)


@pytest.mark.parametrize("arg", ["mr", "shakespeare", "tiny"])
def test_mlm_configs_build(arg):
    c = mlm_cfg.get_config(arg)
    method = get_method(c, axis_name=None)
    batch = {"tokens": jnp.zeros((2, c.dataset.seq_len), jnp.int32)}
    params, _ = jax.eval_shape(method.init, jax.random.PRNGKey(0), batch)
    assert params["tok_emb"]["embedding"].shape == (c.model.vocab_size, c.model.width)
    assert c.method.mask_prob == 0.15 and c.method.mask_id == 4


def test_mlm_bad_config():
    c = mlm_cfg.get_config("tiny")
    c.method.mask_id = 999
    with pytest.raises(ValueError, match="mask_id"):
        get_method(c)
    c = mlm_cfg.get_config("tiny")
    c.model.vocab_size = 0
    with pytest.raises(ValueError, match="vocab_size"):
        get_method(c)
    with pytest.raises(ValueError, match="mr, shakespeare, tiny"):
        mlm_cfg.get_config("wiki")

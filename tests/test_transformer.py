"""Transformer encoder / decoder: causality, padding mask, parameter count, tying, dtype, dropout."""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslx.models.transformer import Transformer, transformer_param_count

V, L = 23, 12


def _model(**kw):
    args = dict(vocab_size=V, max_len=L, num_layers=2, num_heads=2, width=16)
    args.update(kw)
    return Transformer(**args)


@functools.lru_cache(maxsize=None)
def _jit(m):
    return jax.jit(m.apply, static_argnames=("train", "return_hidden"))


def _tokens(b=3, t=L, seed=0):
    return jax.random.randint(jax.random.PRNGKey(seed), (b, t), 0, V)


def test_causal_no_information_from_the_future():
    m = _model(causal=True)
    x = _tokens()
    params = m.init(jax.random.PRNGKey(1), x)
    base = np.asarray(_jit(m)(params, x))
    chex.assert_shape(base, (3, L, V))
    for t in (0, 4, L - 2):
        y = x.at[:, t + 1].set((x[:, t + 1] + 1) % V)
        out = np.asarray(_jit(m)(params, y))
        np.testing.assert_allclose(out[:, : t + 1], base[:, : t + 1], atol=1e-6)
        # The check can fail: the changed token does change its own and later positions.
        assert np.abs(out[:, t + 1:] - base[:, t + 1:]).max() > 1e-4


def test_encoder_is_bidirectional():
    m = _model(causal=False)
    x = _tokens()
    params = m.init(jax.random.PRNGKey(1), x)
    y = x.at[:, -1].set((x[:, -1] + 1) % V)
    assert np.abs(np.asarray(_jit(m)(params, y))[:, 0] - np.asarray(_jit(m)(params, x))[:, 0]).max() > 1e-4


@pytest.mark.parametrize("causal", [False, True])
def test_padding_mask_hides_padded_tokens(causal):
    m = _model(causal=causal)
    x = _tokens()
    lengths = np.array([L, 7, 3])
    mask = np.arange(L)[None, :] < lengths[:, None]
    params = m.init(jax.random.PRNGKey(1), x)
    base = np.asarray(_jit(m)(params, x, jnp.asarray(mask)))
    junk = jnp.where(jnp.asarray(mask), x, (x * 7 + 3) % V)  # different tokens in the padding only
    out = np.asarray(_jit(m)(params, junk, jnp.asarray(mask)))
    np.testing.assert_allclose(out[mask], base[mask], atol=1e-5)
    # Same padded sequence shorter: real-token outputs equal those of the unpadded sequence alone.
    short = np.asarray(_jit(m)(params, x[1:2, :7]))
    np.testing.assert_allclose(base[1, :7], short[0], atol=1e-5)
    if not causal:  # without the mask the padding leaks into the real tokens
        leak = np.asarray(_jit(m)(params, junk))
        assert np.abs(leak[1, :7] - base[1, :7]).max() > 1e-4


@pytest.mark.parametrize("use_bias,output_bias", [(True, False), (False, False), (True, True)])
def test_param_count_formula(use_bias, output_bias):
    m = _model(use_bias=use_bias, output_bias=output_bias, num_layers=3, width=24, num_heads=4)
    params = m.init(jax.random.PRNGKey(0), _tokens())["params"]
    n = sum(p.size for p in jax.tree.leaves(params))
    w, h = 24, 96
    ln = 2 * w if use_bias else w
    per_block = 2 * ln + 4 * w * w + 2 * w * h + ((4 * w + h + w) if use_bias else 0)
    want = V * w + L * w + 3 * per_block + ln + (V if output_bias else 0)
    assert n == want == transformer_param_count(V, L, 3, w, 4, use_bias, output_bias)
    # nanoGPT's shakespeare_char model (no biases): 0.80 M parameters with tied embeddings.
    assert transformer_param_count(65, 64, 4, 128, use_bias=False) == 65 * 128 + 64 * 128 + 4 * (
        2 * 128 + 12 * 128 * 128) + 128


def test_tied_output_embedding():
    m = _model()
    x = _tokens()
    params = m.init(jax.random.PRNGKey(0), x)
    flat = jax.tree_util.tree_flatten_with_path(params["params"])[0]
    assert not any("head" in jax.tree_util.keystr(p) for p, _ in flat)
    h = _jit(m)(params, x, return_hidden=True)
    emb = params["params"]["tok_emb"]["embedding"]
    np.testing.assert_allclose(np.asarray(_jit(m)(params, x)), np.asarray(h @ emb.T), atol=1e-5)


def test_bfloat16_compute_float32_params():
    m32, m16 = _model(), _model(dtype=jnp.bfloat16)
    x = _tokens()
    params = m16.init(jax.random.PRNGKey(0), x)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
    out16 = _jit(m16)(params, x)
    assert out16.dtype == jnp.float32
    out32 = _jit(m32)(params, x)
    err = float(jnp.max(jnp.abs(out16 - out32)))
    assert 0 < err < 0.05 * float(jnp.max(jnp.abs(out32))) + 0.05


def test_dropout_uses_the_explicit_key():
    m = _model(dropout=0.5)
    x = _tokens()
    params = m.init(jax.random.PRNGKey(0), x)
    a = _jit(m)(params, x, train=True, rngs={"dropout": jax.random.PRNGKey(1)})
    b = _jit(m)(params, x, train=True, rngs={"dropout": jax.random.PRNGKey(1)})
    c = _jit(m)(params, x, train=True, rngs={"dropout": jax.random.PRNGKey(2)})
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert float(jnp.max(jnp.abs(a - c))) > 1e-3
    np.testing.assert_array_equal(np.asarray(_jit(m)(params, x)), np.asarray(_jit(m)(params, x)))


def test_bad_inputs():
    m = _model()
    params = m.init(jax.random.PRNGKey(0), _tokens())
    with pytest.raises(ValueError, match="max_len"):
        m.apply(params, jnp.zeros((1, L + 1), jnp.int32))
    with pytest.raises(ValueError, match="integer"):
        m.apply(params, jnp.zeros((1, 4), jnp.float32))
    with pytest.raises(ValueError, match="num_heads"):
        _model(width=10, num_heads=4).init(jax.random.PRNGKey(0), _tokens())

"""GPT (Radford et al. 2018): next-token prediction with a causal transformer decoder.

Batch: ``{"tokens": int32 [B, L]}`` (optionally ``"mask"`` bool [B, L], True = real token).
The model reads ``tokens[:, :-1]`` and is trained to predict ``tokens[:, 1:]``; with a mask
the loss skips targets that are padding. So a context of T tokens needs windows of L = T + 1
tokens (nanoGPT's ``x = data[i:i+T], y = data[i+1:i+T+1]``). ``encode`` mean-pools the final
hidden states over the real tokens -> [B, width].
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections

from sslx import losses
from sslx.methods.base import DATA_AXIS, Method
from sslx.methods.text.common import build_transformer, check_tokens, dropout_key, mean_pool


def gpt(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
        total_steps: Optional[int] = None) -> Method:
    """GPT as a :class:`Method` (reads ``config.model``; see :func:`build_transformer`)."""
    del total_steps
    model = build_transformer(config, causal=True)

    def split(batch):
        tokens = check_tokens(batch, "gpt")
        if tokens.shape[1] < 2:
            raise ValueError(f"gpt: batch['tokens'] needs at least 2 tokens per row (inputs + next token), "
                             f"got shape {tuple(tokens.shape)}.")
        mask = batch.get("mask")
        weights = None if mask is None else (mask[:, 1:] & mask[:, :-1]).astype(jnp.float32)
        in_mask = None if mask is None else mask[:, :-1]
        return tokens[:, :-1], tokens[:, 1:], in_mask, weights

    def init(rng, batch):
        x, _, m, _ = split(batch)
        return model.init(rng, x[:1], None if m is None else m[:1])["params"], {}

    def loss_fn(params, state, batch, rng):
        x, y, m, w = split(batch)
        logits = model.apply({"params": params}, x, m, train=True, rngs={"dropout": dropout_key(rng, axis_name)})
        loss, aux = losses.token_cross_entropy(logits, y, w, axis_name)
        return loss, (state, {"accuracy": aux["accuracy"]})

    def encode(params, state, tokens, mask=None):
        h = model.apply({"params": params}, tokens, mask, train=False, return_hidden=True)
        return mean_pool(h, mask)

    return Method(name="gpt", init=init, loss_fn=loss_fn, encode=encode, axis_name=axis_name)


def lm_logits(config: ml_collections.ConfigDict, params, tokens: jax.Array) -> jax.Array:
    """Eval-mode next-token logits float32 [B, T, V] of the GPT in ``config`` for ``tokens`` [B, T]."""
    return build_transformer(config, causal=True).apply({"params": params}, tokens, train=False)


def make_sampler(config: ml_collections.ConfigDict):
    """``sample(params, prompt, n, temperature, key)`` for the GPT of ``config`` (see :func:`sample`)."""
    def sampler(params, prompt, n: int, temperature: float = 1.0, key: Optional[jax.Array] = None):
        return sample(config, params, prompt, n, temperature, key)
    return sampler


def sample(config: ml_collections.ConfigDict, params, prompt: jax.Array, n: int, temperature: float = 1.0,
           key: Optional[jax.Array] = None, top_k: Optional[int] = None) -> jax.Array:
    """Generate ``n`` tokens after ``prompt`` int [P] (or [B, P]) -> int32 [P + n] (or [B, P + n]).

    Autoregressive with a fixed-size window buffer (one compiled step for every position):
    the model sees the last ``max_len`` tokens. ``temperature`` 0 is greedy; ``top_k``
    keeps the k most likely tokens. ``key`` is required unless greedy.
    """
    model = build_transformer(config, causal=True)
    prompt = jnp.asarray(prompt, jnp.int32)
    single = prompt.ndim == 1
    if single:
        prompt = prompt[None]
    if prompt.shape[1] < 1:
        raise ValueError("sample: the prompt needs at least one token.")
    if temperature < 0:
        raise ValueError(f"sample: temperature must be >= 0, got {temperature}.")
    if temperature > 0 and key is None:
        raise ValueError("sample: pass key=jax.random.PRNGKey(...) to sample with temperature > 0.")
    key = jax.random.PRNGKey(0) if key is None else key
    b, p = prompt.shape
    win = model.max_len
    total = p + n
    buf = jnp.zeros((b, total), jnp.int32).at[:, :p].set(prompt)

    def step(carry, i):
        buf, key = carry
        # Window of the last `win` tokens ending at position i - 1 (left part may be before 0).
        start = jnp.maximum(i - win, 0)
        ctx = jax.lax.dynamic_slice(buf, (0, start), (b, min(win, total)))
        pos = jnp.minimum(i, win) - 1  # index of the last real token inside the window
        logits = model.apply({"params": params}, ctx[:, :win], train=False)[:, pos]
        key, sub = jax.random.split(key)
        if top_k is not None:
            kth = jax.lax.top_k(logits, top_k)[0][:, -1:]
            logits = jnp.where(logits < kth, -jnp.inf, logits)
        if temperature == 0:
            nxt = jnp.argmax(logits, -1)
        else:
            nxt = jax.random.categorical(sub, logits / temperature, axis=-1)
        buf = jax.lax.dynamic_update_slice(buf, nxt[:, None].astype(jnp.int32), (0, i))
        return (buf, key), None

    (buf, _), _ = jax.lax.scan(step, (buf, key), jnp.arange(p, total))
    return buf[0] if single else buf

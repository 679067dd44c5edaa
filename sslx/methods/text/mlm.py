"""Masked language modelling (BERT, Devlin et al. 2019) with a pre-LN transformer encoder.

Batch: ``{"tokens": int32 [B, T], "mask": bool [B, T]}`` (mask True = real token; without
it every token is real), plus ``"word_start": bool [B, T]`` when ``config.method.whole_word``
(True where a piece begins a word: :func:`sslx.augment.text.word_start_mask` from the
WordPiece vocabulary). Inside the step each sequence is corrupted with its own key (keyed
by its *global* index, so the corruption does not depend on the device split) by
:func:`sslx.augment.text.mlm_mask`: 15% of the non-special real tokens are chosen, 80% of
those become [MASK], 10% a random token, 10% stay; with ``whole_word`` 15% of the *words*
are chosen and all their pieces masked together (80/10/10 still decided per piece, as BERT
does). The loss is the cross-entropy at the
chosen positions only, normalised by their number over the whole global batch. The output
layer is the tied token embedding plus a bias. ``encode`` mean-pools the final hidden
states over the real tokens -> [B, width].

Config keys: ``config.model`` (see :func:`build_transformer`), ``config.method.mask_id``,
``config.method.special_ids`` (never masked), ``config.method.mask_prob`` (0.15),
``mask_token_frac`` (0.8), ``random_token_frac`` (0.1), ``config.method.whole_word`` (False).
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections

from sslx import losses
from sslx.augment.text import mlm_mask
from sslx.methods.base import DATA_AXIS, Method, example_keys
from sslx.methods.text.common import build_transformer, check_tokens, dropout_key, mean_pool


def mlm_corruption(config: ml_collections.ConfigDict, name: str = "mlm") -> dict:
    """The keyword arguments of :func:`sslx.augment.text.mlm_mask` from ``config.method``
    (``mask_id``, ``special_ids``, ``mask_prob``, ``mask_token_frac``, ``random_token_frac``),
    validated now so that a bad setting fails before tracing, naming ``name``."""
    mc = config.method
    vocab = int(config.model.vocab_size)
    mask_id = int(mc.get("mask_id", 4))
    if not 0 <= mask_id < vocab:
        raise ValueError(f"{name}: config.method.mask_id {mask_id} is outside the vocabulary [0, {vocab}).")
    corrupt = dict(mask_id=mask_id, vocab_size=vocab,
                   special_ids=tuple(int(i) for i in mc.get("special_ids", (0, 1, 2, 3, 4))),
                   mask_prob=float(mc.get("mask_prob", 0.15)),
                   mask_token_frac=float(mc.get("mask_token_frac", 0.8)),
                   random_token_frac=float(mc.get("random_token_frac", 0.1)))
    mlm_mask(jax.random.PRNGKey(0), jnp.zeros((1,), jnp.int32), **corrupt)  # validate the settings now
    return corrupt


def corrupt_tokens(rng: jax.Array, tokens: jax.Array, valid: jax.Array, corrupt: dict, axis_name: Optional[str],
                   word_start: Optional[jax.Array] = None) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Masked-LM corruption of a (local) batch ``tokens`` int32 [B, T]: one key per row, keyed by
    its *global* index -> ``(inputs [B, T], targets [B, T], weights float32 [B, T])``."""
    keys = example_keys(rng, tokens.shape[0], axis_name, num=1)[:, 0]
    if word_start is None:
        return jax.vmap(lambda k, t, v: mlm_mask(k, t, valid=v, **corrupt))(keys, tokens, valid)
    return jax.vmap(lambda k, t, v, w: mlm_mask(k, t, valid=v, word_start=w, **corrupt))(
        keys, tokens, valid, word_start)


def mlm(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
        total_steps: Optional[int] = None) -> Method:
    """Masked LM as a :class:`Method`."""
    del total_steps
    model = build_transformer(config, causal=False, output_bias=True)
    mc = config.method
    corrupt = mlm_corruption(config)
    whole_word = bool(mc.get("whole_word", False))

    def init(rng, batch):
        tokens = check_tokens(batch, "mlm")
        return model.init(rng, tokens[:1], batch.get("mask", jnp.ones_like(tokens, bool))[:1])["params"], {}

    def word_starts(batch, tokens):
        if not whole_word:
            return None
        ws = batch.get("word_start")
        if ws is None or ws.shape != tokens.shape:
            raise ValueError("mlm: config.method.whole_word needs batch['word_start'] bool [B, T] (True where a "
                             "piece begins a word), e.g. sslx.augment.text.word_start_mask(tokens, tokenizer); got "
                             f"{None if ws is None else tuple(ws.shape)} for tokens {tuple(tokens.shape)}.")
        return ws.astype(bool)

    def loss_fn(params, state, batch, rng):
        tokens = check_tokens(batch, "mlm")
        valid = batch.get("mask", jnp.ones_like(tokens, bool)).astype(bool)
        k_mask, k_drop = jax.random.split(rng)
        inputs, targets, weights = corrupt_tokens(k_mask, tokens, valid, corrupt, axis_name,
                                                  word_starts(batch, tokens))
        logits = model.apply({"params": params}, inputs, valid, train=True,
                             rngs={"dropout": dropout_key(k_drop, axis_name)})
        loss, aux = losses.token_cross_entropy(logits, targets, weights, axis_name)
        return loss, (state, {"mlm_accuracy": aux["accuracy"], "masked_tokens": aux["num_tokens"]})

    def encode(params, state, tokens, mask=None):
        h = model.apply({"params": params}, tokens, mask, train=False, return_hidden=True)
        return mean_pool(h, mask)

    return Method(name="mlm", init=init, loss_fn=loss_fn, encode=encode, axis_name=axis_name)

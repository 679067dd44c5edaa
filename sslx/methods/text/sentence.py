"""Pieces shared by the sentence-level objectives (NSP, SOP, word / sentence order, masked and
neighbour sentences, bidirectional LM): batch checks, the global-batch gather, the encoder
pass and the sentence features used by ``encode``.

Batches of these objectives are either single sentences ``{"tokens": int32 [B, S],
"mask": bool [B, S]}`` (no special tokens; mask True = real token, left-aligned) or windows
of consecutive sentences from :func:`sslx.augment.text_pairs.sentence_windows`
``{"sents": int32 [B, K, S], "lengths": int32 [B, K], "doc": int32 [B]}``. Parameters are
``{"encoder": transformer params, <head name>: head params}``; the encoder is the pre-LN
transformer of ``config.model`` and ``encode(params, state, tokens, mask)`` takes
``[CLS] sentence [SEP]`` rows (as :func:`sslx.data.text.pad_sequences` builds them) and
mean-pools the final hidden states over the real tokens -> [B, width].
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections
from jax import lax

from sslx import losses
from sslx.methods.text.common import build_transformer, dropout_key, mean_pool
from sslx.methods.text.mlm import corrupt_tokens, mlm_corruption


def special_ids(config: ml_collections.ConfigDict) -> dict:
    """``cls_id``, ``sep_id``, ``pad_id``, ``mask_id`` from ``config.method`` (defaults 2, 3, 0, 4:
    the ids of :data:`sslx.data.text.SPECIAL_TOKENS`), checked against the vocabulary."""
    mc, vocab = config.method, int(config.model.vocab_size)
    ids = {k: int(mc.get(k, d)) for k, d in (("cls_id", 2), ("sep_id", 3), ("pad_id", 0), ("mask_id", 4))}
    for k, v in ids.items():
        if not 0 <= v < max(vocab, 1):
            raise ValueError(f"config.method.{k}={v} is outside the vocabulary [0, {vocab}).")
    return ids


def check_window_batch(batch: dict, name: str, window: Optional[int] = None
                       ) -> tuple[jax.Array, jax.Array, Optional[jax.Array]]:
    """``(sents int32 [B, K, S], lengths int32 [B, K], doc int32 [B] or None)`` or a ValueError."""
    for key in ("sents", "lengths"):
        if key not in batch:
            raise ValueError(f"{name}: the batch needs 'sents' int32 [B, K, S] and 'lengths' int32 [B, K] "
                             f"(sslx.augment.text_pairs.sentence_windows); got keys {sorted(batch)}.")
    sents, lengths = batch["sents"], batch["lengths"]
    if sents.ndim != 3 or lengths.shape != sents.shape[:2]:
        raise ValueError(f"{name}: 'sents' must be [B, K, S] and 'lengths' [B, K]; got {tuple(sents.shape)} "
                         f"and {tuple(lengths.shape)}.")
    if window is not None and sents.shape[1] != window:
        raise ValueError(f"{name}: needs windows of K={window} sentences, got K={sents.shape[1]}; build the data "
                         f"with sentence_windows(..., window={window}).")
    doc = batch.get("doc")
    return sents.astype(jnp.int32), lengths.astype(jnp.int32), None if doc is None else doc.astype(jnp.int32)


def check_sentence_batch(batch: dict, name: str) -> tuple[jax.Array, jax.Array]:
    """``(tokens int32 [B, S], lengths int32 [B])`` from ``tokens`` and optional ``mask``."""
    if "tokens" not in batch:
        raise ValueError(f"{name}: the batch needs 'tokens' int32 [B, S] (one sentence per row, no special "
                         f"tokens) and optionally 'mask' bool [B, S]; got keys {sorted(batch)}.")
    tokens = batch["tokens"]
    if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
        raise ValueError(f"{name}: batch['tokens'] must be int [B, S], got {tokens.dtype} {tuple(tokens.shape)}.")
    mask = batch.get("mask")
    lengths = jnp.full(tokens.shape[:1], tokens.shape[1], jnp.int32) if mask is None else \
        jnp.sum(mask.astype(jnp.int32), axis=1)
    return tokens.astype(jnp.int32), lengths


def gather_global(x: jax.Array, axis_name: Optional[str]) -> tuple[jax.Array, jax.Array]:
    """All-gather ``x`` [B, ...] over ``axis_name`` -> ([N*B, ...], global indices [B] of the local rows)."""
    b = x.shape[0]
    if axis_name is None:
        return x, jnp.arange(b)
    return lax.all_gather(x, axis_name, tiled=True), lax.axis_index(axis_name) * b + jnp.arange(b)


def hidden_states(model, params, tokens: jax.Array, valid: jax.Array, train: bool, rng: Optional[jax.Array],
                  axis_name: Optional[str]) -> jax.Array:
    """Final hidden states float32 [B, T, W] of the transformer ``model``."""
    rngs = {"dropout": dropout_key(rng, axis_name)} if train and rng is not None else None
    return model.apply({"params": params}, tokens, valid, train=train, return_hidden=True, rngs=rngs)


def joint_mlm(config: ml_collections.ConfigDict, name: str) -> Optional[dict]:
    """Settings of the optional joint masked LM of a sentence objective, or None when it is off.

    BERT trains NSP together with masked LM, ALBERT SOP, StructBERT its word- and sentence-order
    objectives: ``config.method.mlm_weight`` > 0 (default 0, the objective alone) corrupts the
    objective's main encoder input as masked LM does and adds ``mlm_weight`` x the masked-token
    cross-entropy (see :func:`encoder_pass`). Special tokens ([CLS], [SEP], [MASK] placeholders)
    are never chosen.
    """
    weight = float(config.method.get("mlm_weight", 0.0))
    if not weight >= 0.0:
        raise ValueError(f"{name}: config.method.mlm_weight must be >= 0 (0 turns the joint masked LM off), "
                         f"got {weight}.")
    if weight == 0.0:
        return None
    return {"weight": weight, "corrupt": mlm_corruption(config, name), "vocab": int(config.model.vocab_size)}


def init_joint_mlm(params: dict, mlm: Optional[dict]) -> dict:
    """``params`` plus the masked-LM output bias ``mlm_bias`` float32 [V] when ``mlm`` is on."""
    return params if mlm is None else {**params, "mlm_bias": jnp.zeros((mlm["vocab"],), jnp.float32)}


def encoder_pass(model, params: dict, tokens: jax.Array, valid: jax.Array, rng: Optional[jax.Array],
                 axis_name: Optional[str], mlm: Optional[dict]) -> tuple[jax.Array, jax.Array, dict]:
    """The objective's main (training) pass of ``params["encoder"]`` over ``tokens`` int32 [B, T].

    Returns ``(hidden float32 [B, T, W], extra loss, metrics)``. Without ``mlm`` (see
    :func:`joint_mlm`) this is :func:`hidden_states` and the extra loss is 0. With it, each row
    is corrupted with its own key (global index; derived from ``rng``, which also seeds dropout),
    the objective sees the corrupted tokens, and the extra loss is ``mlm_weight`` x the
    cross-entropy at the chosen positions of the tied output layer (token embedding, plus
    ``params["mlm_bias"]``) -- BERT's recipe, where NSP reads the masked pair.
    """
    if mlm is None:
        return hidden_states(model, params["encoder"], tokens, valid, True, rng, axis_name), jnp.float32(0.0), {}
    key = jax.random.PRNGKey(0) if rng is None else rng
    inputs, targets, weights = corrupt_tokens(jax.random.fold_in(key, 0x6D4C4D), tokens, valid, mlm["corrupt"],
                                              axis_name)
    h = hidden_states(model, params["encoder"], inputs, valid, True, rng, axis_name)
    emb = params["encoder"]["tok_emb"]["embedding"]
    logits = jnp.einsum("btw,vw->btv", h, emb) + params["mlm_bias"]
    loss, aux = losses.token_cross_entropy(logits, targets, weights, axis_name)
    return h, mlm["weight"] * loss, {"mlm_loss": loss, "mlm_accuracy": aux["accuracy"]}


def task_metrics(task_loss: jax.Array, mlm_metrics: dict) -> dict:
    """The objective's own loss as ``task_loss`` next to the joint masked-LM metrics (empty when off)."""
    return {"task_loss": task_loss, **mlm_metrics} if mlm_metrics else {}


def make_encode(model):
    """``encode(params, state, tokens, mask) -> [B, W]``: mean-pooled encoder states."""
    def encode(params, state, tokens, mask=None):
        h = model.apply({"params": params["encoder"]}, jnp.asarray(tokens, jnp.int32), mask, train=False,
                        return_hidden=True)
        return mean_pool(h, mask)
    return encode


def encoder(config: ml_collections.ConfigDict, causal: bool = False):
    """The transformer of ``config.model`` (bidirectional unless ``causal``)."""
    return build_transformer(config, causal=causal)


def pair_classifier(config: ml_collections.ConfigDict, name: str, pairs, rate_metric: str,
                    axis_name: Optional[str]):
    """A :class:`Method` classifying a packed sentence pair from its [CLS] state (NSP, SOP).

    ``pairs(batch, rng) -> (tokens [B, 2S+3], valid, labels [B])`` builds the pairs inside the
    step; the loss is 2-way cross-entropy of a linear head; ``rate_metric`` logs the rate of label 1.
    """
    import flax.linen as nn

    from sslx.methods.base import Method
    model = encoder(config)
    head = nn.Dense(2, name=f"{name}_head")
    mlm = joint_mlm(config, name)

    def init(rng, batch):
        sents, _, _ = check_window_batch(batch, name, window=2)
        k_enc, k_head = jax.random.split(rng)
        t = 1 + 2 * (sents.shape[2] + 1)
        enc = model.init(k_enc, jnp.zeros((1, t), jnp.int32))["params"]
        return init_joint_mlm({"encoder": enc, "head": head.init(k_head, jnp.zeros((1, model.width)))["params"]},
                              mlm), {}

    def loss_fn(params, state, batch, rng):
        k_pair, k_drop = jax.random.split(rng)
        tokens, valid, labels = pairs(batch, k_pair)
        h, extra, mlm_metrics = encoder_pass(model, params, tokens, valid, k_drop, axis_name, mlm)
        logits = head.apply({"params": params["head"]}, h[:, 0])
        loss, aux = losses.token_cross_entropy(logits, labels, None, axis_name)
        return loss + extra, (state, {"accuracy": aux["accuracy"], rate_metric: jnp.mean(labels.astype(jnp.float32)),
                                      **task_metrics(loss, mlm_metrics)})

    return Method(name=name, init=init, loss_fn=loss_fn, encode=make_encode(model), axis_name=axis_name)

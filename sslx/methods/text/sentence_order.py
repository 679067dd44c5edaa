"""Shuffled sentence order: recover the original order of the shuffled sentences of a short
document ("Finally I did Z. Then I did Y. I did X." -> X, Y, Z).

Batch: windows of K consecutive sentences of one document ``{"sents": int32 [B, K, S],
"lengths": [B, K]}`` (K = 3..5). Inside the step each row's sentences are permuted with its
own key (:func:`sslx.augment.text_pairs.shuffle_sentences`), packed as
``[CLS] s_o0 [SEP] s_o1 [SEP] ...`` (length 1 + K (S + 1) <= ``config.model.max_len``); the
representation of slot j is the mean of the encoder states over that sentence and its [SEP],
and a linear head over K classes predicts its original position (cross-entropy).
``encode`` mean-pools the encoder over ``[CLS] sentence [SEP]`` rows -> [B, width].
"""
from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslx import losses
from sslx.augment.text_pairs import pack_segments, shuffle_sentences
from sslx.methods.base import DATA_AXIS, Method, example_keys
from sslx.methods.text.sentence import (check_window_batch, encoder, encoder_pass, init_joint_mlm, joint_mlm,
                                        make_encode, special_ids, task_metrics)


def segment_means(h: jax.Array, segment: jax.Array, num: int) -> jax.Array:
    """Mean of ``h`` [B, T, W] over the positions of each segment 1..num -> [B, num, W]."""
    onehot = (segment[:, :, None] == jnp.arange(1, num + 1)[None, None, :]).astype(h.dtype)  # [B, T, K]
    return jnp.einsum("btk,btw->bkw", onehot, h) / jnp.maximum(jnp.sum(onehot, axis=1), 1.0)[..., None]


def sentence_order_inputs(batch: dict, rng: jax.Array, ids: dict, axis_name: Optional[str] = None
                          ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Shuffled documents of a (local) batch -> packed ``tokens`` int32 [B, 1+K(S+1)], ``valid``,
    ``segment`` (slot j + 1 on slot j) and ``order`` int32 [B, K] (slot j holds sentence
    ``order[j]``: the target of slot j)."""
    sents, lengths, _ = check_window_batch(batch, "sentence_order")
    keys = example_keys(rng, sents.shape[0], axis_name)[:, 0]
    order = jax.vmap(lambda k: shuffle_sentences(k, sents.shape[1]))(keys)
    tokens, valid, seg = jax.vmap(lambda s, ln, o: pack_segments(
        s, ln, o, cls_id=ids["cls_id"], sep_id=ids["sep_id"], pad_id=ids["pad_id"]))(sents, lengths, order)
    return tokens, valid, seg, order


def sentence_order(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
                   total_steps: Optional[int] = None) -> Method:
    """Shuffled-sentence-order recovery as a :class:`Method`."""
    del total_steps
    model = encoder(config)
    ids = special_ids(config)
    mlm = joint_mlm(config, "sentence_order")

    def shuffled(batch, rng):
        return sentence_order_inputs(batch, rng, ids, axis_name)

    def init(rng, batch):
        sents, _, _ = check_window_batch(batch, "sentence_order")
        _, k, s = sents.shape
        if k < 2:
            raise ValueError(f"sentence_order: needs K >= 2 sentences per row, got K={k}.")
        k_enc, k_head = jax.random.split(rng)
        enc = model.init(k_enc, jnp.zeros((1, 1 + k * (s + 1)), jnp.int32))["params"]
        head = nn.Dense(k).init(k_head, jnp.zeros((1, model.width)))["params"]
        return init_joint_mlm({"encoder": enc, "head": head}, mlm), {}

    def loss_fn(params, state, batch, rng):
        k_shuf, k_drop = jax.random.split(rng)
        tokens, valid, seg, order = shuffled(batch, k_shuf)
        k = order.shape[1]
        h, extra, mlm_metrics = encoder_pass(model, params, tokens, valid, k_drop, axis_name, mlm)
        logits = nn.Dense(k).apply({"params": params["head"]}, segment_means(h, seg, k))  # [B, K, K]
        loss, aux = losses.token_cross_entropy(logits, order, None, axis_name)
        exact = jnp.mean(jnp.all(jnp.argmax(logits, -1) == order, axis=1).astype(jnp.float32))
        return loss + extra, (state, {"accuracy": aux["accuracy"], "exact_order": exact,
                                      **task_metrics(loss, mlm_metrics)})

    return Method(name="sentence_order", init=init, loss_fn=loss_fn, encode=make_encode(model),
                  axis_name=axis_name)

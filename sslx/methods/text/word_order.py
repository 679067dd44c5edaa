"""Shuffled word order: recover each token's original position in a shuffled sentence.

Batch: single sentences ``{"tokens": int32 [B, S], "mask": bool [B, S]}`` (no special tokens,
left-aligned). Inside the step the real tokens of each row are permuted with its own key
(:func:`sslx.augment.text_pairs.shuffle_tokens`, keyed by the global index), the shuffled
sentence is fed as ``[CLS] shuffled [SEP]`` and a linear head over S classes on each token's
state predicts its original position (cross-entropy over the real tokens of the global batch).
With repeated words the target of each copy is its own position, so the task is ambiguous
there. ``encode`` mean-pools the encoder over ``[CLS] sentence [SEP]`` rows -> [B, width].
"""
from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslx import losses
from sslx.augment.text_pairs import pack_segments, shuffle_tokens
from sslx.methods.base import DATA_AXIS, Method, example_keys
from sslx.methods.text.sentence import (check_sentence_batch, encoder, encoder_pass, init_joint_mlm, joint_mlm,
                                        make_encode, special_ids, task_metrics)


def word_order_inputs(batch: dict, rng: jax.Array, ids: dict, axis_name: Optional[str] = None
                      ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Shuffled sentences of a (local) batch -> ``inputs`` int32 [B, S+2] (``[CLS] shuffled [SEP]``),
    ``valid`` bool [B, S+2], ``targets`` int32 [B, S] (original position of the token at input
    position j + 1) and ``weights`` float32 [B, S] (1 on real tokens)."""
    tokens, lengths = check_sentence_batch(batch, "word_order")
    keys = example_keys(rng, tokens.shape[0], axis_name)[:, 0]
    shuf, targets = jax.vmap(shuffle_tokens)(keys, tokens, lengths)
    inp, valid, _ = jax.vmap(lambda s, ln: pack_segments(s[None], ln[None], cls_id=ids["cls_id"],
                                                         sep_id=ids["sep_id"], pad_id=ids["pad_id"]))(shuf, lengths)
    weights = (jnp.arange(tokens.shape[1])[None, :] < lengths[:, None]).astype(jnp.float32)
    return inp, valid, targets, weights


def word_order(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
               total_steps: Optional[int] = None) -> Method:
    """Shuffled-word-order recovery as a :class:`Method`."""
    del total_steps
    model = encoder(config)
    ids = special_ids(config)
    mlm = joint_mlm(config, "word_order")

    def shuffled(batch, rng):
        return word_order_inputs(batch, rng, ids, axis_name)

    def head(s):
        return nn.Dense(s, name="position_head")

    def init(rng, batch):
        tokens, _ = check_sentence_batch(batch, "word_order")
        s = tokens.shape[1]
        k_enc, k_head = jax.random.split(rng)
        enc = model.init(k_enc, jnp.zeros((1, s + 2), jnp.int32))["params"]
        return init_joint_mlm({"encoder": enc, "head": head(s).init(k_head, jnp.zeros((1, model.width)))["params"]},
                              mlm), {}

    def loss_fn(params, state, batch, rng):
        k_shuf, k_drop = jax.random.split(rng)
        inp, valid, targets, weights = shuffled(batch, k_shuf)
        s = targets.shape[1]
        h, extra, mlm_metrics = encoder_pass(model, params, inp, valid, k_drop, axis_name, mlm)
        logits = head(s).apply({"params": params["head"]}, h[:, 1:s + 1])
        loss, aux = losses.token_cross_entropy(logits, targets, weights, axis_name)
        return loss + extra, (state, {"accuracy": aux["accuracy"], **task_metrics(loss, mlm_metrics)})

    return Method(name="word_order", init=init, loss_fn=loss_fn, encode=make_encode(model), axis_name=axis_name)

"""Previous / next word: a forward and a backward language model over the same transformer
(ELMo's bidirectional LM objective, with one shared causal encoder).

Batch: single sentences ``{"tokens": int32 [B, S], "mask": bool [B, S]}`` (no specials).
Forward: the causal transformer reads ``[CLS] s`` and predicts ``s [SEP]`` (next word).
Backward: the same weights read ``[CLS] reverse(s)`` and predict ``reverse(s) [SEP]``, i.e.
each word from the words after it (previous word) -- a causal mask in the other direction.
Loss = forward CE + backward CE (each the mean over the real target tokens of the global batch).
``encode`` concatenates the mean-pooled forward states of ``[CLS] s [SEP]`` and the backward
states of ``[CLS] reverse(s) [SEP]`` -> [B, 2 width].
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections

from sslx import losses
from sslx.augment.text_pairs import pack_segments, reverse_prefix
from sslx.methods.base import DATA_AXIS, Method
from sslx.methods.text.common import dropout_key, mean_pool
from sslx.methods.text.sentence import check_sentence_batch, encoder, special_ids


def bidir_lm(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
             total_steps: Optional[int] = None) -> Method:
    """Forward + backward LM as a :class:`Method`."""
    del total_steps
    model = encoder(config, causal=True)
    ids = special_ids(config)
    pack = jax.vmap(lambda s, ln: pack_segments(s[None], ln[None], cls_id=ids["cls_id"], sep_id=ids["sep_id"],
                                                pad_id=ids["pad_id"]))

    def init(rng, batch):
        tokens, _ = check_sentence_batch(batch, "bidir_lm")
        return {"encoder": model.init(rng, jnp.zeros((1, tokens.shape[1] + 1), jnp.int32))["params"]}, {}

    def loss_fn(params, state, batch, rng):
        tokens, lengths = check_sentence_batch(batch, "bidir_lm")
        total, metrics = 0.0, {}
        for i, name in enumerate(("forward", "backward")):
            seq = tokens if name == "forward" else jax.vmap(reverse_prefix)(tokens, lengths)
            x, valid, _ = pack(seq, lengths)  # [CLS] s [SEP] pad
            logits = model.apply({"params": params["encoder"]}, x[:, :-1], valid[:, :-1], train=True,
                                 rngs={"dropout": dropout_key(jax.random.fold_in(rng, i), axis_name)})
            loss, aux = losses.token_cross_entropy(logits, x[:, 1:], valid[:, 1:], axis_name)
            total = total + loss
            metrics[f"{name}_loss"], metrics[f"{name}_accuracy"] = loss, aux["accuracy"]
        return total, (state, metrics)

    def encode(params, state, tokens, mask=None):
        tokens = jnp.asarray(tokens, jnp.int32)
        mask = jnp.ones_like(tokens, bool) if mask is None else mask.astype(bool)
        n = jnp.sum(mask.astype(jnp.int32), axis=1)
        # [CLS] s [SEP] -> [CLS] reverse(s) [SEP]: reverse the n - 2 inner tokens.
        inner = jax.vmap(reverse_prefix)(tokens[:, 1:], jnp.maximum(n - 2, 0))
        back = jnp.concatenate([tokens[:, :1], inner], axis=1)
        feats = []
        for x in (tokens, back):
            h = model.apply({"params": params["encoder"]}, x, mask, train=False, return_hidden=True)
            feats.append(mean_pool(h, mask))
        return jnp.concatenate(feats, axis=-1)

    return Method(name="bidir_lm", init=init, loss_fn=loss_fn, encode=encode, axis_name=axis_name)

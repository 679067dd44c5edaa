"""Neighbour-sentence prediction, contrastive "quick-thought" variant (Logeswaran & Lee 2018).

Instead of generating the previous and next sentence (:mod:`sslx.methods.text.neighbor_sentence`),
pick them out of a candidate set. Two encoders of the same architecture: ``f`` (params
``"encoder"``) reads the centre sentence, ``g`` (params ``"context_encoder"``) every candidate;
each is the pre-LN transformer over ``[CLS] s [SEP]``, mean-pooled over the real tokens.

Batch: windows of 3 consecutive sentences ``{"sents": int32 [B, 3, S], "lengths": [B, 3]}``
(previous, centre, next; :func:`sslx.augment.text_pairs.sentence_windows`). The candidates are
the ``g`` encodings of all ``3 B`` sentences of the *global* batch (gathered over devices) minus
the anchor's own centre; the positives of window ``b`` are its previous and next sentence; the
loss is :func:`sslx.losses.text_pairs.neighbour_contrastive_loss` (score ``f(s) . g(c) /
method.qt_temperature``, the paper's plain inner product at 1.0; ``method.qt_cosine`` for cosine
similarity). Sentences of other windows are negatives even when two windows overlap in a
document, as in the paper's batches of contiguous text. ``encode`` concatenates the two
encoders' features ``[f(s); g(s)]`` -> [B, 2 width], the paper's sentence representation.
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections

from sslx.augment.text_pairs import pack_segments
from sslx.losses.text_pairs import neighbour_contrastive_loss
from sslx.methods.base import DATA_AXIS, Method
from sslx.methods.text.common import mean_pool
from sslx.methods.text.sentence import (check_window_batch, encoder, encoder_pass, gather_global, hidden_states,
                                        init_joint_mlm, joint_mlm, special_ids, task_metrics)


def quick_thought(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
                  total_steps: Optional[int] = None) -> Method:
    """Quick-thought as a :class:`Method` (``config.method.qt_temperature``, ``qt_cosine``)."""
    del total_steps
    model = encoder(config)
    ids = special_ids(config)
    mlm = joint_mlm(config, "quick_thought")
    tau = float(config.method.get("qt_temperature", 1.0))
    if not tau > 0:
        raise ValueError(f"quick_thought: config.method.qt_temperature must be > 0, got {tau}.")
    cosine = bool(config.method.get("qt_cosine", False))
    pack = jax.vmap(lambda s, ln: pack_segments(s[None], ln[None], cls_id=ids["cls_id"], sep_id=ids["sep_id"],
                                                pad_id=ids["pad_id"]))

    def init(rng, batch):
        sents, _, _ = check_window_batch(batch, "quick_thought", window=3)
        x = jnp.zeros((1, sents.shape[2] + 2), jnp.int32)
        k_f, k_g = jax.random.split(rng)
        return init_joint_mlm({"encoder": model.init(k_f, x)["params"],
                               "context_encoder": model.init(k_g, x)["params"]}, mlm), {}

    def loss_fn(params, state, batch, rng):
        sents, lengths, _ = check_window_batch(batch, "quick_thought", window=3)
        b, k, s = sents.shape
        flat, valid, _ = pack(sents.reshape(b * k, s), lengths.reshape(b * k))  # [3B, S + 2]: [CLS] s [SEP]
        centre, centre_valid = flat.reshape(b, k, -1)[:, 1], valid.reshape(b, k, -1)[:, 1]
        k_f, k_g = jax.random.split(rng)
        h, extra, mlm_metrics = encoder_pass(model, params, centre, centre_valid, k_f, axis_name, mlm)
        anchors = mean_pool(h, centre_valid)                                     # f(centre) [B, W]
        ctx = mean_pool(hidden_states(model, params["context_encoder"], flat, valid, True, k_g, axis_name), valid)
        cand, rows = gather_global(ctx.reshape(b, k, -1), axis_name)             # [N B, 3, W], global window ids
        base = rows * k
        loss, aux = neighbour_contrastive_loss(
            anchors, cand.reshape(-1, cand.shape[-1]), jnp.stack([base, base + 2], axis=1), base + 1, tau, cosine)
        return loss + extra, (state, {"accuracy": aux["accuracy"], **task_metrics(loss, mlm_metrics)})

    def encode(params, state, tokens, mask=None):
        tokens = jnp.asarray(tokens, jnp.int32)
        feats = [mean_pool(model.apply({"params": params[name]}, tokens, mask, train=False, return_hidden=True), mask)
                 for name in ("encoder", "context_encoder")]
        return jnp.concatenate(feats, axis=-1)

    return Method(name="quick_thought", init=init, loss_fn=loss_fn, encode=encode, axis_name=axis_name)

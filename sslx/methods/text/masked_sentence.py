"""Masked sentence prediction: hide one sentence of a short document and pick it among
candidates by a contrastive score (InfoNCE), in the spirit of the lecture's "predict the
masked sentence" task.

Batch: windows of K consecutive sentences ``{"sents": int32 [B, K, S], "lengths": [B, K],
"doc": int32 [B]}``. Inside the step each row (keyed by its global index) draws the masked
slot m; the context is the packed document with sentence m replaced by one [MASK] token, and
its query is a linear projection of the encoder state at that [MASK]. Every masked sentence,
alone as ``[CLS] s_m [SEP]``, is encoded by the same encoder (mean-pooled, projected); the
candidate set of row i (:func:`sslx.augment.text_pairs.sentence_candidates`) is its own
masked sentence at a random slot plus ``num_candidates - 1`` masked sentences of rows of
*other* documents of the global batch. Loss: :func:`sslx.losses.text_pairs.candidate_info_nce`
(cosine / ``temperature``). ``encode`` mean-pools the encoder -> [B, width].
"""
from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslx.augment.text_pairs import pack_segments, sentence_candidates
from sslx.losses.text_pairs import candidate_info_nce
from sslx.methods.base import DATA_AXIS, Method, example_keys
from sslx.methods.text.common import mean_pool
from sslx.methods.text.sentence import (check_window_batch, encoder, encoder_pass, gather_global, hidden_states,
                                        init_joint_mlm, joint_mlm, make_encode, special_ids, task_metrics)


def masked_sentence(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
                    total_steps: Optional[int] = None) -> Method:
    """Masked-sentence prediction as a :class:`Method` (``config.method.num_candidates``,
    ``temperature``, ``proj_dim``)."""
    del total_steps
    model = encoder(config)
    ids = special_ids(config)
    mc = config.method
    mlm = joint_mlm(config, "masked_sentence")
    num_cand = int(mc.get("num_candidates", 8))
    temperature = float(mc.get("temperature", 0.1))
    proj_dim = int(mc.get("proj_dim", 64))
    q_proj, k_proj = nn.Dense(proj_dim), nn.Dense(proj_dim)
    pack = lambda s, ln: pack_segments(s, ln, cls_id=ids["cls_id"], sep_id=ids["sep_id"], pad_id=ids["pad_id"])

    def build(batch, rng):
        sents, lengths, doc = check_window_batch(batch, "masked_sentence")
        if doc is None:
            raise ValueError("masked_sentence: the batch needs 'doc' int32 [B] (document ids) to draw candidates "
                             "from other documents.")
        b, k, s = sents.shape
        keys = example_keys(rng, b, axis_name, num=2)
        m = jax.vmap(lambda kk: jax.random.randint(kk, (), 0, k))(keys[:, 0])
        target = jnp.take_along_axis(sents, m[:, None, None], axis=1)[:, 0]            # [B, S]
        t_len = jnp.take_along_axis(lengths, m[:, None], axis=1)[:, 0]                 # [B]
        hide = jnp.arange(k)[None, :] == m[:, None]                                     # [B, K]
        masked_row = jnp.zeros((s,), jnp.int32).at[0].set(ids["mask_id"])
        ctx_sents = jnp.where(hide[..., None], masked_row, sents)
        ctx_len = jnp.where(hide, 1, lengths)
        ctx, ctx_valid, _ = jax.vmap(pack)(ctx_sents, ctx_len)
        mask_pos = 1 + jnp.sum(jnp.where(jnp.arange(k)[None, :] < m[:, None], lengths + 1, 0), axis=1)
        tgt, tgt_valid, _ = jax.vmap(lambda t, ln: pack(t[None], ln[None]))(target, t_len)
        g_doc, idx = gather_global(doc, axis_name)
        rows, labels, cvalid = jax.vmap(lambda kk, i: sentence_candidates(kk, i, g_doc, num_cand))(keys[:, 1], idx)
        return ctx, ctx_valid, mask_pos, tgt, tgt_valid, rows, labels, cvalid

    def init(rng, batch):
        sents, _, _ = check_window_batch(batch, "masked_sentence")
        _, k, s = sents.shape
        k_enc, k_q, k_k = jax.random.split(rng, 3)
        enc = model.init(k_enc, jnp.zeros((1, 1 + k * (s + 1)), jnp.int32))["params"]
        x = jnp.zeros((1, model.width))
        return init_joint_mlm({"encoder": enc, "query_proj": q_proj.init(k_q, x)["params"],
                               "key_proj": k_proj.init(k_k, x)["params"]}, mlm), {}

    def loss_fn(params, state, batch, rng):
        k_build, k_d1, k_d2 = jax.random.split(rng, 3)
        ctx, ctx_valid, mask_pos, tgt, tgt_valid, rows, labels, cvalid = build(batch, k_build)
        h, extra, mlm_metrics = encoder_pass(model, params, ctx, ctx_valid, k_d1, axis_name, mlm)
        q = q_proj.apply({"params": params["query_proj"]}, jnp.take_along_axis(h, mask_pos[:, None, None], 1)[:, 0])
        ht = hidden_states(model, params["encoder"], tgt, tgt_valid, True, k_d2, axis_name)
        keys = k_proj.apply({"params": params["key_proj"]}, mean_pool(ht, tgt_valid))
        g_keys, _ = gather_global(keys, axis_name)
        loss, aux = candidate_info_nce(q, g_keys[rows], labels, cvalid, temperature)
        return loss + extra, (state, {"accuracy": aux["accuracy"], **task_metrics(loss, mlm_metrics)})

    return Method(name="masked_sentence", init=init, loss_fn=loss_fn, encode=make_encode(model),
                  axis_name=axis_name)

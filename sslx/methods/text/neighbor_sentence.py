"""Neighbour-sentence prediction, skip-thought style (Kiros et al. 2015) with transformers.

Batch: windows of 3 consecutive sentences ``{"sents": int32 [B, 3, S], "lengths": [B, 3]}``
(previous, centre, next). The encoder reads ``[CLS] centre [SEP]`` and mean-pools its states
into the sentence vector z. Two conditioned causal decoders (one for the previous, one for
the next sentence; :class:`ConditionedDecoder`) add a projection of z to every input
embedding and are trained with teacher forcing: input ``[CLS] s``, target ``s [SEP]``,
cross-entropy over the real target tokens. Loss = CE(previous) + CE(next).
``encode`` mean-pools the encoder over ``[CLS] sentence [SEP]`` rows -> [B, width].
"""
from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslx import losses
from sslx.augment.text_pairs import pack_segments
from sslx.methods.base import DATA_AXIS, Method
from sslx.methods.text.common import mean_pool
from sslx.methods.text.sentence import (check_window_batch, encoder, encoder_pass, init_joint_mlm, joint_mlm, make_encode,
                                        special_ids, task_metrics)
from sslx.models.transformer import Block

_init = nn.initializers.normal(stddev=0.02)


class ConditionedDecoder(nn.Module):
    """Causal pre-LN decoder ``(tokens int [B, T], cond float [B, C]) -> logits float32 [B, T, V]``:
    token + position embeddings + ``Dense(cond)`` at every position, causal blocks, tied output."""
    vocab_size: int
    max_len: int
    num_layers: int = 1
    num_heads: int = 4
    width: int = 128

    @nn.compact
    def __call__(self, tokens: jax.Array, cond: jax.Array) -> jax.Array:
        b, t = tokens.shape
        if t > self.max_len:
            raise ValueError(f"ConditionedDecoder: length {t} > max_len {self.max_len}.")
        embed = nn.Embed(self.vocab_size, self.width, embedding_init=_init, name="tok_emb")
        pos = self.param("pos_emb", _init, (self.max_len, self.width), jnp.float32)
        x = embed(tokens) + pos[:t] + nn.Dense(self.width, kernel_init=_init, name="cond")(cond)[:, None, :]
        scale = 1.0 / (2 * max(self.num_layers, 1)) ** 0.5
        for i in range(self.num_layers):
            x = Block(self.num_heads, 4 * self.width, True, 0.0, True, scale, name=f"block{i}")(x, None, False)
        h = nn.LayerNorm(epsilon=1e-5, name="ln_f")(x)
        return embed.attend(h).astype(jnp.float32)


def teacher_forcing(sent: jax.Array, length: jax.Array, cls_id: int, sep_id: int, pad_id: int
                    ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One sentence int [S] -> (inputs ``[CLS] s`` [S+1], targets ``s [SEP]`` [S+1], weights [S+1])."""
    s = sent.shape[0]
    pos = jnp.arange(s + 1)
    padded = jnp.concatenate([sent, jnp.zeros((1,), sent.dtype)])
    tgt = jnp.where(pos < length, padded, jnp.where(pos == length, sep_id, pad_id))
    inp = jnp.where(pos == 0, cls_id, jnp.where(pos <= length, padded[jnp.maximum(pos - 1, 0)], pad_id))
    return inp.astype(jnp.int32), tgt.astype(jnp.int32), (pos <= length).astype(jnp.float32)


def neighbor_sentence(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
                      total_steps: Optional[int] = None) -> Method:
    """Skip-thought neighbour prediction as a :class:`Method` (``config.method.decoder_layers``)."""
    del total_steps
    model = encoder(config)
    ids = special_ids(config)
    mlm = joint_mlm(config, "neighbor_sentence")
    dec = ConditionedDecoder(int(config.model.vocab_size), int(config.model.max_len),
                             int(config.method.get("decoder_layers", 1)), int(config.model.num_heads),
                             int(config.model.width))
    tf = jax.vmap(lambda s, ln: teacher_forcing(s, ln, ids["cls_id"], ids["sep_id"], ids["pad_id"]))

    def init(rng, batch):
        sents, _, _ = check_window_batch(batch, "neighbor_sentence", window=3)
        s = sents.shape[2]
        k_enc, k_p, k_n = jax.random.split(rng, 3)
        enc = model.init(k_enc, jnp.zeros((1, s + 2), jnp.int32))["params"]
        x, z = jnp.zeros((1, s + 1), jnp.int32), jnp.zeros((1, model.width))
        return init_joint_mlm({"encoder": enc, "prev_decoder": dec.init(k_p, x, z)["params"],
                               "next_decoder": dec.init(k_n, x, z)["params"]}, mlm), {}

    def loss_fn(params, state, batch, rng):
        sents, lengths, _ = check_window_batch(batch, "neighbor_sentence", window=3)
        centre, valid, _ = jax.vmap(lambda s, ln: pack_segments(s[None], ln[None], cls_id=ids["cls_id"],
                                                                sep_id=ids["sep_id"], pad_id=ids["pad_id"]))(
            sents[:, 1], lengths[:, 1])
        h, extra, mlm_metrics = encoder_pass(model, params, centre, valid, rng, axis_name, mlm)
        z = mean_pool(h, valid)
        total, metrics = 0.0, {}
        for slot, name in ((0, "prev"), (2, "next")):
            inp, tgt, w = tf(sents[:, slot], lengths[:, slot])
            logits = dec.apply({"params": params[f"{name}_decoder"]}, inp, z)
            loss, aux = losses.token_cross_entropy(logits, tgt, w, axis_name)
            total = total + loss
            metrics[f"{name}_loss"], metrics[f"{name}_accuracy"] = loss, aux["accuracy"]
        return total + extra, (state, {**metrics, **task_metrics(total, mlm_metrics)})

    return Method(name="neighbor_sentence", init=init, loss_fn=loss_fn, encode=make_encode(model),
                  axis_name=axis_name)

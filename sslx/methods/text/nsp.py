"""Next sentence prediction (BERT, Devlin et al. 2019).

Batch: windows of 2 consecutive sentences ``{"sents": int32 [B, 2, S], "lengths": [B, 2],
"doc": int32 [B]}`` (:func:`sslx.augment.text_pairs.sentence_windows` with ``window=2``).
Inside the step, row i (keyed by its *global* index) keeps its true next sentence with
probability 0.5 (label 1) or takes the second sentence of a random row of another document
of the global batch (label 0, :func:`sslx.augment.text_pairs.nsp_partner`); the pair is packed
as ``[CLS] A [SEP] B [SEP]`` (length 2S + 3 <= ``config.model.max_len``) and a linear head on
the [CLS] state classifies IsNext / NotNext (cross-entropy over the global batch).
``encode`` mean-pools the encoder over ``[CLS] sentence [SEP]`` rows -> [B, width].
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections

from sslx.augment.text_pairs import nsp_partner, pack_segments
from sslx.methods.base import DATA_AXIS, Method, example_keys
from sslx.methods.text.sentence import check_window_batch, gather_global, pair_classifier, special_ids


def nsp_inputs(batch: dict, rng: jax.Array, ids: dict, positive_prob: float = 0.5,
               axis_name: Optional[str] = None) -> tuple[jax.Array, jax.Array, jax.Array]:
    """NSP examples of a (local) batch -> ``tokens`` int32 [B, 2S+3], ``valid`` bool, ``labels`` int32 [B]
    (1 = the true next sentence). ``ids``: :func:`sslx.methods.text.sentence.special_ids`."""
    sents, lengths, doc = check_window_batch(batch, "nsp", window=2)
    if doc is None:
        raise ValueError("nsp: the batch needs 'doc' int32 [B] (document ids) to draw negatives from "
                         "other documents.")
    keys = example_keys(rng, sents.shape[0], axis_name)[:, 0]
    g_second, idx = gather_global(sents[:, 1], axis_name)
    g_len, _ = gather_global(lengths[:, 1], axis_name)
    g_doc, _ = gather_global(doc, axis_name)
    labels, partner = jax.vmap(lambda k, i: nsp_partner(k, i, g_doc, positive_prob))(keys, idx)
    pair = jnp.stack([sents[:, 0], g_second[partner]], axis=1)
    plen = jnp.stack([lengths[:, 0], g_len[partner]], axis=1)
    tokens, valid, _ = jax.vmap(lambda s, ln: pack_segments(s, ln, cls_id=ids["cls_id"], sep_id=ids["sep_id"],
                                                            pad_id=ids["pad_id"]))(pair, plen)
    return tokens, valid, labels


def nsp(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
        total_steps: Optional[int] = None) -> Method:
    """NSP as a :class:`Method` (``config.method.positive_prob``, default 0.5)."""
    del total_steps
    ids = special_ids(config)
    pos_prob = float(config.method.get("positive_prob", 0.5))
    return pair_classifier(config, "nsp", lambda batch, rng: nsp_inputs(batch, rng, ids, pos_prob, axis_name),
                           "positive_rate", axis_name)

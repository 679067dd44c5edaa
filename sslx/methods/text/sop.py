"""Sentence order prediction (ALBERT, Lan et al. 2020).

Batch: windows of 2 consecutive sentences of one document ``{"sents": int32 [B, 2, S],
"lengths": [B, 2]}``. Inside the step each row (keyed by its global index) is swapped with
probability 0.5 (:func:`sslx.augment.text_pairs.sop_order`), packed as ``[CLS] A [SEP] B [SEP]``
and a linear head on the [CLS] state predicts in order (1) / swapped (0). Unlike NSP both
segments always come from the same document, so topic cues cannot solve the task.
``encode`` mean-pools the encoder over ``[CLS] sentence [SEP]`` rows -> [B, width].
"""
from __future__ import annotations

from typing import Optional

import jax
import ml_collections

from sslx.augment.text_pairs import pack_segments, sop_order
from sslx.methods.base import DATA_AXIS, Method, example_keys
from sslx.methods.text.sentence import check_window_batch, pair_classifier, special_ids


def sop_inputs(batch: dict, rng: jax.Array, ids: dict, swap_prob: float = 0.5,
               axis_name: Optional[str] = None) -> tuple[jax.Array, jax.Array, jax.Array]:
    """SOP examples of a (local) batch -> ``tokens`` int32 [B, 2S+3], ``valid`` bool, ``labels`` int32 [B]
    (1 = original order)."""
    sents, lengths, _ = check_window_batch(batch, "sop", window=2)
    keys = example_keys(rng, sents.shape[0], axis_name)[:, 0]
    labels, order = jax.vmap(lambda k: sop_order(k, swap_prob))(keys)
    tokens, valid, _ = jax.vmap(lambda s, ln, o: pack_segments(
        s, ln, o, cls_id=ids["cls_id"], sep_id=ids["sep_id"], pad_id=ids["pad_id"]))(sents, lengths, order)
    return tokens, valid, labels


def sop(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
        total_steps: Optional[int] = None) -> Method:
    """SOP as a :class:`Method` (``config.method.swap_prob``, default 0.5)."""
    del total_steps
    ids = special_ids(config)
    swap_prob = float(config.method.get("swap_prob", 0.5))
    return pair_classifier(config, "sop", lambda batch, rng: sop_inputs(batch, rng, ids, swap_prob, axis_name),
                           "in_order_rate", axis_name)

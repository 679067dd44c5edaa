"""Sentence-level text objectives: ``--config sslx/configs/text_sentence.py:<arg>``.

arg: one of ``nsp``, ``sop``, ``word_order``, ``sentence_order``, ``masked_sentence``,
``neighbor_sentence``, ``bidir_lm`` (a small CPU-sized pre-LN encoder: 2 layers, width 64,
2 heads, sentences of at most 24 word pieces, a WordPiece vocabulary of 4000, AdamW 1e-3,
batch 64, 300 steps), or ``tiny_<objective>`` (a smoke configuration for tests).

Data (``dataset.name``): ``word_order`` and ``bidir_lm`` train on single MR sentences
(``mr``); the document-level objectives on windows of ``method.window`` consecutive
sentences of tiny shakespeare speeches (``tinyshakespeare``; ``wikitext2`` also works):
NSP / SOP 2, neighbour sentences 3 (previous, centre, next), sentence order and masked
sentence 4. Special ids follow :data:`sslx.data.text.SPECIAL_TOKENS` (PAD 0, CLS 2, SEP 3, MASK 4).
"""
from __future__ import annotations

import ml_collections

from sslx.configs.gpt import text_base

OBJECTIVES = ("nsp", "sop", "word_order", "sentence_order", "masked_sentence", "neighbor_sentence", "bidir_lm")
WINDOWS = {"nsp": 2, "sop": 2, "sentence_order": 4, "masked_sentence": 4, "neighbor_sentence": 3}


def get_config(arg: str = "nsp") -> ml_collections.ConfigDict:
    arg = arg or "nsp"
    tiny = arg.startswith("tiny_")
    name = arg[len("tiny_"):] if tiny else arg
    if name not in OBJECTIVES:
        valid = ", ".join(list(OBJECTIVES) + [f"tiny_{o}" for o in OBJECTIVES])
        raise ValueError(f"text_sentence config arg {arg!r} is unknown; use one of {valid}.")
    c = text_base(name)
    c.method.cls_id, c.method.sep_id, c.method.pad_id, c.method.mask_id = 2, 3, 0, 4
    c.method.window = WINDOWS.get(name, 1)
    c.method.positive_prob = 0.5   # nsp
    c.method.swap_prob = 0.5       # sop
    c.method.num_candidates = 8    # masked_sentence
    c.method.temperature = 0.1     # masked_sentence
    c.method.proj_dim = 64         # masked_sentence
    c.method.decoder_layers = 1    # neighbor_sentence
    c.dataset.name = "mr" if name in ("word_order", "bidir_lm") else "tinyshakespeare"
    c.dataset.tokenizer = "wordpiece"
    c.dataset.vocab_size = 4000
    c.dataset.max_tokens = 24      # S: word pieces per sentence (longer ones are truncated)
    c.model.vocab_size = 4000
    c.model.max_len = 128
    c.model.num_layers = 2
    c.model.num_heads = 2
    c.model.width = 64
    c.model.dropout = 0.0
    c.batch_size = 64
    c.train.num_steps = 300
    c.optimizer.name = "adamw"
    c.optimizer.lr = 1e-3
    c.optimizer.b2 = 0.98
    c.optimizer.weight_decay = 0.01
    c.optimizer.grad_clip = 1.0
    c.optimizer.warmup_steps = 30
    c.optimizer.end_lr_factor = 0.1
    if tiny:
        c.dataset.vocab_size = c.model.vocab_size = 50
        c.dataset.max_tokens = 6
        c.model.max_len = 32
        c.model.num_layers = 1
        c.model.width = 16
        c.method.num_candidates = 4
        c.method.proj_dim = 8
        c.batch_size = 8
        c.train.num_steps = 20
        c.optimizer.warmup_steps = 2
    return c

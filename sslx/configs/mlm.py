"""Masked-LM configs: ``--config sslx/configs/mlm.py:<arg>``.

arg: ``mr`` (default): a small pre-LN BERT (4 layers, width 128, 4 heads, 64 tokens) on the MR
sentences (rt-polarity) with a WordPiece vocabulary of 8000 trained on them, 15% masking
(80/10/10; ``method.whole_word = True`` masks whole words), AdamW lr 5e-4, warmup 200 steps,
3000 steps of batch 64. ``shakespeare``: the same on tiny shakespeare sentences. ``tiny``: a
smoke configuration.

The special tokens ``[PAD] [UNK] [CLS] [SEP] [MASK]`` have ids 0..4 in the word and subword
tokenisers of :mod:`sslx.data.text`; ``method.special_ids`` lists the ids never masked.
"""
from __future__ import annotations

import ml_collections

from sslx.configs.gpt import text_base


def get_config(arg: str = "mr") -> ml_collections.ConfigDict:
    arg = arg or "mr"
    c = text_base("mlm")
    c.method.mask_id = 4
    c.method.special_ids = (0, 1, 2, 3, 4)
    c.method.mask_prob = 0.15
    c.method.mask_token_frac = 0.8
    c.method.random_token_frac = 0.1
    c.method.whole_word = False  # True: mask whole words (batches then carry "word_start" bool [B, T])
    c.dataset.tokenizer = "wordpiece"
    c.dataset.vocab_size = 8000
    c.model.vocab_size = 8000
    c.model.dropout = 0.1
    c.optimizer.name = "adamw"
    c.optimizer.lr = 5e-4
    c.optimizer.b2 = 0.98
    c.optimizer.weight_decay = 0.01
    c.optimizer.grad_clip = 1.0
    c.optimizer.end_lr_factor = 0.0
    if arg in ("mr", "shakespeare"):
        c.dataset.name = arg
        c.dataset.seq_len = 64
        c.model.max_len = 64
        c.batch_size = 64
        c.train.num_steps = 3000
        c.optimizer.warmup_steps = 200
    elif arg == "tiny":
        c.dataset.name = "mr"
        c.dataset.vocab_size = 200
        c.model.vocab_size = 200
        c.dataset.seq_len = 16
        c.model.max_len = 16
        c.model.num_layers = 1
        c.model.num_heads = 2
        c.model.width = 32
        c.model.dropout = 0.0
        c.batch_size = 8
        c.train.num_steps = 20
        c.optimizer.warmup_steps = 2
    else:
        raise ValueError(f"mlm config arg {arg!r} is unknown; use one of mr, shakespeare, tiny.")
    return c

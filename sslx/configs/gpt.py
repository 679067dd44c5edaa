"""GPT configs: ``--config sslx/configs/gpt.py:<arg>``.

arg: ``shakespeare_char`` (default): nanoGPT's CPU configuration for tiny shakespeare at
character level (its README's ``--device=cpu`` run): context 64, batch 12, 4 layers, 4 heads,
width 128, no dropout, no biases, 2000 iterations, AdamW (beta2 0.99, weight decay 0.1 on
the 2-D weights only, i.e. matrices and embeddings), lr 1e-3 with 100 linear warmup steps and
cosine decay to 1e-4, gradient clipping at norm 1.0; first 90% train / last 10% validation,
loss estimated on 200 random batches. ``tiny``: a few-second smoke configuration.

Text keys: ``dataset.name`` / ``dataset.tokenizer`` / ``dataset.seq_len`` (the context; windows
hold seq_len + 1 tokens), ``model.vocab_size`` (set from the tokenizer: 65 characters here),
``model.max_len``, ``num_layers``, ``num_heads``, ``width``, ``mlp_ratio``, ``dropout``,
``use_bias``; ``eval.num_batches`` (validation batches for the loss estimate).
"""
from __future__ import annotations

import ml_collections

from sslx.configs.common import base_config

SHAKESPEARE_CHARS = 65


def text_base(name: str) -> ml_collections.ConfigDict:
    """``base_config()`` with the image-only blocks replaced by text ones."""
    c = base_config()
    del c.augment
    c.method = ml_collections.ConfigDict({"name": name})
    c.dataset.name = "tinyshakespeare"
    c.dataset.tokenizer = "char"
    c.dataset.train_split = "train"
    c.dataset.eval_split = "val"
    c.dataset.seq_len = 64
    c.model = ml_collections.ConfigDict()
    c.model.vocab_size = 0  # set from the tokenizer
    c.model.max_len = 64
    c.model.num_layers = 4
    c.model.num_heads = 4
    c.model.width = 128
    c.model.mlp_ratio = 4
    c.model.dropout = 0.0
    c.model.use_bias = True
    c.model.dtype = "float32"
    c.eval = ml_collections.ConfigDict()
    c.eval.num_batches = 200
    c.eval.batch_size = 12
    return c


def get_config(arg: str = "shakespeare_char") -> ml_collections.ConfigDict:
    arg = arg or "shakespeare_char"
    c = text_base("gpt")
    if arg in ("shakespeare_char", "tiny"):
        c.model.vocab_size = SHAKESPEARE_CHARS
        c.model.use_bias = False
        c.batch_size = 12
        c.train.num_steps = 2000
        c.train.steps_per_call = 50
        c.train.log_every = 250
        c.optimizer.name = "adamw"
        c.optimizer.lr = 1e-3
        c.optimizer.warmup_steps = 100
        c.optimizer.end_lr_factor = 0.1  # cosine to 1e-4
        c.optimizer.b1 = 0.9
        c.optimizer.b2 = 0.99
        c.optimizer.weight_decay = 0.1  # sslx.train.decay_mask: ndim > 1 (nanoGPT: dim >= 2)
        c.optimizer.grad_clip = 1.0
        if arg == "tiny":
            c.dataset.seq_len = 16
            c.model.max_len = 16
            c.model.num_layers = 1
            c.model.num_heads = 2
            c.model.width = 32
            c.batch_size = 8
            c.train.num_steps = 100
            c.train.steps_per_call = 10
            c.optimizer.warmup_steps = 10
            c.eval.num_batches = 10
            c.eval.batch_size = 8
    else:
        raise ValueError(f"gpt config arg {arg!r} is unknown; use one of shakespeare_char, tiny.")
    return c

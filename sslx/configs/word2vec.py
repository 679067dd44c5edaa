"""word2vec configs: ``--config sslx/configs/word2vec.py:<arg>``.

arg: ``shakespeare_cbow`` / ``shakespeare_skipgram`` (default): CBOW or skip-gram on a word
stream of tiny shakespeare (all of it) + the MR sentences + the WikiText-2 validation split
(``dataset.corpora``; those found are used), lower-cased words with count >= 5 (``[UNK]`` is
dropped from the stream, as word2vec.c drops out-of-vocabulary words), 100-d vectors, window
W = 5 with word2vec.c's dynamic window, K = 5 negatives from unigram^0.75, subsampling
t = 1e-3 (word2vec.c's default; the paper's 1e-5 is for billion-word corpora and would drop
most of a ~0.7M-word one), Adam lr 1e-2 with cosine decay (batches of 512 windows replace
word2vec.c's one-pair SGD), 1500 steps (about 1.1 epochs of centres).
``tiny_cbow`` / ``tiny_skipgram``: smoke configurations.

Keys: ``method.window`` (W), ``method.negatives`` (K), ``method.noise_power``, ``method.sample``
(t), ``method.dynamic_window``, ``method.ignore_ids`` (special ids, never trained),
``method.counts`` (the count of every vocabulary id; set from the tokenizer before building the
method), ``model.vocab_size`` (set from the tokenizer), ``model.dim``; ``dataset.min_count``.
"""
from __future__ import annotations

import ml_collections

from sslx.configs.gpt import text_base

ARGS = ("shakespeare_cbow", "shakespeare_skipgram", "tiny_cbow", "tiny_skipgram")


def get_config(arg: str = "shakespeare_skipgram") -> ml_collections.ConfigDict:
    arg = arg or "shakespeare_skipgram"
    if arg not in ARGS:
        raise ValueError(f"word2vec config arg {arg!r} is unknown; use one of {', '.join(ARGS)}.")
    size, variant = arg.split("_")
    c = text_base(variant)
    c.dataset.name = "tinyshakespeare"
    c.dataset.corpora = ("tinyshakespeare", "mr", "wikitext2")
    c.dataset.tokenizer = "word"
    c.dataset.min_count = 5
    c.method.window = 5
    c.method.negatives = 5
    c.method.noise_power = 0.75
    c.method.sample = 1e-3
    c.method.dynamic_window = True
    c.method.ignore_ids = (0, 1, 2, 3, 4)
    c.method.counts = ()  # set from the tokenizer (one count per vocabulary id)
    c.model = ml_collections.ConfigDict()
    c.model.vocab_size = 0  # set from the tokenizer
    c.model.dim = 100
    c.model.output_init_scale = 0.0
    c.optimizer.name = "adamw"
    c.optimizer.lr = 1e-2
    c.optimizer.weight_decay = 0.0
    c.optimizer.warmup_steps = 0
    c.optimizer.end_lr_factor = 0.0
    c.batch_size = 512
    c.train.num_steps = 1500
    c.train.log_every = 500
    c.eval.folds = 10
    c.eval.neighbour_words = ("king", "good", "love", "bad", "man", "night", "lord", "film")
    if size == "tiny":
        c.model.dim = 16
        c.method.window = 2
        c.batch_size = 8
        c.train.num_steps = 20
        c.train.log_every = 5
    return c

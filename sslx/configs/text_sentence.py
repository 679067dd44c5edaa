"""Sentence-level text objectives: ``--config sslx/configs/text_sentence.py:<arg>``.

arg: one of ``nsp``, ``sop``, ``word_order``, ``sentence_order``, ``masked_sentence``,
``neighbor_sentence``, ``quick_thought`` (its contrastive variant), ``bidir_lm``, ``mlm`` (masked
LM with the same encoder, the reference row of ``scripts/reproduce_text_sentence.py``): a small
CPU-sized pre-LN encoder (2 layers, width 64, 2 heads, sentences of at most 24 word pieces, a
WordPiece vocabulary of 4000, AdamW 2e-3 with 100 warmup steps and cosine decay to 2e-4, batch 64, 1000 steps), or
``tiny_<objective>`` (a smoke configuration for tests). ``<objective>+mlm`` (not ``bidir_lm``)
trains the objective jointly with masked LM on its own encoder input (``method.mlm_weight``
1.0; BERT's NSP + MLM, ALBERT's SOP + MLM, StructBERT's order objectives + MLM).

Data (``dataset.name``): ``word_order``, ``bidir_lm`` and ``mlm`` train on single MR sentences
(``mr``, no labels); the document-level objectives on windows of ``method.window``
consecutive sentences of ``wikitext2+mr_clauses``: WikiText-2 articles (modern English, far
closer to movie reviews than ``tinyshakespeare``, which also works) plus MR snippets split at
clause punctuation into pseudo-documents (in-domain text; MR sentences themselves are
independent snippets, so they make no documents): NSP / SOP 2, neighbour sentences 3
(previous, centre, next; also quick-thought), sentence order and masked sentence 4. Special ids
follow :data:`sslx.data.text.SPECIAL_TOKENS` (PAD 0, CLS 2, SEP 3, MASK 4).
"""
from __future__ import annotations

import ml_collections

from sslx.configs.gpt import text_base

OBJECTIVES = ("nsp", "sop", "word_order", "sentence_order", "masked_sentence", "neighbor_sentence", "quick_thought",
              "bidir_lm")
ARGS = OBJECTIVES + ("mlm",)
JOINT = tuple(f"{o}+mlm" for o in OBJECTIVES if o != "bidir_lm")  # trained jointly with masked LM
WINDOWS = {"nsp": 2, "sop": 2, "sentence_order": 4, "masked_sentence": 4, "neighbor_sentence": 3, "quick_thought": 3}


def get_config(arg: str = "nsp") -> ml_collections.ConfigDict:
    arg = arg or "nsp"
    tiny = arg.startswith("tiny_")
    name = arg[len("tiny_"):] if tiny else arg
    joint = name in JOINT
    name = name[:-len("+mlm")] if joint else name
    if name not in ARGS:
        valid = ", ".join(list(ARGS) + list(JOINT) + [f"tiny_{o}" for o in ARGS + JOINT])
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
    c.method.qt_temperature = 1.0  # quick_thought: score f(s) . g(c) / T (the paper: plain inner product)
    c.method.qt_cosine = False     # quick_thought: cosine similarity instead
    c.method.special_ids = (0, 1, 2, 3, 4)  # mlm: never masked
    c.method.mask_prob = 0.15      # mlm
    c.method.mask_token_frac = 0.8
    c.method.random_token_frac = 0.1
    c.method.whole_word = False
    c.method.mlm_weight = 1.0 if joint else 0.0  # > 0: joint masked LM on the objective's encoder input
    c.dataset.name = "mr" if name in ("word_order", "bidir_lm", "mlm") else "wikitext2+mr_clauses"
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
    c.train.num_steps = 1000
    c.optimizer.name = "adamw"
    c.optimizer.lr = 2e-3
    c.optimizer.b2 = 0.98
    c.optimizer.weight_decay = 0.01
    c.optimizer.grad_clip = 1.0
    c.optimizer.warmup_steps = 100
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

"""On-device text corruptions (pure JAX, one key per sequence, vmappable), and the host-side
word-start mask that whole-word masking needs.

* :func:`mlm_mask` -- BERT's masked-LM corruption (15%, 80/10/10), per token or, given a
  ``word_start`` mask, per whole word.
* :func:`word_start_mask` -- bool [..., T] "this piece begins a word" from a WordPiece
  vocabulary (continuation pieces start with ``##``), to pass with the batch.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["mlm_mask", "word_start_mask", "word_start_table"]


def word_start_table(vocab: Any, continuation_prefix: str = "##") -> np.ndarray:
    """bool [V]: True where vocabulary entry ``i`` begins a word (does not start with
    ``continuation_prefix``). ``vocab`` is a tokenizer with ``itos`` (e.g.
    :class:`sslx.data.text.SubwordTokenizer` of kind ``wordpiece``) or a sequence of strings."""
    itos = getattr(vocab, "itos", vocab)
    if isinstance(itos, str) or not len(itos):
        raise ValueError("word_start_table: pass a tokenizer with .itos or a non-empty list of vocabulary strings.")
    if not continuation_prefix:
        raise ValueError("word_start_table: continuation_prefix must be non-empty (WordPiece uses '##').")
    return np.array([not str(s).startswith(continuation_prefix) for s in itos], bool)


def word_start_mask(tokens: Any, vocab: Any, continuation_prefix: str = "##") -> np.ndarray:
    """Host side: bool [..., T], True where ``tokens`` int [..., T] holds a piece that begins a
    word (special tokens and padding count as starts; :func:`mlm_mask` never masks them).

    Whole-word masking groups each start with the continuation pieces that follow it.
    ``vocab``: as :func:`word_start_table`.
    """
    table = word_start_table(vocab, continuation_prefix)
    tokens = np.asarray(tokens)
    if not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(f"word_start_mask: tokens must be integer ids, got dtype {tokens.dtype}.")
    if tokens.size and (tokens.min() < 0 or tokens.max() >= len(table)):
        raise ValueError(f"word_start_mask: token ids must lie in [0, {len(table)}) (the vocabulary), got "
                         f"[{tokens.min()}, {tokens.max()}].")
    return table[tokens]


def mlm_mask(key: jax.Array, tokens: jax.Array, *, mask_id: int, vocab_size: int,
             special_ids: Sequence[int], valid: Optional[jax.Array] = None, mask_prob: float = 0.15,
             mask_token_frac: float = 0.8, random_token_frac: float = 0.1,
             word_start: Optional[jax.Array] = None) -> tuple[jax.Array, jax.Array, jax.Array]:
    """BERT's masked-LM corruption of one sequence ``tokens`` int [T].

    A position is *maskable* when it is not a special token (and is ``valid``, bool [T], when
    given). Without ``word_start`` each maskable position is chosen independently with
    probability ``mask_prob``. With ``word_start`` (bool [T], True where a piece begins a word,
    see :func:`word_start_mask`) whole words are chosen: a word is a maskable start plus the
    maskable continuation pieces after it (a piece that follows a non-maskable one always
    starts a word, so words never span special tokens or padding); each word is chosen with
    probability ``mask_prob`` and all its pieces are chosen together. If every position is a
    start this is exactly the per-token draw (same key -> same result).

    Each chosen *piece* (BERT decides per piece, also under whole-word masking) becomes
    ``mask_id`` with probability ``mask_token_frac``, a uniformly random *non-special* token
    with probability ``random_token_frac``, and stays unchanged otherwise (BERT: 15%, 80/10/10).

    Returns ``(inputs int32 [T], targets int32 [T] (= the original tokens), weights float32 [T]``
    (1.0 on chosen positions: the loss is taken only there)). vmap over a batch with one key
    per sequence (e.g. :func:`sslx.methods.example_keys`).
    """
    if not 0.0 <= mask_prob <= 1.0 or mask_token_frac < 0 or random_token_frac < 0 \
            or mask_token_frac + random_token_frac > 1.0:
        raise ValueError(f"mlm_mask: need 0 <= mask_prob <= 1 and mask_token_frac + random_token_frac <= 1, "
                         f"got {mask_prob}, {mask_token_frac}, {random_token_frac}.")
    specials = np.unique(np.asarray(list(special_ids), np.int64))
    if mask_id not in specials:
        specials = np.unique(np.append(specials, mask_id))
    regular = np.setdiff1d(np.arange(vocab_size), specials)
    if regular.size == 0:
        raise ValueError("mlm_mask: every vocabulary id is special; no token can be masked or drawn.")
    tokens = jnp.asarray(tokens).astype(jnp.int32)
    if word_start is not None and jnp.shape(word_start) != tokens.shape:
        raise ValueError(f"mlm_mask: word_start shape {jnp.shape(word_start)} != tokens shape {tokens.shape}; "
                         "pass one bool per token (sslx.augment.text.word_start_mask).")
    k_sel, k_kind, k_rand = jax.random.split(key, 3)
    maskable = ~jnp.isin(tokens, jnp.asarray(specials, jnp.int32))
    if valid is not None:
        maskable = maskable & valid.astype(bool)
    draw = jax.random.bernoulli(k_sel, mask_prob, tokens.shape)
    if word_start is not None:
        pos = jnp.arange(tokens.shape[-1])
        prev_maskable = jnp.concatenate([jnp.zeros(tokens.shape[:-1] + (1,), bool), maskable[..., :-1]], -1)
        starts = jnp.asarray(word_start).astype(bool) | ~maskable | ~prev_maskable
        start_of = lax.cummax(jnp.where(starts, pos, 0), axis=tokens.ndim - 1)  # each piece's word start
        draw = jnp.take_along_axis(draw, start_of, axis=-1)
    chosen = maskable & draw
    u = jax.random.uniform(k_kind, tokens.shape)
    random_tok = jnp.asarray(regular, jnp.int32)[jax.random.randint(k_rand, tokens.shape, 0, regular.size)]
    replaced = jnp.where(u < mask_token_frac, jnp.int32(mask_id),
                         jnp.where(u < mask_token_frac + random_token_frac, random_tok, tokens))
    inputs = jnp.where(chosen, replaced, tokens)
    return inputs, tokens, chosen.astype(jnp.float32)

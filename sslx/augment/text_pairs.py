"""Sentence-level pretext data: windows of consecutive sentences (host) and, on device, the
pairs, shuffles and candidate sets of the sentence objectives (pure JAX, one key per example).

Host side, :func:`sentence_windows` turns documents (lists of tokenised sentences) into a
table of ``K`` consecutive sentences per row::

    {"sents": int32 [N, K, S], "lengths": int32 [N, K], "doc": int32 [N]}

(sentences left-aligned without special tokens, padded with 0). Every builder below works on
one row and is vmapped over a batch with keys from :func:`sslx.methods.example_keys` (keyed
by the *global* example index, so the result does not depend on the device split):

* :func:`pack_segments` -- ``[CLS] s_o0 [SEP] s_o1 [SEP] ...`` in a chosen order, on device.
* :func:`nsp_partner` -- BERT's next-sentence pairs: label 1 (true next, p = 0.5) or a sentence
  of a row from another document (label 0).
* :func:`sop_order` -- ALBERT's sentence-order pairs: two consecutive segments, swapped with
  p = 0.5 (label 1 = original order).
* :func:`shuffle_tokens` / :func:`shuffle_sentences` -- a random permutation of the real
  positions and the targets (original position of each shuffled element); :func:`unshuffle`
  applies the targets and restores the original.
* :func:`sentence_candidates` -- the candidate set of masked-sentence prediction: the true
  sentence at a random slot among ``num_candidates`` sentences, the others drawn without
  replacement from rows of *other* documents.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import chex
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["sentence_windows", "pack_segments", "nsp_partner", "sop_order", "shuffle_tokens",
           "shuffle_sentences", "unshuffle", "sentence_candidates", "reverse_prefix"]


# --------------------------------------------------------------------------
# Host: windows of consecutive sentences
# --------------------------------------------------------------------------


def sentence_windows(documents: Sequence[Sequence[np.ndarray]], window: int, max_tokens: int,
                     truncate: bool = False, stride: int = 1) -> dict[str, np.ndarray]:
    """Every run of ``window`` consecutive sentences inside a document (``stride`` apart).

    Args:
      documents: D documents, each a list of int token arrays (one per sentence, no specials).
        Documents with fewer than ``window`` sentences give no row; empty sentences are skipped.
      window: K, sentences per row (2 for NSP / SOP, 3 for neighbours, 3-5 for order tasks).
      max_tokens: S, the padded sentence length.
      truncate: a sentence longer than S raises ValueError unless True (then it is cut to S).

    Returns ``sents`` int32 [N, K, S] (0-padded), ``lengths`` int32 [N, K] (>= 1) and ``doc``
    int32 [N] (the document index of each row).
    """
    if window < 1 or max_tokens < 1 or stride < 1:
        raise ValueError(f"sentence_windows: need window, max_tokens, stride >= 1; got {window}, {max_tokens}, "
                         f"{stride}.")
    sents, lengths, docs = [], [], []
    for d, doc in enumerate(documents):
        doc = [np.asarray(s, np.int32) for s in doc if len(s)]
        for i, s in enumerate(doc):
            if len(s) > max_tokens and not truncate:
                raise ValueError(f"sentence_windows: sentence {i} of document {d} has {len(s)} tokens > "
                                 f"max_tokens {max_tokens}; raise max_tokens or pass truncate=True.")
        for start in range(0, len(doc) - window + 1, stride):
            row = np.zeros((window, max_tokens), np.int32)
            ln = np.zeros(window, np.int32)
            for k, s in enumerate(doc[start:start + window]):
                s = s[:max_tokens]
                row[k, :len(s)] = s
                ln[k] = len(s)
            sents.append(row)
            lengths.append(ln)
            docs.append(d)
    if not sents:
        raise ValueError(f"sentence_windows: no document has {window} non-empty sentences; use a smaller "
                         "window or a corpus with longer documents.")
    return {"sents": np.stack(sents), "lengths": np.stack(lengths), "doc": np.asarray(docs, np.int32)}


# --------------------------------------------------------------------------
# Device: packing
# --------------------------------------------------------------------------


def pack_segments(sents: jax.Array, lengths: jax.Array, order: Optional[jax.Array] = None, *, cls_id: int,
                  sep_id: int, pad_id: int = 0) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Pack K sentences of one row as ``[CLS] s_{o0} [SEP] s_{o1} [SEP] ... [PAD]...``.

    Args:
      sents: int [K, S] sentences (left-aligned); lengths: int [K] real lengths (0 allowed).
      order: int [K], slot k holds sentence ``order[k]`` (default: the identity).

    Returns ``tokens`` int32 [L], ``valid`` bool [L] and ``segment`` int32 [L] with
    L = 1 + K (S + 1); ``segment`` is k + 1 on the tokens of slot k and its [SEP], 0 on [CLS]
    and padding.
    """
    chex.assert_rank(sents, 2)
    k, s = sents.shape
    order = jnp.arange(k) if order is None else jnp.asarray(order, jnp.int32)
    sents = jnp.asarray(sents, jnp.int32)[order]
    lens = jnp.asarray(lengths, jnp.int32)[order]
    starts = 1 + jnp.concatenate([jnp.zeros(1, jnp.int32), jnp.cumsum(lens + 1)[:-1]])  # [K]
    total = 1 + jnp.sum(lens + 1)
    pos = jnp.arange(1 + k * (s + 1))
    slot = jnp.clip(jnp.sum(pos[:, None] >= starts[None, :], axis=1) - 1, 0, k - 1)  # [L]
    off = pos - starts[slot]
    word = sents[slot, jnp.clip(off, 0, s - 1)]
    tok = jnp.where(off < lens[slot], word, sep_id)
    valid = pos < total
    tok = jnp.where(pos == 0, cls_id, jnp.where(valid, tok, pad_id))
    segment = jnp.where((pos == 0) | ~valid, 0, slot + 1)
    return tok.astype(jnp.int32), valid, segment.astype(jnp.int32)


# --------------------------------------------------------------------------
# Device: NSP / SOP
# --------------------------------------------------------------------------


def nsp_partner(key: jax.Array, index: jax.Array, docs: jax.Array, positive_prob: float = 0.5
                ) -> tuple[jax.Array, jax.Array]:
    """BERT's next-sentence pairing for the row ``index`` of a (global) batch of ``docs`` int [G].

    Returns ``(label, partner)``: with probability ``positive_prob`` label 1 and
    ``partner == index`` (keep the row's own next sentence); otherwise label 0 and ``partner``
    a uniformly drawn row whose document differs (its second sentence becomes the "next"
    sentence). When every row shares the document, the pair stays positive.
    """
    k_lab, k_row = jax.random.split(key)
    other = docs != docs[index]
    logits = jnp.where(other, 0.0, -jnp.inf)
    draw = jax.random.categorical(k_row, logits)
    negative = (~jax.random.bernoulli(k_lab, positive_prob)) & jnp.any(other)
    return jnp.where(negative, 0, 1).astype(jnp.int32), jnp.where(negative, draw, index).astype(jnp.int32)


def sop_order(key: jax.Array, swap_prob: float = 0.5) -> tuple[jax.Array, jax.Array]:
    """ALBERT's sentence order: ``(label, order [2])``; label 1 = original order ``[0, 1]``,
    0 = swapped ``[1, 0]`` (probability ``swap_prob``)."""
    swap = jax.random.bernoulli(key, swap_prob)
    return jnp.where(swap, 0, 1).astype(jnp.int32), jnp.where(swap, jnp.array([1, 0]), jnp.array([0, 1]))


# --------------------------------------------------------------------------
# Device: shuffles
# --------------------------------------------------------------------------


def _prefix_permutation(key: jax.Array, size: int, length: jax.Array) -> jax.Array:
    """A uniform permutation of ``[0, length)`` followed by the identity on ``[length, size)``."""
    pos = jnp.arange(size)
    u = jax.random.uniform(key, (size,))
    return jnp.argsort(jnp.where(pos < length, u, 2.0 + pos)).astype(jnp.int32)


def shuffle_tokens(key: jax.Array, tokens: jax.Array, length: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Shuffle the first ``length`` tokens of ``tokens`` int [S] (padding stays in place).

    Returns ``(shuffled int32 [S], targets int32 [S])`` with ``shuffled[j] = tokens[targets[j]]``:
    ``targets[j]`` is the original position of the token now at j (identity on padding).
    """
    chex.assert_rank(tokens, 1)
    perm = _prefix_permutation(key, tokens.shape[0], length)
    return jnp.asarray(tokens, jnp.int32)[perm], perm


def shuffle_sentences(key: jax.Array, num: int, count: Optional[jax.Array] = None) -> jax.Array:
    """A random order int32 [num] of sentences (only the first ``count`` move): slot j holds
    sentence ``order[j]``, so ``order`` is also each slot's target (its original position)."""
    return _prefix_permutation(key, num, num if count is None else count)


def unshuffle(shuffled: jax.Array, targets: jax.Array) -> jax.Array:
    """Put every element back at its original position: ``out[targets[j]] = shuffled[j]``
    (along axis 0); inverts :func:`shuffle_tokens` / a :func:`shuffle_sentences` order."""
    return jnp.zeros_like(shuffled).at[targets].set(shuffled)


def reverse_prefix(tokens: jax.Array, length: jax.Array) -> jax.Array:
    """Reverse the first ``length`` entries of ``tokens`` [S] (padding stays at the end)."""
    pos = jnp.arange(tokens.shape[0])
    src = jnp.where(pos < length, length - 1 - pos, pos)
    return tokens[src]


# --------------------------------------------------------------------------
# Device: masked-sentence candidates
# --------------------------------------------------------------------------


def sentence_candidates(key: jax.Array, index: jax.Array, docs: jax.Array, num_candidates: int
                        ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Candidate rows for masked-sentence prediction of row ``index`` of a (global) batch.

    The true sentence (row ``index`` itself) sits at a uniformly random slot ``label``; the
    other ``num_candidates - 1`` slots hold distinct rows drawn uniformly without replacement
    among the rows whose ``docs`` differ from ``docs[index]``.

    Returns ``(rows int32 [C], label int32 [], valid bool [C])``; ``valid`` is False on slots
    that could not be filled (fewer other-document rows than C - 1): score them as -inf.
    """
    if num_candidates < 2:
        raise ValueError(f"sentence_candidates: num_candidates must be >= 2, got {num_candidates}.")
    g = docs.shape[0]
    if num_candidates > g:
        raise ValueError(f"sentence_candidates: num_candidates {num_candidates} > global batch {g}; "
                         "use a larger batch or fewer candidates.")
    k_pick, k_slot = jax.random.split(key)
    other = docs != docs[index]
    gumbel = jax.random.gumbel(k_pick, (g,))
    score = jnp.where(other, gumbel, -jnp.inf)
    _, negs = jax.lax.top_k(score, num_candidates - 1)  # distinct rows, uniform without replacement
    neg_ok = other[negs]
    label = jax.random.randint(k_slot, (), 0, num_candidates)
    slots = jnp.arange(num_candidates)
    src = jnp.where(slots < label, slots, slots - 1).clip(0, num_candidates - 2)
    rows = jnp.where(slots == label, index, negs[src])
    valid = jnp.where(slots == label, True, neg_ok[src])
    return rows.astype(jnp.int32), label.astype(jnp.int32), valid

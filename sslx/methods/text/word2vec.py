"""word2vec (Mikolov et al. 2013): CBOW and skip-gram with negative sampling and subsampling.

Batch: ``{"tokens": int32 [B, 2W + 1]}``, one window of token ids per example with the centre
word in the middle (slot W); slots outside the corpus hold ``[PAD]`` (id 0). The host builds
them with :func:`word2vec_batch` (centres uniform over the stream from
``np.random.default_rng((seed, step))``, a pure function of seed and step) or
:func:`centre_windows` for given centres.

Inside the step, each example draws from its own key (``example_keys``, keyed by the global
example index, so the loss does not depend on the device count):

* frequent-word subsampling: every word of the window (centre and context) is kept with
  probability ``min(1, sqrt(t / f(w)))`` (the paper's discard probability
  ``1 - sqrt(t / f(w))``; f = count / total). A dropped centre drops the example; a dropped
  context word drops its slot. This is per window slot, not a thinning of the stream
  before windowing as in word2vec.c, so windows do not widen over dropped words.
* a dynamic window (word2vec.c, ``method.dynamic_window``): a radius r uniform in 1..W,
  slots further than r from the centre are dropped.
* K negatives per positive from the unigram distribution raised to ``noise_power`` (0.75),
  drawn with replacement (a negative equal to the positive word is not rejected).

Ids in ``method.ignore_ids`` (the special tokens, [UNK] included) are never centres,
contexts or negatives (their count is set to 0).

* ``skipgram``: each kept (centre, context) pair is a positive: u = input[centre],
  v+ = output[context], K negatives per pair.
* ``cbow``: u = mean of the kept context words' input vectors, v+ = output[centre], K
  negatives per example (examples with no kept context word are dropped).

Loss: :func:`sslx.losses.word2vec.negative_sampling_loss`, the mean over all kept pairs of the
global batch. State: ``{"noise_logits": [V], "keep_prob": [V]}`` from ``method.counts`` (the
corpus word counts per id, e.g. ``WordTokenizer.counts``; see :func:`unigram_tables`), fixed
during training. ``encode(params, state, tokens, mask)`` averages the input vectors of the real,
non-special tokens -> [B, dim] (sentence features for the MR probe).
"""
from __future__ import annotations

from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sslx.losses.word2vec import negative_sampling_loss
from sslx.methods.base import DATA_AXIS, Method, example_keys
from sslx.methods.text.common import check_tokens
from sslx.models.embedding import WordEmbeddings

__all__ = ["cbow", "skipgram", "word2vec", "unigram_tables", "centre_windows", "word2vec_batch",
           "nearest_neighbours", "window_draws", "VARIANTS"]

VARIANTS = ("cbow", "skipgram")


# --------------------------------------------------------------------------- host-side pieces

def unigram_tables(counts: Sequence[float], power: float = 0.75, sample: float = 1e-5,
                   ignore_ids: Sequence[int] = ()) -> dict:
    """Noise and subsampling tables from word counts per id [V].

    Returns ``{"noise_logits": float32 [V] = power * log(count) (-inf for count 0),
    "keep_prob": float32 [V] = min(1, sqrt(sample / f))}`` with ``f = count / sum(counts)``;
    ``sample <= 0`` keeps every word. ``ignore_ids`` get count 0 (never drawn, always dropped).
    """
    c = np.asarray(counts, np.float64).copy()
    if c.ndim != 1 or c.size < 2 or np.any(c < 0) or not np.all(np.isfinite(c)):
        raise ValueError(f"unigram_tables: counts must be a finite, non-negative vector [V >= 2], got shape "
                         f"{c.shape}; pass the corpus count of every vocabulary id.")
    ignore = np.asarray(list(ignore_ids), np.int64)
    if ignore.size and (ignore.min() < 0 or ignore.max() >= c.size):
        raise ValueError(f"unigram_tables: ignore_ids {ignore.tolist()} must lie in [0, {c.size}).")
    c[ignore] = 0.0
    if c.sum() <= 0:
        raise ValueError("unigram_tables: every count is 0 (after ignore_ids); nothing to sample.")
    with np.errstate(divide="ignore"):
        logits = np.where(c > 0, power * np.log(np.maximum(c, 1e-300)), -np.inf)
        f = c / c.sum()
        keep = np.minimum(1.0, np.sqrt(max(sample, 0.0) / np.maximum(f, 1e-300)))
        keep = np.where(c > 0, 1.0 if sample <= 0 else keep, 0.0)
    return {"noise_logits": jnp.asarray(logits, jnp.float32), "keep_prob": jnp.asarray(keep, jnp.float32)}


def centre_windows(ids: np.ndarray, centres: np.ndarray, window: int, pad_id: int = 0) -> np.ndarray:
    """Windows int32 [len(centres), 2 * window + 1] of the stream ``ids`` [N] around ``centres``:
    row i is ``ids[c - window : c + window + 1]`` with positions outside ``[0, N)`` set to ``pad_id``."""
    ids = np.asarray(ids)
    centres = np.asarray(centres, np.int64)
    if window < 1:
        raise ValueError(f"centre_windows: window must be >= 1, got {window}.")
    if centres.size and (centres.min() < 0 or centres.max() >= len(ids)):
        raise ValueError(f"centre_windows: centres must lie in [0, {len(ids)}).")
    pos = centres[:, None] + np.arange(-window, window + 1)[None, :]
    inside = (pos >= 0) & (pos < len(ids))
    return np.where(inside, ids[np.clip(pos, 0, max(len(ids) - 1, 0))], pad_id).astype(np.int32)


def word2vec_batch(ids: np.ndarray, step: int, global_batch: int, window: int, seed: int,
                   pad_id: int = 0) -> dict:
    """The global batch ``{"tokens": int32 [global_batch, 2W + 1]}`` at ``step``: centres uniform
    over the stream from ``np.random.default_rng((seed, step))`` (pure function of its arguments)."""
    if step < 0 or seed < 0 or global_batch < 1:
        raise ValueError(f"word2vec_batch: need step >= 0, seed >= 0, global_batch >= 1; got {step}, {seed}, "
                         f"{global_batch}.")
    if len(ids) < 2:
        raise ValueError(f"word2vec_batch: the token stream needs >= 2 tokens, got {len(ids)}.")
    centres = np.random.default_rng((seed, step)).integers(0, len(ids), size=global_batch)
    return {"tokens": centre_windows(ids, centres, window, pad_id)}


def nearest_neighbours(vectors: np.ndarray, query_ids: Sequence[int], k: int = 5,
                       exclude: Sequence[int] = ()) -> list[list[tuple[int, float]]]:
    """For each query id, the ``k`` other ids with the highest cosine similarity in ``vectors``
    [V, D] as ``(id, cosine)`` lists, best first; ``exclude`` ids are never returned."""
    v = np.asarray(vectors, np.float64)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    out = []
    for q in query_ids:
        sims = v @ v[q]
        sims[q] = -np.inf
        sims[list(exclude)] = -np.inf
        top = np.argsort(-sims, kind="stable")[:k]
        out.append([(int(i), float(sims[i])) for i in top])
    return out


# --------------------------------------------------------------------------- the method

def _settings(config: ml_collections.ConfigDict, variant: str):
    m = config.method
    if variant not in VARIANTS:
        raise ValueError(f"word2vec: variant {variant!r} is unknown; use one of {VARIANTS}.")
    vocab = int(config.model.get("vocab_size", 0) or 0)
    dim = int(config.model.get("dim", 0) or 0)
    if vocab < 2 or dim < 1:
        raise ValueError(f"word2vec: config.model.vocab_size (>= 2, the tokenizer's) and config.model.dim (>= 1) "
                         f"must be set, got {vocab}, {dim}.")
    k = int(m.get("negatives", 5))
    if k < 1:
        raise ValueError(f"word2vec: config.method.negatives must be >= 1, got {k}.")
    return vocab, dim, k


def window_draws(rng: jax.Array, tokens: jax.Array, state: dict, negatives: int, variant: str,
                 dynamic_window: bool = True, axis_name: Optional[str] = None) -> tuple[jax.Array, jax.Array]:
    """The step's random choices for windows ``tokens`` int32 [B, 2W + 1] (this device's shard).

    Example i uses ``example_keys(rng, B, axis_name, 3)[i]`` (keyed by its global index):
    key 0 draws the subsampling (slot j kept when ``uniform < keep_prob[tokens[i, j]]``), key 1
    the dynamic radius r in 1..W (slots with ``|j - W| > r`` dropped; skipped when
    ``dynamic_window`` is False), key 2 the negatives from ``softmax(noise_logits)`` (inverse CDF).

    Returns ``(keep bool [B, 2W + 1], negatives int32 [B, 2W, K] (skipgram) or [B, K] (cbow))``.
    """
    b, width = tokens.shape
    w = width // 2
    keys = example_keys(rng, b, axis_name, 3)
    u = jax.vmap(lambda kk: jax.random.uniform(kk, (width,)))(keys[:, 0])
    keep = u < state["keep_prob"][tokens]
    if dynamic_window:
        radius = jax.vmap(lambda kk: jax.random.randint(kk, (), 1, w + 1))(keys[:, 1])
        dist = jnp.abs(jnp.arange(width) - w)
        keep = keep & (dist[None, :] <= radius[:, None])
    shape = (width - 1, negatives) if variant == "skipgram" else (negatives,)
    # Inverse-CDF sampling (a categorical draw would materialise [..., V] Gumbel noise per negative).
    cdf = jnp.cumsum(jax.nn.softmax(state["noise_logits"]))
    u_neg = jax.vmap(lambda kk: jax.random.uniform(kk, shape))(keys[:, 2]) * cdf[-1]
    negs = jnp.clip(jnp.searchsorted(cdf, u_neg, side="right"), 0, cdf.shape[0] - 1)
    return keep, negs.astype(jnp.int32)


def word2vec(config: ml_collections.ConfigDict, variant: str, axis_name: Optional[str] = DATA_AXIS) -> Method:
    """CBOW or skip-gram as a :class:`Method` (see the module docstring for the config keys)."""
    vocab, dim, k = _settings(config, variant)
    m = config.method
    power = float(m.get("noise_power", 0.75))
    sample = float(m.get("sample", 1e-3))
    dynamic = bool(m.get("dynamic_window", True))
    ignore = tuple(int(i) for i in m.get("ignore_ids", (0, 1, 2, 3, 4)))
    model = WordEmbeddings(vocab, dim, float(config.model.get("output_init_scale", 0.0)))

    def split(batch):
        tokens = check_tokens(batch, variant)
        if tokens.shape[1] < 3 or tokens.shape[1] % 2 == 0:
            raise ValueError(f"{variant}: batch['tokens'] must be windows [B, 2W + 1] with W >= 1 (centre in the "
                             f"middle), got shape {tuple(tokens.shape)}.")
        return tokens

    def init(rng, batch):
        split(batch)
        counts = m.get("counts", None)
        if counts is None or len(counts) == 0:
            raise ValueError(f"{variant}: config.method.counts must hold the corpus count of every vocabulary id "
                             "(e.g. [tokenizer.counts.get(w, 0) for w in tokenizer.itos]) for negative sampling "
                             "and subsampling.")
        if len(counts) != vocab:
            raise ValueError(f"{variant}: config.method.counts has {len(counts)} entries, config.model.vocab_size "
                             f"is {vocab}; they must match.")
        params = model.init(rng, jnp.zeros((1,), jnp.int32), method=model.both)["params"]
        return params, unigram_tables(counts, power, sample, ignore)

    def emb(params, ids, out=False):
        return model.apply({"params": params}, ids, method=model.output if out else model.__call__)

    def loss_fn(params, state, batch, rng):
        tokens = split(batch)
        b, width = tokens.shape
        w = width // 2
        keep, negs = window_draws(rng, tokens, state, k, variant, dynamic, axis_name)
        centre = tokens[:, w]
        ctx = jnp.concatenate([tokens[:, :w], tokens[:, w + 1:]], axis=1)  # [B, 2W]
        ctx_keep = jnp.concatenate([keep[:, :w], keep[:, w + 1:]], axis=1)
        if variant == "skipgram":
            u = jnp.broadcast_to(emb(params, centre)[:, None], (b, width - 1, dim)).reshape(-1, dim)
            pos = emb(params, ctx, True).reshape(-1, dim)
            neg = emb(params, negs, True).reshape(-1, k, dim)
            weights = (keep[:, w][:, None] & ctx_keep).reshape(-1)
        else:
            cw = ctx_keep.astype(jnp.float32)
            n_ctx = jnp.sum(cw, axis=1)
            u = jnp.einsum("bj,bjd->bd", cw, emb(params, ctx)) / jnp.maximum(n_ctx, 1.0)[:, None]
            pos = emb(params, centre, True)
            neg = emb(params, negs, True)
            weights = keep[:, w] & (n_ctx > 0)
        loss, aux = negative_sampling_loss(u, pos, neg, weights, axis_name)
        return loss, (state, aux)

    def encode(params, state, tokens, mask=None):
        tokens = jnp.asarray(tokens, jnp.int32)
        real = jnp.ones(tokens.shape, bool) if mask is None else jnp.asarray(mask, bool)
        for i in ignore:
            real = real & (tokens != i)
        wgt = real.astype(jnp.float32)[..., None]
        return jnp.sum(emb(params, tokens) * wgt, axis=-2) / jnp.maximum(jnp.sum(wgt, axis=-2), 1.0)

    return Method(name=variant, init=init, loss_fn=loss_fn, encode=encode, axis_name=axis_name)


def cbow(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
         total_steps: Optional[int] = None) -> Method:
    """Continuous bag of words: predict the centre word from its window's mean input vector."""
    del total_steps
    return word2vec(config, "cbow", axis_name)


def skipgram(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
             total_steps: Optional[int] = None) -> Method:
    """Skip-gram: predict each window word from the centre word's input vector."""
    del total_steps
    return word2vec(config, "skipgram", axis_name)

"""Frozen-feature evaluation of text encoders: sentence features and cross-validated
logistic regression (the MR sentiment protocol), with a bag-of-words baseline.

* :func:`sentence_features` -- ``[CLS] sentence [SEP]`` rows (tokenised, padded) through a
  method's ``encode`` in fixed-size batches -> float32 [N, D].
* :func:`cv_logistic_accuracy` -- stratified k-fold (default 10) logistic regression on
  standardised features (scikit-learn), mean and std of the fold accuracies; the inverse
  regularisation ``C`` is fixed or, given several values, chosen inside each training fold
  by an inner stratified cross-validation (nested CV: the test fold never picks ``C``).
* :func:`bag_of_words_accuracy` -- the same cross-validation on binary unigram counts.
* :func:`probe_sentences` -- features + cross-validation in one call.
"""
from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from sslx.data.text import pad_sequences

__all__ = ["sentence_features", "cv_logistic_accuracy", "bag_of_words_accuracy", "probe_sentences"]


_JIT_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _jitted(encode: Callable) -> Callable:
    """``jax.jit(encode)``, compiled once per ``encode`` function (not once per call)."""
    try:
        fn = _JIT_CACHE.get(encode)
        if fn is None:
            fn = _JIT_CACHE[encode] = jax.jit(encode)
        return fn
    except TypeError:  # not weak-referenceable
        return jax.jit(encode)


def sentence_features(encode: Callable, params: Any, state: Any, token_ids: Sequence[np.ndarray], seq_len: int,
                      *, cls_id: int = 2, sep_id: int = 3, pad_id: int = 0, batch_size: int = 512) -> np.ndarray:
    """Features float32 [N, D] of N tokenised sentences (int arrays without specials).

    Each sentence becomes ``[CLS] ids [SEP]`` padded to ``seq_len`` (longer ones are cut to
    ``seq_len`` keeping the final [SEP]: pass a ``seq_len`` that fits the sentences to avoid
    it) and is fed to ``encode(params, state, tokens, mask)`` in batches of ``batch_size``
    (the last batch is padded with empty rows and the padding dropped, so one shape compiles).
    """
    n = len(token_ids)
    if n == 0:
        raise ValueError("sentence_features: no sentences given.")
    if batch_size < 1 or seq_len < 2:
        raise ValueError(f"sentence_features: need batch_size >= 1 and seq_len >= 2, got {batch_size}, {seq_len}.")
    data = pad_sequences(list(token_ids), seq_len, pad_id, cls_id=cls_id, sep_id=sep_id, truncate=True)
    fn = _jitted(encode)
    out = []
    for i in range(0, n, batch_size):
        t, m = data["tokens"][i:i + batch_size], data["mask"][i:i + batch_size]
        k = len(t)
        if k < batch_size:
            t = np.concatenate([t, np.full((batch_size - k, seq_len), pad_id, np.int32)])
            m = np.concatenate([m, np.zeros((batch_size - k, seq_len), bool)])
            m[k:, 0] = True  # keep padded rows non-empty (dropped below)
        out.append(np.asarray(fn(params, state, jnp.asarray(t), jnp.asarray(m)))[:k])
    return np.concatenate(out).astype(np.float32)


def cv_logistic_accuracy(features: Any, labels: Any, folds: int = 10, seed: int = 0,
                         C: float | Sequence[float] = 1.0, max_iter: int = 2000, standardize: bool = True,
                         inner_folds: int = 3) -> dict:
    """Stratified ``folds``-fold cross-validated logistic-regression accuracy.

    Args:
      features: [N, D] dense array or scipy sparse matrix; labels: int [N].
      seed: the fold shuffling seed (folds are identical for every feature set of one N).
      C: the inverse L2 strength, or a sequence of candidates: then each outer training fold
        picks its own C (best mean inner accuracy; ties -> the smaller C) by an ``inner_folds``-fold
        stratified CV on that fold only, then refits on the whole training fold with it.
      standardize: scale dense features to zero mean / unit variance inside each fold.

    Returns ``{"mean": mean fold accuracy, "std": their std, "folds": list of accuracies,
    "C": the C used in each fold}``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(labels)
    n = features.shape[0]
    if y.shape != (n,):
        raise ValueError(f"cv_logistic_accuracy: labels shape {y.shape} != ({n},) (one label per feature row).")
    if folds < 2 or np.min(np.bincount(y)) < folds:
        raise ValueError(f"cv_logistic_accuracy: folds={folds} needs >= 2 and at most the size of the smallest "
                         f"class ({np.min(np.bincount(y))}).")
    if not hasattr(features, "tocsr"):
        features = np.asarray(features, np.float64)
        if not np.all(np.isfinite(features)):
            raise ValueError("cv_logistic_accuracy: features contain NaN or inf.")
    grid = np.atleast_1d(np.asarray(C, np.float64))
    if grid.ndim != 1 or grid.size == 0 or not np.all(grid > 0):
        raise ValueError(f"cv_logistic_accuracy: C must be a positive number or a non-empty sequence of them, got {C}.")
    if grid.size > 1 and inner_folds < 2:
        raise ValueError(f"cv_logistic_accuracy: choosing C needs inner_folds >= 2, got {inner_folds}.")
    grid = np.sort(grid)
    scale = standardize and not hasattr(features, "tocsr")

    def fit(x, t, c, warm=None):
        model = warm or (make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter, warm_start=True))
                         if scale else LogisticRegression(max_iter=max_iter, warm_start=True))
        (model[-1] if scale else model).set_params(C=float(c))
        return model.fit(x, t)

    def pick_c(x, t):
        if grid.size == 1:
            return float(grid[0])
        scores = np.zeros(grid.size)
        for itr, ite in StratifiedKFold(inner_folds, shuffle=True, random_state=seed).split(np.zeros(len(t)), t):
            model = None
            for j, c in enumerate(grid):  # small -> large C, each fit warm-started from the last
                model = fit(x[itr], t[itr], c, model)
                scores[j] += np.mean(model.predict(x[ite]) == t[ite])
        return float(grid[int(np.argmax(scores))])

    accs, chosen = [], []
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(n), y):
        c = pick_c(features[tr], y[tr])
        model = fit(features[tr], y[tr], c)
        accs.append(float(np.mean(model.predict(features[te]) == y[te])))
        chosen.append(c)
    return {"mean": float(np.mean(accs)), "std": float(np.std(accs)), "folds": accs, "C": chosen}


def bag_of_words_accuracy(texts: Sequence[str], labels: Any, folds: int = 10, seed: int = 0,
                          C: float | Sequence[float] = 1.0, ngram_range: tuple = (1, 1)) -> dict:
    """The baseline: binary word counts (lower-cased, words and punctuation as tokens; the
    vocabulary is fitted on all N texts, which uses no labels) + logistic regression, k-fold."""
    from sklearn.feature_extraction.text import CountVectorizer

    vec = CountVectorizer(binary=True, lowercase=True, token_pattern=r"(?u)\b\w+\b|[^\w\s]", ngram_range=ngram_range)
    x = vec.fit_transform(list(texts))
    return cv_logistic_accuracy(x, labels, folds, seed, C, standardize=False)


def probe_sentences(encode: Callable, params: Any, state: Any, token_ids: Sequence[np.ndarray], labels: Any,
                    seq_len: int, folds: int = 10, seed: int = 0, C: float | Sequence[float] = 1.0, **kw) -> dict:
    """:func:`sentence_features` then :func:`cv_logistic_accuracy`; adds ``"dim"`` (feature size)."""
    feats = sentence_features(encode, params, state, token_ids, seq_len, **kw)
    res = cv_logistic_accuracy(feats, labels, folds, seed, C)
    res["dim"] = int(feats.shape[1])
    return res

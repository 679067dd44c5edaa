"""Graph-level evaluation of frozen embeddings (the InfoGraph protocol, Sun et al. 2020).

10-fold stratified cross-validation of a scikit-learn ``SVC``; in each outer fold the
regularisation ``C`` is chosen from ``{1e-3, 1e-2, ..., 1e3}`` by an inner stratified
cross-validation (``GridSearchCV``, 5 folds, accuracy) on the training part only, the SVM is
refitted on the whole training part with that C and scored on the held-out fold. InfoGraph's
released evaluation uses ``SVC()`` -- the RBF kernel -- and this is the default here
(``kernel='linear'`` is available). Reported: mean and std of the 10 test-fold accuracies.
The fold split and the inner splits come from ``seed`` (deterministic).

``standardize=True`` z-scores every feature with statistics of the training part of each fold
(a ``StandardScaler`` in the pipeline, so held-out folds never inform it). InfoGraph's protocol
does not scale; the RBF kernel's ``gamma='scale'`` then sees the raw feature scales, which for an
untrained encoder can dominate the score.

libsvm's solver has no iteration limit by default, and with a linear kernel, a large C and
non-separable (e.g. duplicated, differently labelled) embeddings it can run for hours. Each fit
here stops after ``max_iter`` solver iterations (10 million: about a second for a few hundred
graphs); fits that hit the limit are counted in the result (``"unconverged_fits"``) and reported
in one warning, never dropped silently.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["DEFAULT_CS", "svm_cross_validation"]

DEFAULT_CS = (1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3)


def svm_cross_validation(x: np.ndarray, y: np.ndarray, *, folds: int = 10, inner_folds: int = 5,
                         cs: Sequence[float] = DEFAULT_CS, kernel: str = "rbf", gamma: str | float = "scale",
                         seed: int = 0, standardize: bool = False, max_iter: int = 10_000_000) -> dict:
    """Outer ``folds``-fold stratified CV of an SVM with C picked by inner CV.

    x ``[G, D]`` embeddings; y ``[G]`` integer labels (any values). Returns
    ``{"mean", "std"}`` (test accuracy in %, over folds), ``"fold_acc"`` (list, %),
    ``"chosen_c"`` (list, one per fold), ``"unconverged_fits"`` (libsvm fits, inner ones
    included, that stopped at ``max_iter`` iterations).
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    x = np.asarray(x, np.float64)
    y = np.asarray(y)
    if x.ndim != 2 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"svm_cross_validation expects x [G, D] and y [G]; got {x.shape} and {y.shape}.")
    if not np.all(np.isfinite(x)):
        raise ValueError("svm_cross_validation: x holds NaN or inf embeddings; check the encoder.")
    if kernel not in ("rbf", "linear"):
        raise ValueError(f"kernel {kernel!r} is unknown; use 'rbf' (InfoGraph's SVC()) or 'linear'.")
    if not cs:
        raise ValueError("cs must list at least one C value.")
    if int(max_iter) < 1:
        raise ValueError(f"max_iter must be a positive number of solver iterations; got {max_iter}.")
    _, counts = np.unique(y, return_counts=True)
    if len(counts) < 2:
        raise ValueError("svm_cross_validation needs at least two classes in y.")
    if counts.min() < folds:
        raise ValueError(f"the smallest class has {counts.min()} examples, fewer than folds={folds}; lower folds.")
    outer = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    accs, chosen, unconverged = [], [], 0
    for k, (tr, te) in enumerate(outer.split(x, y)):
        inner = StratifiedKFold(n_splits=inner_folds, shuffle=True, random_state=seed + 1 + k)
        svc = SVC(kernel=kernel, gamma=gamma, max_iter=int(max_iter))
        model, grid = (make_pipeline(StandardScaler(), svc), {"svc__C": list(cs)}) if standardize else (svc, {"C": list(cs)})
        search = GridSearchCV(model, grid, cv=inner, scoring="accuracy")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            search.fit(x[tr], y[tr])  # refit=True: the best C on the whole training part
        unconverged += sum(issubclass(w.category, ConvergenceWarning) for w in caught)
        for w in caught:
            if not issubclass(w.category, ConvergenceWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        accs.append(100.0 * float(np.mean(search.predict(x[te]) == y[te])))
        chosen.append(float(search.best_params_["svc__C" if standardize else "C"]))
    if unconverged:
        warnings.warn(f"svm_cross_validation: {unconverged} SVM fit(s) stopped at max_iter={int(max_iter)} solver "
                      "iterations without converging (usually the largest C on non-separable embeddings); their "
                      "scores are still used. Raise max_iter, drop the largest values from cs, or use kernel='rbf'.",
                      ConvergenceWarning, stacklevel=2)
    return {"mean": float(np.mean(accs)), "std": float(np.std(accs)), "fold_acc": accs, "chosen_c": chosen,
            "unconverged_fits": unconverged}

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
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["DEFAULT_CS", "svm_cross_validation"]

DEFAULT_CS = (1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3)


def svm_cross_validation(x: np.ndarray, y: np.ndarray, *, folds: int = 10, inner_folds: int = 5,
                         cs: Sequence[float] = DEFAULT_CS, kernel: str = "rbf", gamma: str | float = "scale",
                         seed: int = 0, standardize: bool = False) -> dict:
    """Outer ``folds``-fold stratified CV of an SVM with C picked by inner CV.

    x ``[G, D]`` embeddings; y ``[G]`` integer labels (any values). Returns
    ``{"mean", "std"}`` (test accuracy in %, over folds), ``"fold_acc"`` (list, %),
    ``"chosen_c"`` (list, one per fold).
    """
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
    _, counts = np.unique(y, return_counts=True)
    if len(counts) < 2:
        raise ValueError("svm_cross_validation needs at least two classes in y.")
    if counts.min() < folds:
        raise ValueError(f"the smallest class has {counts.min()} examples, fewer than folds={folds}; lower folds.")
    outer = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    accs, chosen = [], []
    for k, (tr, te) in enumerate(outer.split(x, y)):
        inner = StratifiedKFold(n_splits=inner_folds, shuffle=True, random_state=seed + 1 + k)
        svc = SVC(kernel=kernel, gamma=gamma)
        model, grid = (make_pipeline(StandardScaler(), svc), {"svc__C": list(cs)}) if standardize else (svc, {"C": list(cs)})
        search = GridSearchCV(model, grid, cv=inner, scoring="accuracy")
        search.fit(x[tr], y[tr])  # refit=True: the best C on the whole training part
        accs.append(100.0 * float(np.mean(search.predict(x[te]) == y[te])))
        chosen.append(float(search.best_params_["svc__C" if standardize else "C"]))
    return {"mean": float(np.mean(accs)), "std": float(np.std(accs)), "fold_acc": accs, "chosen_c": chosen}

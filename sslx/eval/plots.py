"""Pictures of a run: a 2-D map of the learned features and the training curves.

Both write PNGs with matplotlib's non-interactive Agg backend (no display needed) and
return the path, so scripts and notebooks can show or attach them.
"""
from __future__ import annotations

import json
import os
from typing import Optional, Sequence

import numpy as np


def _pyplot():
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    return plt


def embed_2d(features: np.ndarray, method: str = "tsne", seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """Features [N, D] -> 2-D coordinates [N, 2] by t-SNE (scikit-learn, PCA init) or PCA.

    Features are centred and scaled to unit average norm first, so the map does not depend
    on the encoder's output scale.
    """
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or x.shape[0] < 3:
        raise ValueError(f"embed_2d needs features [N >= 3, D], got shape {x.shape}.")
    x = x - x.mean(axis=0)
    x = x / max(float(np.sqrt((x ** 2).sum(axis=1).mean())), 1e-12)
    if method == "pca":
        _, _, vt = np.linalg.svd(x, full_matrices=False)
        return (x @ vt[:2].T).astype(np.float32)
    if method == "tsne":
        from sklearn.manifold import TSNE
        perp = min(float(perplexity), (x.shape[0] - 1) / 3.0)
        return TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed).fit_transform(x).astype(np.float32)
    raise ValueError(f"embed_2d method={method!r} is unknown; use 'tsne' or 'pca'.")


def plot_embedding(features: np.ndarray, labels: np.ndarray, path: str, *, method: str = "tsne",
                   title: str = "", class_names: Optional[Sequence[str]] = None, max_points: int = 3000,
                   seed: int = 0) -> str:
    """Scatter plot of a 2-D map of ``features`` [N, D] coloured by ``labels`` [N]; writes ``path``.

    At most ``max_points`` examples (a fixed random subset, so maps of two encoders show the
    same examples) are embedded; t-SNE costs O(N log N) per iteration.
    """
    features, labels = np.asarray(features), np.asarray(labels).reshape(-1)
    if features.shape[0] != labels.shape[0]:
        raise ValueError(f"plot_embedding: {features.shape[0]} feature rows but {labels.shape[0]} labels.")
    if features.shape[0] > max_points:
        idx = np.sort(np.random.default_rng(seed).choice(features.shape[0], max_points, replace=False))
        features, labels = features[idx], labels[idx]
    xy = embed_2d(features, method=method, seed=seed)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 6))
    classes = np.unique(labels)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for i, c in enumerate(classes):
        m = labels == c
        name = class_names[int(c)] if class_names is not None and int(c) < len(class_names) else str(c)
        ax.scatter(xy[m, 0], xy[m, 1], s=6, color=cmap(i % cmap.N), label=name, alpha=0.8, linewidths=0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or f"{method.upper()} of the features ({features.shape[0]} examples)")
    ax.legend(markerscale=3, fontsize=8, loc="best", frameon=False, ncol=1 if len(classes) <= 10 else 2)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def read_metrics(path: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``metrics.jsonl`` -> ``{name: (steps, values)}`` for every logged scalar."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: pass the metrics.jsonl of a run written by scripts/train.py.")
    series: dict[str, list] = {}
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            row = json.loads(line)
            step = row.get("step")
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)):
                    series.setdefault(k, []).append((step, v))
    return {k: (np.array([s for s, _ in v]), np.array([x for _, x in v], np.float64)) for k, v in series.items()}


def plot_curves(metrics_path: str, path: str, *, title: str = "",
                keys: Sequence[str] = ("loss", "monitor_knn_acc", "lr")) -> str:
    """Training curves from ``metrics.jsonl``: one panel per key that was logged; writes ``path``.

    The loss panel also shows a moving average (window ~5% of the points) so the trend is
    visible through step-to-step noise.
    """
    series = read_metrics(metrics_path)
    present = [k for k in keys if k in series]
    if not present:
        raise ValueError(f"{metrics_path} has none of {list(keys)}; it logs {sorted(series)}.")
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(present), figsize=(4.2 * len(present), 3.4), squeeze=False)
    for ax, k in zip(axes[0], present):
        steps, vals = series[k]
        order = np.argsort(steps, kind="stable")
        steps, vals = steps[order], vals[order]
        ax.plot(steps, vals, lw=1, alpha=0.5 if k == "loss" else 1.0, marker="o" if len(vals) < 20 else None, ms=3)
        if k == "loss" and len(vals) >= 20:
            w = max(2, len(vals) // 20)
            smooth = np.convolve(vals, np.ones(w) / w, mode="valid")
            ax.plot(steps[w - 1:], smooth, lw=2, label=f"mean of {w}")
            ax.legend(frameon=False, fontsize=8)
        ax.set_xlabel("step")
        ax.set_title({"monitor_knn_acc": "kNN accuracy (monitor)", "lr": "learning rate"}.get(k, k))
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

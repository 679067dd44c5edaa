"""Plots: the 2-D maps keep cluster structure, the PNGs are written, bad input is refused."""
import json

import numpy as np
import pytest
from PIL import Image

from sslx.eval.plots import embed_2d, plot_curves, plot_embedding, read_metrics


def _clusters(n_per=40, d=20, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, d)) * 6
    x = np.concatenate([c + rng.normal(size=(n_per, d)) for c in centres])
    return x, np.repeat(np.arange(3), n_per)


def _nn_acc(xy, y):
    d = ((xy[:, None] - xy[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return float(np.mean(y[np.argmin(d, axis=1)] == y))


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_embed_2d_keeps_clusters_and_ignores_scale(method):
    x, y = _clusters()
    xy = embed_2d(x, method=method)
    assert xy.shape == (120, 2) and np.all(np.isfinite(xy))
    assert _nn_acc(xy, y) > 0.95
    # Random features have no structure to keep: the check can fail.
    assert _nn_acc(embed_2d(np.random.default_rng(1).normal(size=(120, 20)), method=method), y) < 0.6
    if method == "pca":  # scale-free: the features are normalised first
        np.testing.assert_allclose(embed_2d(1000 * x, method="pca"), xy, rtol=1e-4, atol=1e-5)


def test_plot_embedding_writes_png_and_subsamples(tmp_path):
    x, y = _clusters()
    p = plot_embedding(x, y, str(tmp_path / "e.png"), method="pca", class_names=["a", "b", "c"], max_points=50)
    with Image.open(p) as im:
        assert im.format == "PNG" and im.size[0] > 300
    with pytest.raises(ValueError, match="labels"):
        plot_embedding(x, y[:5], str(tmp_path / "bad.png"))
    with pytest.raises(ValueError, match="tsne"):
        embed_2d(x, method="umap")


def test_curves_from_metrics(tmp_path):
    m = tmp_path / "metrics.jsonl"
    rows = [{"step": s, "loss": 5.0 / s, "lr": 0.1} for s in range(1, 41)] + [{"step": 20, "monitor_knn_acc": 0.8}]
    m.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    series = read_metrics(str(m))
    np.testing.assert_allclose(series["loss"][1], [5.0 / s for s in range(1, 41)])
    assert list(series["monitor_knn_acc"][0]) == [20]
    with Image.open(plot_curves(str(m), str(tmp_path / "c.png"))) as im:
        assert im.format == "PNG" and im.size[0] > 3 * 300  # three panels
    with pytest.raises(ValueError, match="loss"):
        plot_curves(str(m), str(tmp_path / "x.png"), keys=("nothing",))
    with pytest.raises(FileNotFoundError, match="metrics.jsonl"):
        read_metrics(str(tmp_path / "missing.jsonl"))

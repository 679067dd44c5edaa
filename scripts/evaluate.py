"""Evaluate a saved encoder: linear probe and weighted kNN on frozen features.

  python scripts/evaluate.py --workdir runs/digits            # latest checkpoint
  python scripts/evaluate.py --workdir runs/digits --step 400 --random_init
  python scripts/evaluate.py --workdir runs/digits --plot             # + embedding and curve PNGs

Reads the run's config from ``<workdir>/config.json`` (override with
``--config``), restores the checkpoint and prints (and writes
``<workdir>/eval_<step>.json``) the accuracies. ``--plot`` also writes
``<workdir>/embedding_<step>.png`` (t-SNE of the test features coloured by label; with
``--random_init`` a second panel file for the random encoder) and ``<workdir>/curves.png``
(loss, kNN monitor and learning rate from ``metrics.jsonl``).
"""
from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402
from absl import logging as absl_logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory written by scripts/train.py.")
_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (default: the run's config.json).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
_RANDOM = flags.DEFINE_bool("random_init", False, "Also evaluate the same architecture at random init.")
_PLOT = flags.DEFINE_bool("plot", False, "Write embedding_<step>.png (t-SNE) and curves.png to the workdir.")
_PLOT_METHOD = flags.DEFINE_enum("plot_method", "tsne", ["tsne", "pca"], "2-D map for --plot.")
_PLOT_POINTS = flags.DEFINE_integer("plot_points", 2000, "Test examples in the embedding plot.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    absl_logging.set_verbosity(absl_logging.WARNING)
    from sslx.train.loop import evaluate_checkpoint, format_results, restore_checkpoint
    wd = _WORKDIR.value
    restored = restore_checkpoint(wd, config=_CONFIG.value, step=_STEP.value)
    results = evaluate_checkpoint(wd, random_init=_RANDOM.value, restored=restored)
    print(format_results(results, f"{results['method']} on {results['dataset']}"))
    path = os.path.join(wd, f"eval_{results['step']}.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {path}")
    if _PLOT.value:
        for p in write_plots(restored, wd, results):
            print(f"wrote {p}")


def write_plots(restored: dict, workdir: str, results: dict) -> list:
    """t-SNE/PCA maps of the test features (SSL, and random init if evaluated) and the curves."""
    import jax
    import numpy as np

    from sslx import data as sdata
    from sslx.eval import extract_features
    from sslx.eval.plots import plot_curves, plot_embedding

    method, config, step = restored["method"], restored["config"], restored["step"]
    x, y = sdata.dataset_arrays(restored["eval_ds"], max_examples=_PLOT_POINTS.value, seed=config.seed)
    written = []
    encoders = [("ssl", restored["state"])] + ([("random_init", restored["fresh"])] if "random_init" in results else [])
    for key, st in encoders:
        enc = jax.jit(lambda im, st=st: method.encode(st.params, st.state, im))
        feats = np.asarray(extract_features(enc, x, batch_size=config.eval.batch_size))
        acc = results[key]
        title = (f"{method.name} on {config.dataset.name}, step {step}" if key == "ssl" else
                 f"{method.name} architecture at random init") + \
            f"\nlinear {100 * acc['linear_acc']:.1f}%, kNN {100 * acc['knn_acc']:.1f}%"
        name = f"embedding_{step}.png" if key == "ssl" else f"embedding_{step}_random_init.png"
        written.append(plot_embedding(feats, y, os.path.join(workdir, name), method=_PLOT_METHOD.value,
                                      title=title, max_points=_PLOT_POINTS.value, seed=config.seed))
    metrics = os.path.join(workdir, "metrics.jsonl")
    if os.path.exists(metrics):
        written.append(plot_curves(metrics, os.path.join(workdir, "curves.png"),
                                   title=f"{method.name} on {config.dataset.name}"))
    return written


if __name__ == "__main__":
    from sslx.cli import check_config_overrides
    check_config_overrides()
    app.run(main)

"""Evaluate a saved encoder: linear probe and weighted kNN on frozen features.

  python scripts/evaluate.py --workdir runs/digits            # latest checkpoint
  python scripts/evaluate.py --workdir runs/digits --step 400 --random_init

Reads the run's config from ``<workdir>/config.json`` (override with
``--config``), restores the checkpoint and prints (and writes
``<workdir>/eval_<step>.json``) the accuracies.
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
flags.mark_flags_as_required(["workdir"])


def main(argv):
    absl_logging.set_verbosity(absl_logging.WARNING)
    from sslx.train.loop import evaluate_checkpoint, format_results
    results = evaluate_checkpoint(_WORKDIR.value, config=_CONFIG.value, step=_STEP.value,
                                  random_init=_RANDOM.value)
    print(format_results(results, f"{results['method']} on {results['dataset']}"))
    path = os.path.join(_WORKDIR.value, f"eval_{results['step']}.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {path}")


if __name__ == "__main__":
    from sslx.cli import check_config_overrides
    check_config_overrides()
    app.run(main)

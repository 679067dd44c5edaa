"""Pretrain a self-supervised objective.

  python scripts/train.py --config sslx/configs/simclr.py:digits --workdir runs/digits
  python scripts/train.py --config sslx/configs/simclr.py:cifar10 --config.optimizer.lr=0.5 --workdir gs://...

Resumes automatically from the latest checkpoint in --workdir.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402
from absl import logging as absl_logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file, e.g. sslx/configs/simclr.py:digits",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and results.")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show a progress bar.")
_STOP_AT = flags.DEFINE_integer("stop_at", None, "Stop (with a checkpoint) after this step, as a preemption "
                                "would; running again resumes.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    absl_logging.set_verbosity(absl_logging.WARNING)
    from sslx.train.loop import train
    train(_CONFIG.value, _WORKDIR.value, progress=_PROGRESS.value, stop_at=_STOP_AT.value)


if __name__ == "__main__":
    from sslx.cli import check_config_overrides
    check_config_overrides()
    app.run(main)

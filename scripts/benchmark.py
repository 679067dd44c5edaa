"""Time the compiled train step of a config (not a test).

  python scripts/benchmark.py --config sslx/configs/simclr.py:cifar10 \
      --config.batch_size=512 --image_size=32 --steps=20

Compiles the step, runs warm-up steps (excluded), then times ``--repeats``
blocks of ``--steps`` steps with ``block_until_ready`` on synthetic uint8
images, and prints one JSON line: steps/s, examples/s (images, not views),
device. Full-graph objectives (``sslx/configs/dgi.py:cora``) print the time per
epoch on their Planetoid graph instead; graph-level ones (``infograph.py:mutag``,
``graphlog.py:mutag``, ``mvgrl.py:mutag``) the time per step on a batch of their TU dataset. ``--no_augment`` times the step with augmentation replaced by a plain
resize of the input (to see what the on-device augmentation costs).
"""
from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402
from absl import logging as absl_logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=False)
_STEPS = flags.DEFINE_integer("steps", 10, "Steps per timed repeat.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed repeats (the best and the median are reported).")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed steps after compilation.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 0, "Input image side (default: the dataset's image size, "
                                   "else config.dataset.image_size, else config.augment.crop_size).")
_CHANNELS = flags.DEFINE_integer("channels", 0, "Input channels (default: 3, or 1 for digits/mnist).")
_AUGMENT = flags.DEFINE_bool("augment", True, "Include the on-device augmentation in the step.")
_MODE = flags.DEFINE_enum("parallel", None, ["jit", "pmap"], "Override config.train.parallel.")
flags.mark_flags_as_required(["config"])


def main(argv):
    absl_logging.set_verbosity(absl_logging.WARNING)
    config = _CONFIG.value
    graph_level = config.method.get("level") == "graph"  # e.g. MVGRL's graph-level configs
    if config.method.name in ("gcc", "ssgcn"):
        raise SystemExit(f"scripts/benchmark.py does not time {config.method.name!r} (GCC pre-training / the "
                         "semi-supervised GCN have their own loops); scripts/reproduce_graph.py records its train "
                         "seconds per seed.")
    if config.method.name in ("infograph", "graphlog") or graph_level:  # graph-level objectives: ms per step
        from sslx.train.graph_level import benchmark_graph_level_config
        if _MODE.value:
            config.train.parallel = _MODE.value
        print(json.dumps(benchmark_graph_level_config(config, steps=_STEPS.value, repeats=_REPEATS.value,
                                                      warmup=_WARMUP.value)))
        return
    if config.method.name in ("dgi", "grace", "mvgrl", "gmi", "merit"):  # full-graph node-level objectives: time per epoch
        from sslx.train.graph import benchmark_graph_config
        print(json.dumps(benchmark_graph_config(config, epochs=_STEPS.value, repeats=_REPEATS.value,
                                                warmup=_WARMUP.value)))
        return
    if config.method.name in ("gpt", "mlm"):  # token objectives: synthetic token batches
        from sslx.methods.text.bench import benchmark_text_config
        if _MODE.value:
            config.train.parallel = _MODE.value
        print(json.dumps(benchmark_text_config(config, steps=_STEPS.value, repeats=_REPEATS.value,
                                               warmup=_WARMUP.value)))
        return
    if _MODE.value:
        config.train.parallel = _MODE.value
    from sslx.train.benchmark import benchmark_step
    print(json.dumps(benchmark_step(config, steps=_STEPS.value, repeats=_REPEATS.value, warmup=_WARMUP.value,
                                    image_size=_IMAGE_SIZE.value, channels=_CHANNELS.value,
                                    augment=_AUGMENT.value)))


if __name__ == "__main__":
    from sslx.cli import check_config_overrides
    check_config_overrides()
    app.run(main)

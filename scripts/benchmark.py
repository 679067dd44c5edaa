"""Time the compiled train step of a config (not a test).

  python scripts/benchmark.py --config sslx/configs/simclr.py:cifar10 \
      --config.batch_size=512 --image_size=32 --steps=20

Compiles the step, runs warm-up steps (excluded), then times ``--repeats``
blocks of ``--steps`` steps with ``block_until_ready`` on synthetic uint8
images, and prints one JSON line: steps/s, examples/s (images, not views),
device. ``--no_augment`` times the step with augmentation replaced by a plain
resize of the input (to see what the on-device augmentation costs).
"""
from __future__ import annotations

import json
import os
import sys
import time

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
    import jax
    import numpy as np

    from sslx.train import ParallelStep, create_train_state, make_optimizer, make_step_fn
    from sslx.methods import get_method

    config = _CONFIG.value
    if _MODE.value:
        config.train.parallel = _MODE.value
    known = {"digits": 8, "mnist": 28, "fashion_mnist": 28, "cifar10_subset": 32, "cifar10": 32}
    size = _IMAGE_SIZE.value or known.get(config.dataset.name) or config.dataset.get("image_size", 0) \
        or config.augment.crop_size
    gray = config.dataset.name in ("digits", "mnist", "fashion_mnist")
    channels = _CHANNELS.value or (1 if gray else 3)
    if not _AUGMENT.value:
        config.augment.identity = True
    method = get_method(config, total_steps=1000)  # a nominal schedule length (EMA rates, LR)
    tx, sched = make_optimizer(config.optimizer, 1000, config.batch_size)
    runner = ParallelStep(make_step_fn(method, tx, sched), mode=config.train.parallel)
    rng = np.random.default_rng(0)
    host_batch = {"image": rng.integers(0, 256, (config.batch_size, size, size, channels), dtype=np.uint8),
                  "label": rng.integers(0, 10, (config.batch_size,), dtype=np.int32)}
    ts = runner.put_state(create_train_state(method, tx, jax.random.PRNGKey(0), host_batch))
    batch = runner.put_batch(host_batch)
    t0 = time.perf_counter()
    ts, m = runner(ts, batch)
    jax.block_until_ready((ts, m))
    compile_s = time.perf_counter() - t0
    for _ in range(_WARMUP.value):
        ts, m = runner(ts, batch)
    jax.block_until_ready((ts, m))
    times = []
    for _ in range(_REPEATS.value):
        t0 = time.perf_counter()
        for _ in range(_STEPS.value):
            ts, m = runner(ts, batch)
        jax.block_until_ready((ts, m))
        times.append((time.perf_counter() - t0) / _STEPS.value)
    best, med = min(times), float(np.median(times))
    dev = jax.devices()[0]
    print(json.dumps({
        "method": config.method.name, "encoder": config.model.encoder, "dtype": config.model.dtype,
        "batch_size": config.batch_size, "image_size": size, "channels": channels,
        "augment": _AUGMENT.value, "parallel": config.train.parallel,
        "steps_per_sec": round(1 / med, 3), "examples_per_sec": round(config.batch_size / med, 1),
        "best_examples_per_sec": round(config.batch_size / best, 1), "compile_s": round(compile_s, 2),
        "device": f"{dev.platform}:{getattr(dev, 'device_kind', '')}", "num_devices": jax.device_count(),
        "jax": jax.__version__, "loss": float(m["loss"])}))


if __name__ == "__main__":
    from sslx.cli import check_config_overrides
    check_config_overrides()
    app.run(main)

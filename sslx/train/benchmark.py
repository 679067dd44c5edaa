"""Timing the compiled train step of an image config (what ``scripts/benchmark.py`` prints)."""
from __future__ import annotations

import time

import jax
import ml_collections
import numpy as np

from sslx.methods import get_method
from sslx.train.optim import make_optimizer
from sslx.train.state import create_train_state
from sslx.train.step import ParallelStep, make_step_fn

KNOWN_SIZES = {"digits": 8, "mnist": 28, "fashion_mnist": 28, "cifar10_subset": 32, "cifar10": 32}


def time_steps(runner: ParallelStep, ts, batch, *, steps: int, repeats: int, warmup: int
               ) -> tuple[list, float, dict]:
    """Run one compiling step, ``warmup`` untimed steps, then ``repeats`` timed blocks of ``steps``
    (``block_until_ready``) -> (seconds per step of each block, compile seconds, last metrics)."""
    t0 = time.perf_counter()
    ts, m = runner(ts, batch)
    jax.block_until_ready((ts, m))
    compile_s = time.perf_counter() - t0
    for _ in range(warmup):
        ts, m = runner(ts, batch)
    jax.block_until_ready((ts, m))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            ts, m = runner(ts, batch)
        jax.block_until_ready((ts, m))
        times.append((time.perf_counter() - t0) / steps)
    return times, compile_s, m


def benchmark_step(config: ml_collections.ConfigDict, *, steps: int = 10, repeats: int = 3, warmup: int = 2,
                   image_size: int = 0, channels: int = 0, augment: bool = True) -> dict:
    """Compile ``config``'s step, run ``warmup`` untimed steps, then time ``repeats`` blocks of ``steps``.

    Inputs are synthetic uint8 images ``[batch, S, S, C]``: S is ``image_size`` or the dataset's
    size (else ``config.dataset.image_size``, else ``config.augment.crop_size``); C is
    ``channels`` or 1 for the grayscale datasets, 3 otherwise. ``augment=False`` replaces the
    on-device augmentation by a plain resize. Returns steps/s and images/s (median and best
    repeat), the compile time and the device.
    """
    if steps < 1 or repeats < 1 or warmup < 0:
        raise ValueError(f"benchmark_step needs steps >= 1, repeats >= 1, warmup >= 0; got {steps}, {repeats}, "
                         f"{warmup}.")
    config = ml_collections.ConfigDict(config.to_dict())  # the caller's config is left as it is
    size = image_size or KNOWN_SIZES.get(config.dataset.name) or config.dataset.get("image_size", 0) \
        or config.augment.crop_size
    gray = config.dataset.name in ("digits", "mnist", "fashion_mnist")
    channels = channels or (1 if gray else 3)
    if not augment:
        config.augment.identity = True
    method = get_method(config, total_steps=1000)  # a nominal schedule length (EMA rates, LR)
    tx, sched = make_optimizer(config.optimizer, 1000, config.batch_size)
    runner = ParallelStep(make_step_fn(method, tx, sched), mode=config.train.parallel)
    rng = np.random.default_rng(0)
    host_batch = {"image": rng.integers(0, 256, (config.batch_size, size, size, channels), dtype=np.uint8),
                  "label": rng.integers(0, 10, (config.batch_size,), dtype=np.int32)}
    ts = runner.put_state(create_train_state(method, tx, jax.random.PRNGKey(0), host_batch))
    batch = runner.put_batch(host_batch)
    times, compile_s, m = time_steps(runner, ts, batch, steps=steps, repeats=repeats, warmup=warmup)
    best, med = min(times), float(np.median(times))
    dev = jax.devices()[0]
    return {
        "method": config.method.name, "encoder": config.model.encoder, "dtype": config.model.dtype,
        "batch_size": config.batch_size, "image_size": size, "channels": channels,
        "augment": augment, "parallel": config.train.parallel,
        "steps_per_sec": round(1 / med, 3), "examples_per_sec": round(config.batch_size / med, 1),
        "best_examples_per_sec": round(config.batch_size / best, 1), "compile_s": round(compile_s, 2),
        "device": f"{dev.platform}:{getattr(dev, 'device_kind', '')}", "num_devices": jax.device_count(),
        "jax": jax.__version__, "loss": float(m["loss"])}

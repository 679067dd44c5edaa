"""Timing of a text objective's compiled train step on synthetic tokens (used by scripts/benchmark.py)."""
from __future__ import annotations

import jax
import ml_collections
import numpy as np

from sslx.methods import get_method
from sslx.train import ParallelStep, create_train_state, make_optimizer, make_step_fn
from sslx.train.benchmark import time_steps


def benchmark_text_config(config: ml_collections.ConfigDict, steps: int = 10, repeats: int = 3,
                          warmup: int = 2) -> dict:
    """Compile the step of ``config`` (gpt / mlm), run ``warmup`` steps, then time ``repeats`` blocks of
    ``steps`` steps on random tokens [batch_size, seq_len (+1 for GPT)]; returns a JSON-able dict."""
    method = get_method(config, total_steps=1000)
    tx, sched = make_optimizer(config.optimizer, 1000, config.batch_size)
    runner = ParallelStep(make_step_fn(method, tx, sched), mode=config.train.parallel)
    seq = int(config.dataset.seq_len) + (1 if config.method.name == "gpt" else 0)
    rng = np.random.default_rng(0)
    vocab = int(config.model.vocab_size)
    host = {"tokens": rng.integers(5 if vocab > 5 else 0, vocab, (config.batch_size, seq)).astype(np.int32)}
    if config.method.name == "mlm":
        host["mask"] = np.ones((config.batch_size, seq), bool)
    ts = runner.put_state(create_train_state(method, tx, jax.random.PRNGKey(0), host))
    batch = runner.put_batch(host)
    times, compile_s, m = time_steps(runner, ts, batch, steps=steps, repeats=repeats, warmup=warmup)
    med = float(np.median(times))
    dev = jax.devices()[0]
    return {"method": config.method.name, "batch_size": config.batch_size, "seq_len": seq,
            "ms_per_step": round(1000 * med, 2), "best_ms_per_step": round(1000 * min(times), 2),
            "tokens_per_sec": round(config.batch_size * seq / med, 1), "compile_s": round(compile_s, 2),
            "device": f"{dev.platform}:{getattr(dev, 'device_kind', '')}", "num_devices": jax.device_count(),
            "jax": jax.__version__, "loss": float(m["loss"])}

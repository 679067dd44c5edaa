"""Full-graph training (node-level objectives: DGI, GRACE, ...): the whole graph is the batch.

:func:`fit_full_graph` runs the same per-device step as image training
(:func:`sslx.train.step.make_step_fn`) compiled with ``jit`` + ``shard_map`` over a
one-device mesh (the batch replicated), one step per epoch, with early stopping on the
training loss: it keeps the parameters that produced the lowest loss and stops after
``patience`` epochs without improvement (DGI's protocol).
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Optional

import jax
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from sslx.methods.base import DATA_AXIS, Method
from sslx.train.state import TrainState, create_train_state
from sslx.train.step import make_step_fn

__all__ = ["FitResult", "benchmark_graph_config", "compile_full_graph_step", "fit_full_graph", "time_full_graph_epochs"]


@dataclasses.dataclass
class FitResult:
    """params / state: the best epoch's (lowest training loss); losses: one per epoch run."""
    params: Any
    state: Any
    best_epoch: int
    best_loss: float
    epochs: int
    losses: list
    seconds: float
    train_state: TrainState


def compile_full_graph_step(method: Method, tx: optax.GradientTransformation, schedule: Optional[Callable] = None,
                            device: Optional[jax.Device] = None) -> tuple[Callable, NamedSharding]:
    """The jitted step ``(TrainState, batch) -> (TrainState, metrics)`` on one device, and the
    replicated sharding to put the state and the batch on."""
    axis = method.axis_name or DATA_AXIS
    mesh = Mesh(np.asarray([device or jax.devices()[0]]), (axis,))
    step = jax.shard_map(make_step_fn(method, tx, schedule, axis_name=axis), mesh=mesh,
                         in_specs=(P(), P()), out_specs=(P(), P()), check_vma=False)
    return jax.jit(step), NamedSharding(mesh, P())


def fit_full_graph(method: Method, tx: optax.GradientTransformation, batch: dict, rng: jax.Array, *,
                   max_epochs: int = 10000, patience: int = 20, schedule: Optional[Callable] = None,
                   progress: bool = True, log: Optional[Callable[[int, dict], None]] = None,
                   keep_best: bool = True) -> FitResult:
    """Train ``method`` on one full-graph ``batch`` for up to ``max_epochs`` steps.

    Early stopping: an epoch whose loss is below the best so far records the parameters
    that produced it; after ``patience`` epochs in a row without a new best, training stops
    (``patience <= 0`` disables it). Returns those best parameters (and method state), or
    with ``keep_best=False`` the parameters after the last epoch (GRACE's protocol).
    """
    if max_epochs <= 0:
        raise ValueError(f"max_epochs must be positive, got {max_epochs}.")
    step, sharding = compile_full_graph_step(method, tx, schedule)
    batch = jax.device_put(batch, sharding)
    ts = jax.device_put(create_train_state(method, tx, rng, batch), sharding)
    best = (np.inf, ts.params, ts.state, -1)
    wait, history = 0, []
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=max_epochs, desc=f"{method.name} (full graph)", leave=False)
    t0 = time.perf_counter()
    epoch = 0
    for epoch in range(max_epochs):
        before_params, before_state = ts.params, ts.state
        ts, metrics = step(ts, batch)
        loss = float(metrics["loss"])  # the loss of ``before_params``
        history.append(loss)
        if not np.isfinite(loss):
            raise FloatingPointError(f"{method.name}: the training loss became {loss} at epoch {epoch}; "
                                     "lower the learning rate.")
        if loss < best[0]:
            best, wait = (loss, before_params, before_state, epoch), 0
        else:
            wait += 1
        if log is not None:
            log(epoch, {k: float(v) for k, v in metrics.items()})
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", best=f"{best[0]:.4f}")
        if patience > 0 and wait >= patience:
            break
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - t0
    if not keep_best:
        best = (history[-1], ts.params, ts.state, epoch + 1)
    return FitResult(params=best[1], state=best[2], best_epoch=best[3], best_loss=float(best[0]),
                     epochs=epoch + 1, losses=history, seconds=seconds, train_state=ts)


def time_full_graph_epochs(method: Method, tx: optax.GradientTransformation, batch: dict, rng: jax.Array, *,
                           epochs: int = 20, repeats: int = 5, warmup: int = 3) -> dict:
    """Time full-graph training epochs as :func:`fit_full_graph` runs them (one compiled step
    and the host read of its loss per epoch). Compilation and ``warmup`` epochs are excluded;
    returns ``{"ms_per_epoch": median wall time over repeats, "best_ms_per_epoch",
    "cpu_ms_per_epoch": median process CPU time (all threads; on a busy machine wall time
    mostly measures the other processes), "compile_s", "loss"}``."""
    step, sharding = compile_full_graph_step(method, tx)
    batch = jax.device_put(batch, sharding)
    ts = jax.device_put(create_train_state(method, tx, rng, batch), sharding)
    t0 = time.perf_counter()
    ts, m = step(ts, batch)
    loss = float(m["loss"])
    compile_s = time.perf_counter() - t0
    for _ in range(warmup):
        ts, m = step(ts, batch)
        loss = float(m["loss"])
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(epochs):
            ts, m = step(ts, batch)
            loss = float(m["loss"])
        times.append((time.perf_counter() - t0) / epochs)
        cpu.append((time.process_time() - c0) / epochs)
    return {"ms_per_epoch": round(1e3 * float(np.median(times)), 2), "best_ms_per_epoch": round(1e3 * min(times), 2),
            "cpu_ms_per_epoch": round(1e3 * float(np.median(cpu)), 2), "compile_s": round(compile_s, 2), "loss": loss}


def benchmark_graph_config(config, *, epochs: int = 20, repeats: int = 5, warmup: int = 3,
                           data_dir: Optional[str] = None) -> dict:
    """Time per epoch of a full-graph objective's config (e.g. ``sslx/configs/dgi.py:cora``)
    on its Planetoid dataset; one JSON-able dict (with the load average where readable)."""
    import os

    from sslx.data.graph import load_planetoid
    from sslx.methods import get_method
    from sslx.train.optim import make_optimizer

    ds = load_planetoid(config.dataset.name, data_dir or config.dataset.get("data_dir"),
                        normalize_features=bool(config.dataset.get("normalize_features", True)))
    method = get_method(config)
    tx, _ = make_optimizer(config.optimizer, int(config.train.get("max_epochs", 1000)), 1)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    out = time_full_graph_epochs(method, tx, {"graph": ds.graph}, jax.random.PRNGKey(int(config.seed)),
                                 epochs=epochs, repeats=repeats, warmup=warmup)
    dev = jax.devices()[0]
    return {"method": config.method.name, "dataset": ds.name, "nodes": ds.num_nodes, "edges": ds.num_edges,
            "features": ds.num_features, **out, "epochs_per_repeat": epochs, "repeats": repeats,
            "device": f"{dev.platform}:{getattr(dev, 'device_kind', '')}", "jax": jax.__version__,
            "loadavg_before": None if load is None else [round(x, 2) for x in load],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()] if load is not None else None}

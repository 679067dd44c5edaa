"""Graph-level training (InfoGraph, GraphLoG, ...): many small graphs, shuffled padded batches.

* :func:`load_graph_dataset` -- the TU dataset a config names, with the node features it asks for.
* :func:`train_graph_level` -- ``config.train.num_epochs`` shuffled epochs of ``config.batch_size``
  graphs through the sharded train step (:class:`sslx.train.step.ParallelStep`), for any
  graph-level :class:`~sslx.methods.base.Method`. A method's ``epoch_start`` hook (e.g.
  GraphLoG's prototype initialisation) runs before every epoch with an
  :class:`~sslx.methods.base.EpochContext` whose ``dataset`` is the :class:`~sslx.data.graph.GraphDataset`.
* :func:`embed_dataset` -- frozen embeddings of every graph (``method.encode``) and the labels,
  for :func:`sslx.eval.graph_level.svm_cross_validation`.

Batches come from :func:`sslx.data.graph_batch.epoch_batches` with one padding budget for the
whole dataset (:func:`sslx.data.graph_batch.dataset_budget`), so the step compiles once.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Optional, Sequence

import jax
import ml_collections
import numpy as np

from sslx.data.graph import GraphDataset
from sslx.data.graph_batch import dataset_budget, epoch_batches, make_graph_batch, unflatten
from sslx.methods.base import EpochContext, Method
from sslx.train.optim import make_optimizer
from sslx.train.state import create_train_state
from sslx.train.step import ParallelStep, make_step_fn

__all__ = ["benchmark_graph_level_config", "embed_dataset", "load_graph_dataset", "train_graph_level"]


def load_graph_dataset(config: ml_collections.ConfigDict, data_dir=None) -> GraphDataset:
    """The TU dataset ``config.dataset.name`` with ``config.dataset.node_features``:
    ``'labels'`` / ``'degree'`` (the loader's features), ``'labels+degree'`` (the loader's features
    with the one-hot node degree appended, as MVGRL's authors build them) or ``'constant'`` (every node 1).
    ``data_dir`` (default ``config.dataset.data_dir``, then the loader's default) holds the raw files.
    With ``config.dataset.diffusion`` (``{alpha, eps, topk}``, graph-level MVGRL) the PPR diffusion view
    is added once here (:func:`sslx.data.graph.with_ppr_view`)."""
    from sslx.data.graph import load_tu

    kind = config.dataset.get("node_features", "labels")
    if kind not in ("labels", "degree", "labels+degree", "constant"):
        raise ValueError(f"config.dataset.node_features={kind!r} is unknown; use 'labels', 'degree', "
                         "'labels+degree' or 'constant'.")
    ds = load_tu(config.dataset.name, data_dir or config.dataset.get("data_dir"),
                 download=bool(config.dataset.get("download", False)))
    if kind == "constant":
        ds = GraphDataset(name=ds.name, nodes=np.ones((ds.nodes.shape[0], 1), np.float32), senders=ds.senders,
                          receivers=ds.receivers, n_node=ds.n_node, n_edge=ds.n_edge, labels=ds.labels,
                          num_classes=ds.num_classes)
    elif kind == "labels+degree":
        deg = np.bincount(ds.receivers, minlength=ds.nodes.shape[0])
        ds = dataclasses.replace(ds, nodes=np.concatenate([ds.nodes, np.eye(int(deg.max()) + 1, dtype=np.float32)[deg]],
                                                          axis=1))
    diff = config.dataset.get("diffusion")
    if diff:
        from sslx.data.graph import with_ppr_view
        ds = with_ppr_view(ds, alpha=float(diff.get("alpha", 0.2)), eps=float(diff.get("eps", 1e-4)),
                           topk=int(diff.get("topk", 0)))
    return ds


def train_graph_level(config: ml_collections.ConfigDict, ds: GraphDataset, *, devices: Optional[Sequence] = None,
                      seed: Optional[int] = None, mode: str = "jit",
                      on_epoch: Optional[Callable[[int, object, object], None]] = None) -> dict:
    """Train the graph-level method ``config.method.name`` on every graph of ``ds`` (no labels).

    ``config.train.num_epochs`` epochs; each is a permutation of the graphs (from the run's key)
    cut into global batches of ``config.batch_size`` graphs (the last, smaller batch kept), split
    over ``devices`` (default: all) and run by the ``mode`` (``'jit'`` / ``'pmap'``) step.
    Before epoch ``e`` (0-based) the method's ``epoch_start(train_state, EpochContext(epoch=e,
    step, dataset=ds, devices, tx))`` runs when it has one (its time is counted, its metrics are
    returned). ``on_epoch(epoch, params, state)`` (optional) is called after every epoch with host
    copies (its time is not counted in ``seconds``).

    Returns ``{"params", "state", "init_params", "init_state" (the untrained encoder, for the
    random-init baseline), "losses" (one per step), "seconds", "steps", "epoch_metrics"
    (``{"epoch", ...}`` for every epoch whose ``epoch_start`` returned metrics)}``. A non-finite loss raises
    ``FloatingPointError``.
    """
    from sslx.methods import get_method

    devices = list(devices) if devices is not None else jax.devices()
    seed = int(config.seed if seed is None else seed)
    epochs, gb = int(config.train.num_epochs), int(config.batch_size)
    if epochs < 1 or gb < 1:
        raise ValueError(f"config.train.num_epochs ({epochs}) and config.batch_size ({gb}) must be >= 1.")
    if len(ds) == 0:
        raise ValueError(f"dataset {ds.name!r} holds no graphs.")
    steps_per_epoch = -(-len(ds) // gb)
    total_steps = epochs * steps_per_epoch
    method: Method = get_method(config, total_steps=total_steps)
    if method.sampling_weights is not None or method.batch_index:
        raise ValueError(f"{method.name}: sampling weights / batch indices are not supported by train_graph_level; "
                         "train it with sslx.train.loop.train.")
    tx, sched = make_optimizer(config.optimizer, total_steps, gb)
    runner = ParallelStep(make_step_fn(method, tx, sched), mode=mode, devices=devices)
    sizes = dataset_budget(ds, gb, len(devices))
    init_key, data_key = jax.random.split(jax.random.PRNGKey(seed))
    first = next(epoch_batches(ds, gb, data_key, len(devices), sizes))
    ts0 = create_train_state(method, tx, init_key, first)
    init_params, init_state = jax.device_get((ts0.params, ts0.state))  # host copies: the step donates its state
    ts = runner.put_state(ts0)
    losses, epoch_metrics, t0 = [], [], time.perf_counter()
    for epoch in range(epochs):
        if method.epoch_start is not None:
            ctx = EpochContext(epoch=epoch, step=epoch * steps_per_epoch, dataset=ds, devices=tuple(runner.devices),
                               tx=tx)
            new_state, metrics = method.epoch_start(jax.device_get(runner.get_state(ts)), ctx)
            ts = runner.put_state(new_state)
            if metrics:
                epoch_metrics.append({"epoch": epoch, **{k: float(v) for k, v in metrics.items()}})
        for b in epoch_batches(ds, gb, jax.random.fold_in(data_key, epoch), len(devices), sizes):
            ts, m = runner(ts, runner.put_batch(b))
            losses.append(m["loss"])
        if on_epoch is not None:
            t_cb = time.perf_counter()
            host = jax.device_get(runner.get_state(ts))
            on_epoch(epoch + 1, host.params, host.state)
            t0 += time.perf_counter() - t_cb
    losses = [float(v) for v in jax.device_get(losses)]
    if not np.all(np.isfinite(losses)):
        bad = int(np.argmax(~np.isfinite(losses)))
        raise FloatingPointError(f"{method.name}: the training loss became {losses[bad]} at step {bad} (before: "
                                 f"{[round(v, 3) for v in losses[max(bad - 5, 0):bad]]}); lower the learning rate.")
    ts = jax.device_get(runner.get_state(ts))
    return {"params": ts.params, "state": ts.state, "init_params": init_params,
            "init_state": init_state, "losses": losses, "seconds": time.perf_counter() - t0,
            "steps": len(losses), "epoch_metrics": epoch_metrics}


def embed_dataset(method: Method, params, state, ds: GraphDataset, batch_size: int = 512
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Frozen embeddings ``[G, D]`` of every graph of ``ds`` (``method.encode``, eval mode, one
    device, in dataset order) and the labels ``[G]``."""
    if batch_size < 1:
        raise ValueError(f"embed_dataset: batch_size must be >= 1, got {batch_size}.")
    sizes = dataset_budget(ds, batch_size, 1)
    enc = jax.jit(lambda p, s, b: method.encode(p, s, unflatten(b), b["node_mask"]))
    out = []
    for start in range(0, len(ds), batch_size):
        idx = np.arange(start, min(start + batch_size, len(ds)))
        b = make_graph_batch(ds, idx, 1, sizes)
        out.append(np.asarray(enc(params, state, b))[:len(idx)])
    return np.concatenate(out, axis=0), np.asarray(ds.labels)


def benchmark_graph_level_config(config: ml_collections.ConfigDict, *, steps: int = 10, repeats: int = 3,
                                 warmup: int = 2, data_dir=None, ds: Optional[GraphDataset] = None,
                                 devices: Optional[Sequence] = None) -> dict:
    """Time the compiled train step of a graph-level objective (InfoGraph, GraphLoG, graph-level
    MVGRL) -> one JSON-able dict.

    The batch is the first global batch of ``config.batch_size`` graphs of an epoch of ``ds``
    (default: ``load_graph_dataset(config, data_dir)``), padded to the dataset's static budget as
    in :func:`train_graph_level` and reused for every step; one compiling step, ``warmup``
    untimed steps, then ``repeats`` blocks of ``steps`` (:func:`sslx.train.benchmark.time_steps`).
    Per-epoch hooks (GraphLoG's prototype update) are not timed. Reports ms per step (median,
    best), graphs per second and the implied time of one epoch over the dataset.
    """
    import os

    from sslx.methods import get_method
    from sslx.train.benchmark import time_steps

    ds = load_graph_dataset(config, data_dir) if ds is None else ds
    devices = list(devices) if devices is not None else jax.devices()
    gb = int(config.batch_size)
    method = get_method(config, total_steps=max(int(config.train.get("num_epochs", 1)), 1) * -(-len(ds) // gb))
    tx, sched = make_optimizer(config.optimizer, 1000, gb)
    runner = ParallelStep(make_step_fn(method, tx, sched), mode=str(config.train.get("parallel", "jit")),
                          devices=devices)
    init_key, data_key = jax.random.split(jax.random.PRNGKey(int(config.seed)))
    batch = next(epoch_batches(ds, gb, data_key, len(devices), dataset_budget(ds, gb, len(devices))))
    ts = runner.put_state(create_train_state(method, tx, init_key, batch))
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    times, compile_s, m = time_steps(runner, ts, runner.put_batch(batch), steps=steps, repeats=repeats,
                                     warmup=warmup)
    med, dev = float(np.median(times)), jax.devices()[0]
    return {"method": config.method.name, "dataset": ds.name, "graphs": len(ds), "graphs_per_batch": gb,
            "devices": len(devices), "ms_per_step": 1000 * med, "best_ms_per_step": 1000 * min(times),
            "graphs_per_sec": gb / med, "ms_per_epoch": 1000 * med * -(-len(ds) // gb), "compile_s": compile_s,
            "loss": float(m["loss"]), "steps": steps, "repeats": repeats,
            "device": f"{dev.platform}:{getattr(dev, 'device_kind', '')}", "jax": jax.__version__,
            "loadavg_before": None if load is None else [round(x, 2) for x in load]}

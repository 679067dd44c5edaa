"""The training loop: data -> compiled step -> logs, checkpoints, evaluation.

``train(config, workdir)`` is what ``scripts/train.py`` calls. It resumes
automatically from the latest checkpoint in ``workdir`` (parameters,
optimiser and method state, RNG and data position: the batch order is a pure
function of the step), saves every ``train.checkpoint_every`` steps, at the
end, and on SIGTERM/SIGINT before exiting (TPU-pod preemption).
"""
from __future__ import annotations

import json
import logging
import math
import os
import signal
import time
from typing import Optional

import jax
import ml_collections
import numpy as np

from sslx import data as sdata
from sslx import eval as seval
from sslx.checkpoint import Checkpointer
from sslx.methods import get_method
from sslx.methods.base import EpochContext
from sslx.train.optim import make_optimizer
from sslx.train.parallel import maybe_initialize_distributed
from sslx.train.state import TrainState, create_train_state
from sslx.train.step import ParallelStep, check_global_batch, make_step_fn

log = logging.getLogger(__name__)


class MetricWriter:
    """JSON-lines metrics (``metrics.jsonl``) plus TensorBoard events when tensorboardX is installed."""

    def __init__(self, workdir: str, enabled: bool = True):
        self.enabled = enabled
        self._tb = None
        if not enabled:
            return
        os.makedirs(workdir, exist_ok=True)
        self._f = open(os.path.join(workdir, "metrics.jsonl"), "a")
        try:
            from tensorboardX import SummaryWriter
            self._tb = SummaryWriter(os.path.join(workdir, "tb"))
        except ImportError:
            pass

    def write(self, step: int, metrics: dict) -> None:
        if not self.enabled:
            return
        row = {"step": int(step), **{k: float(v) for k, v in metrics.items()}}
        self._f.write(json.dumps(row) + "\n")
        self._f.flush()
        if self._tb is not None:
            for k, v in metrics.items():
                self._tb.add_scalar(k, float(v), step)

    def close(self) -> None:
        if self.enabled:
            self._f.close()
            if self._tb is not None:
                self._tb.close()


class _StopFlag:
    """Set by SIGTERM/SIGINT so the loop can checkpoint and exit cleanly."""

    def __init__(self):
        self.signum: Optional[int] = None
        self._old = {}

    def __enter__(self):
        for s in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread (e.g. a notebook worker)
                pass
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:  # second signal: give up immediately
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


def num_train_steps(config: ml_collections.ConfigDict, num_examples: int) -> int:
    if config.train.num_steps > 0:
        return int(config.train.num_steps)
    return int(config.train.num_epochs) * (num_examples // config.batch_size)


def build(config: ml_collections.ConfigDict, num_examples: int, example_batch: dict):
    """Method, optimiser, parallel step and a fresh (host) TrainState for ``config``."""
    check_global_batch(config.batch_size, jax.device_count())
    total = num_train_steps(config, num_examples)
    method = get_method(config, total_steps=total)
    tx, schedule = make_optimizer(config.optimizer, total, config.batch_size)
    runner = ParallelStep(make_step_fn(method, tx, schedule), mode=config.train.parallel)
    state = create_train_state(method, tx, jax.random.PRNGKey(config.seed), example_batch)
    return method, runner, state, total


def load_split(config: ml_collections.ConfigDict, split: str):
    """The dataset split named in ``config.dataset`` (see :func:`sslx.data.load_image_dataset`)."""
    d = config.dataset
    return sdata.load_image_dataset(d.name, split, data_dir=d.data_dir, download=d.download,
                                    image_size=d.get("image_size", 0) or None)


def _encode_fn(method, params, state):
    return jax.jit(lambda x: method.encode(params, state, x))


def evaluate_encoder(method, params, state, train_ds, test_ds, config, *, desc: str = "") -> dict:
    """Linear-probe and kNN accuracy of ``method.encode`` features (frozen)."""
    enc = _encode_fn(method, params, state)
    xtr, ytr = sdata.dataset_arrays(train_ds, max_examples=config.eval.max_train_examples, seed=config.seed)
    xte, yte = sdata.dataset_arrays(test_ds)
    ftr = seval.extract_features(enc, xtr, batch_size=config.eval.batch_size)
    fte = seval.extract_features(enc, xte, batch_size=config.eval.batch_size)
    nc = train_ds.num_classes
    knn = seval.knn_accuracy(ftr, ytr, fte, yte, nc, k=config.eval.knn_k, temperature=config.eval.knn_temperature)
    probe = seval.linear_probe(ftr, ytr, fte, yte, nc, epochs=config.eval.probe_epochs, seed=config.seed)
    return {"knn_acc": float(knn), "linear_acc": float(probe["test_acc"])}


def train(config: ml_collections.ConfigDict, workdir: str, *, progress: bool = True,
          stop_at: Optional[int] = None) -> dict:
    """Pretrain ``config.method`` on ``config.dataset``; returns the final results dict.

    ``stop_at`` ends the run after that step as a preemption would (checkpoint,
    no final evaluation); calling ``train`` again resumes it.
    """
    maybe_initialize_distributed(config.distributed)
    is_main = jax.process_index() == 0
    os.makedirs(workdir, exist_ok=True)
    ds_cfg = config.dataset
    train_ds = load_split(config, ds_cfg.train_split)
    n = len(train_ds)
    if config.batch_size > n:
        raise ValueError(f"config.batch_size={config.batch_size} exceeds the {n} training examples of "
                         f"{ds_cfg.name}:{ds_cfg.train_split}; lower --config.batch_size.")
    example = train_ds[np.arange(2)]
    method, runner, host_state, total_steps = build(config, n, example)

    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), save_every=config.train.checkpoint_every,
                        max_to_keep=config.train.keep_checkpoints, async_save=config.train.async_checkpoint)
    restored, meta = ckpt.restore(host_state, sharding=runner.state_sharding())
    if restored is not None:
        host_state = restored
        log.info("resumed from %s at step %d", ckpt.directory, meta["step"])
        if is_main:
            print(f"Resuming from checkpoint step {meta['step']} in {ckpt.directory}")
    start = int(jax.device_get(host_state.step))
    ts = runner.put_state(host_state)
    meta_base = {"config": config.to_dict(), "global_batch": config.batch_size, "seed": config.seed}

    writer = MetricWriter(workdir, enabled=is_main)
    if is_main:
        with open(os.path.join(workdir, "config.json"), "w") as f:
            f.write(config.to_json_best_effort(indent=2))
    eval_ds = None
    pbar = None
    if progress and is_main:
        from tqdm.auto import tqdm
        pbar = tqdm(total=total_steps, initial=start, desc=f"{method.name}", unit="step", dynamic_ncols=True)
    # Methods with an epoch hook (e.g. DeepCluster) run it at every epoch boundary; the batches of
    # each epoch are then drawn with the method's sampling weights (one iterator per epoch).
    steps_per_epoch = max(1, n // config.batch_size)
    epoch_tx = make_optimizer(config.optimizer, total_steps, config.batch_size)[0] if method.epoch_start else None

    def make_iterator(first_step: int, ts) -> sdata.BatchIterator:
        weights = None
        if method.sampling_weights is not None:
            w = method.sampling_weights(runner.get_state(ts).state)
            weights = None if w is None else np.asarray(jax.device_get(w))
        num = steps_per_epoch - first_step % steps_per_epoch if method.epoch_start else None
        return sdata.BatchIterator(train_ds, config.batch_size, seed=config.seed, start_step=first_step,
                                   prefetch=config.train.prefetch, put_fn=runner.put_batch, num_steps=num,
                                   sample_weights=weights, with_index=method.batch_index)

    it = None if method.epoch_start and start % steps_per_epoch == 0 else make_iterator(start, ts)
    step = start
    t_last, step_last = time.perf_counter(), start
    stopped_by = None
    try:
        with _StopFlag() as stop:
            for step in range(start, total_steps):
                if method.epoch_start is not None and step % steps_per_epoch == 0:
                    if it is not None:
                        it.close()
                    ctx = EpochContext(epoch=step // steps_per_epoch, step=step, dataset=train_ds,
                                       devices=tuple(runner.devices), tx=epoch_tx)
                    new_state, epoch_metrics = method.epoch_start(runner.get_state(ts), ctx)
                    ts = runner.put_state(new_state)
                    writer.write(step, epoch_metrics)
                    it = make_iterator(step, ts)
                batch = next(it)
                ts, metrics = runner(ts, batch)
                done = step + 1
                if done % config.train.log_every == 0 or done == total_steps:
                    m = jax.device_get(metrics)
                    now = time.perf_counter()
                    m["examples_per_sec"] = (done - step_last) * config.batch_size / max(now - t_last, 1e-9)
                    t_last, step_last = now, done
                    if not all(math.isfinite(float(v)) for v in m.values()):
                        raise FloatingPointError(f"non-finite metrics at step {done}: {m}. Lower the "
                                                 "learning rate or check the input data.")
                    writer.write(done, m)
                    if pbar is not None:
                        pbar.set_postfix(loss=f"{float(m['loss']):.4f}", ex_s=f"{m['examples_per_sec']:.0f}")
                if pbar is not None:
                    pbar.update(1)
                if config.train.eval_every and done % config.train.eval_every == 0 and done < total_steps:
                    eval_ds = eval_ds or load_split(config, ds_cfg.eval_split)
                    s = runner.get_state(ts)
                    knn = _monitor_knn(method, s, train_ds, eval_ds, config)
                    writer.write(done, {"monitor_knn_acc": knn})
                if ckpt.should_save(done):
                    ckpt.save(done, runner.get_state(ts), dict(meta_base, data_position=done * config.batch_size))
                if stop.signum is not None or (stop_at is not None and done >= stop_at):
                    stopped_by = stop.signum if stop.signum is not None else "stop_at"
                    step = done
                    break
            else:
                step = total_steps
    finally:
        if it is not None:
            it.close()
        if pbar is not None:
            pbar.close()
    final_step = int(jax.device_get(runner.get_state(ts).step))
    ckpt.save(final_step, runner.get_state(ts), dict(meta_base, data_position=final_step * config.batch_size),
              force=True)
    ckpt.close()
    writer.close()
    if stopped_by is not None:
        why = "stop_at" if stopped_by == "stop_at" else f"signal {signal.Signals(stopped_by).name}"
        if is_main:
            print(f"Stopped by {why} at step {final_step}; checkpoint saved in {ckpt.directory}. "
                  "Run the same command again to resume.")
        return {"stopped": True, "step": final_step}

    results = {"step": final_step}
    if method.write_artifacts is not None and is_main:  # e.g. a PNG of inpainted test images
        eval_ds = eval_ds or load_split(config, ds_cfg.eval_split)
        s = jax.device_get(runner.get_state(ts))
        images = eval_ds[np.arange(min(8, len(eval_ds)))]["image"]
        results["artifacts"] = list(method.write_artifacts(s.params, s.state, images, workdir))
    if not config.eval.at_end:
        return results
    eval_ds = eval_ds or load_split(config, ds_cfg.eval_split)
    state = jax.device_get(runner.get_state(ts))
    results["ssl"] = evaluate_encoder(method, state.params, state.state, train_ds, eval_ds, config)
    if config.eval.compare_random_init:
        rand = create_train_state(method, make_optimizer(config.optimizer, 1, config.batch_size)[0],
                                  jax.random.PRNGKey(config.seed), example)
        results["random_init"] = evaluate_encoder(method, rand.params, rand.state, train_ds, eval_ds, config)
    if is_main:
        with open(os.path.join(workdir, "results.json"), "w") as f:
            json.dump(results, f, indent=2)
        print(format_results(results, f"{method.name} on {ds_cfg.name}"))
    return results


def load_run_config(workdir: str) -> ml_collections.ConfigDict:
    """The config a run was started with (``<workdir>/config.json``)."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: --workdir must be a directory written by scripts/train.py "
                                "(or pass --config explicitly).")
    with open(path) as f:
        d = json.load(f)
    from sslx.configs.common import base_config
    config = base_config()
    config.unlock() if hasattr(config, "unlock") else None
    _update(config, d)
    return config


def _update(node: ml_collections.ConfigDict, d: dict) -> None:
    for k, v in d.items():
        if isinstance(v, dict) and k in node and isinstance(node[k], ml_collections.ConfigDict):
            _update(node[k], v)
        else:
            with node.ignore_type():
                node[k] = tuple(v) if isinstance(v, list) else v


def restore_checkpoint(workdir: str, config: Optional[ml_collections.ConfigDict] = None,
                       step: Optional[int] = None) -> dict:
    """Everything needed to use the encoder saved in ``workdir`` (latest checkpoint or ``step``).

    Returns ``{"config", "method", "state" (restored TrainState, host), "fresh" (the same
    architecture at random init), "step", "train_ds", "eval_ds"}``.
    """
    config = config if config is not None else load_run_config(workdir)
    ds_cfg = config.dataset
    train_ds = load_split(config, ds_cfg.train_split)
    eval_ds = load_split(config, ds_cfg.eval_split)
    example = train_ds[np.arange(2)]
    method = get_method(config, axis_name=None, total_steps=num_train_steps(config, len(train_ds)))
    tx, _ = make_optimizer(config.optimizer, 1, config.batch_size)
    fresh = create_train_state(method, tx, jax.random.PRNGKey(config.seed), example)
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
    if not ckpt.steps():
        raise FileNotFoundError(f"no checkpoint in {ckpt.directory}; train first with scripts/train.py "
                                f"--workdir {workdir}.")
    state, meta = ckpt.restore(jax.device_get(fresh), step=step)
    if state is None:
        raise FileNotFoundError(f"no readable checkpoint in {ckpt.directory}.")
    return {"config": config, "method": method, "state": state, "fresh": fresh, "step": int(meta["step"]),
            "train_ds": train_ds, "eval_ds": eval_ds}


def evaluate_checkpoint(workdir: str, config: Optional[ml_collections.ConfigDict] = None,
                        step: Optional[int] = None, random_init: bool = False,
                        restored: Optional[dict] = None) -> dict:
    """Linear probe + kNN of the encoder saved in ``workdir`` (latest or ``step``).

    ``restored``: the output of :func:`restore_checkpoint`, to avoid restoring twice.
    """
    r = restored if restored is not None else restore_checkpoint(workdir, config, step)
    config, method, state = r["config"], r["method"], r["state"]
    train_ds, eval_ds = r["train_ds"], r["eval_ds"]
    results = {"method": method.name, "dataset": config.dataset.name, "step": r["step"],
               "ssl": evaluate_encoder(method, state.params, state.state, train_ds, eval_ds, config)}
    if random_init:
        fresh = r["fresh"]
        results["random_init"] = evaluate_encoder(method, fresh.params, fresh.state, train_ds, eval_ds, config)
    return results


def _monitor_knn(method, state: TrainState, train_ds, eval_ds, config) -> float:
    enc = _encode_fn(method, state.params, state.state)
    xtr, ytr = sdata.dataset_arrays(train_ds, max_examples=config.eval.max_train_examples, seed=config.seed)
    xte, yte = sdata.dataset_arrays(eval_ds)
    ftr = seval.extract_features(enc, xtr, batch_size=config.eval.batch_size)
    fte = seval.extract_features(enc, xte, batch_size=config.eval.batch_size)
    return float(seval.knn_accuracy(ftr, ytr, fte, yte, train_ds.num_classes, k=config.eval.knn_k,
                                    temperature=config.eval.knn_temperature))


def format_results(results: dict, title: str) -> str:
    lines = [f"== {title}: step {results['step']} ==", f"{'encoder':<14}{'linear probe':>14}{'kNN':>10}"]
    for key, label in (("ssl", "SSL"), ("random_init", "random init")):
        if key in results:
            r = results[key]
            lines.append(f"{label:<14}{100 * r['linear_acc']:>13.2f}%{100 * r['knn_acc']:>9.2f}%")
    return "\n".join(lines)

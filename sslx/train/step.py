"""One per-device train step, compiled by jit+shard_map over a Mesh or by pmap.

The step is written once with named-axis collectives over ``axis_name``:
gradients, loss and metrics are averaged with ``lax.pmean``; methods gather
negatives and sync BatchNorm over the same axis. :class:`ParallelStep`
compiles it and owns the placement of state and batches so the training loop
is the same for both compilers and for one or many hosts.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from sslx.methods.base import DATA_AXIS, Method
from sslx.train.state import TrainState


def make_step_fn(method: Method, tx: optax.GradientTransformation,
                 schedule: Optional[Callable] = None, axis_name: str = DATA_AXIS) -> Callable:
    """The per-device step ``(TrainState, batch) -> (TrainState, metrics)``.

    Must run under ``shard_map``/``pmap`` with ``axis_name`` bound.
    """
    def step(ts: TrainState, batch: dict):
        rng = jax.random.fold_in(ts.rng, ts.step)

        def objective(params):
            return method.loss_fn(params, ts.state, batch, rng)

        (loss, (new_state, metrics)), grads = jax.value_and_grad(objective, has_aux=True)(ts.params)
        grads = lax.pmean(grads, axis_name)
        loss, metrics = lax.pmean((loss, metrics), axis_name)
        updates, opt_state = tx.update(grads, ts.opt_state, ts.params)
        params = optax.apply_updates(ts.params, updates)
        if method.project_params is not None:
            params = method.project_params(params)
        if method.after_update is not None:
            new_state = method.after_update(params, new_state, ts.step)
        metrics = dict(metrics, loss=loss, grad_norm=optax.tree.norm(grads))
        if schedule is not None:
            metrics["lr"] = jnp.asarray(schedule(ts.step), jnp.float32)
        new_ts = ts.replace(step=ts.step + 1, params=params, opt_state=opt_state, state=new_state)
        return new_ts, metrics

    return step


def check_global_batch(global_batch: int, num_devices: int) -> int:
    """Per-device batch size, or a ValueError naming the numbers and the fix."""
    if global_batch % num_devices:
        lo = global_batch // num_devices * num_devices
        raise ValueError(
            f"global batch size {global_batch} is not divisible by the {num_devices} devices; "
            f"set config.batch_size to a multiple of {num_devices} (e.g. {max(lo, num_devices)} "
            f"or {lo + num_devices}).")
    return global_batch // num_devices


class ParallelStep:
    """Compile a per-device step with ``mode='jit'`` (shard_map over a Mesh) or ``'pmap'``.

    ``put_state`` / ``get_state`` move a TrainState to / from the compiled
    layout; ``put_batch`` turns this process's host batch into the global
    device batch. ``__call__(state, batch)`` runs one step; the input state
    is donated.
    """

    def __init__(self, step_fn: Callable, mode: str = "jit", devices: Optional[list] = None,
                 axis_name: str = DATA_AXIS, donate: bool = True):
        if mode not in ("jit", "pmap"):
            raise ValueError(f"parallel mode {mode!r} is unknown; use 'jit' or 'pmap'.")
        self.mode = mode
        self.axis_name = axis_name
        self.devices = list(devices) if devices is not None else jax.devices()
        self.num_devices = len(self.devices)
        donate_args = (0,) if donate else ()
        if mode == "jit":
            self.mesh = Mesh(np.asarray(self.devices), (axis_name,))
            self._replicated = NamedSharding(self.mesh, P())
            self._sharded = NamedSharding(self.mesh, P(axis_name))
            mapped = jax.shard_map(step_fn, mesh=self.mesh, in_specs=(P(), P(axis_name)),
                                   out_specs=(P(), P()), check_vma=False)
            self._fn = jax.jit(mapped, donate_argnums=donate_args)
        else:
            self.mesh = None
            self.local_devices = [d for d in self.devices if d.process_index == jax.process_index()]
            self._fn = jax.pmap(step_fn, axis_name=axis_name, devices=self.devices,
                                donate_argnums=donate_args)

    # -- placement -----------------------------------------------------------
    def put_state(self, ts: Any) -> Any:
        """Replicate a host/global state onto the devices."""
        if self.mode == "jit":
            # Copy first: device_put may alias device 0's shard with the caller's arrays, and the
            # donating step would then delete the caller's state.
            return jax.device_put(jax.tree.map(jnp.copy, ts), self._replicated)
        n = len(self.local_devices)
        # pmap shards a leading device axis of a host array onto its devices.
        return jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (n,) + np.shape(x)), ts)

    def get_state(self, ts: Any) -> Any:
        """The single logical copy of a state (jit: as is; pmap: device 0's replica)."""
        if self.mode == "jit":
            return ts
        return jax.tree.map(lambda x: x[0], ts)

    def state_sharding(self) -> Any:
        """Sharding for restoring checkpoints directly into the compiled layout (jit) or None."""
        return self._replicated if self.mode == "jit" else None

    def put_batch(self, local_batch: dict) -> dict:
        """This process's rows [local_B, ...] -> the global batch on all devices."""
        for v in local_batch.values():
            check_global_batch(v.shape[0] * jax.process_count(), self.num_devices)
        if self.mode == "jit":
            return {k: jax.make_array_from_process_local_data(self._sharded, np.asarray(v))
                    for k, v in local_batch.items()}
        n_local = len(self.local_devices)
        return {k: np.asarray(v).reshape((n_local, -1) + v.shape[1:]) for k, v in local_batch.items()}

    def __call__(self, ts: Any, batch: dict) -> tuple[Any, dict]:
        ts, metrics = self._fn(ts, batch)
        if self.mode == "pmap":
            metrics = jax.tree.map(lambda x: x[0], metrics)
        return ts, metrics

"""Language-model training over a token stream that lives on the devices.

:class:`StreamStep` compiles a per-device step (from :func:`sslx.train.make_step_fn`) so that
each step draws its own batch of windows from the token stream with
:func:`sslx.data.text.sample_windows` *inside* the compiled function: no host work and no
host-to-device copy per step, and optionally several steps per call (``lax.scan``). The
batch at step ``k`` is a pure function of the state's base key and ``k``, and row ``r`` of
the global batch is the same window whichever device holds it, so 1 and N devices agree.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from sslx.data.image import process_slice
from sslx.data.text import sample_windows
from sslx.methods.base import DATA_AXIS
from sslx.train.step import check_global_batch

_DATA_SALT = 0x5EED


def data_key(base_rng: jax.Array, step: jax.Array) -> jax.Array:
    """The key that draws the windows of ``step`` (independent of the loss key ``fold_in(rng, step)``)."""
    return jax.random.fold_in(jax.random.fold_in(base_rng, _DATA_SALT), step)


class StreamStep:
    """jit + shard_map of ``steps_per_call`` training steps on windows sampled on device.

    ``step_fn(ts, {"tokens": int32 [B_local, window]}) -> (ts, metrics)`` is a per-device step
    (e.g. ``make_step_fn(gpt_method, tx)``). Call ``put_state`` / ``put_stream`` once, then
    ``ts, metrics = runner(ts, stream)`` repeatedly; ``metrics`` are the last step's. The
    input state is donated.
    """

    def __init__(self, step_fn: Callable, window: int, global_batch: int, devices: Optional[list] = None,
                 axis_name: str = DATA_AXIS, steps_per_call: int = 1, donate: bool = True):
        if steps_per_call < 1:
            raise ValueError(f"steps_per_call must be >= 1, got {steps_per_call}.")
        self.devices = list(devices) if devices is not None else jax.devices()
        check_global_batch(global_batch, len(self.devices))
        self.window, self.global_batch, self.steps_per_call = int(window), int(global_batch), int(steps_per_call)
        self.mesh = Mesh(np.asarray(self.devices), (axis_name,))
        self._replicated = NamedSharding(self.mesh, P())
        self._sharded = NamedSharding(self.mesh, P(axis_name))

        def one(ts, stream, rows):
            batch = {"tokens": sample_windows(data_key(ts.rng, ts.step), stream, rows, self.window)}
            return step_fn(ts, batch)

        def per_device(ts, stream, rows):
            if self.steps_per_call == 1:
                return one(ts, stream, rows)
            ts, ms = lax.scan(lambda t, _: one(t, stream, rows), ts, None, length=self.steps_per_call)
            return ts, jax.tree.map(lambda m: m[-1], ms)

        mapped = jax.shard_map(per_device, mesh=self.mesh, in_specs=(P(), P(), P(axis_name)),
                               out_specs=(P(), P()), check_vma=False)
        self._fn = jax.jit(mapped, donate_argnums=(0,) if donate else ())
        local_rows = process_slice(np.arange(self.global_batch, dtype=np.int32), jax.process_index(),
                                   jax.process_count())
        self.rows = jax.make_array_from_process_local_data(self._sharded, local_rows)

    def put_state(self, ts: Any) -> Any:
        """Replicate a host state onto the devices (copied: the step donates its input)."""
        return jax.device_put(jax.tree.map(jnp.copy, ts), self._replicated)

    def put_stream(self, ids: np.ndarray) -> jax.Array:
        """The whole token stream int32 [N], replicated on every device."""
        ids = np.asarray(ids)
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"put_stream: expected a 1-D integer token stream, got {ids.dtype} {ids.shape}.")
        if len(ids) < self.window:
            raise ValueError(f"put_stream: stream of {len(ids)} tokens is shorter than the window {self.window}.")
        return jax.device_put(ids.astype(np.int32), self._replicated)

    def __call__(self, ts: Any, stream: jax.Array) -> tuple[Any, dict]:
        return self._fn(ts, stream, self.rows)


def make_loss_estimator(logits_fn: Callable, window: int, batch_size: int, num_batches: int,
                        chunk: int = 10) -> Callable:
    """A jitted ``estimate(params, stream, key) -> mean loss`` over ``num_batches`` random batches
    of ``batch_size`` windows of ``window`` tokens (nanoGPT's ``estimate_loss``).

    ``logits_fn(params, x int32 [B, T]) -> [B, T, V]`` with ``T = window - 1``. Batches are
    evaluated ``chunk`` at a time (``lax.map``) to bound memory.
    """
    if num_batches % chunk:
        chunk = 1
    n_rows = num_batches * batch_size

    @jax.jit
    def estimate(params, stream, key):
        rows = jnp.arange(n_rows, dtype=jnp.int32).reshape(num_batches // chunk, chunk * batch_size)

        def one(r):
            w = sample_windows(key, stream, r, window)
            logits = logits_fn(params, w[:, :-1])
            logp = jax.nn.log_softmax(logits.astype(jnp.float32), -1)
            return -jnp.mean(jnp.take_along_axis(logp, w[:, 1:, None], -1))

        return jnp.mean(lax.map(one, rows))

    return estimate

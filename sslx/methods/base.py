"""The method abstraction every objective implements.

A method is four pure functions and nothing else:

  init(rng, batch)                         -> (params, state)
  loss_fn(params, state, batch, rng)       -> (loss, (new_state, metrics))
  after_update(params, state, step)        -> state         (optional: EMA, queues)
  project_params(params)                   -> params        (optional: a constraint applied after
                                                             each update, e.g. unit-norm prototypes)
  encode(params, state, images)            -> features [B, D] (frozen, eval mode)

``params`` are what the optimiser updates; ``state`` is every other array that
changes during training (BatchNorm statistics, EMA targets, queues, ...), an
explicit pytree so checkpoints and multi-device code see all of it.
``loss_fn`` runs on one device's shard inside ``shard_map``/``pmap`` over
``axis_name`` and may use collectives over it; the train step averages the
returned loss, metrics and gradients over devices.

Epoch-level hooks (optional, for objectives that recompute targets from the whole
training set, e.g. DeepCluster's k-means pseudo-labels):

  epoch_start(train_state, ctx)            -> (train_state, metrics)
  sampling_weights(state)                  -> [N] per-example sampling weights, or None
  batch_index: bool                        -> batches carry ``"index"`` (global example index [B])

The training loop calls ``epoch_start`` on the logical (host-view) TrainState at every
epoch boundary (``step % (N // global_batch) == 0``, including step 0 and a resumed run
that starts on a boundary, never mid-epoch), with an :class:`EpochContext` (training
set, devices, optimiser, epoch); it runs outside the compiled step and may change any
part of the TrainState (params, opt_state, state) as long as the shapes stay the same
(checkpoints restore into the initial shapes). Its metrics are logged at that step.
After it, the loop draws the epoch's batches with ``sampling_weights(state)`` when that
is given (``sslx.data.global_batch_indices``: with replacement, probabilities
proportional to the weights, a pure function of (seed, step, weights), so a resumed
run reproduces them) and adds ``"index"`` to every batch when ``batch_index`` is set.

End-of-training artifacts (optional):

  write_artifacts(params, state, images, workdir) -> list[str]   paths of the files written

``train`` calls it once after the last step of a completed run (not on a preempted one),
on process 0 only, with the logical (host) params / state and a few uint8 test images
``[n, H, W, C]`` (e.g. context encoders save a PNG grid of inpainted images); the paths
are returned in the results under ``"artifacts"``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
from jax import lax

DATA_AXIS = "data"

Params = Any
State = Any
Batch = dict


@dataclasses.dataclass(frozen=True)
class Method:
    """A self-supervised objective as pure functions (see module docstring)."""
    name: str
    init: Callable[[jax.Array, Batch], tuple[Params, State]]
    loss_fn: Callable[[Params, State, Batch, jax.Array], tuple[jax.Array, tuple[State, dict]]]
    encode: Callable[[Params, State, jax.Array], jax.Array]
    after_update: Optional[Callable[[Params, State, jax.Array], State]] = None
    project_params: Optional[Callable[[Params], Params]] = None
    axis_name: Optional[str] = DATA_AXIS
    epoch_start: Optional[Callable[[Any, "EpochContext"], tuple[Any, dict]]] = None
    sampling_weights: Optional[Callable[[State], Any]] = None
    batch_index: bool = False
    write_artifacts: Optional[Callable[[Params, State, jax.Array, str], list]] = None


@dataclasses.dataclass(frozen=True)
class EpochContext:
    """What ``Method.epoch_start`` sees: the epoch number, the step it starts at, the training
    set (an ``sslx.data.ImageDataset`` from the image loop: ``len``, ``ds[indices] -> {"image",
    "label"}``, ``num_classes``; a ``GraphDataset`` from ``train_graph_level``), the devices the train step runs on (in mesh order), and the optimiser
    ``tx`` (to re-initialise parts of ``opt_state``)."""
    epoch: int
    step: int
    dataset: Any
    devices: tuple
    tx: Any


def example_keys(rng: jax.Array, local_batch: int, axis_name: Optional[str], num: int = 1) -> jax.Array:
    """Per-example keys [local_batch, num] keyed by the *global* example index.

    Example i of the global batch gets ``fold_in(rng, i)`` wherever it lives,
    so augmentations (and hence losses) do not depend on how the global batch
    is split over devices.
    """
    offset = 0 if axis_name is None else lax.axis_index(axis_name) * local_batch
    idx = offset + jnp.arange(local_batch)
    keys = jax.vmap(lambda i: jax.random.fold_in(rng, i))(idx)
    return jax.vmap(lambda k: jax.random.split(k, num))(keys)


def merge_batch_stats(variables: dict, updates: dict) -> dict:
    """Return ``variables`` with its ``batch_stats`` replaced by the mutated ones."""
    return {**variables, **updates}

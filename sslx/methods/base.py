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

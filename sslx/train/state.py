"""The training state: one pytree holding everything a step reads and writes."""
from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
    """step (int32 scalar), params, opt_state, method state, base rng (raw uint32[2] key)."""
    step: jax.Array
    params: Any
    opt_state: Any
    state: Any
    rng: jax.Array


def create_train_state(method, tx: optax.GradientTransformation, rng: jax.Array, example_batch: dict) -> TrainState:
    """Initialise params/state with ``method.init`` and the optimiser state with ``tx``.

    ``rng`` is a raw ``jax.random.PRNGKey``; it is split into an init key and
    the base key every step folds its step number into.
    """
    init_rng, step_rng = jax.random.split(rng)
    params, state = method.init(init_rng, example_batch)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                      state=state, rng=step_rng)


def reset_opt_state_under(opt_state: Any, fresh: Any, key: str) -> Any:
    """``opt_state`` with every leaf whose path holds the dict key ``key`` replaced by ``fresh``'s.

    ``fresh`` is ``tx.init(params)``: the optimiser moments of a sub-tree (e.g. a re-initialised
    classifier ``"head"`` or re-clustered ``"prototypes"``) restart while the rest keep theirs.
    """
    def pick(path, old, new):
        return new if any(getattr(k, "key", None) == key for k in path) else old
    return jax.tree_util.tree_map_with_path(pick, opt_state, fresh)

"""Orbax checkpoints behind a tiny interface.

``Checkpointer(directory)`` saves a TrainState pytree plus a JSON ``meta``
dict (config, data position, a fingerprint of the parameter shapes) every
``save_every`` steps, keeps ``max_to_keep``, writes asynchronously, and on
restore falls back to the previous checkpoint (with a warning) when the
latest one is truncated or corrupted. Every process must call save/restore
in multi-host runs (orbax coordinates the writes).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from typing import Any, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)


class CheckpointMismatchError(ValueError):
    """The checkpoint directory holds a state of a different model / optimiser."""


def tree_fingerprint(tree: Any) -> str:
    """A short hash of a pytree's structure, shapes and dtypes (not its values)."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    desc = [(jax.tree_util.keystr(p), tuple(np.shape(x)), str(getattr(x, "dtype", type(x).__name__)))
            for p, x in leaves]
    return hashlib.sha256(json.dumps(desc).encode()).hexdigest()[:16]


def _abstract(tree: Any, sharding: Any = None) -> Any:
    def to_sds(x):
        x = x if hasattr(x, "dtype") else np.asarray(x)
        s = sharding if sharding is not None else getattr(x, "sharding", None)
        return jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=s)
    return jax.tree.map(to_sds, tree)


class Checkpointer:
    """Save / restore ``(state, meta)`` under ``directory`` with orbax."""

    def __init__(self, directory: str, *, save_every: int = 1000, max_to_keep: int = 3,
                 async_save: bool = True):
        self.directory = os.path.abspath(directory)
        self.save_every = int(save_every)
        self._saved: set[int] = set()
        self._mgr = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, save_interval_steps=1,
                                                 enable_async_checkpointing=async_save, create=True))

    # -- saving ----------------------------------------------------------------
    def should_save(self, step: int) -> bool:
        return self.save_every > 0 and step % self.save_every == 0

    def save(self, step: int, state: Any, meta: Optional[dict] = None, *, force: bool = False) -> bool:
        """Save ``state`` at ``step`` (asynchronously); returns whether a save started."""
        if step in self._saved:
            return False
        if step in self._mgr.all_steps():
            # Left by an earlier run that we resumed from before it (e.g. an unreadable
            # checkpoint we fell back past): replace it with this run's state.
            self._mgr.wait_until_finished()
            self._mgr.delete(step)
        self._saved.add(step)
        meta = dict(meta or {}, step=int(step), fingerprint=tree_fingerprint(state))
        return self._mgr.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=force)

    def wait(self) -> None:
        """Block until pending asynchronous saves are on disk."""
        self._mgr.wait_until_finished()

    def close(self) -> None:
        self._mgr.wait_until_finished()
        self._mgr.close()

    # -- restoring -------------------------------------------------------------
    def steps(self) -> list[int]:
        self._mgr.reload()
        return sorted(self._mgr.all_steps())

    def latest_step(self) -> Optional[int]:
        steps = self.steps()
        return steps[-1] if steps else None

    def read_meta(self, step: int) -> dict:
        return self._mgr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

    def restore(self, target: Any, step: Optional[int] = None, sharding: Any = None
                ) -> tuple[Optional[Any], Optional[dict]]:
        """Restore into the structure of ``target`` (a state pytree or its abstract form).

        With ``step=None``, tries the checkpoints from newest to oldest and
        falls back past unreadable ones with a warning. Returns
        ``(state, meta)`` or ``(None, None)`` when there is no checkpoint.
        Raises :class:`CheckpointMismatchError` if the saved state belongs to a
        different model (parameter shapes differ).
        """
        want = tree_fingerprint(target)
        candidates = [step] if step is not None else list(reversed(self.steps()))
        for i, s in enumerate(candidates):
            try:
                meta = self.read_meta(s)
            except Exception as e:  # truncated / corrupted metadata
                self._skip(s, e, candidates[i + 1:])
                continue
            if meta.get("fingerprint") not in (None, want):
                raise CheckpointMismatchError(
                    f"checkpoint {self.directory}/{s} holds a different model or optimiser state than "
                    f"the one configured (fingerprint {meta.get('fingerprint')} != {want}; saved config "
                    f"model: {meta.get('config', {}).get('model')}). Use a fresh --workdir, or the "
                    "config that wrote this checkpoint.")
            try:
                restored = self._mgr.restore(s, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(_abstract(target, sharding))))
            except Exception as e:
                if step is not None:
                    raise
                self._skip(s, e, candidates[i + 1:])
                continue
            return restored["state"], meta
        return None, None

    def _skip(self, step: int, err: Exception, rest: list) -> None:
        nxt = f"falling back to step {rest[0]}" if rest else "no older checkpoint left; starting fresh"
        msg = (f"checkpoint {self.directory}/{step} is unreadable ({type(err).__name__}: "
               f"{str(err).splitlines()[0][:200] if str(err) else ''}); {nxt}.")
        warnings.warn(msg, RuntimeWarning)
        log.warning(msg)

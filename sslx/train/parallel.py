"""Multi-host setup: jax.distributed from config or environment."""
from __future__ import annotations

import logging
import os
from typing import Optional

import jax

log = logging.getLogger(__name__)
_INITIALIZED = False


def maybe_initialize_distributed(cfg=None) -> bool:
    """Call ``jax.distributed.initialize`` when asked; returns whether it ran.

    Asked for by ``cfg.initialize`` (with optional coordinator_address,
    num_processes, process_id) or by the environment: ``SSLX_DISTRIBUTED=1``
    (TPU pods / SLURM / GKE, where JAX discovers the cluster itself), or
    ``SSLX_COORDINATOR``, ``SSLX_NUM_PROCESSES``, ``SSLX_PROCESS_ID``. On CPU,
    cross-process collectives use gloo.
    """
    global _INITIALIZED
    if _INITIALIZED:
        return True
    env = os.environ
    want = bool(cfg is not None and cfg.get("initialize", False)) or env.get("SSLX_DISTRIBUTED") == "1" \
        or "SSLX_COORDINATOR" in env
    if not want:
        return False

    def pick(key: str, env_key: str, cast=str) -> Optional[object]:
        v = cfg.get(key) if cfg is not None else None
        if v is None and env_key in env:
            v = cast(env[env_key])
        return v

    kwargs = {k: v for k, v in dict(
        coordinator_address=pick("coordinator_address", "SSLX_COORDINATOR"),
        num_processes=pick("num_processes", "SSLX_NUM_PROCESSES", int),
        process_id=pick("process_id", "SSLX_PROCESS_ID", int)).items() if v is not None}
    if jax.config.jax_platforms in (None, "", "cpu") or env.get("JAX_PLATFORMS", "") == "cpu":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**kwargs)
    _INITIALIZED = True
    log.info("jax.distributed initialised: process %d of %d, %d global devices",
             jax.process_index(), jax.process_count(), jax.device_count())
    return True

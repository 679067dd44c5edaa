"""Self-supervised objectives, one file each, behind the :class:`Method` interface."""
from __future__ import annotations

from typing import Callable, Optional

from sslx.methods.base import DATA_AXIS, Method, example_keys
from sslx.methods.image import amdim, byol, cpc, moco, simclr, swav, yadim

_REGISTRY: dict[str, Callable[..., Method]] = {
    "simclr": simclr, "byol": byol, "moco": moco, "cpc": cpc, "amdim": amdim, "yadim": yadim,
    "swav": swav}


def get_method(config, axis_name: Optional[str] = DATA_AXIS, total_steps: Optional[int] = None) -> Method:
    """Build the method named by ``config.method.name``.

    ``total_steps`` is the length of the run, for objectives whose state follows a
    schedule (e.g. BYOL's EMA rate); ``None`` falls back to ``config.train.num_steps``.
    """
    name = config.method.name
    if name not in _REGISTRY:
        raise ValueError(f"config.method.name={name!r} is not a known objective; "
                         f"choose one of {sorted(_REGISTRY)}.")
    if total_steps is None:
        total_steps = int(config.train.get("num_steps", 0)) or None
    return _REGISTRY[name](config, axis_name=axis_name, total_steps=total_steps)


__all__ = ["DATA_AXIS", "Method", "amdim", "byol", "cpc", "example_keys", "get_method", "moco", "simclr",
           "swav", "yadim"]

"""Command-line helpers shared by the scripts: clear errors for config overrides."""
from __future__ import annotations

import importlib.util
import sys
from typing import Optional, Sequence

import ml_collections


def load_config_file(spec: str) -> ml_collections.ConfigDict:
    """Load ``path/to/config.py[:arg]`` the way ``--config`` does."""
    path, _, arg = spec.partition(":")
    mod_spec = importlib.util.spec_from_file_location("_sslx_config_module", path)
    if mod_spec is None or mod_spec.loader is None:
        raise SystemExit(f"--config={spec}: cannot load {path!r}; pass a config file such as "
                         "sslx/configs/simclr.py:digits.")
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module.get_config(arg) if arg else module.get_config()


def check_config_overrides(argv: Optional[Sequence[str]] = None, flag: str = "config") -> None:
    """Exit with a clear message if a ``--config.a.b=v`` override names a key that does not exist.

    (ml_collections would raise a bare ``AttributeError: 'b'`` without saying where.)
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    spec = None
    for i, a in enumerate(argv):
        if a == f"--{flag}" and i + 1 < len(argv):
            spec = argv[i + 1]
        elif a.startswith(f"--{flag}="):
            spec = a.split("=", 1)[1]
    if spec is None:
        return
    try:
        config = load_config_file(spec)
    except (ValueError, KeyError) as e:
        raise SystemExit(f"--{flag}={spec}: {e}") from None
    for a in argv:
        if not a.startswith(f"--{flag}."):
            continue
        key = a[len(flag) + 3:].split("=", 1)[0]
        node, walked = config, []
        for part in key.split("."):
            if isinstance(node, ml_collections.ConfigDict) and part in node:
                node = node[part]
                walked.append(part)
            elif isinstance(node, dict) and part in node:  # e.g. encoder_kwargs
                node = node[part]
                walked.append(part)
            else:
                where = ".".join(walked) or "<top level>"
                valid = sorted(node.keys()) if hasattr(node, "keys") else []
                raise SystemExit(
                    f"Unknown config key '{key}' in {a!r}: '{part}' does not exist under {where}. "
                    f"Valid keys there: {valid}. Check the spelling against {spec.split(':')[0]}.")

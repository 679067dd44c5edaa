"""Experiment configs (``ml_collections``), one module per method; ``--config sslx/configs/<m>.py:<arg>``.

Also the ``--set`` override helpers the reproduce scripts share.
"""
from __future__ import annotations

import ml_collections


def select_overrides(items, name: str) -> list[str]:
    """The ``'[name/]section.key=value'`` items that apply to ``name`` (unprefixed ones apply to
    every name), without their prefix; a ValueError names a malformed item."""
    out = []
    for item in items:
        lhs, eq, value = item.partition("=")  # the name prefix is before the '=' (values may hold '/')
        target, _, path = lhs.rpartition("/")
        if not eq or "." not in path:
            raise ValueError(f"--set {item!r}: expected '[name/]section.key=value', e.g. 'train.num_steps=10'.")
        if not target or target == name:
            out.append(path + eq + value)
    return out


def apply_overrides(config: ml_collections.ConfigDict, items) -> ml_collections.ConfigDict:
    """Set ``'section.key=value'`` items on ``config`` in place (and return it). Values are Python
    literals (``(8,)``, ``True``, ``0.1``) or else plain strings; an unknown key is a ValueError."""
    import ast
    for item in items:
        path, _, value = item.partition("=")
        node, keys = config, path.split(".")
        for k in keys[:-1]:
            if k not in node:
                raise ValueError(f"--set {item!r}: the config has no key {path!r}.")
            node = node[k]
        if keys[-1] not in node:
            raise ValueError(f"--set {item!r}: the config has no key {path!r}.")
        try:
            node[keys[-1]] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            node[keys[-1]] = value
    return config

"""Writing result tables into ``docs/results.md`` one section at a time.

Each reproduction script (image, graph, text) owns one section, delimited by HTML comment
markers, and rewrites only that section; the rest of the file is kept as is.
"""
from __future__ import annotations

import os
import platform
import re


def update_section(path: str, name: str, markdown: str, title: str = "# sslx results") -> None:
    """Replace (or append) the section ``name`` of the markdown file ``path`` with ``markdown``."""
    if not re.fullmatch(r"[a-z0-9_-]+", name):
        raise ValueError(f"section name {name!r} must be lowercase letters, digits, '_' or '-'.")
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    text = open(path).read() if os.path.exists(path) else f"{title}\n"
    if begin in text and end in text:
        a, b = text.index(begin), text.index(end) + len(end)
        text = text[:a] + block + text[b:]
    elif begin in text or end in text:
        raise ValueError(f"{path} has only one of the markers {begin} / {end}; fix the file by hand.")
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def machine_line() -> str:
    """One line naming the machine, library versions and the load when the run started."""
    import jax
    try:
        load = " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        load = "n/a"
    dev = jax.devices()[0]
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
            f"{dev.platform}:{getattr(dev, 'device_kind', '')} x{jax.device_count()}, jax {jax.__version__}, "
            f"load average at start {load}")


def markdown_table(header: list, rows: list) -> str:
    """A GitHub markdown table."""
    out = ["| " + " | ".join(map(str, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(out)

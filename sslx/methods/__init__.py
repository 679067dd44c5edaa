"""Self-supervised objectives, one file each, behind the :class:`Method` interface."""
from __future__ import annotations

from typing import Callable, Optional

from sslx.methods.base import DATA_AXIS, Method, example_keys
from sslx.methods.image import amdim, byol, cpc, moco, simclr, swav, yadim
from sslx.methods.image.context_encoder import context_encoder
from sslx.methods.image.deepcluster import deepcluster
from sslx.methods.image.relative_patch import relative_patch
from sslx.methods.image.rotation import rotation
from sslx.methods.graph import dgi, grace
from sslx.methods.graph.infograph import infograph
from sslx.methods.graph.gcc import gcc
from sslx.methods.graph.graphlog import graphlog
from sslx.methods.graph.gmi import gmi
from sslx.methods.graph.merit import merit
from sslx.methods.graph.mvgrl import mvgrl
from sslx.methods.graph.ssgcn import ssgcn
from sslx.methods.text import gpt, mlm
from sslx.methods import text as _text
from sslx.methods.text.word2vec import cbow as _cbow, skipgram as _skipgram

_REGISTRY: dict[str, Callable[..., Method]] = {
    "deepcluster": deepcluster,
    "context_encoder": context_encoder,
    "rotation": rotation, "relative_patch": relative_patch,
    "dgi": dgi, "grace": grace, "infograph": infograph, "mvgrl": mvgrl, "gmi": gmi, "merit": merit,
    "graphlog": graphlog,
    "gcc": gcc,
    "ssgcn": ssgcn,
    "gpt": gpt, "mlm": mlm,
    "nsp": _text.nsp, "sop": _text.sop, "word_order": _text.word_order, "sentence_order": _text.sentence_order,
    "masked_sentence": _text.masked_sentence, "neighbor_sentence": _text.neighbor_sentence,
    "quick_thought": _text.quick_thought,
    "bidir_lm": _text.bidir_lm,
    "cbow": _cbow, "skipgram": _skipgram,
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

"""sslx: self-supervised learning objectives as pure JAX losses and jit/pmap train steps.

Layers: ``losses`` (pure jnp), ``models`` (stateless linen), ``augment`` (on-device
random transforms), ``methods`` (one file per objective), ``train`` (the compiled
step and loop), plus ``data``, ``eval`` and ``checkpoint``.
"""
from sslx import augment, checkpoint, data, eval, losses, methods, models, train  # noqa: F401

__version__ = "0.1.0"

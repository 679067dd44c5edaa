"""Pieces shared by the text objectives: the transformer from a config, pooled features."""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections

from sslx.models.transformer import Transformer


def build_transformer(config: ml_collections.ConfigDict, causal: bool, output_bias: bool = False) -> Transformer:
    """A :class:`Transformer` from ``config.model`` (vocab_size, max_len, num_layers, num_heads,
    width, mlp_ratio, dropout, use_bias, dtype). Parameters stay float32."""
    m = config.model
    vocab = int(m.get("vocab_size", 0) or 0)
    if vocab < 2:
        raise ValueError(f"config.model.vocab_size must be set to the tokenizer's vocabulary size (>= 2), "
                         f"got {vocab}; e.g. config.model.vocab_size = tokenizer.vocab_size.")
    return Transformer(vocab_size=vocab, max_len=int(m.max_len), num_layers=int(m.num_layers),
                       num_heads=int(m.num_heads), width=int(m.width), mlp_ratio=int(m.get("mlp_ratio", 4)),
                       dropout=float(m.get("dropout", 0.0)), causal=causal, use_bias=bool(m.get("use_bias", True)),
                       output_bias=output_bias, dtype=jnp.dtype(m.get("dtype", "float32")))


def check_tokens(batch: dict, name: str) -> jax.Array:
    """``batch["tokens"]`` as int32 [B, T] or a ValueError naming the fix."""
    if "tokens" not in batch:
        raise ValueError(f"{name}: the batch needs 'tokens' int32 [B, T]; got keys {sorted(batch)}.")
    tokens = batch["tokens"]
    if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
        raise ValueError(f"{name}: batch['tokens'] must be int [B, T], got {tokens.dtype} {tuple(tokens.shape)}.")
    return tokens.astype(jnp.int32)


def mean_pool(hidden: jax.Array, mask: Optional[jax.Array]) -> jax.Array:
    """Mean of ``hidden`` [B, T, D] over the real tokens (``mask`` [B, T]) -> [B, D]."""
    if mask is None:
        return jnp.mean(hidden, axis=1)
    w = mask.astype(hidden.dtype)[..., None]
    return jnp.sum(hidden * w, axis=1) / jnp.maximum(jnp.sum(w, axis=1), 1.0)


def dropout_key(rng: jax.Array, axis_name: Optional[str]) -> jax.Array:
    """A dropout key distinct per device (dropout masks are random, not split-invariant)."""
    return rng if axis_name is None else jax.random.fold_in(rng, jax.lax.axis_index(axis_name))

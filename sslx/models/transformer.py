"""Pre-LayerNorm transformers: a BERT-style encoder and a GPT-style decoder (flax.linen).

One module, :class:`Transformer`, covers both: ``causal=True`` is the GPT decoder
(each position attends to itself and the past), ``causal=False`` the BERT encoder
(bidirectional). Structure (GPT-2 / pre-LN BERT)::

    x = tok_emb[tokens] + pos_emb[:T]              learned positions, dropout
    x = x + Dropout(Attn(LN(x)))                   for each of num_layers blocks
    x = x + Dropout(MLP(LN(x)))                    MLP: width -> mlp_ratio*width (GELU) -> width
    h = LN(x)                                      final norm
    logits = h @ tok_emb.T (+ output bias)         tied input/output embeddings

Attention goes through :func:`jax.nn.dot_product_attention` (XLA on CPU/TPU, cuDNN's
fused kernel on GPUs where it applies), with ``is_causal`` for the decoder and a key
padding mask from ``mask`` [B, T] (True = real token). Dropout acts on the embeddings
and the residual branches and takes its randomness from the ``'dropout'`` rng passed to
``apply`` (attention-probability dropout is not available in the fused kernel and is
not used). ``dtype`` is the compute dtype (e.g. bfloat16); parameters are always
float32 and the logits are returned in float32. Initialisation follows GPT-2: normal
(0.02) weights, residual output projections scaled by ``1/sqrt(2 num_layers)``.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

_init = nn.initializers.normal(stddev=0.02)


class SelfAttention(nn.Module):
    """Multi-head self-attention [B, T, W] -> [B, T, W] through ``jax.nn.dot_product_attention``."""
    num_heads: int
    causal: bool
    use_bias: bool = True
    out_init_scale: float = 1.0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, mask: Optional[jax.Array] = None, seq_len: Optional[int] = None) -> jax.Array:
        # x is [B, T, W], or token-flat [B*T, W] with ``seq_len`` = T (the layout the Transformer uses:
        # 2-D dots keep XLA's weight-gradient contractions free of transposed copies on CPU).
        flat = x.ndim == 2
        t = int(seq_len) if flat else x.shape[1]
        w = x.shape[-1]
        b = x.shape[0] // t if flat else x.shape[0]
        if w % self.num_heads:
            raise ValueError(f"SelfAttention: width {w} is not divisible by num_heads {self.num_heads}; "
                             "choose a width that is a multiple of the number of heads.")
        hd = w // self.num_heads
        qkv = nn.Dense(3 * w, use_bias=self.use_bias, dtype=self.dtype, kernel_init=_init, name="qkv")(x)
        qkv = qkv.reshape(b, t, 3, self.num_heads, hd)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        attn_mask = None if mask is None else mask[:, None, None, :]  # [B, 1, 1, T]: keys only
        y = jax.nn.dot_product_attention(q, k, v, mask=attn_mask, is_causal=self.causal)
        y = y.reshape(x.shape)
        out_init = nn.initializers.normal(stddev=0.02 * self.out_init_scale)
        return nn.Dense(w, use_bias=self.use_bias, dtype=self.dtype, kernel_init=out_init, name="out")(y)


class MLP(nn.Module):
    """Position-wise width -> hidden (GELU; exact erf form unless ``approximate_gelu``) -> width."""
    hidden: int
    use_bias: bool = True
    out_init_scale: float = 1.0
    dtype: Any = jnp.float32
    approximate_gelu: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        w = x.shape[-1]
        h = nn.Dense(self.hidden, use_bias=self.use_bias, dtype=self.dtype, kernel_init=_init, name="fc")(x)
        h = nn.gelu(h, approximate=self.approximate_gelu)
        out_init = nn.initializers.normal(stddev=0.02 * self.out_init_scale)
        return nn.Dense(w, use_bias=self.use_bias, dtype=self.dtype, kernel_init=out_init, name="proj")(h)


class Block(nn.Module):
    """Pre-LN block: ``x + Drop(Attn(LN(x)))`` then ``x + Drop(MLP(LN(x)))``."""
    num_heads: int
    mlp_hidden: int
    causal: bool
    dropout: float = 0.0
    use_bias: bool = True
    out_init_scale: float = 1.0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, mask: Optional[jax.Array], train: bool, seq_len: Optional[int] = None
                 ) -> jax.Array:
        ln = lambda name: nn.LayerNorm(epsilon=1e-5, use_bias=self.use_bias, dtype=self.dtype, name=name)
        drop = nn.Dropout(self.dropout, deterministic=not train or self.dropout == 0.0)
        x = x + drop(SelfAttention(self.num_heads, self.causal, self.use_bias, self.out_init_scale, self.dtype,
                                   name="attn")(ln("ln1")(x), mask, seq_len))
        x = x + drop(MLP(self.mlp_hidden, self.use_bias, self.out_init_scale, self.dtype, name="mlp")(ln("ln2")(x)))
        return x


class Transformer(nn.Module):
    """Token transformer: ``tokens`` int [B, T] -> logits float32 [B, T, vocab_size].

    ``causal=True``: GPT decoder; ``causal=False``: BERT encoder. ``mask`` bool [B, T]
    (True = real token) hides padding keys from attention. ``return_hidden=True``
    returns the final-LayerNorm states float32 [B, T, width] instead of logits.
    ``output_bias`` adds a learned bias to the tied output layer (BERT's MLM head).
    """
    vocab_size: int
    max_len: int
    num_layers: int = 4
    num_heads: int = 4
    width: int = 128
    mlp_ratio: int = 4
    dropout: float = 0.0
    causal: bool = True
    use_bias: bool = True
    output_bias: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, tokens: jax.Array, mask: Optional[jax.Array] = None, *, train: bool = False,
                 return_hidden: bool = False) -> jax.Array:
        if tokens.ndim != 2:
            raise ValueError(f"Transformer: tokens must be int [B, T], got shape {tuple(tokens.shape)}.")
        if not jnp.issubdtype(tokens.dtype, jnp.integer):
            raise ValueError(f"Transformer: tokens must be integer ids, got dtype {tokens.dtype}.")
        b, t = tokens.shape
        if t > self.max_len:
            raise ValueError(f"Transformer: sequence length {t} exceeds max_len {self.max_len}; "
                             "pack shorter sequences or build the model with a larger max_len.")
        if mask is not None and mask.shape != tokens.shape:
            raise ValueError(f"Transformer: mask shape {tuple(mask.shape)} != tokens shape {tuple(tokens.shape)}.")
        embed = nn.Embed(self.vocab_size, self.width, embedding_init=_init, dtype=self.dtype, name="tok_emb")
        pos = self.param("pos_emb", _init, (self.max_len, self.width), jnp.float32)
        x = embed(tokens) + pos[:t].astype(self.dtype)
        x = nn.Dropout(self.dropout, deterministic=not train or self.dropout == 0.0)(x)
        x = x.reshape(b * t, self.width)  # token-flat [B*T, W] through the blocks (see SelfAttention)
        mask = None if mask is None else mask.astype(bool)
        scale = 1.0 / math.sqrt(2 * max(self.num_layers, 1))
        for i in range(self.num_layers):
            x = Block(self.num_heads, self.mlp_ratio * self.width, self.causal, self.dropout, self.use_bias,
                      scale, self.dtype, name=f"block{i}")(x, mask, train, t)
        h = nn.LayerNorm(epsilon=1e-5, use_bias=self.use_bias, dtype=self.dtype, name="ln_f")(x)
        if return_hidden:
            return h.reshape(b, t, self.width).astype(jnp.float32)
        logits = embed.attend(h).reshape(b, t, self.vocab_size)
        if self.output_bias:
            logits = logits + self.param("out_bias", nn.initializers.zeros, (self.vocab_size,), jnp.float32)
        return logits.astype(jnp.float32)


def transformer_param_count(vocab_size: int, max_len: int, num_layers: int, width: int, mlp_ratio: int = 4,
                            use_bias: bool = True, output_bias: bool = False) -> int:
    """Number of parameters of :class:`Transformer` by formula (tied output embedding)."""
    w, h = width, mlp_ratio * width
    ln = 2 * w if use_bias else w
    attn = 3 * w * w + w * w + (4 * w if use_bias else 0)
    mlp = 2 * w * h + ((h + w) if use_bias else 0)
    block = 2 * ln + attn + mlp
    return vocab_size * w + max_len * w + num_layers * block + ln + (vocab_size if output_bias else 0)

"""CPC v2 networks: layer-norm patch encoders, the masked context network g_ar and the W_k predictors.

* Patch encoders are :func:`sslx.models.make_encoder` with ``norm="layer"``
  (LayerNorm instead of BatchNorm, as in CPC v2, Henaff et al. 2019): no
  statistics are shared between patches or images, so there is no state.
* :class:`MaskedConv`: a PixelCNN-style convolution over the G x G patch grid
  whose kernel rows below the centre are zero, so output row i only sees
  input rows <= i.
* :class:`ContextNetwork`: g_ar, a residual stack of masked convolutions;
  ``c[:, i, j]`` depends only on ``z[:, :i+1, :]``.
* :class:`CPCPredictor`: one linear map W_k per prediction offset k = 1..K.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


Dtype = Any


def causal_row_mask(kernel_size: Sequence[int], in_features: int, out_features: int) -> np.ndarray:
    """Kernel mask [kh, kw, in, out]: 1 for kernel rows <= the centre row, 0 below it."""
    kh, kw = kernel_size
    if kh % 2 != 1:
        raise ValueError(f"causal_row_mask: kernel height must be odd, got {kh}.")
    m = np.zeros((kh, kw, in_features, out_features), np.float32)
    m[: kh // 2 + 1] = 1.0
    return m


class MaskedConv(nn.Module):
    """'SAME' convolution whose output at row i only sees input rows <= i (PixelCNN-style row mask)."""
    features: int
    kernel_size: Sequence[int] = (3, 3)
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        mask = causal_row_mask(self.kernel_size, x.shape[-1], self.features)
        return nn.Conv(self.features, tuple(self.kernel_size), padding="SAME", mask=jnp.asarray(mask),
                       dtype=self.dtype)(x)


class ContextNetwork(nn.Module):
    """g_ar: [B, G, G, D_z] -> [B, G, G, features], causal in the row direction.

    1x1 input projection, then ``num_blocks`` residual blocks
    ``h + 1x1(relu(masked 3x3(relu(1x1(LN(h))))))``; LayerNorm and 1x1 maps are
    per position, so only the masked convolutions mix positions.
    """
    features: int = 256
    hidden: int = 128
    num_blocks: int = 2
    kernel_size: Sequence[int] = (3, 3)
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        if z.ndim != 4:
            raise ValueError(f"ContextNetwork: expected a patch grid [B, G, G, D], got shape {tuple(z.shape)}.")
        h = nn.Dense(self.features, dtype=self.dtype, name="in_proj")(z)
        for b in range(self.num_blocks):
            y = nn.LayerNorm(dtype=self.dtype, name=f"ln_{b}")(h)
            y = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, name=f"down_{b}")(y))
            y = nn.relu(MaskedConv(self.hidden, self.kernel_size, dtype=self.dtype, name=f"mconv_{b}")(y))
            y = nn.Dense(self.features, dtype=self.dtype, name=f"up_{b}")(y)
            h = h + y
        return h.astype(jnp.promote_types(self.dtype, jnp.float32))


class CPCPredictor(nn.Module):
    """Predictions ``W_k c`` for k = 1..K: [B, G, G, C] -> [K, B, G, G, out_dim] (one linear map per k)."""
    num_preds: int
    out_dim: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, c: jax.Array) -> jax.Array:
        p = nn.DenseGeneral((self.num_preds, self.out_dim), use_bias=False, dtype=self.dtype, name="W")(c)
        return jnp.moveaxis(p, -2, 0).astype(jnp.promote_types(self.dtype, jnp.float32))

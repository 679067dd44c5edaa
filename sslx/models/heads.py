"""Heads on top of encoders: MLP projector / predictor."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class MLPHead(nn.Module):
    """Dense-(BN)-ReLU hidden layers then a linear output [B, out_dim].

    SimCLR's projector: ``hidden=(2048,), out_dim=128``; BYOL's projector and
    predictor use ``hidden=(4096,), out_dim=256``. ``last_bn`` adds a
    non-affine BatchNorm on the output (SimCLR v2 / SwAV style).
    """
    hidden: Sequence[int] = (2048,)
    out_dim: int = 128
    use_bn: bool = True
    last_bn: bool = False
    dtype: Any = jnp.float32
    bn_axis_name: Optional[str] = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        if x.ndim != 2:
            raise ValueError(f"MLPHead input: expected [B, D] features, got shape {tuple(x.shape)}.")
        bn = lambda **kw: nn.BatchNorm(use_running_average=not train, momentum=0.9, use_fast_variance=False, dtype=self.dtype,
                                       axis_name=self.bn_axis_name if train else None, **kw)
        x = x.astype(self.dtype)
        for h in self.hidden:
            x = nn.Dense(h, use_bias=not self.use_bn, dtype=self.dtype)(x)
            if self.use_bn:
                x = bn()(x)
            x = nn.relu(x)
        x = nn.Dense(self.out_dim, dtype=self.dtype)(x)
        if self.last_bn:
            x = bn(use_scale=False, use_bias=False)(x)
        return x.astype(jnp.promote_types(self.dtype, jnp.float32))

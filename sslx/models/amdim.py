"""AMDIM's multi-scale encoder (Bachman et al. 2019) as a stateless linen module.

A trunk of "valid"-padded strided conv stages, each followed by ``n_depth - 1``
residual 1x1 ("NIN") blocks, then a final conv whose kernel covers the whole
remaining map, giving the 1x1 global feature. The outputs of the stages listed in
``local_stages`` go through 1x1-conv "NIN" embedding heads (the reference's
``FakeRKHSConvNet``: 1x1 conv-BN-ReLU-1x1 conv plus a linear 1x1 shortcut) to the
common dimension ``n_rkhs``. The module returns a dict keyed by **spatial side**::

    {1: [B, n_rkhs], s_a: [B, s_a, s_a, n_rkhs], s_b: [B, s_b, s_b, n_rkhs], ...}

e.g. ``{1, 5, 7}`` for the paper's 128 px / 32 px encoders (``AMDIM_128`` /
``AMDIM_32`` stage specs) and ``{1, 2, 4}`` for 8x8 digits. The global feature is
the trunk's last conv (the reference uses no extra head on it: ``NopNet``).
BatchNorm statistics are synced over ``bn_axis_name`` in training; ``dtype`` is
the compute dtype, parameters stay float32 and outputs are at least float32.
"""
from __future__ import annotations

import functools
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from sslx.models.resnet import _check_images

Dtype = Any

# (features multiplier of ndf, kernel, stride, padding) per stage; local outputs at stages 3 and 4.
# 32 px (reference encoder_size 32): 32 -3-> 30 -4/2-> 14 -2/2-> 7 -3-> 5 -3-> 3 -final-> 1.
AMDIM_32 = dict(stages=((1, 3, 1, 0), (1, 4, 2, 0), (2, 2, 2, 0), (4, 3, 1, 0), (4, 3, 1, 0)),
                local_stages=(2, 3))
# 128 px (reference encoder_size 128): 128 -5/2p2-> 64 -3/2-> 31 -4/2-> 14 -2/2-> 7 -3-> 5 -3-> 3 -> 1.
AMDIM_128 = dict(stages=((1, 5, 2, 2), (1, 3, 2, 0), (2, 4, 2, 0), (4, 2, 2, 0), (8, 3, 1, 0), (8, 3, 1, 0)),
                 local_stages=(3, 4))
# 8 px digits: 8 -3p1-> 8 -2/2-> 4 -3-> 2 -final-> 1.
AMDIM_8 = dict(stages=((1, 3, 1, 1), (2, 2, 2, 0), (4, 3, 1, 0)), local_stages=(1, 2))


class NINHead(nn.Module):
    """1x1 embedding: ``BN? (conv1x1(relu(bn(conv1x1(x)))) + shortcut1x1(x))`` -> ``out_dim`` channels."""
    out_dim: int
    norm: Any
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        h = nn.Conv(self.out_dim, (1, 1), use_bias=False, dtype=self.dtype, name="layer1")(x)
        h = nn.relu(self.norm(name="bn1")(h))
        h = nn.Conv(self.out_dim, (1, 1), use_bias=False, dtype=self.dtype, name="layer2")(h)
        return h + nn.Conv(self.out_dim, (1, 1), dtype=self.dtype, name="shortcut")(x)


class AMDIMEncoder(nn.Module):
    """Multi-scale AMDIM encoder -> {1: [B, n_rkhs], side: [B, side, side, n_rkhs], ...}.

    ``stages``: ``(width multiplier of ndf, kernel, stride, padding)`` per stage, each a
    conv-BN-ReLU plus ``n_depth - 1`` residual 1x1 conv-BN-ReLU blocks; ``local_stages``: the
    stage indices whose outputs are embedded as local features (the map side is the key);
    the final global conv has the remaining map's side as its kernel (valid padding).
    """
    ndf: int = 64
    n_rkhs: int = 256
    n_depth: int = 1
    stages: Sequence[Sequence[int]] = AMDIM_32["stages"]
    local_stages: Sequence[int] = AMDIM_32["local_stages"]
    dtype: Dtype = jnp.float32
    bn_axis_name: Optional[str] = None
    bn_momentum: float = 0.9

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> dict:
        _check_images(x)
        out_type = jnp.promote_types(self.dtype, jnp.float32)
        norm = functools.partial(
            nn.BatchNorm, use_running_average=not train, momentum=self.bn_momentum, use_fast_variance=False,
            epsilon=1e-5, dtype=self.dtype, axis_name=self.bn_axis_name if train else None)
        for i in self.local_stages:
            if not 0 <= i < len(self.stages):
                raise ValueError(f"AMDIMEncoder.local_stages {tuple(self.local_stages)}: index {i} is not a "
                                 f"stage (there are {len(self.stages)}).")
        x = x.astype(self.dtype)
        out = {}
        for i, (mult, k, s, p) in enumerate(self.stages):
            f = int(mult) * self.ndf
            if x.shape[1] + 2 * p < k:
                raise ValueError(f"AMDIMEncoder: stage {i} (kernel {k}) does not fit the {x.shape[1]}x"
                                 f"{x.shape[2]} map; use larger images or another `stages` spec.")
            x = nn.Conv(f, (k, k), (s, s), padding=int(p), use_bias=False, dtype=self.dtype, name=f"conv{i}")(x)
            x = nn.relu(norm(name=f"bn{i}")(x))
            for j in range(self.n_depth - 1):
                h = nn.Conv(f, (1, 1), use_bias=False, dtype=self.dtype, name=f"res{i}_{j}")(x)
                x = nn.relu(x + norm(name=f"res{i}_{j}_bn", scale_init=nn.initializers.zeros)(h))
            if i in self.local_stages:
                side = x.shape[1]
                if side in out or side == 1:
                    raise ValueError(f"AMDIMEncoder: local stage {i} gives a {side}x{side} map, which is "
                                     "already taken (by another local stage or the 1x1 global feature).")
                out[side] = NINHead(self.n_rkhs, norm, self.dtype, name=f"nin{side}")(x).astype(out_type)
        if x.shape[1] != x.shape[2]:
            raise ValueError(f"AMDIMEncoder: expected square maps, got {x.shape[1]}x{x.shape[2]}.")
        g = nn.Conv(self.n_rkhs, (x.shape[1], x.shape[2]), padding="VALID", dtype=self.dtype, name="global")(x)
        out[1] = g.reshape(g.shape[0], -1).astype(out_type)
        return out

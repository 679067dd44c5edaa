"""Context-encoder networks (Pathak et al. 2016): an inpainting generator and its discriminator.

:class:`ContextEncoderGenerator` (``params = {"encoder", "decoder"}``)::

    x [B, H, W, C] (in [-1, 1], hole filled)
      -> encoder: len(features) x [Conv 4x4 stride 2 -> BN (not on the first) -> LeakyReLU 0.2]
         -> h [B, H/2^n, W/2^n, features[-1]]
      -> ChannelWiseFC: each channel's (H/2^n * W/2^n) map fully connected to itself (no mixing
         across channels: C * N^2 weights instead of (C N)^2), then a 1x1 conv mixing channels,
         BN, ReLU
      -> decoder: ConvTranspose 4x4 stride 2 -> BN -> ReLU for features[-2::-1], then a last
         ConvTranspose 4x4 stride 2 to C channels and tanh -> [B, H, W, C] in [-1, 1]

The output has the input's size (the paper's central-block network emits only the
central block; here the loss weights select the predicted region, so one network
serves every mask mode). ``H`` and ``W`` must be divisible by ``2**len(features)``.
``__call__`` returns ``(reconstruction, h)``; ``encode`` returns ``h`` global-average
pooled ``[B, features[-1]]`` (the representation used for evaluation).

:class:`ContextEncoderDiscriminator`: Conv 4x4 stride 2 -> BN (not on the first) ->
LeakyReLU 0.2 for each of ``features``, flatten, Dense -> one logit per image ``[B]``.

BatchNorm layers sync over ``bn_axis_name`` in training; ``dtype`` is the compute dtype;
parameters are float32, or float64 when ``dtype`` is float64 (so a float64 run is float64
throughout, updates included).
"""
from __future__ import annotations

import functools
from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from sslx.models.resnet import _check_images, _norm_layer

__all__ = ["ChannelWiseFC", "ContextEncoderDiscriminator", "ContextEncoderGenerator"]

Dtype = jnp.dtype


def _out_dtype(dtype) -> jnp.dtype:
    """Outputs and parameters: at least float32 (float64 when computing in float64)."""
    return jnp.promote_types(dtype, jnp.float32)


def _dtypes(dtype) -> dict:
    return {"dtype": dtype, "param_dtype": _out_dtype(dtype)}


def _bn(train, momentum, axis_name, dtype):
    return functools.partial(_norm_layer("batch", train, momentum, axis_name, dtype), param_dtype=_out_dtype(dtype))


class ChannelWiseFC(nn.Module):
    """``[B, h, w, C] -> [B, h, w, C]``: ``y[b, m, c] = sum_n x[b, n, c] W[c, n, m] + b[c, m]``
    over the ``N = h w`` positions of each channel separately."""
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b, h, w, c = x.shape
        n = h * w
        kernel = self.param("kernel", nn.initializers.normal(stddev=1.0 / max(n, 1) ** 0.5), (c, n, n),
                            self.param_dtype)
        bias = self.param("bias", nn.initializers.zeros, (c, n), self.param_dtype)
        xf = x.reshape(b, n, c).astype(self.dtype)
        y = jnp.einsum("bnc,cnm->bmc", xf, kernel.astype(self.dtype)) + bias.T.astype(self.dtype)
        return y.reshape(b, h, w, c)


class _Encoder(nn.Module):
    features: Sequence[int]
    dtype: Dtype = jnp.float32
    bn_axis_name: Optional[str] = None
    bn_momentum: float = 0.9

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        norm = _bn(train, self.bn_momentum, self.bn_axis_name, self.dtype)
        for i, f in enumerate(self.features):
            x = nn.Conv(f, (4, 4), (2, 2), padding="SAME", use_bias=i == 0, **_dtypes(self.dtype))(x)
            if i > 0:
                x = norm()(x)
            x = nn.leaky_relu(x, 0.2)
        return x


class _Decoder(nn.Module):
    features: Sequence[int]
    out_channels: int
    dtype: Dtype = jnp.float32
    bn_axis_name: Optional[str] = None
    bn_momentum: float = 0.9

    @nn.compact
    def __call__(self, h: jax.Array, train: bool) -> jax.Array:
        norm = _bn(train, self.bn_momentum, self.bn_axis_name, self.dtype)
        x = ChannelWiseFC(**_dtypes(self.dtype))(h)
        x = nn.Conv(h.shape[-1], (1, 1), use_bias=False, **_dtypes(self.dtype))(x)
        x = nn.relu(norm()(x))
        for f in list(self.features)[-2::-1]:
            x = nn.ConvTranspose(f, (4, 4), (2, 2), padding="SAME", use_bias=False, **_dtypes(self.dtype))(x)
            x = nn.relu(norm()(x))
        x = nn.ConvTranspose(self.out_channels, (4, 4), (2, 2), padding="SAME", **_dtypes(self.dtype))(x)
        return jnp.tanh(x)


class ContextEncoderGenerator(nn.Module):
    """Encoder - channel-wise FC - decoder (see module docstring). ``x [B, H, W, C]`` float."""
    features: Sequence[int] = (64, 64, 128, 256, 512)
    out_channels: int = 3
    dtype: Dtype = jnp.float32
    bn_axis_name: Optional[str] = None
    bn_momentum: float = 0.9

    def setup(self):
        if not self.features:
            raise ValueError("ContextEncoderGenerator: features is empty; give one width per stride-2 conv.")
        self.encoder = _Encoder(tuple(self.features), self.dtype, self.bn_axis_name, self.bn_momentum)
        self.decoder = _Decoder(tuple(self.features), int(self.out_channels), self.dtype, self.bn_axis_name,
                                self.bn_momentum)

    def _check(self, x: jax.Array) -> None:
        _check_images(x)
        k = 2 ** len(self.features)
        if x.shape[1] % k or x.shape[2] % k:
            raise ValueError(f"ContextEncoderGenerator: image size {x.shape[1]}x{x.shape[2]} is not divisible by "
                             f"2**len(features) = {k}; use fewer stride-2 layers (model.features) or resize.")

    def __call__(self, x: jax.Array, train: bool = True) -> tuple[jax.Array, jax.Array]:
        """-> (reconstruction [B, H, W, out_channels] in [-1, 1], encoder map [B, h, w, features[-1]])."""
        self._check(x)
        h = self.encoder(x.astype(self.dtype), train)
        return self.decoder(h, train).astype(_out_dtype(self.dtype)), h.astype(_out_dtype(self.dtype))

    def encode(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Global-average-pooled encoder features ``[B, features[-1]]`` (no decoder pass)."""
        self._check(x)
        h = self.encoder(x.astype(self.dtype), train)
        return jnp.mean(h, axis=(1, 2)).astype(_out_dtype(self.dtype))


class ContextEncoderDiscriminator(nn.Module):
    """Conv stack -> one logit per image ``[B]`` (see module docstring)."""
    features: Sequence[int] = (64, 128, 256, 512)
    dtype: Dtype = jnp.float32
    bn_axis_name: Optional[str] = None
    bn_momentum: float = 0.9

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        _check_images(x)
        x = x.astype(self.dtype)
        norm = _bn(train, self.bn_momentum, self.bn_axis_name, self.dtype)
        for i, f in enumerate(self.features):
            x = nn.Conv(f, (4, 4), (2, 2), padding="SAME", use_bias=i == 0, **_dtypes(self.dtype))(x)
            if i > 0:
                x = norm()(x)
            x = nn.leaky_relu(x, 0.2)
        x = x.reshape(x.shape[0], -1)
        return nn.Dense(1, **_dtypes(self.dtype))(x)[:, 0].astype(_out_dtype(self.dtype))

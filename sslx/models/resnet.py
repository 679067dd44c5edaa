"""ResNet-18/50 and a small convnet as stateless linen modules.

Params and ``batch_stats`` are passed in by the caller; BatchNorm statistics
are synchronised across devices when ``bn_axis_name`` is set (the train step
runs under ``shard_map``/``pmap`` with that axis). ``dtype`` sets the compute
dtype (e.g. ``jnp.bfloat16``); parameters stay float32.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any


def _check_images(x: jax.Array, name: str = "images") -> None:
    if x.ndim != 4:
        raise ValueError(
            f"{name}: expected a batch [B, H, W, C], got shape {tuple(x.shape)}. "
            "Add a batch axis (x[None]) for a single image.")
    if not (jnp.issubdtype(x.dtype, jnp.floating)):
        raise ValueError(
            f"{name}: expected floating images (e.g. float32 in [0, 1]), got dtype {x.dtype}. "
            "Convert uint8 images with images.astype(jnp.float32) / 255 (or jax.vmap(sslx.augment.to_float)).")


def _norm_layer(kind: str, train: bool, momentum: float, axis_name: Optional[str], dtype: Dtype) -> Callable:
    """Normalisation constructor: "batch" (BatchNorm, synced over ``axis_name`` in training) or
    "layer" (LayerNorm over channels per position: no statistics shared across examples/patches)."""
    if kind == "batch":
        return functools.partial(nn.BatchNorm, use_running_average=not train, momentum=momentum,
                                 use_fast_variance=False, epsilon=1e-5, dtype=dtype,
                                 axis_name=axis_name if train else None)
    if kind == "layer":
        return functools.partial(nn.LayerNorm, epsilon=1e-5, dtype=dtype)
    raise ValueError(f"norm={kind!r} is unknown; use 'batch' or 'layer'.")


def _shortcut(block: nn.Module, x: jax.Array, out: int) -> jax.Array:
    """Identity, or a strided 1x1 conv + BN when the block changes shape (called inside ``block``)."""
    if x.shape[-1] == out and block.strides == 1:
        return x
    x = block.conv(out, (1, 1), (block.strides, block.strides), name="proj")(x)
    return block.norm(name="proj_bn")(x)


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity / 1x1 projection shortcut (ResNet-18/34)."""
    filters: int
    strides: int = 1
    conv: Callable = nn.Conv
    norm: Callable = nn.BatchNorm

    @nn.compact
    def __call__(self, x):
        y = self.conv(self.filters, (3, 3), (self.strides, self.strides), padding=1)(x)
        y = nn.relu(self.norm()(y))
        y = self.conv(self.filters, (3, 3), padding=1)(y)
        y = self.norm(scale_init=nn.initializers.zeros)(y)
        return nn.relu(_shortcut(self, x, self.filters) + y)


class Bottleneck(nn.Module):
    """1x1-3x3-1x1 bottleneck with 4x expansion (ResNet-50/101/152)."""
    filters: int
    strides: int = 1
    conv: Callable = nn.Conv
    norm: Callable = nn.BatchNorm

    @nn.compact
    def __call__(self, x):
        out = self.filters * 4
        y = nn.relu(self.norm()(self.conv(self.filters, (1, 1))(x)))
        y = self.conv(self.filters, (3, 3), (self.strides, self.strides), padding=1)(y)
        y = nn.relu(self.norm()(y))
        y = self.norm(scale_init=nn.initializers.zeros)(self.conv(out, (1, 1))(y))
        return nn.relu(_shortcut(self, x, out) + y)


class ResNet(nn.Module):
    """ResNet trunk returning pooled features [B, C_out] (no classifier).

    stem="cifar": 3x3 stride-1 conv, no max-pool (32x32 inputs).
    stem="imagenet": 7x7 stride-2 conv + 3x3 stride-2 max-pool.
    """
    stage_sizes: Sequence[int]
    block: Any
    width: int = 64
    stem: str = "imagenet"
    dtype: Dtype = jnp.float32
    bn_axis_name: Optional[str] = None
    bn_momentum: float = 0.9
    norm: str = "batch"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True, return_blocks: bool = False):
        """``[B, H, W, C] -> [B, C_out]``; with ``return_blocks`` also the tuple of every stage's
        output feature map ``[B, h_i, w_i, c_i]`` (one per entry of ``stage_sizes``)."""
        _check_images(x)
        conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype)
        norm = _norm_layer(self.norm, train, self.bn_momentum, self.bn_axis_name, self.dtype)
        x = x.astype(self.dtype)
        if self.stem == "cifar":
            x = conv(self.width, (3, 3), padding=1, name="stem")(x)
            x = nn.relu(norm(name="stem_bn")(x))
        elif self.stem == "imagenet":
            x = conv(self.width, (7, 7), (2, 2), padding=3, name="stem")(x)
            x = nn.relu(norm(name="stem_bn")(x))
            x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
        else:
            raise ValueError(f"ResNet.stem: expected 'cifar' or 'imagenet', got {self.stem!r}.")
        blocks = []
        for i, n_blocks in enumerate(self.stage_sizes):
            for j in range(n_blocks):
                strides = 2 if i > 0 and j == 0 else 1
                x = self.block(self.width * 2 ** i, strides, conv=conv, norm=norm)(x)
            blocks.append(x)
        pooled = jnp.mean(x, axis=(1, 2)).astype(jnp.promote_types(self.dtype, jnp.float32))
        return (pooled, tuple(blocks)) if return_blocks else pooled


ResNet18 = functools.partial(ResNet, stage_sizes=(2, 2, 2, 2), block=BasicBlock)
ResNet34 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block=BasicBlock)
ResNet50 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block=Bottleneck)


class SmallConvNet(nn.Module):
    """Conv-BN-ReLU stack for tiny images (8x8 digits, 28x28 MNIST).

    ``features`` conv widths; ``strides`` per conv (default: stride 2 for every
    conv after the first while the input is 16 px or more). Returns pooled
    features [B, C].
    """
    features: Sequence[int] = (32, 64, 128)
    strides: Optional[Sequence[int]] = None
    dtype: Dtype = jnp.float32
    bn_axis_name: Optional[str] = None
    bn_momentum: float = 0.9
    norm: str = "batch"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True, return_blocks: bool = False):
        """``[B, H, W, C] -> [B, features[-1]]``; with ``return_blocks`` also the tuple of every
        conv-BN-ReLU layer's output feature map ``[B, h_i, w_i, features[i]]``."""
        _check_images(x)
        x = x.astype(self.dtype)
        norm = _norm_layer(self.norm, train, self.bn_momentum, self.bn_axis_name, self.dtype)
        if self.strides is not None and len(self.strides) != len(self.features):
            raise ValueError(f"SmallConvNet: strides {self.strides} and features {self.features} differ in length.")
        blocks = []
        for i, f in enumerate(self.features):
            if self.strides is not None:
                strides = int(self.strides[i])
            else:
                strides = 2 if (i > 0 and x.shape[1] >= 16) else 1
            x = nn.Conv(f, (3, 3), (strides, strides), padding=1, use_bias=False, dtype=self.dtype)(x)
            x = nn.relu(norm()(x))
            blocks.append(x)
        pooled = jnp.mean(x, axis=(1, 2)).astype(jnp.promote_types(self.dtype, jnp.float32))
        return (pooled, tuple(blocks)) if return_blocks else pooled


def make_encoder(name: str, *, dtype: Dtype = jnp.float32, bn_axis_name: Optional[str] = None,
                 **kwargs) -> nn.Module:
    """Build an encoder by name: resnet18 / resnet34 / resnet50 / small_convnet.

    ``norm="layer"`` swaps BatchNorm for LayerNorm (stateless; CPC v2's patch encoders).
    """
    table = {"resnet18": ResNet18, "resnet34": ResNet34, "resnet50": ResNet50,
             "small_convnet": SmallConvNet}
    if name not in table:
        raise ValueError(f"encoder name {name!r} is unknown; choose one of {sorted(table)}.")
    return table[name](dtype=dtype, bn_axis_name=bn_axis_name, **kwargs)

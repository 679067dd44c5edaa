"""CPC v2 configs: ``--config sslx/configs/cpc.py:<arg>``.

arg: ``digits`` (default; 8x8 digits -> 3x3 grid of 4x4 patches, stride 2;
tiny LayerNorm convnet, about a minute on CPU), ``fashion_mnist`` / ``mnist``
(28 px -> 6x6 grid of 8x8 patches, stride 4), ``cifar10`` (32 px -> 7x7 grid
of 8x8 patches, stride 4; a ResNet-18 with the CIFAR stem at half width (32)
and LayerNorm as the patch encoder: 8x8 patches are tiny, so the full
ImageNet-stem network would pool them away) and ``imagenet`` (256 px -> 7x7
grid of 64x64 patches with 50 % overlap; ResNet-50 with LayerNorm instead of
BatchNorm, as CPC v2 does — the paper's wider ResNet-161 is not provided).
The patch encoder of every config uses LayerNorm (``model.encoder_norm =
"layer"``); set it to "batch" for the library's (synced) BatchNorm encoders.
"""
from __future__ import annotations

import ml_collections

from sslx.configs.common import apply_dataset_preset, base_config


def get_config(arg: str = "digits") -> ml_collections.ConfigDict:
    c = base_config()
    c.method.name = "cpc"
    c.method.temperature = 1.0
    c.method.normalize = False  # raw dot products, as in CPC
    c.method.context_blocks = 2
    c.model.encoder_norm = "layer"
    arg = arg or "digits"
    if arg == "digits":
        apply_dataset_preset(c, arg)
        c.batch_size = 128
        c.train.num_epochs = 100
        c.model.encoder_kwargs = {"features": (32, 64), "strides": (1, 1)}
        c.method.patch_size, c.method.patch_stride, c.method.num_preds = 4, 2, 2  # 3x3 grid
        c.method.context_dim, c.method.context_hidden = 64, 64
        c.augment.crop_scale = (0.6, 1.0)
        c.augment.jitter_strength = 0.5
        c.optimizer.warmup_steps = 20
    elif arg in ("mnist", "fashion_mnist"):
        apply_dataset_preset(c, arg)
        c.batch_size = 128
        c.train.num_epochs = 5
        c.model.encoder_kwargs = {"features": (32, 64, 128), "strides": (1, 2, 1)}
        c.method.patch_size, c.method.patch_stride, c.method.num_preds = 8, 4, 5  # 6x6 grid
        c.method.context_dim, c.method.context_hidden = 128, 128
        c.augment.crop_scale = (0.5, 1.0)
        c.augment.grayscale_p = 0.0
        c.optimizer.lr = 1e-3
    elif arg == "cifar10":
        apply_dataset_preset(c, arg)
        c.batch_size = 256
        c.train.num_epochs = 200
        c.model.encoder_kwargs = {"stem": "cifar", "width": 32}
        c.method.patch_size, c.method.patch_stride, c.method.num_preds = 8, 4, 5  # 7x7 grid
        c.method.context_dim, c.method.context_hidden = 256, 128
        c.augment.crop_scale = (0.5, 1.0)
        c.optimizer.name = "adamw"
        c.optimizer.lr = 1e-3
        c.optimizer.weight_decay = 1e-5
        c.optimizer.warmup_steps = 1000
    elif arg == "imagenet":
        apply_dataset_preset(c, arg)
        c.batch_size = 512
        c.train.num_epochs = 200
        c.method.patch_size, c.method.patch_stride, c.method.num_preds = 64, 32, 5  # 7x7 grid, 50 % overlap
        c.method.context_dim, c.method.context_hidden = 2048, 512
        c.method.context_blocks = 5
        c.augment.crop_scale = (0.5, 1.0)
        c.augment.jitter_strength = 1.0
        c.augment.grayscale_p = 0.25
        c.optimizer.name = "adamw"
        c.optimizer.lr = 4e-4
        c.optimizer.weight_decay = 1e-5
        c.optimizer.warmup_steps = 5000
    else:
        raise ValueError(f"cpc config arg {arg!r} is unknown; use one of digits, mnist, fashion_mnist, "
                         "cifar10, imagenet.")
    return c

"""Relative-patch-position configs: ``--config sslx/configs/relative_patch.py:<arg>``.

arg: ``digits`` (8x8 digits: a tiny 3x3 grid of 2-px patches, gap 1, no jitter -- the whole image;
a smoke-test setting, the task is barely meaningful at this size), ``fashion_mnist`` (default;
28x28: 7-px patches, gap 2, jitter 1), ``cifar10_subset`` / ``cifar10`` (32x32: 8-px patches, gap 2,
jitter 1), ``imagenet`` (the paper's geometry: 96-px patches, gap 48, jitter 7, on images resized
on the host to 400 px (shorter side) and centre-cropped: the jittered grid needs 398 px, and 400x400 =
160K pixels lies in the paper's 150K-450K range).

Relative-patch keys (``method.``): ``patch_size``, ``patch_gap``, ``patch_jitter`` (the grid);
``resample_p`` / ``resample_min`` (probability and smallest side of the down-then-up sampling of a
patch; the paper goes down to ~100 pixels = 10 px for 96-px patches); ``channel_drop`` (RGB only:
1-2 colour channels (``drop_num``) replaced by noise of ``noise_ratio`` x the kept channels' std);
``head_hidden`` (the MLP on the concatenated tower features); ``encode`` ("image": the encoder on
whole images; "grid": the 9 patch features of the centred grid, concatenated); ``probe_block``.

Departures from Doersch et al. 2015, stated: AlexNet-style towers are not available; ResNet-18
(CIFAR stem) / ResNet-50 (ImageNet) with BatchNorm synced over both towers, and a warmup-cosine
schedule. The ImageNet optimiser settings (SGD momentum 0.9, lr 0.1 x B/256, wd 5e-4) are ours.
"""
from __future__ import annotations

import ml_collections

from sslx.configs.common import apply_dataset_preset, base_config

ARGS = ("digits", "fashion_mnist", "cifar10_subset", "cifar10", "imagenet")


def get_config(arg: str = "fashion_mnist") -> ml_collections.ConfigDict:
    c = base_config()
    c.method.name = "relative_patch"
    del c.method.temperature
    del c.model.proj_hidden, c.model.proj_dim
    c.method.head_hidden = (256,)
    c.method.encode = "image"
    c.method.probe_block = 0
    c.method.resample_p = 0.5
    c.method.resample_min = 2
    c.method.channel_drop = True
    c.method.drop_num = (1, 2)
    c.method.noise_ratio = 0.01
    c.augment.identity = True  # patches are cut from the raw image; config.augment is not used for training
    arg = arg or "fashion_mnist"
    if arg == "digits":
        apply_dataset_preset(c, arg)
        c.batch_size = 128
        c.train.num_epochs = 30
        c.model.encoder_kwargs = {"features": (32, 64, 128), "strides": (1, 1, 1)}
        c.method.patch_size, c.method.patch_gap, c.method.patch_jitter = 2, 1, 0  # 3*2 + 2*1 = 8 px
        c.method.resample_p = 0.0  # nothing to pixelate in a 2-px patch
        c.method.resample_min = 1
        c.method.head_hidden = (128,)
        c.optimizer.warmup_steps = 20
    elif arg == "fashion_mnist":
        apply_dataset_preset(c, arg)
        c.dataset.name = "fashion_mnist"
        c.train.num_epochs = 1
        c.model.encoder_kwargs = {"features": (32, 64, 128), "strides": (1, 2, 1)}
        c.method.patch_size, c.method.patch_gap, c.method.patch_jitter = 7, 2, 1  # span 25 (+2 jitter) of 28
        c.method.resample_min = 3
        c.method.encode = "grid"
        c.optimizer.warmup_steps = 50
        c.train.checkpoint_every = 500
        c.eval.knn_k = 20
    elif arg in ("cifar10_subset", "cifar10"):
        apply_dataset_preset(c, arg)
        c.dataset.name = arg
        c.method.patch_size, c.method.patch_gap, c.method.patch_jitter = 8, 2, 1  # span 28 (+2 jitter) of 32
        c.method.resample_min = 3
        c.method.encode = "grid"
        if arg == "cifar10_subset":
            apply_dataset_preset(c, arg)
            c.train.num_epochs = 30
            c.eval.knn_k = 20
        else:
            c.batch_size = 256
            c.train.num_epochs = 200
            c.model.encoder_kwargs = {"stem": "cifar"}
            c.method.head_hidden = (1024,)
            c.optimizer.name = "sgd"
            c.optimizer.lr = 0.1
            c.optimizer.lr_batch_scaling = True
            c.optimizer.momentum = 0.9
            c.optimizer.weight_decay = 5e-4
            c.optimizer.warmup_steps = 5 * (50000 // 256)
            c.train.eval_every = 5000
    elif arg == "imagenet":
        apply_dataset_preset(c, arg)
        c.dataset.image_size = 400  # host: shorter side 400 + centre crop; the jittered grid needs 398 px
        c.batch_size = 256
        c.train.num_epochs = 100
        c.method.patch_size, c.method.patch_gap, c.method.patch_jitter = 96, 48, 7
        c.method.resample_min = 10  # ~100 pixels, as in the paper
        c.method.head_hidden = (4096,)
        c.optimizer.name = "sgd"
        c.optimizer.lr = 0.1
        c.optimizer.lr_batch_scaling = True
        c.optimizer.momentum = 0.9
        c.optimizer.weight_decay = 5e-4
        c.optimizer.warmup_steps = 5 * (1281167 // 256)
    else:
        raise ValueError(f"relative_patch config arg {arg!r} is unknown; use one of {', '.join(ARGS)}.")
    return c

"""MoCo configs: ``--config sslx/configs/moco.py:<arg>``.

arg: ``digits`` (default; v2-style, small convnet on scikit-learn's 8x8 digits,
minutes on CPU), ``fashion_mnist`` / ``mnist`` (v2-style, small convnet),
``cifar10`` (ResNet-18 CIFAR stem; the MoCo authors' CIFAR-10 demo settings),
``imagenet_v1`` and ``imagenet_v2`` (ResNet-50, K=65536, batch 256, as in the
papers).

Method keys: ``temperature``, ``momentum`` (key-encoder EMA rate m),
``queue_size`` (K, a multiple of ``batch_size``), ``shuffle_bn`` (shuffling BN,
paper sec. 3.3) and ``version`` (informational). Head: ``model.proj_hidden``
(() = v1's linear fc; (2048,) = v2's MLP), ``model.proj_dim`` and
``model.proj_bn`` (BatchNorm in the head; False as in the paper's code).
"""
from __future__ import annotations

import ml_collections

from sslx.configs.common import apply_dataset_preset, base_config


def _v1(c: ml_collections.ConfigDict) -> None:
    # MoCo v1 (He et al. 2019, sec. 4 / official code): linear fc -> 128, t = 0.07, m = 0.999;
    # augmentation: crop (0.2, 1), colour jitter 0.4 (always), grayscale 0.2, flip, no blur.
    c.method.version = "v1"
    c.method.temperature = 0.07
    c.model.proj_hidden = ()
    c.model.proj_dim = 128
    c.augment.crop_scale = (0.2, 1.0)
    c.augment.jitter_p = 1.0
    c.augment.jitter_strength = 0.5  # 0.4 brightness/contrast/saturation; hue 0.1 (v1 code: 0.4)
    c.augment.grayscale_p = 0.2
    c.augment.blur_p = 0.0


def _v2(c: ml_collections.ConfigDict) -> None:
    # MoCo v2 (Chen et al. 2020): MLP head fc 2048 - ReLU - fc 128 (no BN), t = 0.2, m = 0.999;
    # augmentation adds Gaussian blur (p 0.5, sigma 0.1-2) and jitter (0.4, 0.4, 0.4, 0.1) with p 0.8.
    c.method.version = "v2"
    c.method.temperature = 0.2
    c.model.proj_hidden = (2048,)
    c.model.proj_dim = 128
    c.augment.crop_scale = (0.2, 1.0)
    c.augment.jitter_p = 0.8
    c.augment.jitter_strength = 0.5
    c.augment.grayscale_p = 0.2
    c.augment.blur_p = 0.5


def get_config(arg: str = "digits") -> ml_collections.ConfigDict:
    c = base_config()
    c.method.name = "moco"
    c.method.momentum = 0.999
    c.method.queue_size = 65536
    c.method.shuffle_bn = True
    c.model.proj_bn = False
    _v2(c)
    arg = arg or "digits"
    if arg == "digits":
        apply_dataset_preset(c, arg)
        # v2-style on 1438 8x8 images. Short runs: m = 0.99 (0.999 would barely move the key encoder
        # in a few hundred steps) and a small queue (K = 4 global batches, under one epoch of keys).
        c.train.num_epochs = 120
        c.method.queue_size = 1024
        c.method.momentum = 0.99
        c.method.temperature = 0.2
        c.model.proj_hidden = (128,)
        c.model.proj_dim = 64
        c.optimizer.warmup_steps = 50
        c.train.eval_every = 0
    elif arg in ("mnist", "fashion_mnist"):
        apply_dataset_preset(c, arg)
        c.train.num_epochs = 5
        c.method.queue_size = 4096
        c.method.momentum = 0.99
        c.model.proj_hidden = (256,)
        c.model.proj_dim = 64
        c.augment.grayscale_p = 0.0
        c.augment.blur_p = 0.0
    elif arg == "cifar10":
        apply_dataset_preset(c, arg)
        # The MoCo authors' CIFAR-10 demo (facebookresearch/moco, colab/moco_cifar10_demo.ipynb):
        # ResNet-18 CIFAR stem, linear fc -> 128, K = 4096, m = 0.99, t = 0.1, batch 512, SGD
        # (momentum 0.9) lr 0.06 at batch 512, wd 5e-4, cosine, 200 epochs, no blur, shuffling BN
        # (simulated there with split BN). lr is written as 0.03 x B/256 (= 0.06 at B = 512).
        _v1(c)
        c.method.version = "v2"  # v2 training recipe (cosine, aug+) with v1's linear head, as in the demo
        c.batch_size = 512
        c.train.num_epochs = 200
        c.method.queue_size = 4096
        c.method.momentum = 0.99
        c.method.temperature = 0.1
        c.augment.jitter_p = 0.8
        c.optimizer.name = "sgd"
        c.optimizer.lr = 0.03
        c.optimizer.lr_batch_scaling = True
        c.optimizer.momentum = 0.9
        c.optimizer.weight_decay = 5e-4
        c.optimizer.schedule = "warmup_cosine"
        c.optimizer.warmup_steps = 0
    elif arg in ("imagenet_v1", "imagenet_v2"):
        apply_dataset_preset(c, "imagenet")
        # Both papers: ResNet-50, K = 65536, m = 0.999, batch 256 on 8 GPUs, SGD momentum 0.9,
        # lr 0.03, wd 1e-4, 200 epochs. v1 decays lr x0.1 at epochs 120 and 160; v2 uses cosine.
        (_v1 if arg == "imagenet_v1" else _v2)(c)
        c.batch_size = 256
        c.train.num_epochs = 200
        c.method.queue_size = 65536
        c.method.momentum = 0.999
        c.optimizer.name = "sgd"
        c.optimizer.lr = 0.03
        c.optimizer.momentum = 0.9
        c.optimizer.weight_decay = 1e-4
        c.optimizer.warmup_steps = 0
        if arg == "imagenet_v1":
            apply_dataset_preset(c, "imagenet")
            c.optimizer.schedule = "step"
            c.optimizer.decay_boundaries = (120 / 200, 160 / 200)  # x0.1 at epochs 120 and 160
            c.optimizer.decay_factor = 0.1
        else:
            c.optimizer.schedule = "warmup_cosine"
        c.train.checkpoint_every = 2000
        c.train.eval_every = 0
    else:
        raise ValueError(f"moco config arg {arg!r} is unknown; use one of digits, mnist, fashion_mnist, "
                         "cifar10, imagenet_v1, imagenet_v2.")
    return c

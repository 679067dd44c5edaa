"""Rotation-prediction configs: ``--config sslx/configs/rotation.py:<arg>``.

arg: ``digits`` (scikit-learn's 8x8 digits, about a minute on CPU), ``fashion_mnist`` (default; the
.npz arrays in a data dir, SmallConvNet, a few minutes on CPU), ``cifar10_subset`` (the first 4000
CIFAR-10 training images), ``cifar10`` and ``imagenet``.

Rotation-specific keys: ``method.head_hidden`` (classifier hidden widths; () = the linear
classifier of the paper's setting on top of the conv blocks) and ``method.probe_block`` (the block
``encode`` returns, 1-based; 0 = the encoder output / last block).

Departures from Gidaris et al. 2018, stated: the paper's CIFAR network is a 4-block NIN; here
ResNet-18 (CIFAR stem) whose 4 stages are the 4 blocks. Its ImageNet network is AlexNet, which sslx
does not have; here ResNet-50. The paper's step decay is used (CIFAR: lr x0.2 at epochs 30, 60, 80
of 100; ImageNet: x0.1 at 10, 20, 25 of 30).
"""
from __future__ import annotations

import ml_collections

from sslx.configs.common import apply_dataset_preset, base_config

ARGS = ("digits", "fashion_mnist", "cifar10_subset", "cifar10", "imagenet")


def get_config(arg: str = "fashion_mnist") -> ml_collections.ConfigDict:
    c = base_config()
    c.method.name = "rotation"
    del c.method.temperature
    del c.model.proj_hidden, c.model.proj_dim  # no projector: the classifier is method.head_hidden
    c.method.head_hidden = ()
    c.method.probe_block = 0
    # The view taken before rotating: a random crop and a flip, no colour changes.
    c.augment.jitter_p = 0.0
    c.augment.grayscale_p = 0.0
    c.augment.flip_p = 0.5
    arg = arg or "fashion_mnist"
    if arg == "digits":
        apply_dataset_preset(c, arg)
        c.batch_size = 128
        c.train.num_epochs = 30
        c.augment.crop_scale = (0.6, 1.0)
        c.optimizer.warmup_steps = 20
    elif arg == "fashion_mnist":
        apply_dataset_preset(c, arg)
        c.dataset.name = "fashion_mnist"
        c.batch_size = 128  # x4 rotations = 512 images per step
        c.train.num_epochs = 1
        c.augment.flip_p = 0.5
        c.model.encoder_kwargs = {"features": (32, 64, 128), "strides": (1, 2, 2)}
        c.augment.crop_scale = (0.6, 1.0)
        c.optimizer.warmup_steps = 50
        c.train.checkpoint_every = 500
        c.eval.knn_k = 20
    elif arg == "cifar10_subset":
        apply_dataset_preset(c, arg)
        c.batch_size = 128
        c.train.num_epochs = 30
        c.augment.crop_scale = (0.6, 1.0)
        c.eval.knn_k = 20
    elif arg == "cifar10":
        apply_dataset_preset(c, arg)
        # Gidaris et al. CIFAR-10: SGD, momentum 0.9, lr 0.1, weight decay 5e-4, batch 128 (x4 rotations),
        # 100 epochs; random crop + horizontal flip. Network: ResNet-18 CIFAR stem (not NIN).
        c.batch_size = 128
        c.train.num_epochs = 100
        c.augment.crop_scale = (0.64, 1.0)  # ~ a 4-px-padded random crop
        c.optimizer.name = "sgd"
        c.optimizer.lr = 0.1
        c.optimizer.momentum = 0.9
        c.optimizer.nesterov = True
        c.optimizer.weight_decay = 5e-4
        c.optimizer.warmup_steps = 0
        c.optimizer.schedule = "step"
        c.optimizer.decay_boundaries = (0.3, 0.6, 0.8)  # epochs 30, 60, 80 of 100
        c.optimizer.decay_factor = 0.2
        c.method.probe_block = 2  # the paper's best block on CIFAR (ConvB2); 0 for the last stage
    elif arg == "imagenet":
        apply_dataset_preset(c, arg)
        # Gidaris et al. ImageNet: SGD momentum 0.9, batch 192 (x4 rotations = 768 images), lr 0.01,
        # wd 5e-4, 30 epochs. Network: ResNet-50 (AlexNet is not available in sslx).
        c.batch_size = 192
        c.train.num_epochs = 30
        c.augment.crop_scale = (0.25, 1.0)
        c.optimizer.name = "sgd"
        c.optimizer.lr = 0.01
        c.optimizer.momentum = 0.9
        c.optimizer.nesterov = True
        c.optimizer.weight_decay = 5e-4
        c.optimizer.warmup_steps = 0
        c.optimizer.schedule = "step"
        c.optimizer.decay_boundaries = (10 / 30, 20 / 30, 25 / 30)  # epochs 10, 20, 25 of 30
        c.optimizer.decay_factor = 0.1
    else:
        raise ValueError(f"rotation config arg {arg!r} is unknown; use one of {', '.join(ARGS)}.")
    return c

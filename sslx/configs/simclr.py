"""SimCLR configs: ``--config sslx/configs/simclr.py:<arg>``.

arg: ``digits`` (default; scikit-learn's bundled 8x8 digits, minutes on CPU),
``fashion_mnist`` / ``mnist`` / ``cifar10_subset`` (the .npz arrays in a data
dir), ``cifar10`` (ResNet-18 CIFAR stem, tfds) and ``imagenet`` (ResNet-50,
tfds ``imagenet2012``; LARS, batch 4096, lr 0.3 x B/256, as in the paper).
"""
from __future__ import annotations

import ml_collections

from sslx.configs.common import apply_dataset_preset, base_config


def get_config(arg: str = "digits") -> ml_collections.ConfigDict:
    c = base_config()
    c.method.name = "simclr"
    c.method.temperature = 0.5
    arg = arg or "digits"
    if arg not in ("digits", "mnist", "fashion_mnist", "cifar10_subset", "cifar10", "imagenet"):
        raise ValueError(f"simclr config arg {arg!r} is unknown; use one of digits, mnist, fashion_mnist, "
                         "cifar10_subset, cifar10, imagenet.")
    apply_dataset_preset(c, arg)
    if arg == "digits":
        c.train.num_epochs = 120
        c.model.proj_hidden = (128,)
        c.model.proj_dim = 64
        c.optimizer.warmup_steps = 50
    elif arg in ("mnist", "fashion_mnist"):
        c.train.num_epochs = 2
        c.model.proj_hidden = (256,)
        c.model.proj_dim = 64
    elif arg == "cifar10_subset":
        c.train.num_epochs = 30
        c.model.proj_hidden = (256,)
        c.model.proj_dim = 64
    elif arg == "cifar10":
        # SimCLR appendix B.9: ResNet-18/50 CIFAR stem, batch 512-1024, LARS, t=0.5, no blur.
        c.batch_size = 512
        c.train.num_epochs = 800
        c.optimizer.name = "lars"
        c.optimizer.lr = 1.0
        c.optimizer.lr_batch_scaling = True
        c.optimizer.weight_decay = 1e-6
        c.optimizer.warmup_steps = 10 * (50000 // 512)
    elif arg == "imagenet":
        c.batch_size = 4096
        c.train.num_epochs = 100
        c.method.temperature = 0.1
        c.augment.jitter_strength = 1.0
        c.augment.blur_p = 0.5
        c.optimizer.name = "lars"
        c.optimizer.lr = 0.3
        c.optimizer.lr_batch_scaling = True
        c.optimizer.weight_decay = 1e-6
        c.optimizer.warmup_steps = 10 * (1281167 // 4096)
    return c

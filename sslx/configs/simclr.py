"""SimCLR configs: ``--config sslx/configs/simclr.py:<arg>``.

arg: ``digits`` (default; scikit-learn's bundled 8x8 digits, minutes on CPU),
``fashion_mnist`` / ``mnist`` / ``cifar10_subset`` (the .npz arrays in a data
dir), ``cifar10`` (ResNet-18 CIFAR stem, tfds) and ``imagenet`` (ResNet-50,
tfds ``imagenet2012``; LARS, batch 4096, lr 0.3 x B/256, as in the paper).
"""
from __future__ import annotations

import ml_collections

from sslx.configs.common import base_config


def get_config(arg: str = "digits") -> ml_collections.ConfigDict:
    c = base_config()
    c.method.name = "simclr"
    c.method.temperature = 0.5
    arg = arg or "digits"
    if arg == "digits":
        c.dataset.name = "digits"
        c.batch_size = 256
        c.train.num_epochs = 120
        c.model.encoder = "small_convnet"
        c.model.encoder_kwargs = {"features": (32, 64, 128), "strides": (1, 2, 1)}
        c.model.proj_hidden = (128,)
        c.model.proj_dim = 64
        c.augment.crop_size = 8
        c.augment.crop_scale = (0.4, 1.0)
        c.augment.flip_p = 0.0
        c.augment.jitter_strength = 0.5
        c.augment.grayscale_p = 0.0
        c.augment.blur_p = 0.0
        c.optimizer.name = "adamw"
        c.optimizer.lr = 2e-3
        c.optimizer.weight_decay = 1e-4
        c.optimizer.warmup_steps = 50
        c.train.checkpoint_every = 200
        c.train.eval_every = 0
        c.eval.knn_k = 20  # ~144 training images per class: k=200 would mix classes
    elif arg in ("mnist", "fashion_mnist"):
        c.dataset.name = arg
        c.batch_size = 256
        c.train.num_epochs = 2
        c.model.encoder = "small_convnet"
        c.model.encoder_kwargs = {"features": (32, 64, 128)}
        c.model.proj_hidden = (256,)
        c.model.proj_dim = 64
        c.augment.crop_size = 28
        c.augment.crop_scale = (0.3, 1.0)
        c.augment.flip_p = 0.0
        c.optimizer.name = "adamw"
        c.optimizer.lr = 2e-3
        c.optimizer.weight_decay = 1e-4
        c.optimizer.warmup_steps = 100
        c.eval.max_train_examples = 10000
    elif arg == "cifar10_subset":
        c.dataset.name = "cifar10_subset"
        c.batch_size = 256
        c.train.num_epochs = 30
        c.model.encoder = "resnet18"
        c.model.encoder_kwargs = {"stem": "cifar", "width": 16}
        c.model.proj_hidden = (256,)
        c.model.proj_dim = 64
        c.augment.crop_size = 32
        c.optimizer.name = "adamw"
        c.optimizer.lr = 1e-3
        c.optimizer.weight_decay = 1e-4
        c.optimizer.warmup_steps = 50
    elif arg == "cifar10":
        # SimCLR appendix B.9: ResNet-18/50 CIFAR stem, batch 512-1024, LARS, t=0.5, no blur.
        c.dataset.name = "cifar10"
        c.batch_size = 512
        c.train.num_epochs = 800
        c.model.encoder = "resnet18"
        c.model.encoder_kwargs = {"stem": "cifar"}
        c.model.proj_hidden = (2048,)
        c.model.proj_dim = 128
        c.augment.crop_size = 32
        c.optimizer.name = "lars"
        c.optimizer.lr = 1.0
        c.optimizer.lr_batch_scaling = True
        c.optimizer.weight_decay = 1e-6
        c.optimizer.warmup_steps = 10 * (50000 // 512)
        c.train.eval_every = 5000
    elif arg == "imagenet":
        c.dataset.name = "imagenet2012"
        c.dataset.eval_split = "validation"
        c.dataset.image_size = 256  # host: shorter side 256 + centre crop; device: random resized crop 224
        c.batch_size = 4096
        c.train.num_epochs = 100
        c.model.encoder = "resnet50"
        c.model.encoder_kwargs = {"stem": "imagenet"}
        c.model.dtype = "bfloat16"
        c.model.proj_hidden = (2048,)
        c.model.proj_dim = 128
        c.method.temperature = 0.1
        c.augment.crop_size = 224
        c.augment.jitter_strength = 1.0
        c.augment.blur_p = 0.5
        c.optimizer.name = "lars"
        c.optimizer.lr = 0.3
        c.optimizer.lr_batch_scaling = True
        c.optimizer.weight_decay = 1e-6
        c.optimizer.warmup_steps = 10 * (1281167 // 4096)
        c.train.checkpoint_every = 2000
        c.train.eval_every = 0
    else:
        raise ValueError(f"simclr config arg {arg!r} is unknown; use one of digits, mnist, fashion_mnist, "
                         "cifar10_subset, cifar10, imagenet.")
    return c

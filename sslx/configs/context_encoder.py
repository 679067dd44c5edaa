"""Context-encoder configs: ``--config sslx/configs/context_encoder.py:<arg>``.

arg: ``digits`` (default; scikit-learn's 8x8 digits, central 4 px hole), ``fashion_mnist``
(28x28, random blocks covering 1/4 of the image), ``cifar10_subset`` (32x32, random
blocks), ``cifar10`` (32x32, central 16 px block) and ``imagenet`` (the paper's
inpainting setting: 128x128 input, central 64x64 predicted block with a 7 px overlap
(erased 50x50), L_rec / L_adv weights 0.999 / 0.001, overlap weight 10, Adam lr 2e-4
beta1 0.5 for both networks, batch 64 as in the released code).

Context-encoder keys: ``model.gen_features`` (widths of the generator's stride-2 convs;
the image side must be divisible by ``2**len``), ``model.disc_features``,
``method.mask_mode`` (``central`` / ``random_blocks`` / ``random_shape``),
``method.hole_size`` (central: side of the predicted block; 0 = half the image),
``method.overlap`` (px) and ``method.overlap_weight`` (10), ``method.mask_fraction``,
``method.min_block`` / ``max_block`` / ``max_blocks`` (random blocks),
``method.shape_grid`` (random shapes: noise lattice side), ``method.lambda_rec`` /
``lambda_adv`` and ``method.fill_value`` (hole fill in [-1, 1]; 0 = mid-grey).
``optimizer.parts`` gives the generator and the discriminator separate Adam states
(overrides per part, e.g. ``{"discriminator": {"lr": 1e-4}}``). ``augment`` is unused:
the only input transform is the mask.
"""
from __future__ import annotations

import ml_collections

from sslx.configs.common import apply_dataset_preset, base_config


def _adam(c: ml_collections.ConfigDict, lr: float) -> None:
    c.optimizer.name = "adamw"
    c.optimizer.lr = lr
    c.optimizer.b1 = 0.5
    c.optimizer.b2 = 0.999
    c.optimizer.weight_decay = 0.0
    c.optimizer.schedule = "constant"
    c.optimizer.warmup_steps = 0
    c.optimizer.parts = {"generator": {}, "discriminator": {}}


def _preset(c: ml_collections.ConfigDict, arg: str) -> None:
    """The shared dataset preset, minus its encoder choice (the networks are model.gen_features etc.)."""
    apply_dataset_preset(c, arg)
    c.model.encoder = "context_encoder"  # informational (benchmark output)
    c.model.encoder_kwargs = {}
    c.model.dtype = "float32"


def get_config(arg: str = "digits") -> ml_collections.ConfigDict:
    c = base_config()
    c.method.name = "context_encoder"
    del c.method.temperature
    del c.model.proj_hidden
    del c.model.proj_dim
    c.method.mask_mode = "central"
    c.method.hole_size = 0
    c.method.overlap = 1
    c.method.overlap_weight = 10.0
    c.method.mask_fraction = 0.25
    c.method.min_block = 1
    c.method.max_block = 4
    c.method.max_blocks = 16
    c.method.shape_grid = 4
    c.method.lambda_rec = 0.999
    c.method.lambda_adv = 0.001
    c.method.fill_value = 0.0
    arg = arg or "digits"
    if arg == "digits":
        _preset(c, arg)
        c.batch_size = 256
        c.train.num_epochs = 40  # ~200 steps
        c.model.gen_features = (32, 64)       # 8 -> 4 -> 2x2x64 bottleneck
        c.model.disc_features = (32, 64)      # on the 4x4 predicted block
        c.method.hole_size = 4                # predict the central 4x4, erase its inner 2x2
        c.method.overlap = 1
        c.augment.crop_size = 8
        _adam(c, 1e-3)
    elif arg in ("mnist", "fashion_mnist"):
        _preset(c, arg)
        c.batch_size = 256
        c.train.num_epochs = 2
        c.model.gen_features = (64, 128)      # 28 -> 14 -> 7x7x128 bottleneck; 128-d features
        c.model.disc_features = (32, 64, 128)
        c.method.mask_mode = "random_blocks"
        c.method.mask_fraction = 0.25
        c.method.min_block = 4
        c.method.max_block = 10
        c.method.overlap = 1
        c.augment.crop_size = 28
        _adam(c, 1e-3)
    elif arg == "cifar10_subset":
        _preset(c, arg)
        c.batch_size = 128
        c.train.num_epochs = 30
        c.model.gen_features = (64, 128, 256)  # 32 -> 4x4x256
        c.model.disc_features = (64, 128, 256)
        c.method.mask_mode = "random_blocks"
        c.method.min_block = 4
        c.method.max_block = 12
        c.method.overlap = 2
        c.augment.crop_size = 32
        _adam(c, 5e-4)
    elif arg == "cifar10":
        _preset(c, arg)
        c.batch_size = 128
        c.train.num_epochs = 100
        c.model.gen_features = (64, 128, 256, 512)  # 32 -> 2x2x512
        c.model.disc_features = (64, 128, 256)      # on the 16x16 predicted block
        c.method.hole_size = 16
        c.method.overlap = 2
        c.augment.crop_size = 32
        _adam(c, 2e-4)
    elif arg == "imagenet":
        # Pathak et al. 2016 / the released code: 128x128 input, central 64x64 predicted block (7 px overlap
        # in the paper; the code uses 4), loss weights 0.999 / 0.001, 10x overlap weight, Adam lr 2e-4
        # beta1 0.5 for G and D, batch 64, 25 epochs. The paper's encoder is AlexNet-like (pool5 6x6x256 at
        # 227 px); here 5 stride-2 convs (64, 64, 128, 256, 512) -> 4x4x512, as in the released DCGAN-style
        # code, with the channel-wise FC bottleneck of the paper.
        _preset(c, arg)
        c.dataset.image_size = 128  # host: shorter side 128 + centre crop
        c.batch_size = 64
        c.train.num_epochs = 25
        c.model.gen_features = (64, 64, 128, 256, 512)
        c.model.disc_features = (64, 128, 256, 512)
        c.method.hole_size = 64
        c.method.overlap = 7
        c.augment.crop_size = 128
        _adam(c, 2e-4)
        c.train.checkpoint_every = 5000
    else:
        raise ValueError(f"context_encoder config arg {arg!r} is unknown; use one of digits, mnist, "
                         "fashion_mnist, cifar10_subset, cifar10, imagenet.")
    return c

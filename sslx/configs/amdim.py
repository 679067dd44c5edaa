"""AMDIM configs: ``--config sslx/configs/amdim.py:<arg>``.

arg: ``digits`` (default; 8x8 digits, about a minute on CPU), ``fashion_mnist`` (views
resized to 32 px, the 32 px encoder), ``cifar10`` and ``imagenet`` (128 px).

AMDIM-specific keys: ``model.amdim`` (kwargs of :class:`sslx.models.AMDIMEncoder`: ``ndf``,
``n_rkhs`` (the common embedding dim D), ``n_depth`` (conv + residual 1x1 blocks per stage),
``stages``, ``local_stages``), ``method.pairs`` (``"1->5", "1->7", "5->5"``), ``method.tclip``
(20) and ``method.reg_weight`` (5e-2), the reference code's defaults.

Reference settings, checked against amdim-public's ``train.py`` defaults and README: Adam
lr 2e-4, tclip 20, mixed precision (``--amp``); defaults ndf 128, n_rkhs 1024, n_depth 3
(batch 200), used here for CIFAR-10 with the 32 px encoder (7x7, 5x5 and 1x1 outputs);
ImageNet 128 px with the README's 4-GPU command: ndf 192, n_rkhs 1536, n_depth 8, batch 480.
The paper's largest model (ndf 320, n_rkhs 2560, n_depth 10) is ``imagenet_large`` (sizes
from the paper, not in the repository's commands). Eval on the centre 128 crop of a 146 px resize.
Augmentation (reference ``TransformsC10`` / ``TransformsImageNet128``): random resized crop,
horizontal flip, colour jitter (0.4, 0.4, 0.4, 0.1) with p 0.8, grayscale with p 0.25.
The reference's random spatial masks for the 5->5 source vector are not implemented
(the source is the max over all locations).
"""
from __future__ import annotations

import ml_collections

from sslx.configs.common import base_config
from sslx.models.amdim import AMDIM_8, AMDIM_32, AMDIM_128


def _amdim_common(c: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
    c.method.name = name
    del c.method.temperature  # AMDIM scores are dot products / sqrt(D), clipped, no temperature
    c.method.pairs = ("1->5", "1->7", "5->5")
    c.method.tclip = 20.0
    c.method.reg_weight = 5e-2
    c.model.encoder = "amdim"  # informational: the method builds AMDIMEncoder from model.amdim
    del c.model.proj_hidden, c.model.proj_dim  # no projector: the encoder's NIN heads embed
    c.model.encoder_kwargs = {}
    # AMDIM's augmentation: jitter (0.4, 0.4, 0.4, 0.1) p 0.8 (strength 0.5), grayscale p 0.25.
    c.augment.jitter_p = 0.8
    c.augment.jitter_strength = 0.5
    c.augment.grayscale_p = 0.25
    c.augment.flip_p = 0.5
    c.optimizer.name = "adamw"  # weight decay 0: Adam, as in the reference
    c.optimizer.lr = 2e-4
    c.optimizer.weight_decay = 0.0
    c.optimizer.schedule = "warmup_cosine"
    return c


def get_config(arg: str = "digits", name: str = "amdim") -> ml_collections.ConfigDict:
    c = _amdim_common(base_config(), name)
    arg = arg or "digits"
    if arg == "digits":
        c.dataset.name = "digits"
        c.batch_size = 256
        c.train.num_epochs = 40
        c.model.amdim = dict(ndf=16, n_rkhs=64, n_depth=1, **AMDIM_8)  # outputs 1x1, 2x2, 4x4
        c.augment.crop_size = 8
        c.augment.crop_scale = (0.4, 1.0)
        c.augment.flip_p = 0.0
        c.augment.grayscale_p = 0.0
        c.optimizer.lr = 2e-3
        c.optimizer.warmup_steps = 20
        c.train.checkpoint_every = 200
        c.eval.knn_k = 20
    elif arg == "fashion_mnist":
        c.dataset.name = "fashion_mnist"
        c.batch_size = 256
        c.train.num_epochs = 2
        c.model.amdim = dict(ndf=32, n_rkhs=256, n_depth=1, **AMDIM_32)  # 28 px resized to 32: 1, 5, 7
        c.augment.crop_size = 32
        c.augment.crop_scale = (0.3, 1.0)
        c.augment.flip_p = 0.0
        c.augment.grayscale_p = 0.0
        c.optimizer.lr = 1e-3
        c.optimizer.warmup_steps = 100
        c.eval.max_train_examples = 10000
    elif arg == "cifar10":
        # Reference 32 px encoder; ndf 128 / n_rkhs 1024 / n_depth 3 (amdim-public train.py defaults).
        c.dataset.name = "cifar10"
        c.batch_size = 256  # reference ~200-480; a multiple of 8 devices here
        c.train.num_epochs = 150
        c.model.amdim = dict(ndf=128, n_rkhs=1024, n_depth=3, **AMDIM_32)  # outputs 1x1, 5x5, 7x7
        c.augment.crop_size = 32
        c.augment.crop_scale = (0.3, 1.0)
        c.optimizer.lr = 2e-4
        c.optimizer.warmup_steps = 500
        c.train.eval_every = 5000
    elif arg in ("imagenet", "imagenet_large"):
        # amdim-public README (4 V100s): ndf 192, n_rkhs 1536, n_depth 8, batch 480, tclip 20, --amp.
        # imagenet_large: the paper's largest model, ndf 320, n_rkhs 2560, n_depth 10.
        c.dataset.name = "imagenet2012"
        c.dataset.eval_split = "validation"
        c.dataset.image_size = 146  # host: shorter side 146 + centre crop; eval: centre 128 crop (encode)
        c.batch_size = 480
        c.train.num_epochs = 150
        c.model.dtype = "bfloat16"  # the reference trains with apex mixed precision
        size = dict(ndf=320, n_rkhs=2560, n_depth=10) if arg == "imagenet_large" else \
            dict(ndf=192, n_rkhs=1536, n_depth=8)
        c.model.amdim = dict(**size, **AMDIM_128)  # outputs 1x1, 5x5, 7x7
        c.augment.crop_size = 128
        c.augment.crop_scale = (0.08, 1.0)
        c.optimizer.lr = 2e-4
        c.optimizer.warmup_steps = 1000
        c.train.checkpoint_every = 2000
    else:
        raise ValueError(f"{name} config arg {arg!r} is unknown; use one of digits, fashion_mnist, cifar10, "
                         "imagenet, imagenet_large.")
    return c

"""SwAV configs: ``--config sslx/configs/swav.py:<arg>``.

arg: ``digits`` (default; scikit-learn's 8x8 digits, 2x8 px + 2x6 px crops, K=30, about a minute
on CPU), ``fashion_mnist`` / ``mnist`` (small CPU configs), ``cifar10`` (ResNet-18 CIFAR stem,
2x32 + 4x16 crops, K=3000) and ``imagenet`` (ResNet-50, 2x224 + 6x96 crops, K=3000, batch 4096,
LARS lr 4.8, wd 1e-6, temperature 0.1, eps 0.05, prototypes frozen for the first epoch).

SwAV-specific keys:
  ``augment.multicrop``: tuple of ``(num, size, (scale_lo, scale_hi))`` groups; the **first group
    are the large crops** whose Sinkhorn codes are predicted by every other crop. Every crop uses
    the other ``augment`` keys; ``augment.crop_size`` / ``crop_scale`` are not used by SwAV
    (kept equal to the large crops for tools that read them).
  ``method.num_prototypes`` K, ``method.temperature`` (0.1), ``method.sinkhorn_eps`` (0.05),
  ``method.sinkhorn_iters`` (3), ``method.freeze_prototypes_steps`` (prototypes get no gradient
    while the step is below it; the paper: 1 epoch).
"""
from __future__ import annotations

import ml_collections

from sslx.configs.common import apply_dataset_preset, base_config


def get_config(arg: str = "digits") -> ml_collections.ConfigDict:
    c = base_config()
    c.method.name = "swav"
    c.method.temperature = 0.1
    c.method.num_prototypes = 3000
    c.method.sinkhorn_eps = 0.05
    c.method.sinkhorn_iters = 3
    c.method.freeze_prototypes_steps = 0
    arg = arg or "digits"
    if arg == "digits":
        apply_dataset_preset(c, arg)
        c.train.num_epochs = 40
        c.model.proj_hidden = (128,)
        c.model.proj_dim = 32
        c.method.num_prototypes = 30
        c.method.freeze_prototypes_steps = 5  # ~1 epoch of 1437 images at batch 256
        c.augment.multicrop = ((2, 8, (0.4, 1.0)), (2, 6, (0.2, 0.5)))
        c.augment.jitter_strength = 0.5
        c.optimizer.warmup_steps = 10
        c.train.eval_every = 0
    elif arg in ("mnist", "fashion_mnist"):
        apply_dataset_preset(c, arg)
        c.train.num_epochs = 2
        c.model.proj_hidden = (256,)
        c.model.proj_dim = 64
        c.method.num_prototypes = 100
        c.method.freeze_prototypes_steps = 60000 // 256
        c.augment.multicrop = ((2, 28, (0.3, 1.0)), (4, 14, (0.1, 0.3)))
    elif arg == "cifar10":
        apply_dataset_preset(c, arg)
        # No CIFAR numbers in the SwAV paper. This is solo-learn's SwAV CIFAR-10 recipe, checked against
        # its scripts/pretrain/cifar/swav.yaml + augmentations/symmetric.yaml: ResNet-18, batch 256, LARS
        # lr 0.6 (per 256), trust coefficient eta 0.02, wd 1e-6, warmup-cosine, 1000 epochs, projector
        # 2048 -> 128, K = 3000, temperature 0.1, prototypes frozen for 2 epochs, feature queue of 3840
        # from epoch 50; two 32 px crops (scale 0.08-1), colour jitter (0.8, 0.8, 0.8, 0.2) p 0.8,
        # grayscale 0.2, blur 0.5, flip 0.5. (solo-learn also clips LARS's local lr; optax.lars cannot.)
        # Small crops are an option: e.g. augment.multicrop = ((2, 32, (0.14, 1)), (4, 16, (0.05, 0.14))).
        steps_per_epoch = 50000 // 256
        c.batch_size = 256
        c.train.num_epochs = 1000
        c.model.proj_hidden = (2048,)
        c.model.proj_dim = 128
        c.method.num_prototypes = 3000
        c.method.freeze_prototypes_steps = 2 * steps_per_epoch
        c.method.queue_length = 3840
        c.method.queue_start_steps = 50 * steps_per_epoch
        c.augment.crop_scale = (0.08, 1.0)
        c.augment.multicrop = ((2, 32, (0.08, 1.0)),)
        c.augment.jitter_strength = 1.0
        c.augment.blur_p = 0.5
        c.optimizer.name = "lars"
        c.optimizer.lr = 0.6
        c.optimizer.lr_batch_scaling = True
        c.optimizer.weight_decay = 1e-6
        c.optimizer.trust_coefficient = 0.02
        c.optimizer.warmup_steps = 10 * steps_per_epoch
    elif arg == "imagenet":
        apply_dataset_preset(c, arg)
        # SwAV paper (Sec. 4, App. A) / facebookresearch/swav 800-epoch batch-4096 run: ResNet-50, multi-crop
        # 2x224 (scale 0.14-1) + 6x96 (scale 0.05-0.14), K=3000, projector 2048 -> 128, temperature 0.1,
        # Sinkhorn eps 0.05 x 3 iterations, LARS (trust 0.001) lr 4.8 with 10 warmup epochs then cosine to
        # 0.0048, wd 1e-6, prototypes frozen for the first epoch, colour distortion s = 1.0, blur p 0.5.
        c.batch_size = 4096
        c.train.num_epochs = 800
        c.model.proj_hidden = (2048,)
        c.model.proj_dim = 128
        c.method.num_prototypes = 3000
        c.method.freeze_prototypes_steps = 1281167 // 4096
        c.augment.crop_scale = (0.14, 1.0)
        c.augment.multicrop = ((2, 224, (0.14, 1.0)), (6, 96, (0.05, 0.14)))
        c.augment.jitter_strength = 1.0
        c.augment.blur_p = 0.5
        c.optimizer.name = "lars"
        c.optimizer.lr = 4.8
        c.optimizer.lr_batch_scaling = False  # 4.8 is the batch-4096 value
        c.optimizer.weight_decay = 1e-6
        c.optimizer.trust_coefficient = 0.001
        c.optimizer.end_lr_factor = 0.001
        c.optimizer.warmup_steps = 10 * (1281167 // 4096)
    else:
        raise ValueError(f"swav config arg {arg!r} is unknown; use one of digits, mnist, fashion_mnist, "
                         "cifar10, imagenet.")
    return c

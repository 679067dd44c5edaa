"""BYOL configs: ``--config sslx/configs/byol.py:<arg>``.

arg: ``digits`` (default; scikit-learn's bundled 8x8 digits, about a minute on CPU),
``fashion_mnist`` / ``mnist`` (small CPU configs on the .npz arrays in a data dir),
``cifar10`` (ResNet-18 CIFAR stem, LARS, batch 512) and ``imagenet`` (ResNet-50,
LARS, batch 4096, lr 0.2 x B/256, wd 1.5e-6, tau 0.996, 1000 epochs, as in the paper).

BYOL-specific keys: ``method.tau_base`` (EMA rate at step 0, rising to 1 on a cosine),
``model.pred_hidden`` (predictor hidden widths; its output is ``model.proj_dim``) and
``method.view2_augment`` (overrides of ``augment`` for the second view: the paper's
asymmetric blur / solarisation).
"""
from __future__ import annotations

import ml_collections

from sslx.configs.common import apply_dataset_preset, base_config


def get_config(arg: str = "digits") -> ml_collections.ConfigDict:
    c = base_config()
    c.method.name = "byol"
    del c.method.temperature  # not used by BYOL
    c.method.tau_base = 0.996
    c.method.view2_augment = {}
    c.model.pred_hidden = (4096,)
    arg = arg or "digits"
    if arg == "digits":
        apply_dataset_preset(c, arg)
        c.train.num_epochs = 40  # ~200 steps; each is ~2x a SimCLR step (target forward + predictor)
        c.model.proj_hidden = (128,)
        c.model.proj_dim = 64
        c.model.pred_hidden = (128,)
        c.method.tau_base = 0.99  # short run: a faster-moving target
        c.augment.jitter_strength = 0.5
        c.optimizer.warmup_steps = 20
        c.train.eval_every = 0
    elif arg in ("mnist", "fashion_mnist"):
        apply_dataset_preset(c, arg)
        c.train.num_epochs = 2
        c.model.proj_hidden = (256,)
        c.model.proj_dim = 64
        c.model.pred_hidden = (256,)
        c.method.tau_base = 0.99
    elif arg == "cifar10":
        apply_dataset_preset(c, arg)
        # No CIFAR numbers in the BYOL paper; these follow solo-learn's BYOL CIFAR-10 recipe (checked
        # against its scripts/pretrain/cifar/byol.yaml + augmentations/asymmetric.yaml)
        # (~92-93% linear probe, ResNet-18, 1000 epochs): LARS lr 1.0 per 256 images (2.0 at
        # batch 512 by linear scaling), trust coefficient eta 0.02, wd 1e-5, biases/BN excluded from
        # decay and trust ratio, 10 warmup epochs, tau_base 0.99, projector and predictor 4096 -> 256,
        # colour jitter (0.4, 0.4, 0.2, 0.1) p 0.8, grayscale 0.2, no blur, solarize p (0.0, 0.2).
        # solo-learn also clips LARS's local lr (clip_lr); optax.lars has no such option.
        c.batch_size = 512
        c.train.num_epochs = 1000
        c.model.proj_hidden = (4096,)
        c.model.proj_dim = 256
        c.model.pred_hidden = (4096,)
        c.method.tau_base = 0.99
        c.augment.jitter_strength = 0.5  # brightness = contrast = saturation 0.4 (BYOL: saturation 0.2), hue 0.1
        c.augment.blur_p = 0.0
        c.method.view2_augment = {"solarize_p": 0.2}
        c.optimizer.name = "lars"
        c.optimizer.lr = 1.0
        c.optimizer.lr_batch_scaling = True
        c.optimizer.weight_decay = 1e-5
        c.optimizer.trust_coefficient = 0.02
        c.optimizer.warmup_steps = 10 * (50000 // 512)
    elif arg == "imagenet":
        apply_dataset_preset(c, arg)
        # BYOL paper, Sec. 3.3 / App. B-C: ResNet-50, batch 4096, LARS (biases and BN excluded from decay
        # and trust ratio, eta 1e-3), lr 0.2 x B/256 with 10 warmup epochs then cosine, wd 1.5e-6,
        # tau_base 0.996, 1000 epochs, projector/predictor 4096 -> 256; view 1 blur p 1.0 / solarize 0.0,
        # view 2 blur p 0.1 / solarize 0.2.
        # Limitation: sslx's colour jitter ties saturation to brightness/contrast (0.8 s), so s = 0.5 gives
        # (0.4, 0.4, 0.4, 0.1) instead of BYOL's (0.4, 0.4, 0.2, 0.1).
        c.batch_size = 4096
        c.train.num_epochs = 1000
        c.model.proj_hidden = (4096,)
        c.model.proj_dim = 256
        c.model.pred_hidden = (4096,)
        c.method.tau_base = 0.996
        c.augment.jitter_strength = 0.5
        c.augment.blur_p = 1.0
        c.augment.solarize_p = 0.0
        c.method.view2_augment = {"blur_p": 0.1, "solarize_p": 0.2}
        c.optimizer.name = "lars"
        c.optimizer.lr = 0.2
        c.optimizer.lr_batch_scaling = True
        c.optimizer.weight_decay = 1.5e-6
        c.optimizer.trust_coefficient = 0.001
        c.optimizer.warmup_steps = 10 * (1281167 // 4096)
    else:
        raise ValueError(f"byol config arg {arg!r} is unknown; use one of digits, mnist, fashion_mnist, "
                         "cifar10, imagenet.")
    return c

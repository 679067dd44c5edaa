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

from sslx.configs.common import base_config


def get_config(arg: str = "digits") -> ml_collections.ConfigDict:
    c = base_config()
    c.method.name = "byol"
    del c.method.temperature  # not used by BYOL
    c.method.tau_base = 0.996
    c.method.view2_augment = {}
    c.model.pred_hidden = (4096,)
    arg = arg or "digits"
    if arg == "digits":
        c.dataset.name = "digits"
        c.batch_size = 256
        c.train.num_epochs = 40  # ~200 steps; each is ~2x a SimCLR step (target forward + predictor)
        c.model.encoder = "small_convnet"
        c.model.encoder_kwargs = {"features": (32, 64, 128), "strides": (1, 2, 1)}
        c.model.proj_hidden = (128,)
        c.model.proj_dim = 64
        c.model.pred_hidden = (128,)
        c.method.tau_base = 0.99  # short run: a faster-moving target
        c.augment.crop_size = 8
        c.augment.crop_scale = (0.4, 1.0)
        c.augment.flip_p = 0.0
        c.augment.jitter_strength = 0.5
        c.augment.grayscale_p = 0.0
        c.augment.blur_p = 0.0
        c.optimizer.name = "adamw"
        c.optimizer.lr = 2e-3
        c.optimizer.weight_decay = 1e-4
        c.optimizer.warmup_steps = 20
        c.train.checkpoint_every = 200
        c.train.eval_every = 0
        c.eval.knn_k = 20  # ~144 training images per class
    elif arg in ("mnist", "fashion_mnist"):
        c.dataset.name = arg
        c.batch_size = 256
        c.train.num_epochs = 2
        c.model.encoder = "small_convnet"
        c.model.encoder_kwargs = {"features": (32, 64, 128)}
        c.model.proj_hidden = (256,)
        c.model.proj_dim = 64
        c.model.pred_hidden = (256,)
        c.method.tau_base = 0.99
        c.augment.crop_size = 28
        c.augment.crop_scale = (0.3, 1.0)
        c.augment.flip_p = 0.0
        c.optimizer.name = "adamw"
        c.optimizer.lr = 2e-3
        c.optimizer.weight_decay = 1e-4
        c.optimizer.warmup_steps = 100
        c.eval.max_train_examples = 10000
    elif arg == "cifar10":
        # No CIFAR numbers in the BYOL paper; these follow solo-learn's BYOL CIFAR-10 recipe (checked
        # against its scripts/pretrain/cifar/byol.yaml + augmentations/asymmetric.yaml)
        # (~92-93% linear probe, ResNet-18, 1000 epochs): LARS lr 1.0 per 256 images (2.0 at
        # batch 512 by linear scaling), trust coefficient eta 0.02, wd 1e-5, biases/BN excluded from
        # decay and trust ratio, 10 warmup epochs, tau_base 0.99, projector and predictor 4096 -> 256,
        # colour jitter (0.4, 0.4, 0.2, 0.1) p 0.8, grayscale 0.2, no blur, solarize p (0.0, 0.2).
        # solo-learn also clips LARS's local lr (clip_lr); optax.lars has no such option.
        c.dataset.name = "cifar10"
        c.batch_size = 512
        c.train.num_epochs = 1000
        c.model.encoder = "resnet18"
        c.model.encoder_kwargs = {"stem": "cifar"}
        c.model.proj_hidden = (4096,)
        c.model.proj_dim = 256
        c.model.pred_hidden = (4096,)
        c.method.tau_base = 0.99
        c.augment.crop_size = 32
        c.augment.jitter_strength = 0.5  # brightness = contrast = saturation 0.4 (BYOL: saturation 0.2), hue 0.1
        c.augment.blur_p = 0.0
        c.method.view2_augment = {"solarize_p": 0.2}
        c.optimizer.name = "lars"
        c.optimizer.lr = 1.0
        c.optimizer.lr_batch_scaling = True
        c.optimizer.weight_decay = 1e-5
        c.optimizer.trust_coefficient = 0.02
        c.optimizer.warmup_steps = 10 * (50000 // 512)
        c.train.eval_every = 5000
    elif arg == "imagenet":
        # BYOL paper, Sec. 3.3 / App. B-C: ResNet-50, batch 4096, LARS (biases and BN excluded from decay
        # and trust ratio, eta 1e-3), lr 0.2 x B/256 with 10 warmup epochs then cosine, wd 1.5e-6,
        # tau_base 0.996, 1000 epochs, projector/predictor 4096 -> 256; view 1 blur p 1.0 / solarize 0.0,
        # view 2 blur p 0.1 / solarize 0.2.
        # Limitation: sslx's colour jitter ties saturation to brightness/contrast (0.8 s), so s = 0.5 gives
        # (0.4, 0.4, 0.4, 0.1) instead of BYOL's (0.4, 0.4, 0.2, 0.1).
        c.dataset.name = "imagenet2012"
        c.dataset.eval_split = "validation"
        c.dataset.image_size = 256  # host: shorter side 256 + centre crop; device: random resized crop 224
        c.batch_size = 4096
        c.train.num_epochs = 1000
        c.model.encoder = "resnet50"
        c.model.encoder_kwargs = {"stem": "imagenet"}
        c.model.dtype = "bfloat16"
        c.model.proj_hidden = (4096,)
        c.model.proj_dim = 256
        c.model.pred_hidden = (4096,)
        c.method.tau_base = 0.996
        c.augment.crop_size = 224
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
        c.train.checkpoint_every = 2000
        c.train.eval_every = 0
    else:
        raise ValueError(f"byol config arg {arg!r} is unknown; use one of digits, mnist, fashion_mnist, "
                         "cifar10, imagenet.")
    return c

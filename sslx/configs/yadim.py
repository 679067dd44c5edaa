"""YADIM configs (Falcon & Cho 2020): ``--config sslx/configs/yadim.py:<arg>``.

The AMDIM encoder and configs of :mod:`sslx.configs.amdim` (args ``digits``,
``fashion_mnist``, ``cifar10``, ``imagenet``) with

* ``method.pairs = ("1->1",)``: a single NCE comparison of the last feature maps (the
  encoder's final 1x1 map) of the two views, with AMDIM's clip / score penalty;
* augmentation = the union of CPC's and AMDIM's pipelines, approximated with the
  available transforms: random resized crop (wider scale range), horizontal flip,
  colour jitter p 0.8, grayscale p 0.25 (AMDIM) plus CPC v2's stronger colour
  jitter (strength 1.0 on RGB data). Missing: CPC's patch grid (overlapping
  patches, per-patch augmentation), its colour dropping of channels, elastic
  deformations and AutoAugment-style policies; AMDIM's random translations for CIFAR.
"""
from __future__ import annotations

import ml_collections

from sslx.configs import amdim as amdim_cfg


def get_config(arg: str = "digits") -> ml_collections.ConfigDict:
    try:
        c = amdim_cfg.get_config(arg, name="yadim")
    except ValueError as e:
        raise ValueError(str(e)) from None
    c.method.pairs = ("1->1",)
    arg = arg or "digits"
    c.augment.crop_scale = (0.08, 1.0) if arg in ("cifar10", "imagenet") else (0.3, 1.0)
    if arg in ("cifar10", "imagenet"):
        c.augment.jitter_strength = 1.0  # CPC v2-style colour distortion on top of AMDIM's
    return c

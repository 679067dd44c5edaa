"""GMI configs: ``--config sslx/configs/gmi.py:<arg>``, arg ``cora`` (default) or ``citeseer``.

Peng et al. 2020 (the authors' execute.py): GCN 512 + PReLU (two layers on Cora, one on
CiteSeer and PubMed), 5 negatives, term weights alpha 0.8 (I(h_i; x_i)), beta 1.0
(neighbourhood), gamma 1.0 (edge MI), critic scores squashed by a sigmoid before the JSD
(their Discriminator), Adam lr 1e-3, no weight decay, early stopping on the training loss
(patience 20, at most 550 epochs). Probe: the DGI protocol (the authors' probe uses lr 1e-3
with weight decay 1e-5 and picks its number of epochs by accuracy on the test nodes).
The edge term samples 16 non-edge pairs per node (``method.edge_negative_samples=0``: the
paper's dense ``N x N`` term, ~25% slower on Cora).
"""
from __future__ import annotations

import ml_collections

from sslx.configs.common import node_level_config

_FEATURES = {"cora": (512, 512), "citeseer": (512,)}


def get_config(arg: str = "cora") -> ml_collections.ConfigDict:
    arg = arg or "cora"
    if arg not in _FEATURES:
        raise ValueError(f"gmi config arg {arg!r} is unknown; use one of {', '.join(_FEATURES)}.")
    c = node_level_config("gmi", arg, features=_FEATURES[arg], lr=1e-3, max_epochs=550, patience=20)
    c.method.alpha = 0.8
    c.method.beta = 1.0
    c.method.gamma = 1.0
    c.method.num_negatives = 5
    c.method.critic_sigmoid = True  # the authors' Discriminator: sigmoid(bilinear) before the JSD
    c.method.edge_negative_samples = 16  # 0: the dense N x N edge term of the paper
    return c

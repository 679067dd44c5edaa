"""GMI configs: ``--config sslx/configs/gmi.py:<arg>``, arg ``cora`` (default) or ``citeseer``.

Peng et al. 2020 (the authors' execute.py): GCN 512 + PReLU (two layers on Cora, one on
CiteSeer and PubMed), 5 negatives, term weights alpha 0.8 (I(h_i; x_i)), beta 1.0
(neighbourhood), gamma 1.0 (edge MI), Adam lr 1e-3, no weight decay, early stopping on the
training loss (patience 20, at most 550 epochs). Probe: the DGI protocol (the authors tune
the probe's epochs and use lr 1e-3 with weight decay 1e-5 instead).
"""
from __future__ import annotations

import ml_collections

from sslx.configs.common import base_config

_FEATURES = {"cora": (512, 512), "citeseer": (512,)}


def get_config(arg: str = "cora") -> ml_collections.ConfigDict:
    arg = arg or "cora"
    if arg not in _FEATURES:
        raise ValueError(f"gmi config arg {arg!r} is unknown; use one of {', '.join(_FEATURES)}.")
    c = base_config()
    c.method.name = "gmi"
    del c.method.temperature
    c.method.alpha = 0.8
    c.method.beta = 1.0
    c.method.gamma = 1.0
    c.method.num_negatives = 5
    c.method.edge_negative_samples = 16  # 0: the dense N x N edge term of the paper
    c.dataset.name = arg
    c.dataset.normalize_features = True
    c.batch_size = 1
    c.model.encoder = "gcn"
    c.model.features = _FEATURES[arg]
    c.optimizer.name = "adamw"
    c.optimizer.lr = 1e-3
    c.optimizer.weight_decay = 0.0
    c.optimizer.schedule = "constant"
    c.optimizer.warmup_steps = 0
    c.train.max_epochs = 550
    c.train.patience = 20
    c.eval.probe_runs = 50
    c.eval.probe_epochs = 100
    c.eval.probe_lr = 0.01
    c.eval.probe_weight_decay = 0.0
    return c

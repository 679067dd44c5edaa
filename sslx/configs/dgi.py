"""DGI configs: ``--config sslx/configs/dgi.py:<arg>``, arg ``cora`` (default) or ``citeseer``.

The paper's transductive setting (Velickovic et al. 2019, Sec. 4.3): row-normalised
features, one GCN layer of 512 units with PReLU, Adam lr 1e-3 without weight decay,
full-graph steps with early stopping on the training loss (patience 20, at most 10000
epochs); probe: logistic regression (Adam lr 0.01, 100 epochs) on the public train nodes,
test accuracy over 50 runs. (The paper uses 256 units on PubMed for memory reasons.)

Graph keys: ``dataset.normalize_features``, ``model.features`` (GCN widths),
``model.add_self_loops``, ``train.max_epochs``, ``train.patience``, ``eval.probe_runs``,
``eval.probe_lr``, ``eval.probe_weight_decay``.
"""
from __future__ import annotations

import ml_collections

from sslx.configs.common import base_config

DATASETS = ("cora", "citeseer")


def get_config(arg: str = "cora") -> ml_collections.ConfigDict:
    arg = arg or "cora"
    if arg not in DATASETS:
        raise ValueError(f"dgi config arg {arg!r} is unknown; use one of {', '.join(DATASETS)}.")
    c = base_config()
    c.method.name = "dgi"
    del c.method.temperature
    c.dataset.name = arg
    c.dataset.normalize_features = True
    c.batch_size = 1  # one full graph per step
    c.model.encoder = "gcn"
    c.model.features = (512,)
    c.model.add_self_loops = True
    c.optimizer.name = "adamw"
    c.optimizer.lr = 1e-3
    c.optimizer.weight_decay = 0.0
    c.optimizer.schedule = "constant"
    c.optimizer.warmup_steps = 0
    c.train.max_epochs = 10000
    c.train.patience = 20
    c.eval.probe_runs = 50
    c.eval.probe_epochs = 100
    c.eval.probe_lr = 0.01
    c.eval.probe_weight_decay = 0.0
    return c

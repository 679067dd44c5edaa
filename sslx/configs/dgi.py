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

from sslx.configs.common import node_level_config

DATASETS = ("cora", "citeseer")


def get_config(arg: str = "cora") -> ml_collections.ConfigDict:
    arg = arg or "cora"
    if arg not in DATASETS:
        raise ValueError(f"dgi config arg {arg!r} is unknown; use one of {', '.join(DATASETS)}.")
    c = node_level_config("dgi", arg, features=(512,), lr=1e-3, max_epochs=10000, patience=20)
    c.model.add_self_loops = True
    return c

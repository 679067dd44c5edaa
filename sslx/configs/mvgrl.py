"""MVGRL configs (node level): ``--config sslx/configs/mvgrl.py:<arg>``, arg ``cora`` (default)
or ``citeseer``.

Hassani & Khasahmadi 2020 (node classification): one GCN layer of 512 + PReLU per view
(adjacency, PPR diffusion with alpha 0.2), bilinear cross-view discriminator, Adam lr 1e-3,
no weight decay, early stopping on the training loss (patience 20). Here: full-graph steps
(the paper samples 4 subgraphs of 2000 nodes per step) and a dense diffusion
(``method.diffusion_topk = 0``; set k > 0 to keep the top-k entries per row). Probe: the DGI
protocol (logistic regression, Adam lr 0.01, 100 epochs, 50 runs).
"""
from __future__ import annotations

import ml_collections

from sslx.configs.common import base_config

DATASETS = ("cora", "citeseer")


def get_config(arg: str = "cora") -> ml_collections.ConfigDict:
    arg = arg or "cora"
    if arg not in DATASETS:
        raise ValueError(f"mvgrl config arg {arg!r} is unknown; use one of {', '.join(DATASETS)}.")
    c = base_config()
    c.method.name = "mvgrl"
    del c.method.temperature
    c.method.alpha = 0.2
    c.method.diffusion_topk = 64
    c.dataset.name = arg
    c.dataset.normalize_features = True
    c.batch_size = 1
    c.model.encoder = "gcn"
    c.model.features = (512,)
    c.optimizer.name = "adamw"
    c.optimizer.lr = 1e-3
    c.optimizer.weight_decay = 0.0
    c.optimizer.schedule = "constant"
    c.optimizer.warmup_steps = 0
    c.train.max_epochs = 3000
    c.train.patience = 20
    c.eval.probe_runs = 50
    c.eval.probe_epochs = 100
    c.eval.probe_lr = 0.01
    c.eval.probe_weight_decay = 0.0
    return c

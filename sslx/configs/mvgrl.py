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

from sslx.configs.common import node_level_config

DATASETS = ("cora", "citeseer")


def get_config(arg: str = "cora") -> ml_collections.ConfigDict:
    arg = arg or "cora"
    if arg not in DATASETS:
        raise ValueError(f"mvgrl config arg {arg!r} is unknown; use one of {', '.join(DATASETS)}.")
    c = node_level_config("mvgrl", arg, features=(512,), lr=1e-3, max_epochs=3000, patience=20)
    c.method.alpha = 0.2
    c.method.diffusion_topk = 64
    return c

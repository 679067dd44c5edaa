"""MERIT configs: ``--config sslx/configs/merit.py:<arg>``, arg ``cora`` (default) or ``citeseer``.

Jin et al. 2021: one GCN layer of 512 + PReLU, projector / predictor MLPs, EMA target with
momentum 0.8, views = edge modification (0.2) + feature masking vs PPR diffusion + feature
masking, cross-network weight beta (Cora 0.6, CiteSeer 0.8 -- from our reading of the
authors' settings, not re-verified). Adam lr 3e-4. Differences: full-graph steps (the paper
samples 4 subgraphs of 2000 nodes per step); a fixed number of epochs with the final
parameters probed (the authors report the best test accuracy seen during training, which we
do not do); MLP widths 512 (``model.proj_hidden``, ``model.proj_dim``). Probe: the DGI
protocol.
"""
from __future__ import annotations

import ml_collections

from sslx.configs.common import node_level_config

_SETTINGS = {"cora": dict(beta=0.6, pf=(0.3, 0.3)), "citeseer": dict(beta=0.8, pf=(0.3, 0.3))}


def get_config(arg: str = "cora") -> ml_collections.ConfigDict:
    arg = arg or "cora"
    if arg not in _SETTINGS:
        raise ValueError(f"merit config arg {arg!r} is unknown; use one of {', '.join(_SETTINGS)}.")
    s = _SETTINGS[arg]
    c = node_level_config("merit", arg, features=(512,), lr=3e-4, max_epochs=300, patience=0)
    c.method.beta = s["beta"]
    c.method.momentum = 0.8
    c.method.alpha = 0.2
    c.method.diffusion_topk = 64
    c.method.drop_edge = 0.2
    c.method.loss_nodes = 1024  # 0: contrast all nodes
    c.method.drop_feature_1 = s["pf"][0]
    c.method.drop_feature_2 = s["pf"][1]
    del c.model.proj_hidden
    c.model.proj_hidden = 512
    c.model.proj_dim = 512
    c.train.keep_best = False
    return c

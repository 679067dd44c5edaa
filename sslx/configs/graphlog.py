"""GraphLoG configs: ``--config sslx/configs/graphlog.py:<arg>``, arg one of ``mutag`` (default),
``imdb_binary``, ``ptc_mr``, ``proteins``, ``imdb_multi``, ``tiny`` (tests).

From the paper / the authors' release (pre-training on 2M ZINC molecules): attribute masking of
30 % of a graph's nodes (+1) as the correlated view, node- and graph-level InfoNCE, hierarchical
prototypes of depth 3, weights alpha = beta = 1 (node / graph), gamma = 0.1 (prototypes), Adam
lr 1e-3 without weight decay, prototypes initialised after 1 epoch of local-only training and
trained by the optimiser afterwards. Their temperature default is 0.04 in the code (0.1 in the
loss functions' signatures); 0.1 here.

Adapted to the small TU sets (a few hundred to a thousand graphs, unsupervised, evaluated by the
InfoGraph protocol -- 10-fold SVM CV on the frozen readout): InfoGraph's encoder (GIN, 32 per
layer, 5 layers, per-layer sum readouts concatenated, BatchNorm), batch 128 graphs, 20 epochs;
one batch-128 epoch of MUTAG is 2 steps, so the local-only warm-up is 5 epochs instead of 1, and
there are fewer prototypes than the authors' 50 per level: 16 / 8 / 4 (finest first) for the
small sets, 32 / 8 / 4 for the 1000-graph sets. The IMDB sets have no node labels: every node
has its one-hot degree as features (``dataset.node_features``; ``'constant'`` gives the
feature 1) and masking sets them to 0.

Graph keys: ``method.temperature``, ``method.num_prototypes``, ``method.local_epochs``,
``method.mask_rate``, ``method.drop_rate``, ``method.gamma``, ``model.hidden``,
``model.num_layers``, ``train.num_epochs``, ``eval.kernel``.
"""
from __future__ import annotations

import ml_collections

from sslx.configs.common import TU_DATASETS, graph_level_config

_DATASETS = {**TU_DATASETS, "tiny": "MUTAG"}


def get_config(arg: str = "mutag") -> ml_collections.ConfigDict:
    arg = arg or "mutag"
    if arg not in _DATASETS:
        raise ValueError(f"graphlog config arg {arg!r} is unknown; use one of {', '.join(_DATASETS)}.")
    c = graph_level_config("graphlog", "mutag" if arg == "tiny" else arg)
    c.method.temperature = 0.1
    c.method.alpha = 1.0  # node-level (intra-graph) InfoNCE
    c.method.beta = 1.0  # graph-level (inter-graph) InfoNCE
    c.method.gamma = 0.1  # hierarchical prototypes
    c.method.num_prototypes = (32, 8, 4) if arg in ("imdb_binary", "imdb_multi", "proteins") else (16, 8, 4)
    c.method.local_epochs = 5
    c.method.kmeans_iters = 20
    c.method.proto_refresh_every = 0  # 0: initialise once (the authors); k > 0: re-cluster every k epochs
    c.method.mask_rate = 0.3
    c.method.drop_rate = 0.0
    c.model.proj_dim = 0  # 0: the embedding width (num_layers * hidden), as the authors' projector
    if arg == "tiny":  # a few-second test setting
        c.batch_size = 8
        c.model.hidden = 8
        c.model.num_layers = 2
        c.method.num_prototypes = (4, 2)
        c.method.local_epochs = 0
        c.method.kmeans_iters = 5
        c.train.num_epochs = 2
        c.eval.folds = 3
        c.eval.inner_folds = 2
    return c

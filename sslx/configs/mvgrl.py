"""MVGRL configs: ``--config sslx/configs/mvgrl.py:<arg>``. Node level: arg ``cora`` (default) or
``citeseer``. Graph level: arg one of ``mutag``, ``imdb_binary``, ``ptc_mr``, ``proteins``,
``imdb_multi`` (InfoGraph's spellings; upper case and ``-`` are accepted too, e.g. ``MUTAG``).

Node level -- Hassani & Khasahmadi 2020 (node classification): one GCN layer of 512 + PReLU per
view (adjacency, PPR diffusion with alpha 0.2), bilinear cross-view discriminator, Adam lr 1e-3,
no weight decay, early stopping on the training loss (patience 20). Here: full-graph steps
and a top-64-per-row sparsified diffusion (``method.diffusion_topk``; 0: dense). The paper's
sampling, 4 subgraphs of 2000 consecutive nodes per step, is ``--set
mvgrl/method.subgraph_size=2000`` (``method.subgraphs_per_step``, 4). Probe: the DGI protocol
(logistic regression, Adam lr 0.01, 100 epochs, 50 runs).

Graph level (``method.level = 'graph'``) -- the paper's unsupervised graph classification: per
view a GCN of ``model.num_layers = 4`` layers (the paper selects from {2, 4, 8, 12}) with PReLU,
every layer's per-graph sum readout concatenated, shared node / graph projection MLPs, the
cross-view node-graph JSD loss; Adam lr 1e-3, batch 128 graphs, 20 epochs (InfoGraph's
``graph_level_config``; the paper selects the batch size from {32, 64, 128, 256} and the epochs
from {10, 20, 40, 100}), the final parameters are evaluated; embedding = the sum of the two
views' projected graph representations. Width ``model.hidden``: 512 as the paper on MUTAG and
PTC_MR (MUTAG trains in about 75 s on 2 CPU cores), 128 on IMDB-BINARY / IMDB-MULTI / PROTEINS
(CPU-friendly: their batches hold 4-16x more diffusion edges; ``--set mvgrl/model.hidden=512``
for the paper's width). Node features as the authors build them: one-hot node label + one-hot
degree (``dataset.node_features = 'labels+degree'``), one-hot degree on the IMDB sets (InfoGraph's
configs use labels only / a constant). The diffusion view is computed once per dataset on the
host when the dataset is loaded (``dataset.diffusion``: ``alpha`` 0.2, entries ``>= eps`` 1e-4
kept -- all of ``S`` on MUTAG-size graphs --, ``topk`` 0: no cap per row; the weights are used
as they are). Evaluation: the table's protocol (InfoGraph's: RBF SVM, 10-fold CV, C from inner
5-fold CV, the final parameters); the authors' code instead keeps the lowest-loss epoch and uses a
linear SVM (``eval.kernel = 'linear'``).

Graph-level keys: ``model.hidden``, ``model.num_layers``, ``model.init``, ``dataset.diffusion.{alpha,
eps, topk}``, ``dataset.node_features``, ``train.num_epochs``, ``batch_size``, ``eval.kernel``.
"""
from __future__ import annotations

import ml_collections

from sslx.configs.common import TU_DATASETS, graph_level_config, node_level_config

DATASETS = ("cora", "citeseer")
GRAPH_DATASETS = tuple(TU_DATASETS)


def get_config(arg: str = "cora") -> ml_collections.ConfigDict:
    arg = (arg or "cora").lower().replace("-", "_")
    if arg in GRAPH_DATASETS:
        return _graph_config(arg)
    if arg not in DATASETS:
        raise ValueError(f"mvgrl config arg {arg!r} is unknown; use one of {', '.join(DATASETS + GRAPH_DATASETS)}.")
    c = node_level_config("mvgrl", arg, features=(512,), lr=1e-3, max_epochs=3000, patience=20)
    c.method.level = "node"
    c.method.alpha = 0.2
    c.method.diffusion_topk = 64
    c.method.subgraph_size = 0  # > 0: every step on random windows of that many consecutive nodes (paper: 2000)
    c.method.subgraphs_per_step = 4  # windows per step when subgraph_size > 0 (the paper's batch of 4)
    return c


def _graph_config(arg: str) -> ml_collections.ConfigDict:
    c = graph_level_config("mvgrl", arg)
    c.method.level = "graph"
    c.model.encoder = "gcn"
    c.model.hidden = 512 if arg in ("mutag", "ptc_mr") else 128  # the larger sets: CPU-friendly width
    c.model.num_layers = 4
    del c.model.sync_bn  # no BatchNorm in MVGRL's encoders
    # the authors' features: one-hot node labels + one-hot degree; the IMDB sets (no labels): one-hot degree
    c.dataset.node_features = "degree" if arg.startswith("imdb") else "labels+degree"
    c.dataset.diffusion = ml_collections.ConfigDict({"alpha": 0.2, "eps": 1e-4, "topk": 0})
    return c

"""Self-supervised GCN configs (You et al. 2020): ``sslx/configs/ssgcn.py:<dataset>[-<task>]``.

``<dataset>``: ``cora``, ``citeseer`` or ``tiny`` (small settings for tests; the dataset is
whatever ``NodeDataset`` the caller passes). ``<task>``: ``none`` (the plain GCN),
``clustering`` (the default), ``partitioning`` or ``completion``; e.g. ``cora-partitioning``.

The GCN is Kipf & Welling's (2017): 2 layers, 16 hidden units, dropout 0.5, no biases, Adam
lr 0.01, L2 5e-4 on the first layer, at most 200 epochs, early stopping on the validation
loss with Kipf's window rule (stop when the val loss exceeds the mean of the previous 10).

What the paper (and the authors' released code, github.com/Shen-Lab/SS-GCNs) used, and what
is chosen here:

* Loss weights: the code weights ``w L_sup + (1 - w) L_ss`` with ``w`` grid-searched in
  0.2..0.9 on the validation accuracy (README: ``w = 0.5`` for clustering on Cora, i.e.
  ``alpha = (1 - w) / w = 1`` here). ``alpha`` below is per dataset and task.
* Clustering: the code runs k-means with 200 clusters on the features and maps every cluster
  to the nearest train-class centroid (M3S style; ``method.cluster_to_classes=True``). Here
  the default is the brief's plain form: predict the k-means cluster index of every node,
  with ``num_clusters`` clusters.
* Partitioning: METIS with 8..16 parts (grid-searched). METIS is not available; the
  partition is recursive spectral bisection (balanced) with ``num_parts`` parts.
* Completion: the paper masks the features of target nodes and regresses them from the
  embedding; (the code instead regresses 24..48 SVD components of the features through an
  adjacency without self-loops, with an L1 loss x 100). Here: a random ``mask_rate`` of the
  nodes per step, relative squared error of their features (:func:`masked_feature_regression`).
* Training: the code uses Kipf's window rule too (up to 1000 epochs; Cora lr 0.008, L2 8e-5
  on all weights); here Kipf's settings for every task so that the comparison isolates the
  auxiliary task.

Chosen values (``_SETTINGS``): on Cora by the mean *validation* accuracy over seeds 100..104
(the reported comparison uses seeds 0..9) on the grid alpha in {0.25, 0.5, 1} (partitioning also 2) x
clusters in {7, 50, 200} / parts in {8, 12, 16}, completion alpha in {0.1, 0.3, 1} x
mask_rate in {0.1, 0.3}. Validation accuracy of the plain GCN there: 78.8; clustering
(200 clusters, alpha 0.5) 78.9; the authors' aligned clustering 79.2; partitioning (12 parts,
alpha 0.5) 80.0; completion (mask 0.3, alpha 0.1) 78.8 (all within ~1 std of each other
except partitioning). CiteSeer reuses Cora's values (not tuned).
"""
from __future__ import annotations

import ml_collections

from sslx.configs.common import base_config

DATASETS = ("cora", "citeseer", "tiny")
TASKS = ("none", "clustering", "partitioning", "completion")

# Per dataset: alpha per task, k-means clusters, spectral parts, completion mask rate.
_CORA = {"alpha": {"clustering": 0.5, "partitioning": 0.5, "completion": 0.1}, "clusters": 200, "parts": 12,
         "mask_rate": 0.3}
_SETTINGS = {"cora": _CORA, "citeseer": dict(_CORA),
             "tiny": {"alpha": {"clustering": 1.0, "partitioning": 1.0, "completion": 1.0}, "clusters": 3, "parts": 3,
                      "mask_rate": 0.1}}

def valid_args() -> list[str]:
    return [d for d in DATASETS] + [f"{d}-{t}" for d in DATASETS for t in TASKS]


def get_config(arg: str = "cora") -> ml_collections.ConfigDict:
    arg = arg or "cora"
    dataset, _, task = arg.partition("-")
    task = task or "clustering"
    if dataset not in DATASETS or task not in TASKS:
        raise ValueError(f"ssgcn config arg {arg!r} is unknown; use one of {', '.join(valid_args())}.")
    c = base_config()
    c.method.name = "ssgcn"
    del c.method.temperature
    c.method.task = task
    st = _SETTINGS[dataset]
    c.method.alpha = st["alpha"].get(task, 0.0)
    c.method.num_clusters = st["clusters"]
    c.method.cluster_to_classes = False
    c.method.kmeans_iters = 300
    c.method.num_parts = st["parts"]
    c.method.mask_rate = st["mask_rate"]
    c.method.weight_decay = 5e-4  # L2 (coupled, in the loss) as Kipf's code
    c.method.decay_scope = "first"
    c.dataset.name = dataset
    c.dataset.normalize_features = True
    c.batch_size = 1  # one full graph per step
    c.model.encoder = "gcn"
    c.model.hidden = 16
    c.model.dropout = 0.5
    c.model.use_bias = False
    c.model.num_classes = 0  # 0: taken from the dataset
    c.model.sparse_input = True
    del c.model.proj_hidden, c.model.proj_dim
    c.optimizer.name = "adamw"  # weight_decay 0: plain Adam; the L2 term is in the loss
    c.optimizer.lr = 0.01
    c.optimizer.weight_decay = 0.0
    c.optimizer.schedule = "constant"
    c.optimizer.warmup_steps = 0
    c.train.max_epochs = 200
    c.train.stopping = "window"
    c.train.window = 10
    c.train.patience = 10
    if dataset == "tiny":
        c.model.hidden = 8
        c.optimizer.lr = 0.05  # a few dozen epochs on a small synthetic graph
        c.train.max_epochs = 60
        c.method.kmeans_iters = 50
    return c

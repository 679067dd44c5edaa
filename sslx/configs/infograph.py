"""InfoGraph configs: ``--config sslx/configs/infograph.py:<arg>``, arg one of ``mutag``
(default), ``imdb_binary``, ``ptc_mr``, ``proteins``, ``imdb_multi``.

Graph-level unsupervised setting of Sun et al. 2020 (the paper and the authors' released code,
as far as checked here; the layer count there is a flag, 5 is used): GIN with
sum aggregation, hidden 32 per layer, 5 layers (patches = the 5 layers concatenated, 160
dims), BatchNorm after every layer, local / global FF heads, JSD estimator; Adam lr 1e-3,
batch 128 graphs, 20 epochs over the whole dataset (no labels), the final parameters are
evaluated. Evaluation: 10-fold stratified CV of an RBF ``SVC`` with C chosen by inner 5-fold
CV from {1e-3, ..., 1e3} (:func:`sslx.eval.graph_level.svm_cross_validation`).

Node features: one-hot node labels (MUTAG, PTC_MR, PROTEINS). The IMDB sets have none; they
get the one-hot node degree (``dataset.node_features = 'degree'``, the loader's default and
what issue 5 specifies); ``'constant'`` gives every node the feature 1, as the authors' code
does (the earlier default here; both are in ``docs/results.md``).

Graph keys: ``dataset.node_features``, ``model.hidden``, ``model.num_layers``,
``train.num_epochs``, ``eval.kernel``, ``eval.folds``, ``eval.inner_folds``.
"""
from __future__ import annotations

import ml_collections

from sslx.configs.common import TU_DATASETS, graph_level_config

_DATASETS = TU_DATASETS


def get_config(arg: str = "mutag") -> ml_collections.ConfigDict:
    arg = arg or "mutag"
    if arg not in _DATASETS:
        raise ValueError(f"infograph config arg {arg!r} is unknown; use one of {', '.join(_DATASETS)}.")
    return graph_level_config("infograph", arg)

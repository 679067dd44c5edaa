"""MVGRL (Hassani & Khasahmadi 2020), node level: contrastive multi-view representation
learning on graphs.

Two structural views of one graph: the adjacency (a GCN, symmetric normalisation with
self-loops, sparse) and the personalised-PageRank diffusion
``S = alpha (I - (1 - alpha) D^-1/2 (A + I) D^-1/2)^-1`` (:mod:`sslx.augment.graph_views`;
dense, or top-k sparsified per row with ``config.method.diffusion_topk > 0``). Each view has
its own one-layer GCN (``config.model.features``, 512) + PReLU: ``h^a = PReLU(A_hat X W_a + b_a)``,
``h^d = PReLU(S X W_d + b_d)``. Summaries ``s^v = sigmoid(mean_i h^v_i)``. A shared bilinear
discriminator contrasts nodes of one view with the other view's summary; negatives are the
nodes of the feature-row-shuffled graph (the same shuffle for both views); the loss is
:func:`sslx.losses.mvgrl_bce`. Embedding: ``h^a + h^d`` of the intact graph.

Full-graph training (the paper samples 4 subgraphs of 2000 nodes per step on large graphs;
on Cora-size graphs the whole graph fits). The diffusion is computed once: ``init`` puts it
in the method ``state`` (``state["diffusion"]``), where ``loss_fn`` reads it unless the batch
carries its own ``"diffusion"``; ``encode(params, state, graph)`` recomputes it from ``graph``
(one ``N x N`` solve), so the embedding is a function of the graph it is given.

Batch: ``{"graph": GraphsTuple}`` (+ optional ``"node_mask"`` for padding nodes at the end,
optional ``"diffusion"`` view, optional ``"x_sparse"``: the features' non-zeros from
:func:`sslx.augment.graph_views.sparse_features`, used for ``x W`` -- the same values, far
fewer operations on bag-of-words features).
"""
from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslx.augment.graph_views import diffusion_propagate, ppr_diffusion, sparse_transform
from sslx.losses.graph_mi import mvgrl_bce
from sslx.methods.base import DATA_AXIS, Method
from sslx.methods.graph.dgi import masked_mean_nodes, shuffle_permutation
from sslx.models.gnn import BilinearDiscriminator, GCNConv


def mvgrl(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
          total_steps: Optional[int] = None) -> Method:
    """MVGRL (node level) as a :class:`Method` (full graph, one device).

    Reads ``config.model.features`` (one width, default ``(512,)``), ``config.method.alpha``
    (PPR teleport, 0.2) and ``config.method.diffusion_topk`` (0: dense).
    """
    del total_steps
    features = tuple(int(f) for f in config.model.get("features", (512,)))
    if len(features) != 1 or features[0] <= 0:
        raise ValueError(f"config.model.features must be one positive GCN width (MVGRL: (512,)), got {features}.")
    alpha = float(config.method.get("alpha", 0.2))
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"config.method.alpha (PPR teleport probability) must lie in (0, 1), got {alpha}.")
    topk = int(config.method.get("diffusion_topk", 0))
    if topk < 0:
        raise ValueError(f"config.method.diffusion_topk must be >= 0 (0: dense), got {topk}.")
    conv = GCNConv(features[0])
    act = nn.PReLU(negative_slope_init=0.25)
    disc = BilinearDiscriminator()

    def _graph(g):
        if g.nodes is None or g.nodes.ndim != 2:
            raise ValueError("MVGRL needs graph.nodes to be node features [N, F]; got "
                             f"{None if g.nodes is None else g.nodes.shape}.")
        return jnp.asarray(g.nodes, jnp.float32)

    def diffusion_of(g):
        return ppr_diffusion(g.senders, g.receivers, g.nodes.shape[0], alpha, topk=topk)

    def init(rng, batch):
        g = batch["graph"]
        x = _graph(g)
        ka, kd, kpa, kpd, kdisc = jax.random.split(rng, 5)
        h = jnp.zeros((x.shape[0], features[0]), jnp.float32)
        params = {"conv_a": conv.init(ka, x, g.senders, g.receivers)["params"],
                  "conv_d": conv.init(kd, x, g.senders, g.receivers)["params"],
                  "act_a": act.init(kpa, h)["params"], "act_d": act.init(kpd, h)["params"],
                  "disc": disc.init(kdisc, h, h[0])["params"]}
        diff = batch.get("diffusion")
        return params, {"diffusion": diff if diff is not None else diffusion_of(g)}

    def views(params, xw_a, xw_d, g, diff):
        """(h^a, h^d) from the transformed features of the two views."""
        ha = conv.apply({"params": params["conv_a"]}, xw_a, g.senders, g.receivers, method="propagate")
        hd = diffusion_propagate(xw_d, diff) + params["conv_d"]["bias"]
        return act.apply({"params": params["act_a"]}, ha), act.apply({"params": params["act_d"]}, hd)

    def transform(params, x, xs=None):
        if xs is not None:  # the same x W through the non-zeros of x
            return tuple(sparse_transform(xs, params[k]["linear"]["kernel"], x.shape[0])
                         for k in ("conv_a", "conv_d"))
        return (conv.apply({"params": params["conv_a"]}, x, method="transform"),
                conv.apply({"params": params["conv_d"]}, x, method="transform"))

    def loss_fn(params, state, batch, rng):
        g = batch["graph"]
        x = _graph(g)
        mask = batch.get("node_mask")
        diff = batch.get("diffusion", state["diffusion"])
        perm = shuffle_permutation(rng, x.shape[0], mask)
        # (P X) W = P (X W): one x W per view serves the clean and the corrupted graph
        xa, xd = transform(params, x, batch.get("x_sparse"))
        ha, hd = views(params, xa, xd, g, diff)
        ha_n, hd_n = views(params, xa[perm], xd[perm], g, diff)
        sa = jax.nn.sigmoid(masked_mean_nodes(ha, mask))
        sd = jax.nn.sigmoid(masked_mean_nodes(hd, mask))
        d = {"params": params["disc"]}
        pos = (disc.apply(d, hd, sa), disc.apply(d, ha, sd))
        neg = (disc.apply(d, hd_n, sa), disc.apply(d, ha_n, sd))
        loss, aux = mvgrl_bce(pos, neg, mask)
        return loss, (state, aux)

    def encode(params, state, graph):
        x = _graph(graph)
        xa, xd = transform(params, x)
        ha, hd = views(params, xa, xd, graph, diffusion_of(graph))
        return ha + hd

    return Method(name="mvgrl", init=init, loss_fn=loss_fn, encode=encode, axis_name=axis_name)

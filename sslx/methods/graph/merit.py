"""MERIT (Jin et al. 2021): multi-scale contrastive siamese networks for graph representation
learning.

Two augmented views of the graph: view 1 = the adjacency with random edge modification
(each edge dropped with probability ``p_e`` and ``round(p_e E)`` random edges added,
:func:`sslx.augment.graph_views.modify_edges`) and feature-column masking (rate ``p_f1``);
view 2 = the PPR diffusion (``alpha``, optionally top-k sparsified) with feature masking
(``p_f2``). An online network (one-layer GCN 512 + PReLU -> projector MLP) and a predictor
MLP; a target network (GCN + projector) that is the EMA of the online one
(``target <- m target + (1 - m) online`` after every update, momentum ``m``), without
gradients. MLPs: Dense -> BatchNorm (batch statistics over the real nodes) -> PReLU -> Dense.
The loss is :func:`sslx.losses.merit_loss` (cross-network term weighted ``beta``, cross-view
term ``1 - beta``). Embedding: ``GCN_online(adjacency) + GCN_online(diffusion)`` of the
intact graph.

The diffusion is computed once in ``init`` and kept in ``state["diffusion"]`` (or taken from
``batch["diffusion"]``); ``encode(params, state, graph)`` recomputes it from ``graph``.
``config.method.loss_nodes > 0`` evaluates the contrastive loss on that many randomly chosen
real nodes per step (anchors and negatives; the views are still encoded on the whole graph),
which bounds the ``N x N`` similarity cost. ``config.method.subgraph_size > 0`` instead trains
every step on a random window of that many consecutive nodes, as the authors' code samples its
2000-node subgraphs: features, edges, diffusion entries and feature non-zeros inside the window,
relabelled (:func:`sslx.augment.graph_views.window_batch`); the diffusion entries keep their
full-graph weights (the authors' code re-normalises the cut-out diffusion block).
Batch: ``{"graph": GraphsTuple}`` (+ optional ``"node_mask"``, ``"edge_mask"``,
``"x_sparse"`` as in :mod:`sslx.methods.graph.mvgrl`).
"""
from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslx.augment.graph_views import (diffusion_propagate, modify_edges, ppr_diffusion, sparse_transform,
                                      window_batch)
from sslx.losses.graph_mi import merit_loss
from sslx.methods.base import DATA_AXIS, Method
from sslx.models.gnn import GCNConv


class MaskedMLP(nn.Module):
    """Dense(hidden) -> BatchNorm (batch statistics over the rows with ``mask``) -> PReLU -> Dense(out)."""
    hidden: int
    out: int

    @nn.compact
    def __call__(self, h: jax.Array, mask: Optional[jax.Array] = None) -> jax.Array:
        z = nn.Dense(self.hidden, name="fc1")(h)
        m = jnp.ones(z.shape[:1], z.dtype) if mask is None else mask.astype(z.dtype)
        cnt = jnp.maximum(jnp.sum(m), 1.0)
        mean = jnp.sum(z * m[:, None], 0) / cnt
        var = jnp.sum(((z - mean) ** 2) * m[:, None], 0) / cnt
        z = (z - mean) * jax.lax.rsqrt(var + 1e-5)
        z = z * self.param("bn_scale", nn.initializers.ones, (self.hidden,)) + self.param(
            "bn_bias", nn.initializers.zeros, (self.hidden,))
        z = nn.PReLU(negative_slope_init=0.25, name="act")(z)
        return nn.Dense(self.out, name="fc2")(z)


def _rate(v: float, name: str) -> float:
    v = float(v)
    if not 0.0 <= v < 1.0:
        raise ValueError(f"config.method.{name} must lie in [0, 1), got {v}.")
    return v


def merit(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
          total_steps: Optional[int] = None) -> Method:
    """MERIT as a :class:`Method` (full graph, one device).

    Reads ``config.model.features`` (one GCN width), ``config.model.proj_hidden`` /
    ``proj_dim`` (MLP widths), ``config.method.{beta, momentum, alpha, diffusion_topk,
    drop_edge, drop_feature_1, drop_feature_2}``.
    """
    del total_steps
    features = tuple(int(f) for f in config.model.get("features", (512,)))
    if len(features) != 1 or features[0] <= 0:
        raise ValueError(f"config.model.features must be one positive GCN width (MERIT: (512,)), got {features}.")
    beta = float(config.method.beta)
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"config.method.beta must lie in [0, 1], got {beta}.")
    momentum = float(config.method.momentum)
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"config.method.momentum must lie in [0, 1), got {momentum}.")
    alpha, topk = float(config.method.get("alpha", 0.2)), int(config.method.get("diffusion_topk", 0))
    pe = _rate(config.method.drop_edge, "drop_edge")
    pf1, pf2 = _rate(config.method.drop_feature_1, "drop_feature_1"), _rate(config.method.drop_feature_2,
                                                                              "drop_feature_2")
    hid, out = int(config.model.proj_hidden), int(config.model.proj_dim)
    loss_nodes = int(config.method.get("loss_nodes", 0))
    if loss_nodes < 0:
        raise ValueError(f"config.method.loss_nodes must be >= 0 (0: all nodes), got {loss_nodes}.")
    subgraph = int(config.method.get("subgraph_size", 0))
    if subgraph < 0:
        raise ValueError(f"config.method.subgraph_size must be >= 0 (0: full-graph steps), got {subgraph}.")
    conv = GCNConv(features[0])
    act = nn.PReLU(negative_slope_init=0.25)
    projector, predictor = MaskedMLP(hid, out), MaskedMLP(hid, out)

    def _x(g):
        if g.nodes is None or g.nodes.ndim != 2:
            raise ValueError("MERIT needs graph.nodes to be node features [N, F]; got "
                             f"{None if g.nodes is None else g.nodes.shape}.")
        return jnp.asarray(g.nodes, jnp.float32)

    def diffusion_of(g):
        return ppr_diffusion(g.senders, g.receivers, g.nodes.shape[0], alpha, topk=topk)

    def init(rng, batch):
        g = batch["graph"]
        x = _x(g)
        k = jax.random.split(rng, 4)
        h = jnp.zeros((x.shape[0], features[0]), jnp.float32)
        online = {"conv": conv.init(k[0], x, g.senders, g.receivers)["params"], "act": act.init(k[1], h)["params"],
                  "projector": projector.init(k[2], h)["params"]}
        params = {**online, "predictor": predictor.init(k[3], jnp.zeros((x.shape[0], out)))["params"]}
        diff = batch.get("diffusion")
        state = {"target": jax.tree.map(jnp.array, online),
                 "diffusion": diff if diff is not None else diffusion_of(g)}
        return params, state

    def transform(p, x, xs=None, keep_cols=None):
        """``(x * keep_cols) W`` (feature masking = zeroing columns), densely or through the
        non-zeros ``xs``."""
        if xs is not None:
            vals = xs["vals"] if keep_cols is None else xs["vals"] * keep_cols[xs["cols"]]
            return sparse_transform({**xs, "vals": vals}, p["conv"]["linear"]["kernel"], x.shape[0])
        xm = x if keep_cols is None else x * keep_cols[None, :]
        return conv.apply({"params": p["conv"]}, xm, method="transform")

    def gcn_adj(p, xw, senders, receivers, edge_mask=None):
        h = conv.apply({"params": p["conv"]}, xw, senders, receivers, edge_mask, method="propagate")
        return act.apply({"params": p["act"]}, h)

    def gcn_diff(p, xw, diff):
        return act.apply({"params": p["act"]}, diffusion_propagate(xw, diff) + p["conv"]["bias"])

    def loss_fn(params, state, batch, rng):
        diff = batch.get("diffusion", state["diffusion"])
        if subgraph:  # the window's key is folded off, the augmentations draw from ``rng`` as on the full graph
            batch, diff, wmask = window_batch(batch, diff, subgraph, jax.random.fold_in(rng, 1))
        g = batch["graph"]
        x = _x(g)
        n = x.shape[0]
        mask = batch.get("node_mask")
        xs = batch.get("x_sparse")
        n_real = n if mask is None else jnp.sum(mask.astype(jnp.int32))
        if subgraph:
            n_real = jnp.sum(wmask.astype(jnp.int32))
        ke, kf1, kf2, kn = jax.random.split(rng, 4)
        s, r, keep = modify_edges(ke, g.senders, g.receivers, pe, n_real, batch.get("edge_mask"))
        keep_cols = [jax.random.bernoulli(k, 1.0 - p, (x.shape[1],)).astype(x.dtype)
                     for k, p in ((kf1, pf1), (kf2, pf2))]
        target = state["target"]
        hs_on = [gcn_adj(params, transform(params, x, xs, keep_cols[0]), s, r, keep),
                 gcn_diff(params, transform(params, x, xs, keep_cols[1]), diff)]
        hs_tg = [gcn_adj(target, transform(target, x, xs, keep_cols[0]), s, r, keep),
                 gcn_diff(target, transform(target, x, xs, keep_cols[1]), diff)]
        proj = lambda p, h: projector.apply({"params": p["projector"]}, h, mask)
        preds = [predictor.apply({"params": params["predictor"]}, proj(params, h), mask) for h in hs_on]
        tgts = [jax.lax.stop_gradient(proj(target, h)) for h in hs_tg]
        lmask = mask
        if loss_nodes and loss_nodes < n:
            # contrast a random subset of nodes (anchors and negatives), as the paper's subgraphs
            u = jax.random.uniform(kn, (n,))
            if mask is not None:
                u = jnp.where(mask, u, 2.0)
            sel = jnp.argsort(u)[:loss_nodes]
            preds, tgts = [p[sel] for p in preds], [t[sel] for t in tgts]
            lmask = None if mask is None else mask[sel]
        loss, aux = merit_loss(preds[0], preds[1], tgts[0], tgts[1], beta, lmask)
        return loss, (state, aux)

    def after_update(params, state, step):
        del step
        online = {k: params[k] for k in ("conv", "act", "projector")}
        tgt = jax.tree.map(lambda t, o: momentum * t + (1.0 - momentum) * o, state["target"], online)
        return {**state, "target": tgt}

    def encode(params, state, graph):
        xw = transform(params, _x(graph))
        return gcn_adj(params, xw, graph.senders, graph.receivers) + gcn_diff(params, xw, diffusion_of(graph))

    return Method(name="merit", init=init, loss_fn=loss_fn, encode=encode, after_update=after_update,
                  axis_name=axis_name)

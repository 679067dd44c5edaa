"""GRACE (Zhu et al. 2020): deep GRAph Contrastive rEpresentation learning.

Two views of the graph, each made by removing edges (each directed edge kept with
probability ``1 - p_e``) and masking feature dimensions (each column zeroed with probability
``p_f``, the same columns for every node), with per-view rates. A 2-layer GCN
(``config.model.features``, GRACE: ``(2 d, d)``) encodes both views; a projection head
(Dense -> ELU -> Dense) maps them to ``z1, z2``; the loss is :func:`sslx.losses.grace_loss`
(InfoNCE with the other view's node as positive and both views' other nodes as negatives,
cosine similarity / ``temperature``). ``encode`` gives the GCN embeddings of the intact graph.

Masking feature columns equals zeroing rows of the first layer's kernel; it is applied to
the features here (the same function). Dropped edges are passed to the GCN as an edge mask,
so the symmetric normalisation uses the degrees of the kept edges (as PyG's ``dropout_adj``
followed by ``GCNConv``).

Batch: ``{"graph": GraphsTuple}`` (+ optional ``"node_mask"``, ``"edge_mask"`` for padding;
optional ``"x_sparse"``, the features' non-zeros from
:func:`sslx.augment.graph_views.sparse_features`: the views' first ``x W`` then gathers kernel
rows for the non-zeros -- the same values as the dense product, Cora's features are 1.3 %
dense -- with the masked columns' values zeroed).
"""
from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslx import losses
from sslx.augment.graph_views import sparse_transform
from sslx.methods.base import DATA_AXIS, Method
from sslx.models.gnn import GCN, GCNConv


class ProjectionHead(nn.Module):
    """GRACE's projection: Dense(hidden) -> ELU -> Dense(out)."""
    hidden: int
    out: int

    @nn.compact
    def __call__(self, h: jax.Array) -> jax.Array:
        return nn.Dense(self.out, name="fc2")(nn.elu(nn.Dense(self.hidden, name="fc1")(h)))


def drop_edges(rng: jax.Array, num_edges: int, p: float) -> jax.Array:
    """Keep-mask ``bool [E]``: each edge kept independently with probability ``1 - p``."""
    return jax.random.bernoulli(rng, 1.0 - p, (num_edges,))


def feature_keep(rng: jax.Array, num_features: int, p: float) -> jax.Array:
    """Keep-mask ``bool [F]`` of feature columns: each kept independently with probability ``1 - p``."""
    return jax.random.bernoulli(rng, 1.0 - p, (num_features,))


def mask_features(rng: jax.Array, x: jax.Array, p: float) -> jax.Array:
    """``x [N, F]`` with each feature column zeroed with probability ``p`` (same for all nodes)."""
    return x * feature_keep(rng, x.shape[-1], p).astype(x.dtype)


def gcn_forward(params: dict, features: tuple[int, ...], activation: str, x: jax.Array, senders: jax.Array,
                receivers: jax.Array, edge_mask: Optional[jax.Array] = None,
                x_sparse: Optional[dict] = None) -> jax.Array:
    """:class:`sslx.models.gnn.GCN` ``(features, activation)`` applied with its ``params``
    layer by layer, the first ``x W`` from ``x_sparse`` (COO non-zeros of ``x [N, F]``) when
    given. ``[N, features[-1]]``; the same values as ``GCN.apply`` on the dense ``x``."""
    h = x
    for i, f in enumerate(features):
        conv, p = GCNConv(int(f)), {"params": params[f"conv{i}"]}
        if i == 0 and x_sparse is not None:
            t = sparse_transform(x_sparse, params["conv0"]["linear"]["kernel"], x.shape[0])
        else:
            t = conv.apply(p, h, method="transform")
        h = conv.apply(p, t, senders, receivers, edge_mask, method="propagate")
        if activation == "prelu":  # GCN's compact PReLU modules are named PReLU_<layer>
            h = nn.PReLU().apply({"params": params[f"PReLU_{i}"]}, h)
        elif activation == "relu":
            h = nn.relu(h)
        elif activation not in ("none", "identity"):
            raise ValueError(f"GNN activation {activation!r} is unknown; use 'prelu', 'relu' or 'none'.")
    return h


def _rate(config, key: str) -> tuple[float, float]:
    r = tuple(float(v) for v in config.method[key])
    if len(r) != 2 or not all(0.0 <= v < 1.0 for v in r):
        raise ValueError(f"config.method.{key} must be two rates in [0, 1) (view 1, view 2); got {r}.")
    return r


def grace(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
          total_steps: Optional[int] = None) -> Method:
    """GRACE as a :class:`Method` (full graph, one device).

    Reads ``config.model.features`` (GCN widths), ``config.model.activation``,
    ``config.model.proj_hidden`` (int), ``config.method.drop_edge`` / ``drop_feature``
    (two rates each) and ``config.method.temperature``.
    """
    del total_steps
    features = tuple(int(f) for f in config.model.features)
    if not features or min(features) <= 0:
        raise ValueError(f"config.model.features must be positive GCN widths, got {features}.")
    tau = float(config.method.temperature)
    if tau <= 0:
        raise ValueError(f"config.method.temperature must be > 0, got {tau}.")
    pe, pf = _rate(config, "drop_edge"), _rate(config, "drop_feature")
    activation = str(config.model.get("activation", "relu"))
    encoder = GCN(features, activation=activation)
    head = ProjectionHead(int(config.model.proj_hidden), features[-1])

    def init(rng, batch):
        g = batch["graph"]
        k1, k2 = jax.random.split(rng)
        ep = encoder.init(k1, jnp.asarray(g.nodes, jnp.float32), g.senders, g.receivers)["params"]
        hp = head.init(k2, jnp.zeros((1, features[-1]), jnp.float32))["params"]
        return {"encoder": ep, "head": hp}, {}

    def loss_fn(params, state, batch, rng):
        g = batch["graph"]
        x = jnp.asarray(g.nodes, jnp.float32)
        node_mask, edge_mask = batch.get("node_mask"), batch.get("edge_mask")
        xs = batch.get("x_sparse")
        ks = jax.random.split(rng, 4)
        zs = []
        for v in range(2):
            keep = drop_edges(ks[v], g.senders.shape[0], pe[v])
            if edge_mask is not None:
                keep = keep & edge_mask
            if xs is None:
                xv, xsv = mask_features(ks[2 + v], x, pf[v]), None
            else:  # the same column mask (same key and draw) on the non-zeros' values
                cols = feature_keep(ks[2 + v], x.shape[-1], pf[v])
                xv, xsv = x, dict(xs, vals=xs["vals"] * cols[xs["cols"]].astype(xs["vals"].dtype))
            h = gcn_forward(params["encoder"], features, activation, xv, g.senders, g.receivers, keep, xsv)
            zs.append(head.apply({"params": params["head"]}, h))
        loss, aux = losses.grace_loss(zs[0], zs[1], tau, node_mask)
        return loss, (state, aux)

    def encode(params, state, graph):
        return encoder.apply({"params": params["encoder"]}, jnp.asarray(graph.nodes, jnp.float32), graph.senders,
                             graph.receivers)

    return Method(name="grace", init=init, loss_fn=loss_fn, encode=encode, axis_name=axis_name)

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

Batch: ``{"graph": GraphsTuple}`` (+ optional ``"node_mask"``, ``"edge_mask"`` for padding).
"""
from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslx import losses
from sslx.methods.base import DATA_AXIS, Method
from sslx.models.gnn import GCN


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


def mask_features(rng: jax.Array, x: jax.Array, p: float) -> jax.Array:
    """``x [N, F]`` with each feature column zeroed with probability ``p`` (same for all nodes)."""
    keep = jax.random.bernoulli(rng, 1.0 - p, (x.shape[-1],))
    return x * keep.astype(x.dtype)


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
    encoder = GCN(features, activation=str(config.model.get("activation", "relu")))
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
        ks = jax.random.split(rng, 4)
        zs = []
        for v in range(2):
            keep = drop_edges(ks[v], g.senders.shape[0], pe[v])
            if edge_mask is not None:
                keep = keep & edge_mask
            xv = mask_features(ks[2 + v], x, pf[v])
            h = encoder.apply({"params": params["encoder"]}, xv, g.senders, g.receivers, keep)
            zs.append(head.apply({"params": params["head"]}, h))
        loss, aux = losses.grace_loss(zs[0], zs[1], tau, node_mask)
        return loss, (state, aux)

    def encode(params, state, graph):
        return encoder.apply({"params": params["encoder"]}, jnp.asarray(graph.nodes, jnp.float32), graph.senders,
                             graph.receivers)

    return Method(name="grace", init=init, loss_fn=loss_fn, encode=encode, axis_name=axis_name)

"""DGI (Velickovic et al. 2019): Deep Graph Infomax.

Encoder: GCN layers (``config.model.features``, the paper's transductive setting: one
layer of 512) each followed by PReLU. Summary ``s = sigmoid(mean_i h_i)`` over the real
nodes. Corruption: the rows of the feature matrix are shuffled (a random permutation
from the step key), the graph is kept. A bilinear discriminator scores ``(h_i, s)`` (label
1) against ``(h~_i, s)`` (label 0); the loss is binary cross-entropy with logits
(:func:`sslx.losses.dgi_bce`).

The first layer's linear map commutes with the row shuffle (``(P X) W = P (X W)``), so the
clean and the corrupted graph share one ``X W`` product: the costly dense matmul runs once
per step instead of twice, with the same function computed.

Batch: ``{"graph": GraphsTuple}`` (nodes = features ``[N, F]``, both edge directions, no
self-loops: the GCN adds them), optional ``"node_mask" [N]`` for a padded graph (padding
nodes at the end, as ``jraph.pad_with_graphs`` puts them: the shuffle permutes the real
nodes only, and the summary and loss use the real nodes only).
``encode(params, state, graph)`` returns the frozen node embeddings ``[N, D]``.
"""
from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslx import losses
from sslx.methods.base import DATA_AXIS, Method
from sslx.models.gnn import BilinearDiscriminator, GCNConv


def shuffle_permutation(rng: jax.Array, num_nodes: int, node_mask: Optional[jax.Array] = None) -> jax.Array:
    """A random permutation ``[N]`` of the real nodes (``node_mask``; padding nodes, which must
    trail the real ones, stay in place).

    Node i draws ``u_i ~ U(0, 1)`` from ``fold_in(rng, i)`` and the real nodes are sorted by
    it, so the permutation of the real nodes does not depend on how much padding follows.
    """
    idx = jnp.arange(num_nodes)
    u = jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(rng, i)))(idx)
    if node_mask is not None:
        u = jnp.where(node_mask, u, 2.0 + idx)
    return jnp.argsort(u)


def masked_mean_nodes(h: jax.Array, node_mask: Optional[jax.Array]) -> jax.Array:
    """Mean over the (real) rows of ``h [N, D]`` -> ``[D]``."""
    if node_mask is None:
        return jnp.mean(h, axis=0)
    m = node_mask.astype(h.dtype)[:, None]
    return jnp.sum(h * m, axis=0) / jnp.maximum(jnp.sum(m), 1.0)


def dgi(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
        total_steps: Optional[int] = None) -> Method:
    """DGI as a :class:`Method` (full-graph: the whole graph is the batch, one device).

    Reads ``config.model.features`` (GCN widths, default ``(512,)``) and
    ``config.model.add_self_loops`` (default True).
    """
    del total_steps
    features = tuple(int(f) for f in config.model.get("features", (512,)))
    if not features or min(features) <= 0:
        raise ValueError(f"config.model.features must be positive GCN widths, got {features}.")
    self_loops = bool(config.model.get("add_self_loops", True))
    convs = [GCNConv(f, add_self_loops=self_loops) for f in features]
    act = nn.PReLU(negative_slope_init=0.25)
    disc = BilinearDiscriminator()

    def _graph(batch):
        g = batch["graph"]
        if g.nodes is None or g.nodes.ndim != 2:
            raise ValueError("DGI needs batch['graph'].nodes to be node features [N, F]; got "
                             f"{None if g.nodes is None else g.nodes.shape}.")
        return g

    def init(rng, batch):
        g = _graph(batch)
        keys = jax.random.split(rng, len(features) + 2)
        params = {}
        h = jnp.asarray(g.nodes, jnp.float32)
        for i, conv in enumerate(convs):
            params[f"conv{i}"] = conv.init(keys[i], h, g.senders, g.receivers)["params"]
            h = jnp.zeros((h.shape[0], features[i]), jnp.float32)
            params[f"act{i}"] = act.init(keys[-2], h)["params"]
        params["disc"] = disc.init(keys[-1], h, h[0])["params"]
        return params, {}

    def layers(params, h, senders, receivers, first_transformed: bool = False):
        for i, conv in enumerate(convs):
            p = {"params": params[f"conv{i}"]}
            if not (i == 0 and first_transformed):
                h = conv.apply(p, h, method="transform")
            h = conv.apply(p, h, senders, receivers, method="propagate")
            h = act.apply({"params": params[f"act{i}"]}, h)
        return h

    def embed_pair(params, x, senders, receivers, perm):
        """(clean, corrupted) embeddings sharing the first layer's ``x W``."""
        xw = convs[0].apply({"params": params["conv0"]}, x, method="transform")
        pos = layers(params, xw, senders, receivers, first_transformed=True)
        neg = layers(params, xw[perm], senders, receivers, first_transformed=True)
        return pos, neg

    def loss_fn(params, state, batch, rng):
        g = _graph(batch)
        mask = batch.get("node_mask")
        x = jnp.asarray(g.nodes, jnp.float32)
        perm = shuffle_permutation(rng, x.shape[0], mask)
        h_pos, h_neg = embed_pair(params, x, g.senders, g.receivers, perm)
        summary = jax.nn.sigmoid(masked_mean_nodes(h_pos, mask))
        d = {"params": params["disc"]}
        pos_logits, neg_logits = disc.apply(d, h_pos, summary), disc.apply(d, h_neg, summary)
        loss, aux = losses.dgi_bce(pos_logits, neg_logits, mask)
        return loss, (state, aux)

    def encode(params, state, graph):
        return layers(params, jnp.asarray(graph.nodes, jnp.float32), graph.senders, graph.receivers)

    return Method(name="dgi", init=init, loss_fn=loss_fn, encode=encode, axis_name=axis_name)

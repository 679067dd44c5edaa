"""Graph encoders on edge lists (``jraph.GraphsTuple`` fields): sparse message passing with
segment sums, never a dense N x N adjacency.

* :func:`gcn_norm` / :func:`gcn_propagate` -- ``D^-1/2 (A + I) D^-1/2 H`` from ``senders`` /
  ``receivers`` (Kipf & Welling 2017).
* :class:`GCNConv` -- ``propagate(x W) + b``, with ``transform`` / ``propagate`` callable
  separately (DGI transforms once and propagates clean and row-shuffled rows).
* :class:`GCN` -- a stack of GCNConv layers with PReLU / ReLU.
* :class:`GINConv`, :class:`GIN` -- sum aggregation + MLP (Xu et al. 2019); the encoder
  returns per-layer sum readouts concatenated, as InfoGraph / GraphCL use.
* :class:`BilinearDiscriminator` -- ``h^T W s + b`` (DGI, MVGRL).
* :func:`sum_readout` / :func:`mean_readout` -- masked per-graph pooling.

Padding: ``jraph.pad_with_graphs`` joins padding edges to padding nodes only, so outputs on
real nodes do not depend on the padding; readouts take a node mask.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph

__all__ = ["BilinearDiscriminator", "GCN", "GCNConv", "GIN", "GINConv", "gcn_norm", "gcn_propagate",
           "graph_ids", "mean_readout", "sum_readout", "torch_bilinear_init"]


def gcn_norm(senders: jax.Array, receivers: jax.Array, num_nodes: int, *, add_self_loops: bool = True,
             edge_mask: Optional[jax.Array] = None) -> tuple[jax.Array, jax.Array]:
    """Symmetric-normalisation weights: (edge weight ``[E]``, self-loop weight ``[N]``).

    ``deg_i = #{edges into i} (+ 1 with self-loops)``; edge ``j -> i`` gets
    ``1 / sqrt(deg_i deg_j)``, the added self-loop of ``i`` gets ``1 / deg_i`` (0 without
    self-loops). Nodes of degree 0 get 0. ``edge_mask [E]`` (optional) drops edges.
    """
    ones = jnp.ones(senders.shape, jnp.float32) if edge_mask is None else edge_mask.astype(jnp.float32)
    deg = jax.ops.segment_sum(ones, receivers, num_nodes) + (1.0 if add_self_loops else 0.0)
    inv_sqrt = jnp.where(deg > 0, jax.lax.rsqrt(jnp.maximum(deg, 1e-12)), 0.0)
    w_edge = ones * inv_sqrt[senders] * inv_sqrt[receivers]
    w_self = inv_sqrt ** 2 if add_self_loops else jnp.zeros_like(inv_sqrt)
    return w_edge, w_self


def gcn_propagate(h: jax.Array, senders: jax.Array, receivers: jax.Array, *, add_self_loops: bool = True,
                  edge_mask: Optional[jax.Array] = None,
                  norm: Optional[tuple[jax.Array, jax.Array]] = None) -> jax.Array:
    """``D^-1/2 (A + I) D^-1/2 h`` for ``h [N, F]`` by a segment sum over receivers (``[N, F]``)."""
    n = h.shape[0]
    w_edge, w_self = norm if norm is not None else gcn_norm(senders, receivers, n, add_self_loops=add_self_loops,
                                                            edge_mask=edge_mask)
    msg = h[senders] * w_edge[:, None].astype(h.dtype)
    return jax.ops.segment_sum(msg, receivers, n) + h * w_self[:, None].astype(h.dtype)


class GCNConv(nn.Module):
    """One GCN layer ``D^-1/2 (A + I) D^-1/2 x W + b``: ``x [N, F_in] -> [N, features]``.

    Kernel: Glorot-uniform, bias: zeros (as DGI / PyG). ``transform`` (``x W``) and
    ``propagate`` (normalised aggregation + bias) can be applied separately with
    ``module.apply(variables, ..., method="transform")``.
    """
    features: int
    add_self_loops: bool = True
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.glorot_uniform()

    def setup(self):
        self.lin = nn.Dense(self.features, use_bias=False, kernel_init=self.kernel_init, name="linear")
        if self.use_bias:
            self.bias = self.param("bias", nn.initializers.zeros, (self.features,))

    def transform(self, x: jax.Array) -> jax.Array:
        return self.lin(x)

    def propagate(self, h: jax.Array, senders: jax.Array, receivers: jax.Array,
                  edge_mask: Optional[jax.Array] = None) -> jax.Array:
        out = gcn_propagate(h, senders, receivers, add_self_loops=self.add_self_loops, edge_mask=edge_mask)
        return out + self.bias if self.use_bias else out

    def __call__(self, x: jax.Array, senders: jax.Array, receivers: jax.Array,
                 edge_mask: Optional[jax.Array] = None) -> jax.Array:
        return self.propagate(self.transform(x), senders, receivers, edge_mask)


def _activation(name: str) -> nn.Module | Callable:
    if name == "prelu":
        return nn.PReLU(negative_slope_init=0.25)  # PyTorch's nn.PReLU() default, as DGI uses
    if name == "relu":
        return nn.relu
    if name in ("none", "identity"):
        return lambda x: x
    raise ValueError(f"GNN activation {name!r} is unknown; use 'prelu', 'relu' or 'none'.")


class GCN(nn.Module):
    """Stacked :class:`GCNConv` (widths ``features``), each followed by ``activation``
    (``'prelu'`` with one learned slope per layer, ``'relu'`` or ``'none'``).
    ``(x [N, F], senders [E], receivers [E]) -> [N, features[-1]]``."""
    features: Sequence[int]
    activation: str = "prelu"
    add_self_loops: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, senders: jax.Array, receivers: jax.Array,
                 edge_mask: Optional[jax.Array] = None) -> jax.Array:
        if not self.features:
            raise ValueError("GCN.features must list at least one layer width.")
        h = x
        for i, f in enumerate(self.features):
            h = GCNConv(int(f), add_self_loops=self.add_self_loops, name=f"conv{i}")(h, senders, receivers, edge_mask)
            act = _activation(self.activation)
            h = act(h)
        return h


def graph_ids(n_node: jax.Array, num_nodes: int) -> jax.Array:
    """Graph index of every node ``[N]`` from ``n_node [G]`` (static ``num_nodes = sum(n_node)``)."""
    return jnp.repeat(jnp.arange(n_node.shape[0]), n_node, total_repeat_length=num_nodes)


def sum_readout(h: jax.Array, n_node: jax.Array, node_mask: Optional[jax.Array] = None) -> jax.Array:
    """Per-graph sums ``[G, F]`` of node features ``h [N, F]`` (masked nodes count 0)."""
    if node_mask is not None:
        # where, not a product: padding nodes can hold inf (jraph sends every padding edge into one
        # padding node), and inf * 0 is NaN.
        h = jnp.where(node_mask[:, None], h, 0)
    return jax.ops.segment_sum(h, graph_ids(n_node, h.shape[0]), n_node.shape[0])


def mean_readout(h: jax.Array, n_node: jax.Array, node_mask: Optional[jax.Array] = None) -> jax.Array:
    """Per-graph means ``[G, F]`` over the real (``node_mask``) nodes; empty graphs give 0."""
    ones = jnp.ones(h.shape[:1], h.dtype) if node_mask is None else node_mask.astype(h.dtype)
    counts = jax.ops.segment_sum(ones, graph_ids(n_node, h.shape[0]), n_node.shape[0])
    return sum_readout(h, n_node, node_mask) / jnp.maximum(counts, 1.0)[:, None]


class GINConv(nn.Module):
    """GIN layer ``MLP((1 + eps) h_i + sum_{j -> i} h_j)``, MLP = Dense-ReLU-Dense
    (``eps`` fixed at 0 unless ``learn_eps``). ``[N, F] -> [N, features]``."""
    features: int
    learn_eps: bool = False

    @nn.compact
    def __call__(self, h: jax.Array, senders: jax.Array, receivers: jax.Array,
                 edge_mask: Optional[jax.Array] = None) -> jax.Array:
        msg = h[senders]
        if edge_mask is not None:
            msg = jnp.where(edge_mask[:, None], msg, 0)
        agg = jax.ops.segment_sum(msg, receivers, h.shape[0])
        eps = self.param("eps", nn.initializers.zeros, ()) if self.learn_eps else 0.0
        z = (1.0 + eps) * h + agg
        z = nn.Dense(self.features, name="mlp_0")(z)
        return nn.Dense(self.features, name="mlp_1")(nn.relu(z))


class GIN(nn.Module):
    """GIN encoder for graph-level objectives (InfoGraph / GraphCL layout).

    ``num_layers`` x (GINConv -> ReLU -> BatchNorm over the real nodes). Returns
    ``(graph_emb [G, L * features], node_emb [N, L * features])``: the per-layer node
    features concatenated, and their per-graph sums. ``node_mask`` keeps padding nodes
    out of the BatchNorm statistics and the readout.
    """
    features: int = 32
    num_layers: int = 5
    axis_name: Optional[str] = None

    @nn.compact
    def __call__(self, graph: jraph.GraphsTuple, node_mask: Optional[jax.Array] = None, *,
                 train: bool = True) -> tuple[jax.Array, jax.Array]:
        h = graph.nodes
        layers = []
        mask = None if node_mask is None else node_mask[:, None]
        for i in range(self.num_layers):
            h = nn.relu(GINConv(self.features, name=f"conv{i}")(h, graph.senders, graph.receivers))
            h = nn.BatchNorm(use_running_average=not train, momentum=0.9, axis_name=self.axis_name,
                             name=f"bn{i}")(h, mask=None if mask is None else jnp.broadcast_to(mask, h.shape))
            if mask is not None:  # padding nodes back to 0, so sums over padding edges cannot blow up
                h = jnp.where(mask, h, 0)
            layers.append(h)
        nodes = jnp.concatenate(layers, axis=-1)
        return sum_readout(nodes, graph.n_node, node_mask), nodes


def torch_bilinear_init(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
    """Xavier-uniform of a PyTorch ``nn.Bilinear(D1, D2, 1)`` weight (shape ``[1, D1, D2]``):
    ``U(-b, b)``, ``b = sqrt(6 / (D1 D2 + D2))`` -- DGI's initialisation."""
    d1, d2 = shape
    bound = math.sqrt(6.0 / (d1 * d2 + d2))
    return jax.random.uniform(key, shape, dtype, -bound, bound)


class BilinearDiscriminator(nn.Module):
    """Score ``h_i^T W s + b`` of node embeddings ``h [..., N, D]`` against a summary
    ``s [..., D]`` (broadcast over N): ``[..., N]`` logits."""
    kernel_init: Callable = torch_bilinear_init

    @nn.compact
    def __call__(self, h: jax.Array, summary: jax.Array) -> jax.Array:
        d = h.shape[-1]
        w = self.param("kernel", self.kernel_init, (d, summary.shape[-1]))
        b = self.param("bias", nn.initializers.zeros, ())
        ws = jnp.einsum("ij,...j->...i", w, summary)
        return jnp.einsum("...ni,...i->...n", h, ws) + b

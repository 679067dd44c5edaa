"""MVGRL (Hassani & Khasahmadi 2020): contrastive multi-view representation learning on
graphs, node level (:func:`mvgrl`, ``config.method.level = 'node'``, the default) and graph
level (:func:`mvgrl_graph`, ``config.method.level = 'graph'``; :func:`mvgrl` dispatches).

**Node level.**

Two structural views of one graph: the adjacency (a GCN, symmetric normalisation with
self-loops, sparse) and the personalised-PageRank diffusion
``S = alpha (I - (1 - alpha) D^-1/2 (A + I) D^-1/2)^-1`` (:mod:`sslx.augment.graph_views`;
dense, or top-k sparsified per row with ``config.method.diffusion_topk > 0``). Each view has
its own one-layer GCN (``config.model.features``, 512) + PReLU: ``h^a = PReLU(A_hat X W_a + b_a)``,
``h^d = PReLU(S X W_d + b_d)``. Summaries ``s^v = sigmoid(mean_i h^v_i)``. A shared bilinear
discriminator contrasts nodes of one view with the other view's summary; negatives are the
nodes of the feature-row-shuffled graph (the same shuffle for both views); the loss is
:func:`sslx.losses.mvgrl_bce`. Embedding: ``h^a + h^d`` of the intact graph.

Full-graph steps by default (on Cora-size graphs the whole graph fits). The paper samples 4
subgraphs of 2000 consecutive nodes per step: ``config.method.subgraph_size > 0`` trains every
step on ``config.method.subgraphs_per_step`` random windows of that many nodes
(:func:`sslx.augment.graph_views.window_batch`: features, edges, diffusion entries and feature
non-zeros inside the window, relabelled, static shapes), each with its own feature shuffle, and
averages their losses (the windows are the same size, so this is the authors' BCE over the
batch). The window's adjacency is re-normalised over the edges inside it, while the authors
slice the adjacency normalised on the whole graph; the diffusion entries keep their
whole-graph values, as the authors' slices do. The diffusion is computed once: ``init`` puts it
in the method ``state`` (``state["diffusion"]``), where ``loss_fn`` reads it unless the batch
carries its own ``"diffusion"``; ``encode(params, state, graph)`` recomputes it from ``graph``
(one ``N x N`` solve), so the embedding is a function of the graph it is given.

Batch: ``{"graph": GraphsTuple}`` (+ optional ``"node_mask"`` for padding nodes at the end,
optional ``"diffusion"`` view, optional ``"x_sparse"``: the features' non-zeros from
:func:`sslx.augment.graph_views.sparse_features`, used for ``x W`` -- the same values, far
fewer operations on bag-of-words features).

**Graph level** (the paper's unsupervised graph classification). Many small graphs in padded
device-stacked batches (:mod:`sslx.data.graph_batch`) whose edges carry the two views: the
dataset is prepared once on the host by :func:`sslx.data.graph.with_ppr_view` (``load_graph_dataset``
does it when ``config.dataset.diffusion`` is set): per graph the dense PPR diffusion
``S = alpha (I - (1 - alpha) D^-1/2 (A + I) D^-1/2)^-1`` (alpha 0.2), entries ``>= eps`` kept
(1e-4: on MUTAG-size graphs that is all of ``S``; ``topk`` can cap the entries per row), the
edge list = adjacency edges union kept diffusion entries, ``edges [E, 2]`` = (adjacency flag,
``S[i, j]``). One GCN encoder per view, ``num_layers`` layers of ``PReLU(P h W + b)`` (the
paper's layers), ``P`` = ``D^-1/2 (A + I) D^-1/2`` (adjacency) or the kept ``S`` (diffusion,
its weights used as they are in the weighted sums). Node representation: the last layer
``[N, H]``; graph representation: every layer's per-graph sum over the real nodes,
concatenated ``[G, L * H]``. Two projection MLPs (3 x Dense-PReLU + a linear shortcut, to
``H``), one for nodes and one for graphs, each shared by the two views. Loss: the cross-view
local-global JSD estimator of InfoGraph, summed over the two directions (the paper):
``-MI_JSD(nodes of A, graphs of S) - MI_JSD(nodes of S, graphs of A)`` over every (node,
graph) pair of the global batch (positive: the node belongs to the graph), with InfoGraph's
pair masks, gathering and device weighting (:func:`mvgrl_graph_loss`). No BatchNorm, no
randomness. Evaluation embedding: ``g^a + g^d``, the sum of the two views' projected graph
representations ``[G, H]``. Padding nodes / edges / graphs are zeroed / weight 0 / masked:
they never enter a readout or a pair. Cost: both views run over the one union edge list
(static shapes; the adjacency view's weights are 0 on diffusion-only edges), so the adjacency
view does the diffusion view's work (MUTAG: 63k union edges for 7.4k adjacency edges).
"""
from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph
import ml_collections

from sslx.augment.graph_views import diffusion_propagate, ppr_diffusion, sparse_transform, window_batch
from sslx.data.graph_batch import unflatten
from sslx.losses.graph_mi import mvgrl_bce
from sslx.methods.base import DATA_AXIS, Method
from sslx.methods.graph.dgi import masked_mean_nodes, shuffle_permutation
from sslx.methods.graph.infograph import FF, gather_graphs, infograph_loss
from sslx.models.gnn import BilinearDiscriminator, GCNConv, gcn_norm, graph_ids, sum_readout

__all__ = ["MVGRLGraphEncoder", "MVGRLGraphModel", "WeightedGCNLayer", "mvgrl", "mvgrl_graph",
           "mvgrl_graph_loss", "view_weights"]


def mvgrl(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
          total_steps: Optional[int] = None) -> Method:
    """MVGRL as a :class:`Method`: ``config.method.level`` ``'graph'`` gives :func:`mvgrl_graph`;
    ``'node'`` (default) the node-level objective (full graph, one device).

    Node level reads ``config.model.features`` (one width, default ``(512,)``),
    ``config.method.alpha`` (PPR teleport, 0.2), ``config.method.diffusion_topk`` (0: dense) and
    ``config.method.subgraph_size`` / ``subgraphs_per_step`` (0: full-graph steps; else that many
    random node windows per step).
    """
    level = config.method.get("level", "node")
    if level == "graph":
        return mvgrl_graph(config, axis_name=axis_name, total_steps=total_steps)
    if level != "node":
        raise ValueError(f"config.method.level={level!r} is unknown; use 'node' or 'graph'.")
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
    subgraph = int(config.method.get("subgraph_size", 0))
    windows = int(config.method.get("subgraphs_per_step", 4))
    if subgraph < 0 or windows < 1:
        raise ValueError(f"config.method.subgraph_size must be >= 0 (0: full-graph steps) and "
                         f"config.method.subgraphs_per_step >= 1; got {subgraph} and {windows}.")
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

    def views(params, xw_a, xw_d, g, diff, edge_mask=None):
        """(h^a, h^d) from the transformed features of the two views."""
        ha = conv.apply({"params": params["conv_a"]}, xw_a, g.senders, g.receivers, edge_mask, method="propagate")
        hd = diffusion_propagate(xw_d, diff) + params["conv_d"]["bias"]
        return act.apply({"params": params["act_a"]}, ha), act.apply({"params": params["act_d"]}, hd)

    def transform(params, x, xs=None):
        if xs is not None:  # the same x W through the non-zeros of x
            return tuple(sparse_transform(xs, params[k]["linear"]["kernel"], x.shape[0])
                         for k in ("conv_a", "conv_d"))
        return (conv.apply({"params": params["conv_a"]}, x, method="transform"),
                conv.apply({"params": params["conv_d"]}, x, method="transform"))

    def graph_loss(params, batch, diff, rng):
        g = batch["graph"]
        x = _graph(g)
        mask, edge_mask = batch.get("node_mask"), batch.get("edge_mask")
        perm = shuffle_permutation(rng, x.shape[0], mask)
        # (P X) W = P (X W): one x W per view serves the clean and the corrupted graph
        xa, xd = transform(params, x, batch.get("x_sparse"))
        ha, hd = views(params, xa, xd, g, diff, edge_mask)
        ha_n, hd_n = views(params, xa[perm], xd[perm], g, diff, edge_mask)
        sa = jax.nn.sigmoid(masked_mean_nodes(ha, mask))
        sd = jax.nn.sigmoid(masked_mean_nodes(hd, mask))
        d = {"params": params["disc"]}
        pos = (disc.apply(d, hd, sa), disc.apply(d, ha, sd))
        neg = (disc.apply(d, hd_n, sa), disc.apply(d, ha_n, sd))
        return mvgrl_bce(pos, neg, mask)

    def loss_fn(params, state, batch, rng):
        diff = batch.get("diffusion", state["diffusion"])
        if not subgraph:
            loss, aux = graph_loss(params, batch, diff, rng)
            return loss, (state, aux)

        def one_window(key):  # the window's key is folded off; the shuffle draws from ``key``
            bw, dw, _ = window_batch(batch, diff, subgraph, jax.random.fold_in(key, 1))
            return graph_loss(params, bw, dw, key)

        losses, aux = jax.vmap(one_window)(jax.random.split(rng, windows))
        return jnp.mean(losses), (state, jax.tree.map(jnp.mean, aux))

    def encode(params, state, graph):
        x = _graph(graph)
        xa, xd = transform(params, x)
        ha, hd = views(params, xa, xd, graph, diffusion_of(graph))
        return ha + hd

    return Method(name="mvgrl", init=init, loss_fn=loss_fn, encode=encode, axis_name=axis_name)


# ------------------------------------------------------------------------------------ graph level


class WeightedGCNLayer(nn.Module):
    """``PReLU(sum_j w_ij (h_j W) + w_self_i (h_i W) + b)`` over the edges ``j -> i``:
    ``h [N, F] -> [N, features]``; ``w_edge [E]``, ``w_self [N]`` (optional). Glorot-uniform ``W``
    and zero ``b`` (the authors' initialisation), one PReLU slope (0.25 at init)."""
    features: int

    @nn.compact
    def __call__(self, h: jax.Array, senders: jax.Array, receivers: jax.Array, w_edge: jax.Array,
                 w_self: Optional[jax.Array] = None) -> jax.Array:
        xw = nn.Dense(self.features, use_bias=False, kernel_init=nn.initializers.xavier_uniform(), name="linear")(h)
        out = jax.ops.segment_sum(xw[senders] * w_edge[:, None].astype(xw.dtype), receivers, h.shape[0])
        if w_self is not None:
            out = out + xw * w_self[:, None].astype(xw.dtype)
        out = out + self.param("bias", nn.initializers.zeros, (self.features,))
        return nn.PReLU(negative_slope_init=0.25, name="act")(out)


class MVGRLGraphEncoder(nn.Module):
    """One view's GCN: ``num_layers`` x :class:`WeightedGCNLayer`. Returns ``(nodes [N, H]`` (the
    last layer), ``graphs [G, L * H]`` (every layer's per-graph sum over the real nodes,
    concatenated)). Padding nodes are set to 0 after every layer."""
    features: int
    num_layers: int

    @nn.compact
    def __call__(self, x: jax.Array, senders: jax.Array, receivers: jax.Array, w_edge: jax.Array,
                 w_self: Optional[jax.Array], n_node: jax.Array, node_mask: Optional[jax.Array] = None
                 ) -> tuple[jax.Array, jax.Array]:
        h, reads = x, []
        for i in range(self.num_layers):
            h = WeightedGCNLayer(self.features, name=f"layer{i}")(h, senders, receivers, w_edge, w_self)
            if node_mask is not None:
                h = jnp.where(node_mask[:, None], h, 0.0)
            reads.append(sum_readout(h, n_node, node_mask))
        return h, jnp.concatenate(reads, axis=-1)


def view_weights(graph: jraph.GraphsTuple) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
    """The two views' propagation weights from ``graph.edges [E, 2]`` (:func:`sslx.data.graph.with_ppr_view`):
    ``((w_edge [E], w_self [N])`` of ``D^-1/2 (A + I) D^-1/2`` over the adjacency edges (column 0),
    ``w_diff [E]`` (column 1, the kept ``S[i, j]``, its diagonal included)). Padding edges carry 0s."""
    e = graph.edges
    if e is None or e.ndim != 2 or e.shape[1] != 2:
        raise ValueError("graph-level MVGRL needs graph.edges [E, 2] = (adjacency flag, PPR weight); got "
                         f"{None if e is None else e.shape}. Build the dataset with sslx.data.graph.with_ppr_view "
                         "(load_graph_dataset does it when config.dataset.diffusion is set).")
    e = jnp.asarray(e, jnp.float32)
    adj = gcn_norm(graph.senders, graph.receivers, graph.nodes.shape[0], add_self_loops=True, edge_mask=e[:, 0])
    return adj, e[:, 1]


class MVGRLGraphModel(nn.Module):
    """Both views' encoders and the shared node / graph projections:
    ``(graph, node_mask) -> (l_a [N, H], g_a [G, H], l_d [N, H], g_d [G, H])`` (projected; ``a``
    adjacency, ``d`` diffusion). Parameters ``enc_a``, ``enc_d``, ``proj_node``, ``proj_graph``."""
    features: int = 512
    num_layers: int = 4
    torch_init: bool = True

    def setup(self):
        self.enc_a = MVGRLGraphEncoder(self.features, self.num_layers)
        self.enc_d = MVGRLGraphEncoder(self.features, self.num_layers)
        self.proj_node = FF(self.features, self.torch_init, prelu=True)
        self.proj_graph = FF(self.features, self.torch_init, prelu=True)

    def __call__(self, graph: jraph.GraphsTuple, node_mask: Optional[jax.Array] = None
                 ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        x = jnp.asarray(graph.nodes, jnp.float32)
        (w_a, w_self), w_d = view_weights(graph)
        h_a, r_a = self.enc_a(x, graph.senders, graph.receivers, w_a, w_self, graph.n_node, node_mask)
        h_d, r_d = self.enc_d(x, graph.senders, graph.receivers, w_d, None, graph.n_node, node_mask)
        return self.proj_node(h_a), self.proj_graph(r_a), self.proj_node(h_d), self.proj_graph(r_d)


def mvgrl_graph_loss(l_a: jax.Array, l_d: jax.Array, g_a: jax.Array, g_d: jax.Array, node_graph: jax.Array,
                     node_mask: jax.Array, graph_mask: jax.Array, axis_name: Optional[str] = None
                     ) -> tuple[jax.Array, dict]:
    """MVGRL's cross-view local-global loss: :func:`~sslx.methods.graph.infograph.infograph_loss`
    of the adjacency view's nodes against the diffusion view's graphs plus the diffusion nodes
    against the adjacency graphs (the paper sums the two).

    ``l_a, l_d [N, D]`` this device's projected node representations; ``g_a, g_d [G, D]`` the
    projected graph representations of the global batch (gathered); ``node_graph [N]`` each
    node's graph column; ``node_mask [N]``, ``graph_mask [G]`` real entries; ``axis_name`` as
    in ``infograph_loss`` (per-device shares whose mean is the global loss). Returns ``(loss,
    {"mi", "mi_a_d", "mi_d_a"})`` with ``mi`` the mean of the two directions' estimates.
    """
    if l_a.shape != l_d.shape or g_a.shape != g_d.shape:
        raise ValueError(f"mvgrl_graph_loss: the two views must have one shape; got nodes {l_a.shape} / {l_d.shape}, "
                         f"graphs {g_a.shape} / {g_d.shape}.")
    loss_ad, aux_ad = infograph_loss(l_a, g_d, node_graph, node_mask, graph_mask, axis_name)
    loss_da, aux_da = infograph_loss(l_d, g_a, node_graph, node_mask, graph_mask, axis_name)
    return loss_ad + loss_da, {"mi": 0.5 * (aux_ad["mi"] + aux_da["mi"]), "mi_a_d": aux_ad["mi"],
                               "mi_d_a": aux_da["mi"]}


def mvgrl_graph(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
                total_steps: Optional[int] = None) -> Method:
    """Graph-level MVGRL (module docstring) as a :class:`Method` over device-stacked padded batches
    whose ``"edges"`` hold the two views (:func:`sslx.data.graph.with_ppr_view`).

    Reads ``config.model.hidden`` (``H``, paper 512), ``config.model.num_layers`` (paper 4) and
    ``config.model.init`` (``'torch'``: PyTorch's Linear initialisation for the projections).
    ``encode(params, state, graph, node_mask=None)`` -> ``g^a + g^d`` ``[G, H]``.
    """
    del total_steps
    hidden = int(config.model.get("hidden", 512))
    num_layers = int(config.model.get("num_layers", 4))
    if hidden <= 0 or num_layers <= 0:
        raise ValueError(f"config.model.hidden ({hidden}) and config.model.num_layers ({num_layers}) must be positive.")
    init_kind = config.model.get("init", "torch")
    if init_kind not in ("torch", "flax"):
        raise ValueError(f"config.model.init={init_kind!r} is unknown; use 'torch' or 'flax'.")
    model = MVGRLGraphModel(hidden, num_layers, torch_init=init_kind == "torch")

    def init(rng, batch):
        return model.init(rng, unflatten(batch), batch.get("node_mask"))["params"], {}

    def loss_fn(params, state, batch, rng):
        del rng  # no randomness in the objective
        g = unflatten(batch)
        node_mask, graph_mask = batch["node_mask"], batch["graph_mask"]
        l_a, g_a, l_d, g_d = model.apply({"params": params}, g, node_mask)
        (g_a, g_d), node_graph, graph_mask = gather_graphs((g_a, g_d), graph_ids(g.n_node, l_a.shape[0]),
                                                           graph_mask, axis_name)
        loss, aux = mvgrl_graph_loss(l_a, l_d, g_a, g_d, node_graph, node_mask, graph_mask, axis_name)
        return loss, (state, aux)

    def encode(params, state, graph, node_mask=None):
        del state
        _, g_a, _, g_d = model.apply({"params": params}, graph, node_mask)
        return g_a + g_d

    return Method(name="mvgrl", init=init, loss_fn=loss_fn, encode=encode, axis_name=axis_name)

"""GraphLoG (Xu et al. 2021, "Self-supervised Graph-level Representation Learning with Local and
Global Structure"): graph embeddings that keep the similarity of correlated graph pairs (local-
instance structure) and cluster under hierarchical prototypes (global-semantic structure).

Per step, for every graph ``G`` of the batch a correlated copy ``G'`` is drawn on device
(:func:`perturb_nodes`: node dropping and attribute masking, keyed by the graph's *global* batch
index so the views do not depend on the device split). One GIN encoder
(:class:`~sslx.methods.graph.infograph.InfoGraphEncoder`: per-layer node features concatenated,
per-graph sums, count-weighted synchronised BatchNorm) embeds both; two projection heads
(Dense-ReLU-Dense) map nodes and graphs to the contrast space. The loss is

    alpha * node_nce + beta * graph_nce + gamma * ready * proto_nce

(:mod:`sslx.losses.graph_proto`): node-level InfoNCE within each graph (anchor: a changed node
of ``G'``, positive: the same node of ``G``, negatives: the other nodes of ``G``), graph-level
InfoNCE across the global batch (anchor ``G'``, positive ``G``, negatives the other graphs,
gathered from all devices), and the hierarchical-prototype loss of the original graphs'
projections. ``ready`` is 0 until the prototypes are initialised.

Prototypes (``params["prototypes"]["level_<l>"] [M_l, D]``, finest first) are trained by the
optimiser like the authors' release; which of them are active and each one's parent live in the
state. The method's ``epoch_start`` hook initialises them after ``method.local_epochs`` epochs
of local-only training (the authors use 1 epoch of ZINC): the projected embeddings of every
training graph (train-mode BatchNorm over batches of ``batch_size`` graphs, as the loss sees
them) are clustered by hierarchical spherical k-means (:func:`sslx.losses.hierarchical_kmeans`;
the authors' release uses online competitive learning and, above the first level, rival-
penalised competitive learning -- both k-means-like; empty clusters are dropped there as here
by the active mask). ``method.proto_refresh_every > 0`` re-clusters every that many epochs
afterwards (and resets the prototypes' optimiser moments); 0 keeps the authors' single
initialisation.

``encode(params, state, graph, node_mask)`` -> the frozen encoder readout ``[G, L * hidden]``
(BatchNorm running statistics), as InfoGraph's evaluation.
"""
from __future__ import annotations

import math
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax import lax

from sslx.data.graph_batch import unflatten
from sslx.losses.graph_proto import (graphlog_graph_nce, graphlog_node_nce, hierarchical_kmeans,
                                     hierarchical_proto_nce)
from sslx.methods.base import DATA_AXIS, EpochContext, Method
from sslx.train.state import reset_opt_state_under
from sslx.methods.graph.infograph import InfoGraphEncoder
from sslx.models.gnn import graph_ids

__all__ = ["ProjectionHead", "global_graph_index", "graphlog", "perturb_nodes",
           "within_graph_rank"]

_PROTO_SALT = 0x6106


class ProjectionHead(nn.Module):
    """``Dense(hidden) -> ReLU -> Dense(features)``: ``[.., D] -> [.., features]``."""
    hidden: int
    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return nn.Dense(self.features, name="dense_1")(nn.relu(nn.Dense(self.hidden, name="dense_0")(x)))


def global_graph_index(graph_mask: jax.Array, axis_name: Optional[str]) -> jax.Array:
    """Index of every graph slot of this device's block in the global batch ``[Gb]`` int32.

    Real graphs come first in a block and the devices hold contiguous groups in order
    (:func:`sslx.data.graph_batch.split_for_devices`), so graph ``j`` of device ``d`` is number
    ``j + (real graphs on devices < d)``. Padding slots get indices too (never used)."""
    local = jnp.arange(graph_mask.shape[0], dtype=jnp.int32)
    if axis_name is None:
        return local
    counts = lax.all_gather(jnp.sum(graph_mask.astype(jnp.int32)), axis_name)  # [D]
    before = jnp.arange(counts.shape[0]) < lax.axis_index(axis_name)
    return local + jnp.sum(jnp.where(before, counts, 0)).astype(jnp.int32)


def within_graph_rank(values: jax.Array, node_graph: jax.Array, n_node: jax.Array) -> jax.Array:
    """Rank ``[N]`` int32 of every node's value among the nodes of its graph (0 = smallest;
    ties by node order). ``node_graph [N]`` graph ids (nodes grouped by graph), ``n_node [G]``."""
    n = values.shape[0]
    order = jnp.lexsort((jnp.arange(n), values, node_graph))  # graph first, then value, then index
    starts = jnp.cumsum(n_node) - n_node
    pos = jnp.arange(n, dtype=jnp.int32) - starts[node_graph[order]].astype(jnp.int32)
    return jnp.zeros((n,), jnp.int32).at[order].set(pos)


def perturb_nodes(rng: jax.Array, nodes: jax.Array, n_node: jax.Array, node_mask: jax.Array,
                  graph_index: jax.Array, drop_rate: float, mask_rate: float
                  ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """A correlated view of a padded block of graphs by node dropping and attribute masking.

    In a graph of ``n`` real nodes, ``floor(n * drop_rate)`` nodes are dropped and then, of the
    ``k`` kept ones, ``min(k, floor(k * mask_rate) + 1)`` are masked (the authors' count; none when
    ``mask_rate == 0``); both sets are uniform without replacement. A node's random numbers come
    from ``fold_in(fold_in(rng, graph_index[g]), position in g)``, so a graph's view depends only on
    ``rng`` and its global index. Dropped and masked nodes get all-zero features (one-hot and
    constant features are never all-zero, so this is a distinct mask token); a dropped node also
    leaves the node mask, so the encoder sees no messages from it and the readout skips it.

    nodes ``[N, F]``; n_node ``[G]``; node_mask ``[N]``; graph_index ``[G]`` int. Returns
    ``(nodes [N, F], present [N] bool, masked [N] bool)``.
    """
    if not 0.0 <= drop_rate < 1.0 or not 0.0 <= mask_rate <= 1.0:
        raise ValueError(f"node drop_rate must lie in [0, 1) and mask_rate in [0, 1]; got {drop_rate}, {mask_rate}.")
    n = nodes.shape[0]
    gid = graph_ids(n_node, n)
    pos = jnp.arange(n, dtype=jnp.int32) - (jnp.cumsum(n_node) - n_node)[gid].astype(jnp.int32)
    real = node_mask.astype(bool)

    def draw(g, p):
        return jax.random.uniform(jax.random.fold_in(jax.random.fold_in(rng, g), p), (2,))

    u = jax.vmap(draw)(graph_index[gid], pos)  # [N, 2]
    n_real = jax.ops.segment_sum(real.astype(jnp.int32), gid, n_node.shape[0])  # [G]
    n_drop = jnp.floor(n_real.astype(jnp.float32) * drop_rate + 1e-6).astype(jnp.int32)
    # Padding nodes rank after every real node of their graph (value 2 > any uniform draw).
    drop_rank = within_graph_rank(jnp.where(real, u[:, 0], 2.0), gid, n_node)
    present = real & (drop_rank >= n_drop[gid])
    if mask_rate > 0:
        n_keep = n_real - n_drop
        n_mask = jnp.minimum(n_keep, jnp.floor(n_keep.astype(jnp.float32) * mask_rate + 1e-6).astype(jnp.int32) + 1)
        mask_rank = within_graph_rank(jnp.where(present, u[:, 1], 2.0), gid, n_node)
        masked = present & (mask_rank < n_mask[gid])
    else:
        masked = jnp.zeros((n,), bool)
    out = jnp.where((masked | ~present)[:, None], jnp.zeros_like(nodes), nodes)
    return out, present, masked


def _levels(tree: dict) -> list:
    return [tree[f"level_{i}"] for i in range(len(tree))]


def graphlog(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
             total_steps: Optional[int] = None) -> Method:
    """GraphLoG as a :class:`Method` over device-stacked padded graph batches (module docstring).

    Reads ``config.model``: ``hidden`` (per-layer width), ``num_layers``, ``sync_bn``, ``init``
    (``'torch'`` / ``'flax'``), ``proj_dim`` (0: the embedding width ``L * hidden``);
    ``config.method``: ``temperature`` (0.1), ``alpha`` / ``beta`` / ``gamma`` (node / graph /
    prototype weights, 1 / 1 / 0.1), ``num_prototypes`` (per level, finest first), ``local_epochs``,
    ``kmeans_iters``, ``proto_refresh_every``, ``drop_rate``, ``mask_rate``; ``config.batch_size``
    (the hook's embedding batches).
    """
    del total_steps
    mc, m = config.model, config.method
    hidden, num_layers = int(mc.get("hidden", 32)), int(mc.get("num_layers", 5))
    if hidden <= 0 or num_layers <= 0:
        raise ValueError(f"config.model.hidden ({hidden}) and config.model.num_layers ({num_layers}) must be positive.")
    init_kind = mc.get("init", "torch")
    if init_kind not in ("torch", "flax"):
        raise ValueError(f"config.model.init={init_kind!r} is unknown; use 'torch' or 'flax'.")
    tau = float(m.get("temperature", 0.1))
    alpha, beta, gamma = float(m.get("alpha", 1.0)), float(m.get("beta", 1.0)), float(m.get("gamma", 0.1))
    sizes = tuple(int(s) for s in m.get("num_prototypes", (16, 8, 4)))
    local_epochs = int(m.get("local_epochs", 1))
    iters = int(m.get("kmeans_iters", 20))
    refresh = int(m.get("proto_refresh_every", 0))
    drop_rate, mask_rate = float(m.get("drop_rate", 0.0)), float(m.get("mask_rate", 0.3))
    if tau <= 0:
        raise ValueError(f"config.method.temperature must be > 0, got {tau}.")
    if not sizes or min(sizes) < 1:
        raise ValueError(f"config.method.num_prototypes must list >= 1 prototypes per level, got {sizes}.")
    if local_epochs < 0 or refresh < 0 or iters < 1:
        raise ValueError(f"config.method.local_epochs ({local_epochs}) and proto_refresh_every ({refresh}) must be "
                         f">= 0 and kmeans_iters ({iters}) >= 1.")
    if not 0.0 <= drop_rate < 1.0 or not 0.0 <= mask_rate <= 1.0 or drop_rate + mask_rate == 0:
        raise ValueError(f"config.method.drop_rate ({drop_rate}) must lie in [0, 1) and mask_rate ({mask_rate}) in "
                         "[0, 1], not both 0 (the two views would be equal).")
    ti = init_kind == "torch"
    bn_axis = axis_name if bool(mc.get("sync_bn", True)) else None
    encoder = InfoGraphEncoder(hidden, num_layers, axis_name=bn_axis, torch_init=ti)
    local_encoder = InfoGraphEncoder(hidden, num_layers, axis_name=None, torch_init=ti)
    emb_dim = hidden * num_layers
    proj_dim = int(mc.get("proj_dim", 0)) or emb_dim
    node_head, graph_head = ProjectionHead(emb_dim, proj_dim), ProjectionHead(emb_dim, proj_dim)
    num_levels = len(sizes)
    embed_batch = max(int(config.batch_size), 1)

    def init(rng, batch):
        g = unflatten(batch)
        k_enc, k_node, k_graph, k_proto = jax.random.split(rng, 4)
        variables = local_encoder.init(k_enc, g, batch.get("node_mask"), train=True)
        dummy = jnp.zeros((1, emb_dim), jnp.float32)
        pk = jax.random.split(k_proto, num_levels)
        protos = {f"level_{i}": jax.random.normal(pk[i], (s, proj_dim), jnp.float32) / math.sqrt(proj_dim)
                  for i, s in enumerate(sizes)}
        params = {"encoder": variables["params"], "node_head": node_head.init(k_node, dummy)["params"],
                  "graph_head": graph_head.init(k_graph, dummy)["params"], "prototypes": protos}
        # Before the k-means initialisation the prototype term is weighted 0 (ready = 0); a valid
        # placeholder tree keeps it finite.
        state = {"batch_stats": variables["batch_stats"],
                 "proto_active": {f"level_{i}": jnp.ones((s,), bool) for i, s in enumerate(sizes)},
                 "proto_parent": {f"level_{i}": jnp.arange(s, dtype=jnp.int32) % sizes[i + 1]
                                  for i, s in enumerate(sizes[:-1])},
                 "proto_ready": jnp.zeros((), jnp.float32)}
        return params, state

    def loss_fn(params, state, batch, rng):
        g = unflatten(batch)
        node_mask, graph_mask = batch["node_mask"].astype(bool), batch["graph_mask"].astype(bool)
        n = g.nodes.shape[0]
        node_graph = graph_ids(g.n_node, n)
        gidx = global_graph_index(graph_mask, axis_name)
        aug_nodes, present, masked = perturb_nodes(rng, g.nodes, g.n_node, node_mask, gidx, drop_rate, mask_rate)
        g_mod = g._replace(nodes=aug_nodes)
        (ge, ne), upd = encoder.apply({"params": params["encoder"], "batch_stats": state["batch_stats"]}, g,
                                      node_mask, train=True, mutable=["batch_stats"])
        (ge2, ne2), upd = encoder.apply({"params": params["encoder"], "batch_stats": upd["batch_stats"]}, g_mod,
                                        present, train=True, mutable=["batch_stats"])
        zn = node_head.apply({"params": params["node_head"]}, ne)
        zn2 = node_head.apply({"params": params["node_head"]}, ne2)
        zg = graph_head.apply({"params": params["graph_head"]}, ge)
        zg2 = graph_head.apply({"params": params["graph_head"]}, ge2)
        anchors = masked if mask_rate > 0 else present
        l_node, a_node = graphlog_node_nce(zn, zn2, node_graph, anchors, node_mask, tau, axis_name)
        zg_all, gm_all, own = zg, graph_mask, jnp.arange(zg.shape[0])
        if axis_name is not None:
            own = own + lax.axis_index(axis_name) * zg.shape[0]
            zg_all = lax.all_gather(zg, axis_name, tiled=True)
            gm_all = lax.all_gather(graph_mask, axis_name, tiled=True)
        l_graph, a_graph = graphlog_graph_nce(zg_all, zg2, own, gm_all, graph_mask, tau, axis_name)
        l_proto, a_proto = hierarchical_proto_nce(
            zg, _levels(params["prototypes"]), _levels(state["proto_active"]), _levels(state["proto_parent"]),
            graph_mask, tau, axis_name)
        ready = state["proto_ready"]
        loss = alpha * l_node + beta * l_graph + gamma * ready * l_proto
        metrics = {"node_nce": l_node, "graph_nce": l_graph, "proto_nce": l_proto, "proto_path": a_proto["proto_path"],
                   "proto_tree": a_proto["proto_tree"], **a_node, **a_graph}
        return loss, ({**state, "batch_stats": upd["batch_stats"]}, metrics)

    def encode(params, state, graph, node_mask=None):
        g_emb, _ = local_encoder.apply({"params": params["encoder"], "batch_stats": state["batch_stats"]}, graph,
                                       node_mask, train=False)
        return g_emb

    @jax.jit
    def _project(params, state, batch):
        """Projected graph embeddings as the loss sees them (train-mode BatchNorm on this batch)."""
        g = unflatten(batch)
        (ge, _), _ = local_encoder.apply({"params": params["encoder"], "batch_stats": state["batch_stats"]}, g,
                                         batch["node_mask"], train=True, mutable=["batch_stats"])
        return graph_head.apply({"params": params["graph_head"]}, ge)

    def embed_projected(params, state, dataset) -> np.ndarray:
        """``[G, proj_dim]`` projections of every graph of ``dataset`` (batches of ``batch_size`` in order)."""
        from sslx.data.graph_batch import dataset_budget, make_graph_batch
        sizes_ = dataset_budget(dataset, embed_batch, 1)
        out = []
        for start in range(0, len(dataset), embed_batch):
            idx = np.arange(start, min(start + embed_batch, len(dataset)))
            out.append(np.asarray(_project(params, state, make_graph_batch(dataset, idx, 1, sizes_)))[:len(idx)])
        return np.concatenate(out, axis=0)

    def epoch_start(ts, ctx: EpochContext):
        e = int(ctx.epoch)
        due = e == local_epochs or (refresh > 0 and e > local_epochs and (e - local_epochs) % refresh == 0)
        if not due:
            return ts, {}
        params, state = jax.device_get(ts.params), jax.device_get(ts.state)
        z = embed_projected(params, state, ctx.dataset)
        key = jax.random.fold_in(jax.random.fold_in(jnp.asarray(jax.device_get(ts.rng)), _PROTO_SALT), e)
        protos, active, parents = hierarchical_kmeans(jnp.asarray(z), jnp.ones((z.shape[0],), jnp.float32), sizes,
                                                      key, iters)
        params = {**params, "prototypes": {f"level_{i}": np.asarray(c, np.float32) for i, c in enumerate(protos)}}
        state = {**state, "proto_active": {f"level_{i}": np.asarray(a, bool) for i, a in enumerate(active)},
                 "proto_parent": {f"level_{i}": np.asarray(p, np.int32) for i, p in enumerate(parents)},
                 "proto_ready": np.ones((), np.float32)}
        opt_state = jax.device_get(ts.opt_state)
        if ctx.tx is not None:
            opt_state = reset_opt_state_under(opt_state, ctx.tx.init(params), "prototypes")
        metrics = {f"proto_active_{i}": float(np.sum(a)) for i, a in enumerate(active)}
        return ts.replace(params=params, state=state, opt_state=opt_state), metrics

    return Method(name="graphlog", init=init, loss_fn=loss_fn, encode=encode, axis_name=axis_name,
                  epoch_start=epoch_start)

"""InfoGraph (Sun et al. 2020): graph-level unsupervised learning by maximising the
Jensen-Shannon mutual information between graph embeddings and their nodes' "patch"
embeddings.

Encoder (the paper's GIN layout, as in :class:`sslx.models.gnn.GIN`): ``num_layers`` x
(GINConv with a Dense-ReLU-Dense MLP and sum aggregation -> ReLU -> BatchNorm); node
patch embeddings = every layer's node features concatenated ``[N, L * hidden]``; graph
embedding = their per-graph sums ``[G, L * hidden]``. Local and global projection heads
(:class:`FF`: three Dense-ReLU layers plus a linear shortcut) map patches and graphs to
the critic space; the critic is the dot product ``T(i, g) = local(h_i) . global(h_g)``.
Every (node, graph) pair of the *global* batch is scored: positive when node ``i`` belongs
to graph ``g``, negative otherwise; loss = ``-MI_JSD`` (:func:`sslx.losses.jsd_mi`).

Sharding: a batch is a device-stacked padded block per device
(:mod:`sslx.data.graph_batch`). Each device gathers the projected graph embeddings of all
devices (``all_gather``) and scores its own nodes against all of them; its loss is
weighted so that the *mean over devices* equals the global-batch loss (the pair counts are
``psum``-ed), so gradients averaged by the train step are the global gradients. BatchNorm
statistics are synchronised over devices weighted by real-node counts
(:class:`MaskedSyncBatchNorm`), so a 4-device step equals the 1-device step on the same graphs.
Padding nodes / graphs (masks) never enter a statistic, a readout or a pair.

``encode(params, state, graph, node_mask=None)`` -> frozen graph embeddings ``[G, L * hidden]``
(the GIN readout, BatchNorm running statistics: the paper's evaluation features).
"""
from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph
import ml_collections
from jax import lax

from sslx import losses
from sslx.data.graph_batch import unflatten
from sslx.methods.base import DATA_AXIS, Method
from sslx.models.gnn import GINConv, graph_ids, sum_readout

__all__ = ["FF", "InfoGraphEncoder", "MaskedSyncBatchNorm", "gather_graphs", "infograph", "infograph_loss",
           "pair_masks"]


class MaskedSyncBatchNorm(nn.Module):
    """BatchNorm over the rows of ``x [N, F]`` where ``mask [N]`` is True, with statistics
    summed over ``axis_name`` and divided by the *global* count of real rows (flax's masked
    BatchNorm averages per-device means, which differs when devices hold unequal numbers of
    real rows). Biased variance for normalising, PyTorch's ``momentum`` convention
    ``running = (1 - m) running + m batch`` with ``m = 1 - momentum`` here (flax style, 0.9)."""
    momentum: float = 0.9
    epsilon: float = 1e-5
    axis_name: Optional[str] = None

    @nn.compact
    def __call__(self, x: jax.Array, mask: Optional[jax.Array] = None, *, train: bool = True) -> jax.Array:
        f = x.shape[-1]
        ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((f,), jnp.float32))
        ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((f,), jnp.float32))
        scale = self.param("scale", nn.initializers.ones, (f,))
        bias = self.param("bias", nn.initializers.zeros, (f,))
        if train:
            m = jnp.ones(x.shape[:1], x.dtype) if mask is None else mask.astype(x.dtype)
            m = m[:, None]
            x_real = x if mask is None else jnp.where(mask[:, None], x, 0.0)  # inf * 0 would be NaN
            s, c = jnp.sum(x_real, axis=0), jnp.sum(m)
            if self.axis_name is not None:
                s, c = lax.psum((s, c), self.axis_name)
            c = jnp.maximum(c, 1.0)
            mean = s / c
            sq = jnp.sum(jnp.square(x_real - mean) * m, axis=0)
            if self.axis_name is not None:
                sq = lax.psum(sq, self.axis_name)
            var = sq / c
            if not self.is_initializing():
                ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * lax.stop_gradient(mean)
                ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * lax.stop_gradient(var)
        else:
            mean, var = ra_mean.value, ra_var.value
        return (x - mean) * lax.rsqrt(var + self.epsilon) * scale + bias


def torch_kernel_init(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
    """PyTorch ``nn.Linear``'s default weight init ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` (``[in, out]``)."""
    bound = 1.0 / jnp.sqrt(shape[0])
    return jax.random.uniform(key, shape, dtype, -bound, bound)


def _torch_bias_init(fan_in: int):
    def init(key, shape, dtype=jnp.float32):
        bound = 1.0 / jnp.sqrt(fan_in)
        return jax.random.uniform(key, shape, dtype, -bound, bound)
    return init


def _dense(features: int, fan_in: int, torch_init: bool, name: str) -> nn.Dense:
    if not torch_init:
        return nn.Dense(features, name=name)
    return nn.Dense(features, kernel_init=torch_kernel_init, bias_init=_torch_bias_init(fan_in), name=name)


class TorchInitGINConv(nn.Module):
    """:class:`sslx.models.gnn.GINConv` (eps = 0, same parameter names) with PyTorch's
    ``nn.Linear`` initialisation, as the authors' PyTorch code starts from."""
    features: int

    @nn.compact
    def __call__(self, h: jax.Array, senders: jax.Array, receivers: jax.Array) -> jax.Array:
        z = h + jax.ops.segment_sum(h[senders], receivers, h.shape[0])
        z = _dense(self.features, h.shape[-1], True, "mlp_0")(z)
        return _dense(self.features, self.features, True, "mlp_1")(nn.relu(z))


class InfoGraphEncoder(nn.Module):
    """GIN as :class:`sslx.models.gnn.GIN` (same layers), with count-weighted synchronised
    masked BatchNorm. ``(graph, node_mask) -> (graph_emb [G, L*H], node_emb [N, L*H])``.
    ``torch_init``: PyTorch's Linear initialisation instead of flax's (lecun-normal, zero bias)."""
    features: int = 32
    num_layers: int = 5
    axis_name: Optional[str] = None
    torch_init: bool = False

    @nn.compact
    def __call__(self, graph: jraph.GraphsTuple, node_mask: Optional[jax.Array] = None, *,
                 train: bool = True) -> tuple[jax.Array, jax.Array]:
        h = graph.nodes
        layers = []
        for i in range(self.num_layers):
            conv = TorchInitGINConv if self.torch_init else GINConv
            h = nn.relu(conv(self.features, name=f"conv{i}")(h, graph.senders, graph.receivers))
            h = MaskedSyncBatchNorm(axis_name=self.axis_name, name=f"bn{i}")(h, node_mask, train=train)
            if node_mask is not None:
                # Padding nodes back to 0: jraph sends every padding edge into the first padding node,
                # whose sum would grow layer by layer to inf (and inf * mask 0 = NaN in masked sums).
                h = jnp.where(node_mask[:, None], h, 0.0)
            layers.append(h)
        nodes = jnp.concatenate(layers, axis=-1)
        return sum_readout(nodes, graph.n_node, node_mask), nodes


class FF(nn.Module):
    """InfoGraph's projection head: ``Dense-ReLU x 3 (width D) + Dense shortcut``, ``[.., F] -> [.., D]``.
    ``prelu=True``: PReLU (one learned slope per layer, 0.25 at init) instead of ReLU, MVGRL's
    projection. ``torch_init``: PyTorch's Linear initialisation."""
    features: int
    torch_init: bool = False
    prelu: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = x
        for i in range(3):
            h = _dense(self.features, h.shape[-1], self.torch_init, f"block_{i}")(h)
            h = nn.PReLU(negative_slope_init=0.25, name=f"act_{i}")(h) if self.prelu else nn.relu(h)
        return h + _dense(self.features, x.shape[-1], self.torch_init, "shortcut")(x)


def pair_masks(node_graph: jax.Array, node_mask: jax.Array, graph_mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``pos [N, G]`` (node i is in graph g) and ``valid [N, G]`` (both real) for node graph ids
    ``node_graph [N]`` (indices into the ``G`` graph columns)."""
    cols = jnp.arange(graph_mask.shape[0])
    pos = node_graph[:, None] == cols[None, :]
    valid = node_mask.astype(bool)[:, None] & graph_mask.astype(bool)[None, :]
    return pos & valid, valid


def gather_graphs(graph_rows, node_graph: jax.Array, graph_mask: jax.Array, axis_name: Optional[str]):
    """The global batch's graph columns for this device's nodes: ``(graph_rows, node_graph,
    graph_mask)`` with every device's graph rows (a pytree of ``[Gb, ...]`` arrays) and
    ``graph_mask [Gb]`` gathered in device order (``[D * Gb, ...]``) and this device's node graph
    ids ``node_graph [N]`` shifted to their columns there. Without ``axis_name``: unchanged."""
    if axis_name is None:
        return graph_rows, node_graph, graph_mask
    offset = lax.axis_index(axis_name) * graph_mask.shape[0]
    rows, mask = jax.tree.map(lambda a: lax.all_gather(a, axis_name, tiled=True), (graph_rows, graph_mask))
    return rows, node_graph + offset, mask


def infograph_loss(local_emb: jax.Array, global_emb: jax.Array, node_graph: jax.Array,
                   node_mask: jax.Array, graph_mask: jax.Array, axis_name: Optional[str] = None
                   ) -> tuple[jax.Array, dict]:
    """InfoGraph's local-global JSD loss for this device's nodes.

    local_emb ``[N, D]`` projected node embeddings; global_emb ``[G, D]`` projected graph
    embeddings of the *whole* batch (all devices, gathered); node_graph ``[N]`` the column
    of each node's own graph; node_mask ``[N]``, graph_mask ``[G]`` real entries. Scores
    ``T = local_emb @ global_emb.T``; returns ``(loss, {"mi"})``. Without
    ``axis_name`` the loss is ``-MI_JSD`` of :func:`sslx.losses.jsd_mi`. With it, the
    per-device expectations are weighted by this device's share of the global positive /
    negative pair counts (times the device count), so the mean of the devices' losses is
    ``-MI_JSD`` over every pair of the global batch.
    """
    if local_emb.ndim != 2 or global_emb.ndim != 2 or local_emb.shape[1] != global_emb.shape[1]:
        raise ValueError(f"infograph_loss: local_emb [N, D] and global_emb [G, D] must share D; got "
                         f"{local_emb.shape} and {global_emb.shape}.")
    pos, valid = pair_masks(node_graph, node_mask, graph_mask)
    scores = jnp.where(valid, local_emb @ global_emb.T, 0.0)  # padding pairs: finite, and masked below
    _, aux = losses.jsd_mi(scores, pos, valid)
    e_pos, e_neg = aux["e_pos"], aux["e_neg"]
    if axis_name is None:
        mi = e_pos - e_neg
        return -mi, {"mi": mi}
    c_pos = jnp.sum(pos).astype(scores.dtype)
    c_neg = jnp.sum(valid & ~pos).astype(scores.dtype)
    tot_pos, tot_neg, ndev = lax.psum((c_pos, c_neg, jnp.ones((), scores.dtype)), axis_name)
    w_pos = lax.stop_gradient(ndev * c_pos / jnp.maximum(tot_pos, 1.0))
    w_neg = lax.stop_gradient(ndev * c_neg / jnp.maximum(tot_neg, 1.0))
    mi_share = w_pos * e_pos - w_neg * e_neg
    return -mi_share, {"mi": mi_share}


def infograph(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
              total_steps: Optional[int] = None) -> Method:
    """InfoGraph as a :class:`Method` over device-stacked padded graph batches.

    Reads ``config.model.hidden`` (per-layer width, paper 32), ``config.model.num_layers``
    and ``config.model.sync_bn`` (BatchNorm statistics over the global batch, default True).
    """
    del total_steps
    hidden = int(config.model.get("hidden", 32))
    num_layers = int(config.model.get("num_layers", 5))
    if hidden <= 0 or num_layers <= 0:
        raise ValueError(f"config.model.hidden ({hidden}) and config.model.num_layers ({num_layers}) must be positive.")
    bn_axis = axis_name if bool(config.model.get("sync_bn", True)) else None
    init_kind = config.model.get("init", "torch")
    if init_kind not in ("torch", "flax"):
        raise ValueError(f"config.model.init={init_kind!r} is unknown; use 'torch' or 'flax'.")
    ti = init_kind == "torch"
    encoder = InfoGraphEncoder(hidden, num_layers, axis_name=bn_axis, torch_init=ti)
    eval_encoder = InfoGraphEncoder(hidden, num_layers, axis_name=None, torch_init=ti)
    emb_dim = hidden * num_layers
    local_head, global_head = FF(emb_dim, ti), FF(emb_dim, ti)

    def init(rng, batch):
        g = unflatten(batch)
        k_enc, k_loc, k_glob = jax.random.split(rng, 3)
        variables = eval_encoder.init(k_enc, g, batch.get("node_mask"), train=True)
        dummy = jnp.zeros((1, emb_dim), jnp.float32)
        params = {"encoder": variables["params"], "local": local_head.init(k_loc, dummy)["params"],
                  "global": global_head.init(k_glob, dummy)["params"]}
        return params, {"batch_stats": variables["batch_stats"]}

    def loss_fn(params, state, batch, rng):
        del rng  # InfoGraph has no randomness in its objective
        g = unflatten(batch)
        node_mask, graph_mask = batch["node_mask"], batch["graph_mask"]
        (g_emb, n_emb), upd = encoder.apply({"params": params["encoder"], **state}, g, node_mask, train=True,
                                            mutable=["batch_stats"])
        l_proj = local_head.apply({"params": params["local"]}, n_emb)
        g_proj = global_head.apply({"params": params["global"]}, g_emb)
        g_proj, node_graph, graph_mask = gather_graphs(g_proj, graph_ids(g.n_node, n_emb.shape[0]), graph_mask,
                                                       axis_name)
        loss, aux = infograph_loss(l_proj, g_proj, node_graph, node_mask, graph_mask, axis_name)
        return loss, ({"batch_stats": upd["batch_stats"]}, aux)

    def encode(params, state, graph, node_mask=None):
        g_emb, _ = eval_encoder.apply({"params": params["encoder"], **state}, graph, node_mask, train=False)
        return g_emb

    return Method(name="infograph", init=init, loss_fn=loss_fn, encode=encode, axis_name=axis_name)

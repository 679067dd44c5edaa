"""GMI (Peng et al. 2020): Graphical Mutual Information maximisation.

Encoder: GCN layers (``config.model.features``; the authors use two layers of 512 on Cora,
one on CiteSeer) with PReLU; ``h`` = the last layer's output, ``x W_1`` = the first layer's
linear transform (before propagation).

Feature MI (FMI), as the authors' code splits it:
* ``I(h_i; x_i)``: a bilinear critic ``T_1(x, h) = x^T W h + b`` scores the node's own input
  features against its embedding (positive) and ``K`` randomly drawn other nodes' features
  against it (negatives);
* ``I(h_i; x_j), j in N(i)``: a second critic scores ``h_i`` against the neighbourhood
  average ``n_i = PReLU(mean_{j in N(i)} (x W_1)_j)`` (negatives: ``h_k`` of random ``k``).
Both with :func:`sslx.losses.gmi_jsd`, weighted ``alpha`` and ``beta``. As in the authors'
``Discriminator``, the critic scores pass through a sigmoid before the JSD
(``config.method.critic_sigmoid``, default True): the loss is then
``softplus(-sigmoid(T_pos)) + softplus(sigmoid(T_neg))``, bounded, with gradients that vanish
once a pair is confidently scored; ``False`` feeds the raw bilinear scores (the DGI-style JSD).

Edge MI (EMI): ``sigmoid(h_i . h_j)`` against the adjacency with self-loops, the class-
balanced BCE :func:`sslx.losses.gmi_edge_loss`, weight ``gamma``. This term is dense:
``N x N`` pair logits (Cora: 2708^2, as in the authors' code).

Negatives: for each of ``K`` draws, node ``i`` is paired with ``(i + r) mod M``, ``r``
uniform in ``1 .. M-1`` (``M`` real nodes): a uniformly random other real node.

Batch: ``{"graph": GraphsTuple}`` (+ optional ``"node_mask"``, padding nodes at the end;
optional ``"x_sparse"``, the features' non-zeros, :func:`sslx.augment.graph_views.sparse_features`,
for the first ``x W``). ``config.method.edge_negative_samples > 0`` replaces the dense
non-edge part of the edge term by that many uniformly drawn pairs per node
(:func:`sslx.losses.gmi_edge_loss_sampled`, unbiased; the edges themselves stay exact).
``encode`` returns ``h``.
"""
from __future__ import annotations

from typing import Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslx.augment.graph_views import sparse_transform
from sslx.losses.graph_mi import gmi_edge_loss, gmi_edge_loss_sampled, gmi_jsd
from sslx.methods.base import DATA_AXIS, Method
from sslx.models.gnn import GCNConv, torch_bilinear_init


class PairBilinear(nn.Module):
    """Row-wise bilinear critic ``a_i^T W b_i + bias``: ``a [..., N, D1], b [..., N, D2] -> [..., N]``.

    ``project(a) = a W`` and ``score(aW, b)`` split it, so that negatives (rows of ``a``
    gathered for other nodes) reuse one ``a W`` product instead of one per negative draw.
    """
    kernel_init: Callable = torch_bilinear_init

    def setup(self):
        self.bias = self.param("bias", nn.initializers.zeros, ())

    @nn.compact
    def project(self, a: jax.Array, d2: int) -> jax.Array:
        w = self.param("kernel", self.kernel_init, (a.shape[-1], d2))
        return a @ w

    def score(self, a_proj: jax.Array, b: jax.Array) -> jax.Array:
        return jnp.sum(a_proj * b, axis=-1) + self.bias

    def __call__(self, a: jax.Array, b: jax.Array) -> jax.Array:
        return self.score(self.project(a, b.shape[-1]), b)


def negative_indices(rng: jax.Array, num_nodes: int, k: int, node_mask: Optional[jax.Array] = None) -> jax.Array:
    """``[k, N]`` indices: row ``r``, column ``i`` is a uniformly random real node other than
    ``i`` (padding columns point to themselves)."""
    idx = jnp.arange(num_nodes)
    m = num_nodes if node_mask is None else jnp.sum(node_mask.astype(jnp.int32))
    shift = jax.random.randint(rng, (k, num_nodes), 1, jnp.maximum(m, 2))
    out = (idx[None, :] + shift) % jnp.maximum(m, 1)
    if node_mask is not None:
        out = jnp.where(node_mask[None, :], out, idx[None, :])
    return out


def dense_adjacency(senders: jax.Array, receivers: jax.Array, num_nodes: int, self_loops: bool = True) -> jax.Array:
    """``A [N, N]`` (``A[r, s] = 1``), plus the identity with ``self_loops``."""
    a = jnp.zeros((num_nodes, num_nodes), jnp.float32).at[receivers, senders].set(1.0)
    return jnp.maximum(a, jnp.eye(num_nodes, dtype=jnp.float32)) if self_loops else a


def neighbour_mean(h: jax.Array, senders: jax.Array, receivers: jax.Array) -> jax.Array:
    """``mean_{j -> i} h_j`` (row-normalised adjacency without self-loops; isolated nodes: 0)."""
    n = h.shape[0]
    deg = jax.ops.segment_sum(jnp.ones(senders.shape, h.dtype), receivers, n)
    return jax.ops.segment_sum(h[senders], receivers, n) / jnp.maximum(deg, 1.0)[:, None]


def gmi(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
        total_steps: Optional[int] = None) -> Method:
    """GMI as a :class:`Method` (full graph, one device).

    Reads ``config.model.features``, ``config.method.{alpha, beta, gamma}`` (term weights,
    Cora: 0.8, 1.0, 1.0), ``config.method.num_negatives`` (5) and ``config.method.critic_sigmoid``
    (True: squash critic scores with a sigmoid before the JSD, as the authors do).
    """
    del total_steps
    features = tuple(int(f) for f in config.model.get("features", (512, 512)))
    if not features or min(features) <= 0:
        raise ValueError(f"config.model.features must be positive GCN widths, got {features}.")
    w_fmi, w_nb, w_edge = (float(config.method.get(k, d)) for k, d in (("alpha", 0.8), ("beta", 1.0), ("gamma", 1.0)))
    num_neg = int(config.method.get("num_negatives", 5))
    if num_neg <= 0:
        raise ValueError(f"config.method.num_negatives must be positive, got {num_neg}.")
    squash = jax.nn.sigmoid if bool(config.method.get("critic_sigmoid", True)) else (lambda s: s)
    edge_samples = int(config.method.get("edge_negative_samples", 0))
    if edge_samples < 0:
        raise ValueError(f"config.method.edge_negative_samples must be >= 0 (0: dense N x N), got {edge_samples}.")
    convs = [GCNConv(f) for f in features]
    act = nn.PReLU(negative_slope_init=0.25)
    crit = PairBilinear()

    def _x(g):
        if g.nodes is None or g.nodes.ndim != 2:
            raise ValueError("GMI needs graph.nodes to be node features [N, F]; got "
                             f"{None if g.nodes is None else g.nodes.shape}.")
        return jnp.asarray(g.nodes, jnp.float32)

    def init(rng, batch):
        g = batch["graph"]
        x = _x(g)
        keys = jax.random.split(rng, 2 * len(features) + 3)
        params, h = {}, x
        for i, conv in enumerate(convs):
            params[f"conv{i}"] = conv.init(keys[2 * i], h, g.senders, g.receivers)["params"]
            h = jnp.zeros((x.shape[0], features[i]), jnp.float32)
            params[f"act{i}"] = act.init(keys[2 * i + 1], h)["params"]
        params["act_nb"] = act.init(keys[-3], h[:, :features[0]])["params"]
        params["crit_x"] = crit.init(keys[-2], x, h)["params"]  # kernel [F, D_L]
        params["crit_nb"] = crit.init(keys[-1], h, jnp.zeros((x.shape[0], features[0])))["params"]
        return params, {}

    def forward(params, x, g, xs=None):
        """(h [N, D_L], x W_1 [N, D_1]); ``xs``: optional COO features for the first ``x W``."""
        h, xw = x, None
        for i, conv in enumerate(convs):
            p = {"params": params[f"conv{i}"]}
            if i == 0 and xs is not None:
                t = sparse_transform(xs, params["conv0"]["linear"]["kernel"], x.shape[0])
            else:
                t = conv.apply(p, h, method="transform")
            xw = t if i == 0 else xw
            h = act.apply({"params": params[f"act{i}"]}, conv.apply(p, t, g.senders, g.receivers, method="propagate"))
        return h, xw

    def loss_fn(params, state, batch, rng):
        g = batch["graph"]
        x = _x(g)
        n = x.shape[0]
        mask = batch.get("node_mask")
        h, xw = forward(params, x, g, batch.get("x_sparse"))
        nb = act.apply({"params": params["act_nb"]}, neighbour_mean(xw, g.senders, g.receivers))
        k1, k2 = jax.random.split(rng)
        neg1, neg2 = negative_indices(k1, n, num_neg, mask), negative_indices(k2, n, num_neg, mask)
        cx, cn = {"params": params["crit_x"]}, {"params": params["crit_nb"]}
        score = lambda c, ap, b: squash(crit.apply(c, ap, b, method="score"))
        # I(h_i; x_i): critic(x, h); negatives pair h_i with x of random nodes
        xp = crit.apply(cx, x, h.shape[-1], method="project")
        l_fmi, _ = gmi_jsd(score(cx, xp, h), score(cx, xp[neg1], h[None]), mask)
        # I(h_i; neighbourhood of i): critic(h, nb); negatives pair nb_i with h of random nodes
        hp = crit.apply(cn, h, nb.shape[-1], method="project")
        l_nb, _ = gmi_jsd(score(cn, hp, nb), score(cn, hp[neg2], nb[None]), mask)
        if edge_samples > 0:
            l_edge = sampled_edge_loss(h, g, mask, jax.random.fold_in(rng, 2))
        else:
            target = dense_adjacency(g.senders, g.receivers, n)
            l_edge, _ = gmi_edge_loss(h @ h.T, target, mask)
        loss = w_fmi * l_fmi + w_nb * l_nb + w_edge * l_edge
        return loss, (state, {"fmi": l_fmi, "neighbour_mi": l_nb, "edge": l_edge})

    def sampled_edge_loss(h, g, mask, key):
        """Edge MI with every edge (and self-loop) as a positive pair and ``edge_samples x M``
        uniformly drawn node pairs standing in for the ``M^2`` pairs of the non-edge term."""
        n = h.shape[0]
        m = n if mask is None else jnp.sum(mask.astype(jnp.int32))
        node_ok = jnp.ones((n,), bool) if mask is None else mask.astype(bool)
        edge_ok = node_ok[g.senders] & node_ok[g.receivers] & (g.senders != g.receivers)
        pos = jnp.concatenate([jnp.sum(h[g.senders] * h[g.receivers], -1), jnp.sum(h * h, -1)])
        pos_ok = jnp.concatenate([edge_ok, node_ok])
        ks, kr = jax.random.split(key)
        num = edge_samples * n
        si, ri = jax.random.randint(ks, (num,), 0, m), jax.random.randint(kr, (num,), 0, m)
        adj = dense_adjacency(g.senders, g.receivers, n).astype(bool)
        neg = jnp.sum(h[si] * h[ri], -1)
        return gmi_edge_loss_sampled(pos, pos_ok, neg, adj[ri, si], m)[0]

    def encode(params, state, graph):
        return forward(params, _x(graph), graph)[0]

    return Method(name="gmi", init=init, loss_fn=loss_fn, encode=encode, axis_name=axis_name)

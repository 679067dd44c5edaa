"""GCC (Qiu et al. 2020, "Graph Contrastive Coding for Graph Neural Network Pre-Training"):
subgraph instance discrimination, pre-trained on some graphs and transferred to others.

Instances and views: an instance is the neighbourhood of an ego node; its two views are two
independent random-walk-with-restart subgraphs around the same ego
(:mod:`sslx.augment.graph_subgraph`, sampled on the host with an explicit numpy generator).
GCC is structure-only: every node's input is ``[positional embedding (k Laplacian
eigenvectors, random signs in training) | ego indicator | degree]``; source-graph node
features are never read.

Encoder (:class:`GCCEncoder`, the authors' GIN layout): the degree goes through a learned
embedding (``max_degree + 1`` rows, ``degree_dim`` wide) and is concatenated with the
positional features and the ego flag; ``num_layers - 1`` GIN layers follow (the authors count
the input as layer 0), each ``sum aggregation (eps = 0) -> Dense -> BN -> ReLU -> Dense -> BN
-> ReLU -> BN -> ReLU``; the readout sums, over the input and every layer, a Dense map of that
layer's per-graph sum pooling (dropout ``model.dropout`` on each term, query encoder only); the
output is L2-normalised (``x / max(|x|, 1e-5)``). BatchNorm statistics are over the real nodes
of the *global* batch (:class:`sslx.methods.graph.infograph.MaskedSyncBatchNorm`), for the query
and the key encoder alike (GCC trains on one GPU; with synchronised statistics 1 and N devices
give the same numbers -- tested).

Objective (MoCo, He et al. 2019): the query encoder (``params``) embeds view 1, a momentum key
encoder (in ``state``, ``k <- m k + (1 - m) q`` after every update, ``after_update``) embeds
view 2 with BatchNorm in training mode and no dropout; the loss is InfoNCE of each query against
its own key and a queue of ``K`` earlier keys (:func:`sslx.losses.contrastive.moco_info_nce`,
temperature 0.07). The queue is filled with the keys of the *global* batch gathered over
devices in global order (as :mod:`sslx.methods.image.moco`), overwriting the oldest; the loss
of a step uses the queue from before its keys are enqueued.

State::

  "batch_stats": the query encoder's BN running statistics (used by ``encode``)
  "key": {"params": {"encoder"}, "batch_stats"}     the momentum key encoder
  "queue": [K, D] unit keys; "queue_ptr", "queue_count": int32

Batch (per device block, see :mod:`sslx.data.graph_batch`): the query views under ``q_<key>``
and the key views under ``k_<key>`` for every ``key`` of ``BATCH_KEYS``; each device holds
``batch_size / D`` pairs, query ``i`` and key ``i`` of a block being the two views of one ego.

Host side: :func:`pretrain_gcc` samples egos from the disjoint union of the source graphs (GCC:
probability proportional to ``degree ** 0.75``), builds the views and runs the sharded train
step; :func:`embed_graphs` embeds every graph of a TU dataset as one instance (GCC's graph
classification setting: positional features of the whole graph, the ego its node of largest
degree); :func:`gcc_transfer` pre-trains, then scores IMDB-BINARY / IMDB-MULTI with the SVM
protocol of :func:`sslx.eval.graph_level.svm_cross_validation`, for the pre-trained encoder and
the same encoder at its random initialisation.
"""
from __future__ import annotations

import functools
import time
from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph
import ml_collections
import numpy as np
from jax import lax

from sslx.augment.graph_subgraph import (CsrGraph, Instance, instance_budget, pack_instances, subgraph_instance,
                                         whole_graph_instance)
from sslx.data.graph_batch import BATCH_KEYS, unflatten
from sslx.losses.contrastive import l2_normalize, moco_info_nce
from sslx.methods.base import DATA_AXIS, Method, example_keys
from sslx.methods.graph.infograph import MaskedSyncBatchNorm
from sslx.models.gnn import sum_readout

__all__ = ["EgoSampler", "GCCEncoder", "embed_graphs", "gcc", "gcc_transfer", "graph_dataset_instances",
           "load_source_graphs", "pair_batch", "pretrain_gcc", "view_graph"]

QUERY, KEY = "q_", "k_"


class GCCGINLayer(nn.Module):
    """One GIN layer of the authors' encoder: ``agg = h_i + sum_{j -> i} h_j`` then
    ``Dense-BN-ReLU-Dense-BN-ReLU`` (the GIN MLP and its node function) and ``BN-ReLU``;
    padding nodes are set back to 0. ``[N, F] -> [N, features]``."""
    features: int
    axis_name: Optional[str] = None

    @nn.compact
    def __call__(self, h: jax.Array, senders: jax.Array, receivers: jax.Array, node_mask: jax.Array, *,
                 train: bool) -> jax.Array:
        def bn(name):
            return MaskedSyncBatchNorm(axis_name=self.axis_name, name=name)
        z = h + jax.ops.segment_sum(h[senders], receivers, h.shape[0])
        z = nn.Dense(self.features, name="mlp_0")(z)
        z = nn.relu(bn("mlp_bn")(z, node_mask, train=train))
        z = nn.Dense(self.features, name="mlp_1")(z)
        z = nn.relu(bn("node_bn")(z, node_mask, train=train))
        z = nn.relu(bn("layer_bn")(z, node_mask, train=train))
        return jnp.where(node_mask[:, None], z, 0.0)


class GCCEncoder(nn.Module):
    """GCC's GIN encoder (module docstring). ``graph.nodes [N, pos_dim + 2]`` laid out as
    ``[pos | ego | degree]``; returns unit graph embeddings ``[G, out_dim]``.

    ``drop_mask`` (optional) ``[G, num_layers, out_dim]``: multiplies each readout term (inverted
    dropout mask, built by the caller so that it can be keyed per global example)."""
    pos_dim: int = 32
    hidden: int = 64
    out_dim: int = 64
    num_layers: int = 5
    degree_dim: int = 16
    max_degree: int = 512
    axis_name: Optional[str] = None

    @nn.compact
    def __call__(self, graph: jraph.GraphsTuple, node_mask: Optional[jax.Array] = None, *, train: bool = True,
                 drop_mask: Optional[jax.Array] = None) -> jax.Array:
        x = graph.nodes
        if x.shape[-1] != self.pos_dim + 2:
            raise ValueError(f"GCCEncoder: node features must be [N, pos_dim + 2] = [N, {self.pos_dim + 2}] "
                             f"([pos | ego | degree]); got {x.shape}. Build them with sslx.augment.graph_subgraph.")
        mask = jnp.ones(x.shape[:1], bool) if node_mask is None else node_mask.astype(bool)
        deg = jnp.clip(jnp.round(x[:, -1]).astype(jnp.int32), 0, self.max_degree)
        deg_emb = nn.Embed(self.max_degree + 1, self.degree_dim, embedding_init=nn.initializers.normal(1.0),
                           name="degree_embed")(deg)
        h = jnp.concatenate([x[:, :self.pos_dim], deg_emb, x[:, self.pos_dim:self.pos_dim + 1]], axis=-1)
        h = jnp.where(mask[:, None], h, 0.0)
        reps = [h]
        for i in range(self.num_layers - 1):
            h = GCCGINLayer(self.hidden, self.axis_name, name=f"gin{i}")(h, graph.senders, graph.receivers, mask,
                                                                         train=train)
            reps.append(h)
        out = 0.0
        for i, r in enumerate(reps):
            y = nn.Dense(self.out_dim, name=f"readout{i}")(sum_readout(r, graph.n_node, mask))
            if drop_mask is not None:
                y = y * drop_mask[:, i, :]
            out = out + y
        # x / max(|x|, 1e-5) through the squared norm: the gradient of |x| at x = 0 (padding graphs) is NaN.
        sq = jnp.sum(jnp.square(out), axis=-1, keepdims=True)
        return out * lax.rsqrt(jnp.maximum(sq, 1e-10))


def view_graph(batch: dict, prefix: str) -> tuple[jraph.GraphsTuple, jax.Array]:
    """The ``prefix`` (``'q_'`` or ``'k_'``) views of one device block: (GraphsTuple, node_mask)."""
    missing = [prefix + k for k in BATCH_KEYS if prefix + k not in batch]
    if missing:
        raise ValueError(f"GCC batch is missing keys {missing}; build it with sslx.methods.graph.gcc.pair_batch.")
    block = {k: batch[prefix + k] for k in BATCH_KEYS}
    return unflatten(block), block["node_mask"]


def _encoder_kwargs(config: ml_collections.ConfigDict) -> dict:
    mc = config.model
    kw = dict(pos_dim=int(config.subgraph.pos_dim), hidden=int(mc.hidden), out_dim=int(mc.out_dim),
              num_layers=int(mc.num_layers), degree_dim=int(mc.degree_dim), max_degree=int(mc.max_degree))
    bad = {k: v for k, v in kw.items() if v < 1}
    if bad:
        raise ValueError(f"GCC config values must be >= 1: {bad} (subgraph.pos_dim, model.hidden, model.out_dim, "
                         "model.num_layers, model.degree_dim, model.max_degree).")
    return kw


def gcc(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
        total_steps: Optional[int] = None) -> Method:
    """GCC (MoCo variant) as a :class:`Method` over device-stacked query / key view batches.

    Reads ``config.model`` (``hidden``, ``out_dim``, ``num_layers``, ``degree_dim``,
    ``max_degree``, ``dropout``), ``config.subgraph.pos_dim`` and ``config.method``
    (``temperature``, ``momentum``, ``queue_size``: a positive multiple of ``config.batch_size``).
    """
    del total_steps  # constant momentum, as in the paper
    m = config.method
    temperature = float(m.get("temperature", 0.07))
    momentum = float(m.get("momentum", 0.999))
    queue_size = int(m.get("queue_size", 16384))
    global_batch = int(config.batch_size)
    dropout = float(config.model.get("dropout", 0.5))
    if temperature <= 0:
        raise ValueError(f"config.method.temperature must be > 0, got {temperature}.")
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"config.method.momentum={momentum} must lie in [0, 1].")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"config.model.dropout={dropout} must lie in [0, 1).")
    if queue_size <= 0 or queue_size % global_batch:
        raise ValueError(f"GCC queue size config.method.queue_size={queue_size} must be a positive multiple of "
                         f"config.batch_size={global_batch} (each step enqueues one global batch of keys).")
    kw = _encoder_kwargs(config)
    encoder = GCCEncoder(**kw, axis_name=axis_name)
    eval_encoder = GCCEncoder(**kw, axis_name=None)
    out_dim, num_layers, width = kw["out_dim"], kw["num_layers"], kw["pos_dim"] + 2

    def init(rng, batch):
        have = batch.get(QUERY + "nodes", batch.get("nodes"))
        if have is not None and have.shape[-1] != width:
            raise ValueError(f"GCC batch nodes have {have.shape[-1]} features, the config expects "
                             f"subgraph.pos_dim + 2 = {width}.")
        dummy = jraph.GraphsTuple(nodes=jnp.zeros((3, width), jnp.float32), edges=None,
                                  senders=jnp.array([0, 1], jnp.int32), receivers=jnp.array([1, 0], jnp.int32),
                                  n_node=jnp.array([2, 1], jnp.int32), n_edge=jnp.array([2, 0], jnp.int32),
                                  globals=None)
        k_enc, k_queue = jax.random.split(rng)
        v = eval_encoder.init(k_enc, dummy, jnp.array([True, True, False]), train=True)
        params = {"encoder": v["params"]}
        copy = lambda t: jax.tree.map(lambda a: jnp.array(a, copy=True), t)  # noqa: E731
        state = {"batch_stats": v["batch_stats"],
                 "key": {"params": copy(params), "batch_stats": copy(v["batch_stats"])},
                 "queue": l2_normalize(jax.random.normal(k_queue, (queue_size, out_dim), jnp.float32)),
                 "queue_ptr": jnp.zeros((), jnp.int32), "queue_count": jnp.zeros((), jnp.int32)}
        return params, state

    def loss_fn(params, state, batch, rng):
        ndev = 1 if axis_name is None else int(lax.axis_size(axis_name))
        if global_batch % ndev:
            raise ValueError(f"config.batch_size={global_batch} must be divisible by the {ndev} devices.")
        b = global_batch // ndev  # real pairs per device: the first b graphs of each block
        gq, mq = view_graph(batch, QUERY)
        gk, mk = view_graph(batch, KEY)
        num_graphs = gq.n_node.shape[0]
        if num_graphs <= b or gk.n_node.shape[0] != num_graphs:
            raise ValueError(f"GCC: a device block holds {num_graphs} query graphs (with padding); it needs "
                             f"more than batch_size / devices = {b}. Build batches with pair_batch.")
        drop = None
        if dropout > 0:
            keys = example_keys(rng, b, axis_name)[:, 0]  # keyed by the global pair index
            keep = jax.vmap(lambda k: jax.random.bernoulli(k, 1.0 - dropout, (num_layers, out_dim)))(keys)
            drop = jnp.concatenate([keep.astype(jnp.float32) / (1.0 - dropout),
                                    jnp.ones((num_graphs - b, num_layers, out_dim), jnp.float32)])
        q, upd = encoder.apply({"params": params["encoder"], "batch_stats": state["batch_stats"]}, gq, mq,
                               train=True, drop_mask=drop, mutable=["batch_stats"])
        key_state = state["key"]
        k, key_upd = encoder.apply({"params": key_state["params"]["encoder"], "batch_stats": key_state["batch_stats"]},
                                   gk, mk, train=True, mutable=["batch_stats"])
        q, k = q[:b], lax.stop_gradient(k[:b])
        k_global = k if axis_name is None else lax.all_gather(k, axis_name, tiled=True)
        loss, aux = moco_info_nce(q, k, state["queue"], temperature)
        n = b * ndev
        ptr = state["queue_ptr"]
        queue = lax.dynamic_update_slice_in_dim(state["queue"], k_global.astype(jnp.float32), ptr, axis=0)
        count = jnp.minimum(state["queue_count"] + n, queue_size)
        new_state = {"batch_stats": upd["batch_stats"],
                     "key": {"params": key_state["params"], "batch_stats": key_upd["batch_stats"]},
                     "queue": queue, "queue_ptr": (ptr + n) % queue_size, "queue_count": count}
        metrics = {"contrastive_acc": aux["accuracy"], "queue_fill": count.astype(jnp.float32) / queue_size}
        return loss, (new_state, metrics)

    def after_update(params, state, step):
        del step
        key_params = jax.tree.map(lambda k, p: momentum * k + (1.0 - momentum) * p, state["key"]["params"], params)
        return {**state, "key": {**state["key"], "params": key_params}}

    def encode(params, state, graph, node_mask=None):
        return eval_encoder.apply({"params": params["encoder"], "batch_stats": state["batch_stats"]}, graph,
                                  node_mask, train=False)

    return Method(name="gcc", init=init, loss_fn=loss_fn, encode=encode, after_update=after_update,
                  axis_name=axis_name)


# ----------------------------------------------------------------------------------- host side

class EgoSampler:
    """Draws GCC training pairs from one (possibly disconnected) graph.

    Egos are drawn with probability proportional to ``degree ** degree_power`` (GCC: 0.75;
    isolated nodes never); each pair is two independent RWR subgraph instances of the same ego
    (:func:`sslx.augment.graph_subgraph.subgraph_instance`, random eigenvector signs when
    ``sign_flip``)."""

    def __init__(self, graph: CsrGraph, *, size: int, restart_prob: float, max_steps: int, pos_dim: int,
                 degree_power: float = 0.75, sign_flip: bool = True):
        deg = graph.degree.astype(np.float64)
        w = np.where(deg > 0, deg ** float(degree_power), 0.0)
        if w.sum() <= 0:
            raise ValueError("EgoSampler: the source graphs have no edges; GCC needs structure to sample from.")
        self.graph = graph
        self.cdf = np.cumsum(w) / w.sum()
        self.kwargs = dict(size=int(size), restart_prob=float(restart_prob), max_steps=int(max_steps),
                           k=int(pos_dim), sign_flip=bool(sign_flip))

    @classmethod
    def from_config(cls, graph: CsrGraph, config: ml_collections.ConfigDict) -> "EgoSampler":
        s = config.subgraph
        return cls(graph, size=s.size, restart_prob=s.restart_prob, max_steps=s.max_steps, pos_dim=s.pos_dim,
                   degree_power=s.get("degree_power", 0.75), sign_flip=s.get("sign_flip", True))

    def egos(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``[n]`` ego node ids."""
        return np.minimum(np.searchsorted(self.cdf, rng.random(n), side="right"), len(self.cdf) - 1)

    def pairs(self, rng: np.random.Generator, n: int) -> tuple[list[Instance], list[Instance]]:
        """``n`` (query, key) view pairs: two lists of instances, pair ``i`` from the same ego."""
        qs, ks = [], []
        for ego in self.egos(rng, n):
            qs.append(subgraph_instance(self.graph, int(ego), rng=rng, **self.kwargs))
            ks.append(subgraph_instance(self.graph, int(ego), rng=rng, **self.kwargs))
        return qs, ks


def pair_batch(queries: Sequence[Instance], keys: Sequence[Instance], num_devices: int = 1,
               sizes: Optional[tuple[int, int, int]] = None) -> dict:
    """The GCC batch dict: ``q_*`` and ``k_*`` device-stacked padded blocks (one budget for both,
    default the smallest that fits). The number of pairs must be divisible by ``num_devices``."""
    if len(queries) != len(keys) or not queries:
        raise ValueError(f"pair_batch: needs as many keys as queries (>= 1); got {len(queries)} and {len(keys)}.")
    if len(queries) % num_devices:
        raise ValueError(f"pair_batch: {len(queries)} pairs do not split evenly over {num_devices} devices; use a "
                         "batch size divisible by the device count.")
    if sizes is None:
        sizes = tuple(max(a, b) for a, b in zip(instance_budget(queries, num_devices),
                                                instance_budget(keys, num_devices)))
    out = {QUERY + k: v for k, v in pack_instances(queries, num_devices, sizes).items()}
    out.update({KEY + k: v for k, v in pack_instances(keys, num_devices, sizes).items()})
    return out


def load_source_graphs(names: Sequence[str], data_dir=None) -> list[CsrGraph]:
    """Structure of the named datasets as :class:`CsrGraph` (features ignored): Planetoid names
    (``cora``, ``citeseer``, ``pubmed``) give their one graph, TU names (``PROTEINS``, ...) the
    disjoint union of all their graphs."""
    from sslx.data.graph import PLANETOID_NAMES, load_planetoid, load_tu
    out = []
    for name in names:
        if name.lower() in PLANETOID_NAMES:
            nd = load_planetoid(name.lower(), data_dir, normalize_features=False)
            out.append(CsrGraph.from_edges(nd.graph.senders, nd.graph.receivers, nd.num_nodes))
        else:
            ds = load_tu(name, data_dir)
            out.append(CsrGraph.from_edges(ds.senders, ds.receivers, ds.nodes.shape[0]))
    return out


def pretrain_gcc(config: ml_collections.ConfigDict, source_graphs: Sequence[CsrGraph], seed: int, *,
                 devices=None, num_steps: Optional[int] = None, mode: str = "jit") -> dict:
    """Pre-train GCC on ego subgraphs of the disjoint union of ``source_graphs``.

    ``num_steps`` (default ``config.train.num_steps``) steps of ``config.batch_size`` pairs on
    ``devices`` (default all), sharded like every sslx step. The pairs of step ``t`` are drawn
    with ``np.random.default_rng([seed, t])`` (a pure function of seed and step). Each padded
    shape is a power of two and the budget only grows (the first batch's with 2x headroom), so
    a run compiles a handful of times at most.

    Returns ``{"params", "state"}`` (host copies after training), ``{"init_params",
    "init_state"}`` (the same encoder at its random initialisation), ``"losses"``,
    ``"contrastive_acc"`` (per step), ``"seconds"`` (wall time of the loop), ``"steps"`` and
    ``"shapes"`` (number of distinct padded shapes compiled).
    """
    from sslx.methods import get_method
    from sslx.train import ParallelStep, create_train_state, make_optimizer, make_step_fn

    if not source_graphs:
        raise ValueError("pretrain_gcc: source_graphs is empty; pass at least one CsrGraph (load_source_graphs).")
    devices = list(devices) if devices is not None else jax.devices()
    nd = len(devices)
    gb = int(config.batch_size)
    if gb % nd:
        raise ValueError(f"config.batch_size={gb} must be divisible by the {nd} devices.")
    steps = int(num_steps if num_steps is not None else config.train.num_steps)
    if steps < 1:
        raise ValueError(f"pretrain_gcc: the number of steps must be >= 1 (config.train.num_steps), got {steps}.")
    sampler = EgoSampler.from_config(CsrGraph.disjoint_union(list(source_graphs)), config)
    method = get_method(config)
    tx, sched = make_optimizer(config.optimizer, steps, gb)
    runner = ParallelStep(make_step_fn(method, tx, sched), mode=mode, devices=devices)

    budget = None
    shapes = set()

    def make(t):
        nonlocal budget
        q, k = sampler.pairs(np.random.default_rng([int(seed), t]), gb)
        need = tuple(max(a, b) for a, b in zip(instance_budget(q, nd), instance_budget(k, nd)))
        if budget is None:
            budget = (2 * need[0], 2 * need[1], need[2])
        budget = tuple(max(a, b) for a, b in zip(budget, need))
        shapes.add(budget)
        return pair_batch(q, k, nd, budget)

    batch = make(0)
    host = jax.device_get(create_train_state(method, tx, jax.random.PRNGKey(int(seed)), batch))
    ts = runner.put_state(host)
    losses, accs = [], []
    t0 = time.perf_counter()
    for t in range(steps):
        ts, m = runner(ts, runner.put_batch(batch))
        losses.append(m["loss"])
        accs.append(m["contrastive_acc"])
        if t + 1 < steps:
            batch = make(t + 1)  # built on the host while the device runs step t
    losses = [float(v) for v in jax.device_get(losses)]
    seconds = time.perf_counter() - t0
    if not np.all(np.isfinite(losses)):
        bad = int(np.argmax(~np.isfinite(losses)))
        raise FloatingPointError(f"gcc: the training loss became {losses[bad]} at step {bad}; lower the learning rate.")
    final = jax.device_get(runner.get_state(ts))
    return {"params": final.params, "state": final.state, "init_params": host.params, "init_state": host.state,
            "losses": losses, "contrastive_acc": [float(v) for v in jax.device_get(accs)], "seconds": seconds,
            "steps": steps, "shapes": len(shapes)}


def graph_dataset_instances(ds, pos_dim: int) -> list[Instance]:
    """Every graph of a :class:`sslx.data.graph.GraphDataset` as one whole-graph instance
    (:func:`sslx.augment.graph_subgraph.whole_graph_instance`; node features ignored)."""
    out = []
    for i in range(len(ds)):
        g = ds.graph(i)
        out.append(whole_graph_instance(g.senders, g.receivers, int(g.n_node[0]), int(pos_dim)))
    return out


@functools.lru_cache(maxsize=8)
def _jit_encode(method: Method):
    """One jitted encoder per method (repeated embeddings reuse the compiled shapes)."""
    return jax.jit(lambda p, s, b: method.encode(p, s, unflatten(b), b["node_mask"]))


def embed_graphs(method: Method, params, state, ds, *, batch_size: int = 256,
                 instances: Optional[Sequence[Instance]] = None) -> tuple[np.ndarray, np.ndarray]:
    """Frozen GCC embeddings ``[G, out_dim]`` of every graph of ``ds`` (eval mode) and its labels
    ``[G]``. ``instances``: precomputed :func:`graph_dataset_instances` (else computed here, with
    the positional width read from ``params``)."""
    if instances is None:
        enc = params["encoder"]
        pos_dim = enc["readout0"]["kernel"].shape[0] - enc["degree_embed"]["embedding"].shape[1] - 1
        instances = graph_dataset_instances(ds, pos_dim)
    if len(instances) != len(ds):
        raise ValueError(f"embed_graphs: {len(instances)} instances for a dataset of {len(ds)} graphs.")
    chunks = [list(range(s, min(s + batch_size, len(ds)))) for s in range(0, len(ds), batch_size)]
    need = [instance_budget([instances[i] for i in c]) for c in chunks]
    sizes = tuple(max(n[j] for n in need) for j in range(3))  # one compiled shape for every chunk
    fn = _jit_encode(method)
    out = []
    for c in chunks:
        b = pack_instances([instances[i] for i in c], 1, sizes)
        out.append(np.asarray(fn(params, state, b))[:len(c)])
    return np.concatenate(out, axis=0), np.asarray(ds.labels)


def gcc_transfer(config: ml_collections.ConfigDict, data_dir=None, seed: int = 0) -> dict:
    """Pre-train on ``config.transfer.sources`` and evaluate on ``config.transfer.targets``.

    For every target TU dataset the graphs are embedded by the pre-trained encoder and by the
    same encoder at its random initialisation, and scored by
    :func:`sslx.eval.graph_level.svm_cross_validation` (``config.eval``: kernel, folds,
    inner_folds, cs; fold seed ``seed``). ``data_dir``: the graph data folder (default
    :func:`sslx.data.graph.default_graph_data_dir`). Returns plain values: ``sources``,
    ``pretrain_steps``, ``pretrain_seconds``, ``loss_first`` / ``loss_last`` (means of the first /
    last 10% of steps with a full queue when there are any), ``acc_last``, and per target
    (key ``imdb_binary`` for ``IMDB-BINARY``) ``<key>_pretrained_mean``, ``_pretrained_std``,
    ``<key>_random_mean``, ``_random_std``, ``<key>_graphs``, ``<key>_eval_seconds``; then
    ``total_seconds``.
    """
    from sslx.data.graph import load_tu
    from sslx.eval.graph_level import svm_cross_validation
    from sslx.methods import get_method

    t_start = time.perf_counter()
    sources = tuple(config.transfer.sources)
    graphs = load_source_graphs(sources, data_dir)
    run = pretrain_gcc(config, graphs, seed)
    method = get_method(config, axis_name=None)
    losses = np.asarray(run["losses"])
    fill = -(-int(config.method.queue_size) // int(config.batch_size))
    full = losses[fill:] if len(losses) > fill + 10 else losses
    w = max(1, len(full) // 10)
    res: dict = {"sources": ",".join(sources), "pretrain_steps": int(run["steps"]),
                 "pretrain_seconds": float(run["seconds"]), "loss_first": float(np.mean(full[:w])),
                 "loss_last": float(np.mean(full[-w:])), "acc_last": float(np.mean(run["contrastive_acc"][-w:])),
                 "num_source_nodes": int(sum(g.num_nodes for g in graphs))}
    ev = config.eval
    svm_kw = dict(kernel=str(ev.get("kernel", "rbf")), folds=int(ev.get("folds", 10)),
                  inner_folds=int(ev.get("inner_folds", 5)))
    if ev.get("cs", None):
        svm_kw["cs"] = tuple(float(c) for c in ev.cs)
    for name in config.transfer.targets:
        t0 = time.perf_counter()
        ds = load_tu(name, data_dir)
        key = name.lower().replace("-", "_")
        inst = graph_dataset_instances(ds, int(config.subgraph.pos_dim))
        for tag, p, s in (("pretrained", run["params"], run["state"]),
                          ("random", run["init_params"], run["init_state"])):
            x, y = embed_graphs(method, p, s, ds, instances=inst)
            r = svm_cross_validation(x, y, seed=seed, **svm_kw)
            res[f"{key}_{tag}_mean"] = float(r["mean"])
            res[f"{key}_{tag}_std"] = float(r["std"])
        res[f"{key}_graphs"] = len(ds)
        res[f"{key}_eval_seconds"] = float(time.perf_counter() - t0)
    res["total_seconds"] = float(time.perf_counter() - t_start)
    return res

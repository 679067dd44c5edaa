"""Self-supervised GCN (You, Chen, Wang & Shen 2020, "When Does Self-Supervision Help Graph
Convolutional Networks?"): a semi-supervised GCN trained jointly with a self-supervised task.

Model (Kipf & Welling 2017): ``Z = A ReLU(A X W0) W1`` with ``A = D^-1/2 (A + I) D^-1/2``,
hidden width 16, dropout 0.5 on the input and on the hidden layer, no biases (Kipf's
default). Following the paper, it is split into a *shared feature extractor*
``f(X) = A ReLU(A X W0) [N, 16]`` (``A (H W1) = (A H) W1``) and linear heads: the class head
``W1`` and a separate self-supervised head ``W_ss``. The joint ("multi-task") loss is::

    L = CE(f(X) W1 on the public train nodes) + alpha * L_ss + weight_decay / 2 * ||W0||^2

(the L2 term as Kipf's code: first layer only; ``method.decay_scope = 'all'`` puts every
weight in it, as You et al.'s released code does through Adam's coupled weight decay).

Self-supervised tasks (``config.method.task``):

* ``clustering`` -- pseudo-labels = k-means (k-means++ init, Lloyd to a fixed point, JAX) of
  the node *features* into ``num_clusters`` clusters; ``W_ss`` classifies every node's cluster.
  ``cluster_to_classes=True`` is the variant of the authors' code (M3S-style): each cluster is
  mapped to the class whose train-node feature centroid is nearest, train nodes keep their
  labels, and the task is over the other nodes.
* ``partitioning`` -- pseudo-labels = a balanced partition of the graph into ``num_parts``
  parts; ``W_ss`` classifies every node's part. The paper uses METIS, which is not available
  here: :func:`spectral_partition` does recursive spectral bisection (the Fiedler vector of
  the regularised normalised Laplacian, split at the size that keeps the parts balanced).
* ``completion`` -- each step masks the features of a random subset of nodes (rate
  ``mask_rate``, per-node JAX keys), runs the extractor on the masked features and regresses
  the masked rows from the embedding with ``W_ss [16, F]``
  (:func:`sslx.losses.graph.masked_feature_regression`).
* ``none`` -- the plain GCN (the same code path; no head, no ``L_ss``).

Pseudo-labels are computed once on the host (deterministic from the seed; the partition from
the graph alone) and travel in the batch. Training is full-graph on one device (like
:func:`sslx.train.graph.fit_full_graph`, one step per epoch), with early stopping on the
*validation loss* as in the GCN paper (see :class:`SSGCNRunner`).

Batch: ``{"graph": GraphsTuple (features [N, F], both edge directions, no self-loops),
"labels" int [N] (-1 outside the train nodes), "train_mask" bool [N], "pseudo_labels" int [N]
and "ss_mask" bool [N] (clustering / partitioning), optional "x_sparse" (the features'
non-zeros, :func:`sslx.augment.graph_views.sparse_features`), optional "node_mask"}``.
``encode(params, state, graph)`` returns the extractor's embedding ``[N, 16]`` (eval mode).
"""
from __future__ import annotations

import copy
import time
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from sslx.augment.graph_views import sparse_features, sparse_transform
from sslx.losses.clustering import assign_clusters, update_centroids
from sslx.losses.graph import masked_cross_entropy, masked_feature_regression
from sslx.methods.base import DATA_AXIS, Method
from sslx.models.gnn import gcn_norm, gcn_propagate

__all__ = ["TASKS", "SSGCNRunner", "align_clusters_to_classes", "class_logits", "compare_ssgcn",
           "completion_loss_sparse", "completion_mask",
           "extract", "kmeans", "run_ssgcn", "spectral_partition", "ssgcn", "ssgcn_batch"]

TASKS = ("none", "clustering", "partitioning", "completion")
_STOPPING = ("window", "patience")


# --------------------------------------------------------------------------
# Pseudo-labels (host side, once per run)
# --------------------------------------------------------------------------


def _kmeans_pp(x: jax.Array, k: int, key: jax.Array) -> jax.Array:
    """k-means++ seeding: ``k`` rows of ``x [N, D]``, each drawn with probability proportional
    to its squared distance to the nearest one already chosen."""
    n = x.shape[0]
    keys = jax.random.split(key, k)
    first = jax.random.randint(keys[0], (), 0, n)
    cent = jnp.zeros((k, x.shape[1]), x.dtype).at[0].set(x[first])
    d2 = jnp.sum((x - x[first]) ** 2, axis=1)

    def body(i, carry):
        cent, d2 = carry
        total = jnp.sum(d2)
        logits = jnp.where(total > 0, jnp.log(jnp.maximum(d2, 0.0)), 0.0)  # all duplicates: uniform
        idx = jax.random.categorical(keys[i], logits)
        cent = cent.at[i].set(x[idx])
        return cent, jnp.minimum(d2, jnp.sum((x - x[idx]) ** 2, axis=1))

    cent, _ = lax.fori_loop(1, k, body, (cent, d2))
    return cent


def _kmeans_impl(x, key, num_clusters: int, max_iters: int):
    cent = _kmeans_pp(x, num_clusters, key)
    ones = jnp.ones(x.shape[:1], x.dtype)
    labels, _ = assign_clusters(x, cent)

    def cond(c):
        return c[2] & (c[3] < max_iters)

    def body(c):
        labels, cent, _, it = c
        cent, _ = update_centroids(x, labels, ones, cent)  # empty clusters keep their centroid
        new, _ = assign_clusters(x, cent)
        return new, cent, jnp.any(new != labels), it + 1

    labels, cent, changed, it = lax.while_loop(cond, body, (labels, cent, jnp.array(True), jnp.array(0)))
    _, d2 = assign_clusters(x, cent)
    return labels, cent, jnp.sum(d2), it, ~changed


_kmeans_jit = jax.jit(_kmeans_impl, static_argnames=("num_clusters", "max_iters"))


def kmeans(x, num_clusters: int, key: jax.Array, *, max_iters: int = 300) -> tuple[np.ndarray, dict]:
    """k-means of the rows of ``x [N, D]`` into ``num_clusters`` clusters (JAX, float32).

    k-means++ seeding from ``key``, then Lloyd iterations (empty clusters keep their centroid)
    until no assignment changes or ``max_iters``. At convergence the labels are a fixed point:
    every row is nearest (ties: lowest index) to the mean of its cluster. Returns
    ``(labels int32 [N], {"centroids" [K, D], "inertia", "iterations", "converged"})``.
    """
    x = jnp.asarray(x, jnp.float32)
    if x.ndim != 2:
        raise ValueError(f"kmeans expects rows x [N, D]; got shape {x.shape}.")
    if not 1 <= int(num_clusters) <= x.shape[0]:
        raise ValueError(f"kmeans: num_clusters={num_clusters} must be in 1..N={x.shape[0]}.")
    labels, cent, inertia, it, conv = _kmeans_jit(x, key, num_clusters=int(num_clusters), max_iters=int(max_iters))
    return np.asarray(labels, np.int32), {"centroids": np.asarray(cent), "inertia": float(inertia),
                                          "iterations": int(it), "converged": bool(conv)}


def align_clusters_to_classes(x: np.ndarray, clusters: np.ndarray, labels: np.ndarray, train_mask: np.ndarray,
                              num_classes: int) -> np.ndarray:
    """The authors' code's variant of node clustering: cluster ``c`` gets the class whose
    train-node feature centroid is nearest to the centroid of ``c``; train nodes keep their
    own label. ``int32 [N]`` in ``0..num_classes-1``."""
    x = np.asarray(x, np.float64)
    tr = np.asarray(train_mask, bool)
    cls_cent = np.stack([x[tr & (labels == c)].mean(0) if np.any(tr & (labels == c)) else np.full(x.shape[1], np.inf)
                         for c in range(num_classes)])
    out = np.zeros(len(x), np.int32)
    for c in np.unique(clusters):
        members = clusters == c
        d = np.sum((cls_cent - x[members].mean(0)) ** 2, axis=1)
        out[members] = int(np.argmin(d))
    out[tr] = labels[tr]
    return out


_DENSE_EIG_MAX = 256


def _fiedler_values(a) -> np.ndarray:
    """Fiedler vector ``[n]`` of the regularised graph ``a + tau/n 11^T`` (``tau`` = mean degree,
    Qin & Rohe 2013: keeps a disconnected graph's eigenproblem well posed), from the second
    largest eigenvector ``v`` of ``D^-1/2 A_tau D^-1/2`` as ``D^-1/2 v`` (the normalised cut
    relaxation). Sign fixed so the first clearly non-zero entry is negative."""
    import scipy.sparse.linalg as spla

    n = a.shape[0]
    deg = np.asarray(a.sum(axis=1)).ravel()
    tau = float(deg.mean()) if deg.sum() > 0 else 1.0
    dinv = 1.0 / np.sqrt(deg + tau)
    vec = None
    if n > _DENSE_EIG_MAX:
        def matvec(v):
            v = np.asarray(v, np.float64).ravel()
            u = dinv * v
            return dinv * (a @ u + (tau / n) * u.sum())

        op = spla.LinearOperator((n, n), matvec=matvec, dtype=np.float64)
        v0 = 1.0 + 0.5 * np.cos(np.arange(n, dtype=np.float64))  # a fixed start vector: no randomness
        try:
            w, v = spla.eigsh(op, k=2, which="LA", v0=v0, ncv=min(n, 40), tol=1e-10, maxiter=50 * n)
            vec = v[:, int(np.argmin(w))]
        except spla.ArpackNoConvergence:
            vec = None  # fall back to the dense solver below
    if vec is None:
        m = dinv[:, None] * (np.asarray(a.todense(), np.float64) + tau / n) * dinv[None, :]
        w, v = np.linalg.eigh(m)
        vec = v[:, -2]
    f = dinv * vec
    big = np.abs(f) > 1e-9 * max(np.abs(f).max(), 1e-300)
    if big.any() and f[int(np.argmax(big))] > 0:
        f = -f
    return f


def spectral_partition(senders, receivers, num_nodes: int, num_parts: int, *, refine: bool = True) -> np.ndarray:
    """A balanced partition of a graph into ``num_parts`` parts by recursive spectral bisection
    (METIS's role in You et al. 2020; METIS itself is not available here).

    The edges are symmetrised (self-loops dropped). Parts get ``N // K`` or ``N // K + 1``
    nodes (the first ``N % K`` parts one more). A node set holding parts ``[lo, hi)`` is
    ordered by its Fiedler value (:func:`_fiedler_values` on the induced subgraph; ties by
    node id) and split after the nodes of parts ``[lo, mid)``, ``mid = (lo + hi) // 2``; with
    ``refine`` the split is then improved by size-preserving greedy swaps
    (:func:`_refine_bisection`); each side recurses. Deterministic: the eigensolver starts
    from a fixed vector and uses no random numbers. Returns ``int32 [N]`` part ids.

    Why this: METIS (multilevel coarsening + KL refinement) is what the paper used; spectral
    bisection + a KL-style pass is the classical non-multilevel equivalent, needs only scipy,
    and gives exactly balanced parts. On Cora, 8 / 12 / 16 parts cut 17.0 / 20.3 / 22.8 % of
    the edges (16 parts without the refinement: 36.6 %; a random balanced split: ~92-94 %).
    """
    import scipy.sparse as sp

    n, k = int(num_nodes), int(num_parts)
    if not 1 <= k <= n:
        raise ValueError(f"spectral_partition: num_parts={num_parts} must be in 1..num_nodes={num_nodes}.")
    s, r = np.asarray(senders, np.int64), np.asarray(receivers, np.int64)
    if len(s) and (min(s.min(), r.min()) < 0 or max(s.max(), r.max()) >= n):
        raise ValueError(f"spectral_partition: edge endpoints must be node ids in 0..{n - 1}.")
    keep = s != r
    a = sp.coo_matrix((np.ones(int(keep.sum())), (r[keep], s[keep])), shape=(n, n)).tocsr()
    a = ((a + a.T) > 0).astype(np.float64).tocsr()
    sizes = np.array([n // k + (p < n % k) for p in range(k)], np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    labels = np.full(n, -1, np.int32)
    stack = [(np.arange(n), 0, k)]
    while stack:
        nodes, lo, hi = stack.pop()
        if hi - lo == 1:
            labels[nodes] = lo
            continue
        mid = (lo + hi) // 2
        n_left = int(offsets[mid] - offsets[lo])
        sub = a[nodes][:, nodes].tocsr()
        order = np.lexsort((np.arange(len(nodes)), _fiedler_values(sub)))
        left = np.zeros(len(nodes), bool)
        left[order[:n_left]] = True
        if refine:
            left = _refine_bisection(sub, left)
        stack.append((nodes[~left], mid, hi))
        stack.append((nodes[left], lo, mid))
    return labels


def _refine_bisection(a, left: np.ndarray, max_swaps: Optional[int] = None) -> np.ndarray:
    """Greedy size-preserving refinement of a bisection (a Kernighan-Lin pass without uphill
    moves): repeatedly swap the left node and the right node with the largest gains
    ``D = external - internal degree`` while the swap lowers the cut
    (``D_l + D_r - 2 a_lr > 0``). The cut strictly decreases, so it terminates; ties go to the
    lowest index (deterministic)."""
    left = left.copy()
    n = len(left)
    indptr, indices = a.indptr, a.indices

    def gain(i):
        nb = indices[indptr[i]:indptr[i + 1]]
        same = left[nb] == left[i]
        return float(np.sum(~same) - np.sum(same))

    d = np.array([gain(i) for i in range(n)])
    for _ in range(max_swaps if max_swaps is not None else n):
        dl = np.where(left, d, -np.inf)
        dr = np.where(left, -np.inf, d)
        i, j = int(np.argmax(dl)), int(np.argmax(dr))
        a_ij = 1.0 if j in set(indices[indptr[i]:indptr[i + 1]].tolist()) else 0.0
        if not np.isfinite(dl[i]) or not np.isfinite(dr[j]) or d[i] + d[j] - 2.0 * a_ij <= 0:
            break
        left[i], left[j] = False, True
        touched = np.unique(np.concatenate([[i, j], indices[indptr[i]:indptr[i + 1]],
                                            indices[indptr[j]:indptr[j + 1]]]))
        for t in touched:
            d[t] = gain(int(t))
    return left


# --------------------------------------------------------------------------
# The model: shared extractor + linear heads
# --------------------------------------------------------------------------


def _dropout(key: Optional[jax.Array], x: jax.Array, rate: float) -> jax.Array:
    if key is None or rate <= 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0).astype(x.dtype)


def extract(params: dict, x: jax.Array, senders: jax.Array, receivers: jax.Array, *,
            x_sparse: Optional[dict] = None, zero_nodes: Optional[jax.Array] = None,
            rng: Optional[jax.Array] = None, dropout: float = 0.0,
            norm: Optional[tuple[jax.Array, jax.Array]] = None) -> jax.Array:
    """The shared feature extractor ``A drop(ReLU(A drop(X) W0 [+ b0]))`` -> ``[N, H]``.

    ``x [N, F]`` (or its non-zeros ``x_sparse``, the same function); ``zero_nodes`` bool
    ``[N]`` zeroes those nodes' feature rows first (graph completion); ``rng`` = None is eval
    mode (no dropout).
    """
    n = x.shape[0]
    if norm is None:
        norm = gcn_norm(senders, receivers, n)
    k_in, k_hid = jax.random.split(rng) if rng is not None else (None, None)
    w0 = params["conv0"]["kernel"]
    if x_sparse is not None:
        vals = x_sparse["vals"]
        if zero_nodes is not None:
            vals = jnp.where(zero_nodes[x_sparse["rows"]], 0.0, vals)
        xs = dict(x_sparse, vals=_dropout(k_in, vals, dropout))
        xw = sparse_transform(xs, w0, n)
    else:
        if zero_nodes is not None:
            x = jnp.where(zero_nodes[:, None], 0.0, x)
        xw = _dropout(k_in, x, dropout) @ w0
    h = gcn_propagate(xw, senders, receivers, norm=norm)
    if "bias" in params["conv0"]:
        h = h + params["conv0"]["bias"]
    h = _dropout(k_hid, jax.nn.relu(h), dropout)
    return gcn_propagate(h, senders, receivers, norm=norm)


def _head(p: dict, emb: jax.Array) -> jax.Array:
    out = emb @ p["kernel"]
    return out + p["bias"] if "bias" in p else out


def class_logits(params: dict, graph, x_sparse: Optional[dict] = None) -> jax.Array:
    """Eval-mode class logits ``[N, C]`` of the GCN (``f(X) W1``)."""
    x = jnp.asarray(graph.nodes, jnp.float32)
    return _head(params["cls"], extract(params, x, graph.senders, graph.receivers, x_sparse=x_sparse))


def completion_loss_sparse(emb: jax.Array, head: dict, x_sparse: dict, mask: jax.Array) -> tuple[jax.Array, dict]:
    """:func:`sslx.losses.graph.masked_feature_regression` of the prediction ``emb W (+ b)``
    against the features ``x`` given by their non-zeros, without forming the ``[N, F]``
    prediction: ``||e W + b - x||^2 = e (W W^T) e^T + 2 e (W b) + ||b||^2 - 2 (e (x W^T)^T + x b)
    + ||x||^2`` per row, with ``x W^T`` and ``x b`` as sparse products (Cora: 49k non-zeros
    instead of 2708 x 1433 entries; CiteSeer 3327 x 3703). emb ``[N, H]``, head ``{"kernel"
    [H, F], optional "bias" [F]}``, mask bool ``[N]``."""
    n = emb.shape[0]
    w = head["kernel"]
    rows, cols, vals = x_sparse["rows"], x_sparse["cols"], x_sparse["vals"].astype(emb.dtype)
    x2 = jax.ops.segment_sum(vals * vals, rows, n)
    p2 = jnp.sum((emb @ (w @ w.T)) * emb, axis=1)
    cross = jnp.sum(emb * sparse_transform(x_sparse, w.T, n), axis=1)
    if "bias" in head:
        b = head["bias"]
        p2 = p2 + 2.0 * emb @ (w @ b) + jnp.sum(b * b)
        cross = cross + jax.ops.segment_sum(vals * b[cols], rows, n)
    err = jnp.maximum(p2 - 2.0 * cross + x2, 0.0)
    m = mask.astype(bool)
    total = jnp.sum(jnp.where(m, err, 0.0))
    loss = total / jnp.maximum(jnp.sum(jnp.where(m, x2, 0.0)), 1e-12)
    return loss, {"mse": lax.stop_gradient(total / jnp.maximum(jnp.sum(m.astype(emb.dtype)), 1.0))}


def completion_mask(rng: jax.Array, num_nodes: int, rate: float, node_mask: Optional[jax.Array] = None) -> jax.Array:
    """Nodes whose features graph completion hides: bool ``[N]``, node ``i`` masked when
    ``U(fold_in(rng, i)) < rate`` (so the draw of a real node does not depend on padding);
    padding nodes (``node_mask`` False) never."""
    u = jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(rng, i)))(jnp.arange(num_nodes))
    m = u < rate
    return m if node_mask is None else m & node_mask.astype(bool)


def ssgcn(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
          total_steps: Optional[int] = None) -> Method:
    """The self-supervised GCN as a :class:`Method` (full-graph, one device; see the module doc).

    Reads ``config.model.{hidden, dropout, num_classes, use_bias}`` and
    ``config.method.{task, alpha, weight_decay, decay_scope, num_clusters, num_parts,
    mask_rate, cluster_to_classes}``.
    """
    del total_steps
    m, md = config.method, config.model
    task = str(m.get("task", "clustering"))
    if task not in TASKS:
        raise ValueError(f"config.method.task={task!r} is unknown; use one of {', '.join(TASKS)}.")
    hidden, rate = int(md.get("hidden", 16)), float(md.get("dropout", 0.5))
    num_classes = int(md.get("num_classes", 0))
    if hidden <= 0:
        raise ValueError(f"config.model.hidden must be a positive width, got {hidden}.")
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"config.model.dropout must be in [0, 1), got {rate}.")
    if num_classes <= 1:
        raise ValueError(f"config.model.num_classes={num_classes}: set it to the dataset's number of classes "
                         "(run_ssgcn / SSGCNRunner fill it in from the dataset).")
    alpha = float(m.get("alpha", 1.0)) if task != "none" else 0.0
    wd = float(m.get("weight_decay", 5e-4))
    scope = str(m.get("decay_scope", "first"))
    if alpha < 0 or wd < 0:
        raise ValueError(f"config.method.alpha ({alpha}) and config.method.weight_decay ({wd}) must be >= 0.")
    if scope not in ("first", "all"):
        raise ValueError(f"config.method.decay_scope={scope!r}: use 'first' (Kipf) or 'all'.")
    use_bias = bool(md.get("use_bias", False))
    mask_rate = float(m.get("mask_rate", 0.1))
    if task == "completion" and not 0.0 < mask_rate < 1.0:
        raise ValueError(f"config.method.mask_rate must be in (0, 1) for graph completion, got {mask_rate}.")
    if task == "clustering":
        ss_dim = num_classes if bool(m.get("cluster_to_classes", False)) else int(m.get("num_clusters", 0))
    elif task == "partitioning":
        ss_dim = int(m.get("num_parts", 0))
    else:
        ss_dim = None  # completion: the feature width, known at init; none: no head
    if ss_dim is not None and ss_dim < 2:
        raise ValueError(f"task {task!r} needs at least 2 pseudo-classes (config.method.num_clusters / num_parts); "
                         f"got {ss_dim}.")
    glorot = jax.nn.initializers.glorot_uniform()

    def _linear(key, d_in, d_out):
        p = {"kernel": glorot(key, (d_in, d_out), jnp.float32)}
        if use_bias:
            p["bias"] = jnp.zeros((d_out,), jnp.float32)
        return p

    def _graph(batch):
        g = batch["graph"]
        if g.nodes is None or g.nodes.ndim != 2:
            raise ValueError("ssgcn needs batch['graph'].nodes to be node features [N, F]; got "
                             f"{None if g.nodes is None else g.nodes.shape}.")
        for k in ("labels", "train_mask") + (("pseudo_labels", "ss_mask") if task in ("clustering", "partitioning")
                                              else ()):
            if k not in batch:
                raise ValueError(f"ssgcn (task {task!r}) needs batch[{k!r}]; build the batch with ssgcn_batch().")
        return g

    def init(rng, batch):
        g = _graph(batch)
        f = int(g.nodes.shape[1])
        k0, k1, k2 = jax.random.split(rng, 3)
        params = {"conv0": _linear(k0, f, hidden), "cls": _linear(k1, hidden, num_classes)}
        if task != "none":
            params["ss"] = _linear(k2, hidden, f if task == "completion" else ss_dim)
        return params, {}

    def l2_penalty(params):
        ws = [params["conv0"]["kernel"]] if scope == "first" else [
            leaf for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0] if path[-1].key == "kernel"]
        return 0.5 * wd * sum(jnp.sum(w ** 2) for w in ws)

    def loss_fn(params, state, batch, rng):
        g = _graph(batch)
        x = jnp.asarray(g.nodes, jnp.float32)
        n = x.shape[0]
        xs = batch.get("x_sparse")
        norm = gcn_norm(g.senders, g.receivers, n)
        k_sup, k_mask, k_ss = jax.random.split(rng, 3)
        emb = extract(params, x, g.senders, g.receivers, x_sparse=xs, rng=k_sup, dropout=rate, norm=norm)
        sup, sup_aux = masked_cross_entropy(_head(params["cls"], emb), batch["labels"], batch["train_mask"])
        l2 = l2_penalty(params)
        metrics = {"sup_loss": sup, "train_acc": sup_aux["accuracy"], "l2": l2}
        ss = jnp.zeros((), jnp.float32)
        if task in ("clustering", "partitioning"):
            ss, ss_aux = masked_cross_entropy(_head(params["ss"], emb), batch["pseudo_labels"], batch["ss_mask"])
            metrics["ss_acc"] = ss_aux["accuracy"]
        elif task == "completion":
            hide = completion_mask(k_mask, n, mask_rate, batch.get("node_mask"))
            emb_m = extract(params, x, g.senders, g.receivers, x_sparse=xs, zero_nodes=hide, rng=k_ss,
                            dropout=rate, norm=norm)
            if xs is not None:  # the same value without the [N, F] prediction
                ss, ss_aux = completion_loss_sparse(emb_m, params["ss"], xs, hide)
            else:
                ss, ss_aux = masked_feature_regression(_head(params["ss"], emb_m), x, hide)
            metrics["ss_mse"] = ss_aux["mse"]
        metrics["ss_loss"] = ss
        loss = sup + alpha * ss + l2 if task != "none" else sup + l2
        return loss, (state, metrics)

    def encode(params, state, graph):
        return extract(params, jnp.asarray(graph.nodes, jnp.float32), graph.senders, graph.receivers)

    return Method(name="ssgcn", init=init, loss_fn=loss_fn, encode=encode, axis_name=axis_name)


# --------------------------------------------------------------------------
# Batches, training with early stopping on the validation loss, comparison
# --------------------------------------------------------------------------


def _config_for(config: ml_collections.ConfigDict, ds) -> ml_collections.ConfigDict:
    c = copy.deepcopy(config)
    if int(c.model.get("num_classes", 0)) <= 0:
        c.model.num_classes = int(ds.num_classes)
    elif int(c.model.num_classes) < int(ds.num_classes):
        raise ValueError(f"config.model.num_classes={c.model.num_classes} < the dataset's {ds.num_classes} classes.")
    return c


def ssgcn_batch(config: ml_collections.ConfigDict, ds, seed: int, *,
                partition: Optional[np.ndarray] = None) -> tuple[dict, dict]:
    """The training batch and the evaluation arrays for one run on a ``NodeDataset``.

    Labels outside the train nodes are -1 in the batch (the held-out labels never enter the
    training loss); the evaluation dict holds all labels and the val / test masks. Pseudo-labels:
    clustering from ``kmeans`` with the key ``fold_in(PRNGKey(seed), 1)``; partitioning from
    :func:`spectral_partition` (or ``partition``, precomputed: it depends on the graph only).
    """
    m = config.method
    task = str(m.get("task", "clustering"))
    if task not in TASKS:
        raise ValueError(f"config.method.task={task!r} is unknown; use one of {', '.join(TASKS)}.")
    x = np.asarray(ds.graph.nodes, np.float32)
    n = x.shape[0]
    labels = np.asarray(ds.labels, np.int32)
    train = np.asarray(ds.train_mask, bool) & (labels >= 0)
    batch = {"graph": ds.graph, "labels": np.where(train, labels, -1).astype(np.int32), "train_mask": train}
    if bool(config.model.get("sparse_input", True)):
        batch["x_sparse"] = sparse_features(x)
    if task == "clustering":
        key = jax.random.fold_in(jax.random.PRNGKey(int(seed)), 1)
        clusters, _ = kmeans(x, int(m.num_clusters), key, max_iters=int(m.get("kmeans_iters", 300)))
        if bool(m.get("cluster_to_classes", False)):
            num_classes = int(config.model.get("num_classes", 0)) or int(ds.num_classes)
            batch["pseudo_labels"] = align_clusters_to_classes(x, clusters, labels, train, num_classes)
            batch["ss_mask"] = ~train
        else:
            batch["pseudo_labels"] = clusters
            batch["ss_mask"] = np.ones(n, bool)
    elif task == "partitioning":
        parts = partition if partition is not None else spectral_partition(
            ds.graph.senders, ds.graph.receivers, n, int(m.num_parts))
        if parts.shape != (n,):
            raise ValueError(f"partition must be int [N={n}]; got shape {parts.shape}.")
        batch["pseudo_labels"] = np.asarray(parts, np.int32)
        batch["ss_mask"] = np.ones(n, bool)
    ev = {"labels": np.where(labels >= 0, labels, 0).astype(np.int32),
          "val_mask": np.asarray(ds.val_mask, bool) & (labels >= 0),
          "test_mask": np.asarray(ds.test_mask, bool) & (labels >= 0)}
    return batch, ev


class SSGCNRunner:
    """Trains the self-supervised GCN of ``config`` on one ``NodeDataset``, one seed per call.

    The whole run is one compiled function (compiled once per runner, reused for every seed):
    the library's train step (:func:`sslx.train.step.make_step_fn`, shard_map over a
    one-device mesh) in a ``lax.while_loop`` with early stopping on the validation
    cross-entropy (eval mode), at most ``config.train.max_epochs`` epochs:

    * ``train.stopping = 'window'`` (Kipf & Welling's code, also You et al.'s): stop after
      epoch ``t > window`` when the val loss exceeds the mean of the previous ``window`` val
      losses; the parameters at that point are evaluated.
    * ``'patience'``: keep the parameters with the lowest val loss; stop after ``patience``
      epochs without a new lowest; the kept parameters are evaluated.
    """

    def __init__(self, config: ml_collections.ConfigDict, ds):
        from sslx.methods import get_method
        from sslx.train.optim import make_optimizer

        self.ds = ds
        self.config = _config_for(config, ds)
        t = self.config.train
        self.max_epochs = int(t.get("max_epochs", 200))
        self.stopping = str(t.get("stopping", "window"))
        self.window = int(t.get("window", 10))
        self.patience = int(t.get("patience", 10))
        if self.max_epochs <= 0:
            raise ValueError(f"config.train.max_epochs must be positive, got {self.max_epochs}.")
        if self.stopping not in _STOPPING:
            raise ValueError(f"config.train.stopping={self.stopping!r}: use one of {', '.join(_STOPPING)}.")
        if self.window <= 0 or self.patience <= 0:
            raise ValueError(f"config.train.window ({self.window}) and patience ({self.patience}) must be positive.")
        self.method = get_method(self.config)
        self.tx, _ = make_optimizer(self.config.optimizer, self.max_epochs, 1)
        self.mesh = Mesh(np.asarray(jax.devices()[:1]), (DATA_AXIS,))
        self._compiled = None
        self._partition = None
        self.compile_s = 0.0

    def _train_all(self, rng, batch, ev):
        from sslx.train.state import create_train_state
        from sslx.train.step import make_step_fn

        step = make_step_fn(self.method, self.tx, None, axis_name=DATA_AXIS)
        g, xs = batch["graph"], batch.get("x_sparse")
        labels, val_mask = ev["labels"], ev["val_mask"]

        def val_of(params):
            return masked_cross_entropy(class_logits(params, g, xs), labels, val_mask)

        ts = create_train_state(self.method, self.tx, rng, batch)
        nan = jnp.full((self.max_epochs,), jnp.nan, jnp.float32)
        c0 = {"epoch": jnp.array(0), "stop": jnp.array(False), "ts": ts, "val_loss": nan, "val_acc": nan,
              "train_loss": nan, "best": jnp.array(jnp.inf, jnp.float32), "best_params": ts.params,
              "best_epoch": jnp.array(-1), "wait": jnp.array(0)}

        def cond(c):
            return (c["epoch"] < self.max_epochs) & ~c["stop"]

        def body(c):
            t = c["epoch"]
            ts, metrics = step(c["ts"], batch)
            vl, vaux = val_of(ts.params)
            hist = c["val_loss"].at[t].set(vl)
            better = vl < c["best"]
            wait = jnp.where(better, 0, c["wait"] + 1)
            if self.stopping == "window":
                w = min(self.window, self.max_epochs)  # a window >= max_epochs never stops
                prev = lax.dynamic_slice(hist, (jnp.maximum(t - w, 0),), (w,))
                stop = (t > self.window) & (vl > jnp.mean(prev))
            else:
                stop = wait >= self.patience
            return {"epoch": t + 1, "stop": stop, "ts": ts, "val_loss": hist,
                    "val_acc": c["val_acc"].at[t].set(vaux["accuracy"]),
                    "train_loss": c["train_loss"].at[t].set(metrics["loss"]),
                    "best": jnp.where(better, vl, c["best"]),
                    "best_params": jax.tree.map(lambda a, b: jnp.where(better, a, b), ts.params, c["best_params"]),
                    "best_epoch": jnp.where(better, t, c["best_epoch"]), "wait": wait}

        c = lax.while_loop(cond, body, c0)
        params = c["ts"].params if self.stopping == "window" else c["best_params"]
        logits = class_logits(params, g, xs)
        val_loss, val_aux = masked_cross_entropy(logits, labels, val_mask)
        _, test_aux = masked_cross_entropy(logits, labels, ev["test_mask"])
        return {"test_acc": test_aux["accuracy"], "val_acc": val_aux["accuracy"], "val_loss": val_loss,
                "epochs": c["epoch"], "best_epoch": c["best_epoch"], "val_loss_history": c["val_loss"],
                "val_acc_history": c["val_acc"], "train_loss_history": c["train_loss"], "params": params}

    def batch(self, seed: int) -> tuple[dict, dict]:
        """The host-side batch of ``seed`` (the partition is computed once per runner)."""
        if str(self.config.method.get("task")) == "partitioning" and self._partition is None:
            g = self.ds.graph
            self._partition = spectral_partition(g.senders, g.receivers, self.ds.num_nodes,
                                                 int(self.config.method.num_parts))
        return ssgcn_batch(self.config, self.ds, seed, partition=self._partition)

    def __call__(self, seed: int, *, return_params: bool = False) -> dict:
        t0 = time.perf_counter()
        batch, ev = self.batch(seed)
        pseudo_s = time.perf_counter() - t0
        rep = NamedSharding(self.mesh, P())
        rng = jax.random.fold_in(jax.random.PRNGKey(int(seed)), 2)
        args = jax.device_put((rng, batch, ev), rep)
        if self._compiled is None:
            t0 = time.perf_counter()
            fn = jax.jit(jax.shard_map(self._train_all, mesh=self.mesh, in_specs=(P(), P(), P()), out_specs=P(),
                                       check_vma=False))
            self._compiled = fn.lower(*args).compile()
            self.compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = jax.device_get(self._compiled(*args))
        run_s = time.perf_counter() - t0
        epochs = int(out["epochs"])
        c = self.config
        row = {"task": str(c.method.task), "dataset": self.ds.name, "seed": int(seed),
               "test_acc": 100.0 * float(out["test_acc"]), "val_acc": 100.0 * float(out["val_acc"]),
               "val_loss": float(out["val_loss"]), "epochs": epochs, "best_epoch": int(out["best_epoch"]),
               "stopping": self.stopping,
               "alpha": float(c.method.get("alpha", 0.0)) if c.method.task != "none" else 0.0,
               "train_s": run_s, "pseudo_label_s": pseudo_s, "compile_s": self.compile_s,
               "val_loss_history": np.asarray(out["val_loss_history"])[:epochs],
               "train_loss_history": np.asarray(out["train_loss_history"])[:epochs]}
        if return_params:
            row["params"] = out["params"]
        return row


def _load(dataset, data_dir, config):
    if isinstance(dataset, str):
        from sslx.data.graph import load_planetoid
        return load_planetoid(dataset, data_dir or config.dataset.get("data_dir"),
                              normalize_features=bool(config.dataset.get("normalize_features", True)))
    return dataset


def run_ssgcn(config: ml_collections.ConfigDict, dataset, seed: int, data_dir: Optional[str] = None) -> dict:
    """One run: train with early stopping on the validation loss (see :class:`SSGCNRunner`)
    and return ``{"test_acc", "val_acc" (percent), "epochs", "best_epoch", "train_s",
    "compile_s", "pseudo_label_s", histories, ...}``. ``dataset``: a Planetoid name (loaded
    from ``data_dir``) or a ``NodeDataset``."""
    return SSGCNRunner(config, _load(dataset, data_dir, config))(seed)


def compare_ssgcn(dataset, seeds: Sequence[int], tasks: Sequence[str] = TASKS, data_dir: Optional[str] = None,
                  *, config_arg: Optional[str] = None, overrides: Optional[dict] = None,
                  verbose: bool = False) -> list[dict]:
    """Plain GCN vs the self-supervised tasks on one dataset: for every task, the runs of
    ``seeds`` with ``sslx/configs/ssgcn.py:<dataset>-<task>`` (or ``<config_arg>-<task>``) and
    their test accuracy mean ± std (population std over seeds, percent).

    ``overrides``: ``{"section.key": value}`` applied to every task's config. Returns one dict
    per task: ``{"task", "dataset", "seeds", "test_acc_mean", "test_acc_std", "val_acc_mean",
    "epochs_mean", "train_s_total", "compile_s", "runs": [per-seed rows without histories]}``.
    """
    from sslx.configs import ssgcn as ssgcn_cfg

    name = dataset if isinstance(dataset, str) else dataset.name
    arg = config_arg or name
    out = []
    ds = None
    for task in tasks:
        if task not in TASKS:
            raise ValueError(f"task {task!r} is unknown; use one of {', '.join(TASKS)}.")
        c = ssgcn_cfg.get_config(f"{arg}-{task}")
        for k, v in (overrides or {}).items():
            node = c
            *path, last = k.split(".")
            for p in path:
                node = node[p]
            node[last] = v
        if ds is None:
            ds = _load(dataset, data_dir, c)
        runner = SSGCNRunner(c, ds)
        rows = []
        for s in seeds:
            r = runner(int(s))
            rows.append({k: v for k, v in r.items() if not k.endswith("_history")})
            if verbose:
                print(f"ssgcn {name} {task} seed {s}: test {r['test_acc']:.1f} val {r['val_acc']:.1f} "
                      f"epochs {r['epochs']} ({r['train_s']:.2f} s)", flush=True)
        acc = np.array([r["test_acc"] for r in rows])
        out.append({"task": task, "dataset": name, "seeds": [int(s) for s in seeds],
                    "test_acc_mean": float(acc.mean()), "test_acc_std": float(acc.std()),
                    "val_acc_mean": float(np.mean([r["val_acc"] for r in rows])),
                    "epochs_mean": float(np.mean([r["epochs"] for r in rows])),
                    "train_s_total": float(sum(r["train_s"] + r["pseudo_label_s"] for r in rows)),
                    "compile_s": runner.compile_s, "alpha": rows[0]["alpha"] if rows else None, "runs": rows})
    return out

"""Ego subgraphs by random walk with restart and their structural node features (GCC, Qiu et
al. 2020), on the host with numpy.

GCC's "instance" is the r-ego network of a node; its two "views" are subgraphs sampled
around the same ego by two independent random walks with restart (RWR): from the ego the
walk moves to a uniform random neighbour, and at every step it jumps back to the ego with
probability ``restart_prob`` (GCC: 0.8). The subgraph is the graph induced on the visited
nodes. GCC is structure-only: node features of the source graph are ignored, and every node
gets

* ``pos``: generalised positional embedding -- the eigenvectors of the subgraph's normalised
  Laplacian ``L = I - D^-1/2 A D^-1/2`` for its ``k`` smallest eigenvalues (equivalently the
  ``k`` largest of ``D^-1/2 A D^-1/2``, which the authors' code computes), each row then L2
  normalised (as the authors' code), zero-padded to ``k`` columns when the subgraph has
  fewer than ``k`` nodes. Eigenvectors are defined up to sign: a deterministic convention
  (each column's largest-magnitude entry positive) is used for evaluation, and with a
  generator every column's sign is flipped at random (training views), so the encoder
  cannot rely on an arbitrary sign;
* ``ego``: 1 on the ego node, 0 elsewhere;
* ``degree``: the node's degree inside the subgraph (the encoder embeds it).

A padded batch of instances stores them in one ``nodes`` array ``[N, k + 2]`` laid out as
``[pos (k) | ego (1) | degree (1)]`` so the padding of :mod:`sslx.data.graph_batch` /
:func:`sslx.data.graph.pad_graph` applies unchanged (see :func:`pack_instances`).

Randomness comes only from an explicit ``np.random.Generator`` passed by the caller (no
global numpy state): the same generator state gives the same subgraph.
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import jraph
import numpy as np

from sslx.data.graph import pad_graph
from sslx.data.graph_batch import split_for_devices

__all__ = ["CsrGraph", "Instance", "induced_subgraph", "instance_budget", "laplacian_eigvecs", "make_instance",
           "normalized_laplacian", "pack_instances", "positional_features", "rwr_subgraph", "subgraph_instance",
           "whole_graph_instance"]


@dataclasses.dataclass(frozen=True)
class CsrGraph:
    """An undirected simple graph as CSR adjacency: the neighbours of node ``i`` are
    ``indices[indptr[i]:indptr[i + 1]]`` (sorted, no self-loops, no duplicates)."""
    indptr: np.ndarray  # [N + 1] int64
    indices: np.ndarray  # [2 * undirected edges] int32

    @property
    def num_nodes(self) -> int:
        return int(self.indptr.shape[0] - 1)

    @property
    def degree(self) -> np.ndarray:
        """``[N]`` int64 node degrees."""
        return np.diff(self.indptr)

    @classmethod
    def from_edges(cls, senders: np.ndarray, receivers: np.ndarray, num_nodes: int) -> "CsrGraph":
        """Symmetrised, deduplicated, self-loop-free CSR of the edges ``senders -> receivers``."""
        s, r = np.asarray(senders, np.int64).ravel(), np.asarray(receivers, np.int64).ravel()
        n = int(num_nodes)
        if s.shape != r.shape:
            raise ValueError(f"CsrGraph.from_edges: senders {s.shape} and receivers {r.shape} differ in length.")
        if s.size and (min(s.min(), r.min()) < 0 or max(s.max(), r.max()) >= n):
            raise ValueError(f"CsrGraph.from_edges: node ids must lie in 0..{n - 1} (num_nodes={n}).")
        s, r = np.concatenate([s, r]), np.concatenate([r, s])
        keep = s != r
        key = np.unique(s[keep] * n + r[keep])  # sorted by (source, neighbour)
        src, nbr = key // n, key % n
        indptr = np.zeros(n + 1, np.int64)
        np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
        return cls(indptr=indptr, indices=nbr.astype(np.int32))

    @classmethod
    def disjoint_union(cls, graphs: Sequence["CsrGraph"]) -> "CsrGraph":
        """One graph holding ``graphs`` side by side (node ids offset in order)."""
        if not graphs:
            raise ValueError("CsrGraph.disjoint_union: pass at least one graph.")
        indptr, indices, off_n, off_e = [np.zeros(1, np.int64)], [], 0, 0
        for g in graphs:
            indptr.append(g.indptr[1:] + off_e)
            indices.append(g.indices.astype(np.int64) + off_n)
            off_n += g.num_nodes
            off_e += int(g.indptr[-1])
        return cls(indptr=np.concatenate(indptr), indices=np.concatenate(indices).astype(np.int32))

    def neighbours(self, i: int) -> np.ndarray:
        return self.indices[self.indptr[i]:self.indptr[i + 1]]


def rwr_subgraph(graph: CsrGraph, ego: int, size: int, restart_prob: float, max_steps: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Nodes ``[n]`` (int64, ``1 <= n <= size``) of a random walk with restart from ``ego``, in
    order of first visit (``ego`` first).

    Each step, with probability ``restart_prob`` the walk returns to the ego, otherwise it moves
    to a uniformly chosen neighbour of the current node. It stops when ``size`` distinct nodes
    have been visited or after ``max_steps`` steps (an isolated ego gives ``[ego]``). Every node
    is reached through edges from the ego, so the induced subgraph is connected.
    """
    if not 0 <= ego < graph.num_nodes:
        raise ValueError(f"rwr_subgraph: ego {ego} is not a node id of a graph with {graph.num_nodes} nodes.")
    if size < 1 or max_steps < 0:
        raise ValueError(f"rwr_subgraph: size ({size}) must be >= 1 and max_steps ({max_steps}) >= 0.")
    if not 0.0 <= restart_prob < 1.0:
        raise ValueError(f"rwr_subgraph: restart_prob must lie in [0, 1), got {restart_prob}.")
    indptr, indices = graph.indptr, graph.indices
    order, seen = [int(ego)], {int(ego)}
    if indptr[ego + 1] == indptr[ego] or size == 1:
        return np.asarray(order, np.int64)
    restart = (rng.random(max_steps) < restart_prob).tolist()  # drawn up front, as lists (fast scalar access)
    u_step = rng.random(max_steps).tolist()
    cur = int(ego)
    for t in range(max_steps):
        if restart[t]:
            cur = int(ego)
            continue
        lo, hi = int(indptr[cur]), int(indptr[cur + 1])
        cur = int(indices[lo + min(int(u_step[t] * (hi - lo)), hi - lo - 1)])
        if cur not in seen:
            seen.add(cur)
            order.append(cur)
            if len(order) >= size:
                break
    return np.asarray(order, np.int64)


def induced_subgraph(graph: CsrGraph, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges of the subgraph induced on ``nodes`` (distinct ids) in local ids ``0..n-1`` (the
    positions in ``nodes``): ``(senders, receivers)`` int32, both directions, sorted by
    (receiver, sender)."""
    nodes = np.asarray(nodes, np.int64)
    order = np.argsort(nodes)
    sorted_nodes = nodes[order]
    if len(sorted_nodes) > 1 and np.any(sorted_nodes[1:] == sorted_nodes[:-1]):
        raise ValueError("induced_subgraph: nodes must be distinct.")
    starts, ends = graph.indptr[nodes], graph.indptr[nodes + 1]
    counts = ends - starts
    src_local = np.repeat(np.arange(len(nodes)), counts)
    flat = np.concatenate([graph.indices[a:b] for a, b in zip(starts, ends)]) if len(nodes) else np.zeros(0, np.int64)
    pos = np.searchsorted(sorted_nodes, flat)
    pos = np.minimum(pos, len(sorted_nodes) - 1)
    inside = sorted_nodes[pos] == flat
    dst_local = order[pos[inside]]
    s, r = src_local[inside], dst_local
    key = np.argsort(r * max(len(nodes), 1) + s, kind="stable")
    return s[key].astype(np.int32), r[key].astype(np.int32)


def normalized_laplacian(senders: np.ndarray, receivers: np.ndarray, num_nodes: int) -> np.ndarray:
    """Dense ``L = I - D^-1/2 A D^-1/2`` ``[n, n]`` (float64) of a symmetric edge list; a node of
    degree 0 has a zero row / column in ``D^-1/2 A D^-1/2`` (so ``L_ii = 1``)."""
    n = int(num_nodes)
    a = np.zeros((n, n), np.float64)
    a[np.asarray(receivers), np.asarray(senders)] = 1.0
    if not np.array_equal(a, a.T):
        raise ValueError("normalized_laplacian: the edge list must hold both directions of every edge.")
    deg = a.sum(1)
    inv = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-300)), 0.0)
    return np.eye(n) - inv[:, None] * a * inv[None, :]


def laplacian_eigvecs(senders: np.ndarray, receivers: np.ndarray, num_nodes: int, k: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The ``min(k, n)`` smallest eigenvalues ``[m]`` (ascending) of the normalised Laplacian and
    their orthonormal eigenvectors ``[n, m]`` (float64), each column signed so that its
    largest-magnitude entry (the first, on ties) is positive."""
    if k < 1:
        raise ValueError(f"laplacian_eigvecs: k must be >= 1, got {k}.")
    lap = normalized_laplacian(senders, receivers, num_nodes)
    vals, vecs = np.linalg.eigh(lap)
    m = min(int(k), int(num_nodes))
    vals, vecs = vals[:m], vecs[:, :m]
    if m:
        pivot = np.argmax(np.abs(vecs) > np.abs(vecs).max(0, keepdims=True) - 1e-9, axis=0)
        vecs = vecs * np.where(vecs[pivot, np.arange(m)] < 0, -1.0, 1.0)[None, :]
    return vals, vecs


def positional_features(senders: np.ndarray, receivers: np.ndarray, num_nodes: int, k: int,
                        rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """GCC's positional embedding ``[n, k]`` float32: :func:`laplacian_eigvecs`, every column's
    sign flipped with probability 1/2 when ``rng`` is given, rows L2-normalised (all-zero rows
    stay zero), zero columns appended up to ``k``."""
    _, vecs = laplacian_eigvecs(senders, receivers, num_nodes, k)
    if rng is not None and vecs.shape[1]:
        vecs = vecs * rng.choice(np.array([-1.0, 1.0]), size=vecs.shape[1])[None, :]
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    vecs = np.divide(vecs, norms, out=np.zeros_like(vecs), where=norms > 1e-12)
    out = np.zeros((int(num_nodes), int(k)), np.float32)
    out[:, :vecs.shape[1]] = vecs
    return out


@dataclasses.dataclass(frozen=True)
class Instance:
    """One graph instance for GCC: ``nodes [n, k + 2]`` float32 (``[pos | ego | degree]``),
    local edges ``senders`` / ``receivers`` int32 (both directions)."""
    nodes: np.ndarray
    senders: np.ndarray
    receivers: np.ndarray

    @property
    def num_nodes(self) -> int:
        return int(self.nodes.shape[0])

    @property
    def num_edges(self) -> int:
        return int(self.senders.shape[0])


def make_instance(senders: np.ndarray, receivers: np.ndarray, num_nodes: int, ego: int, k: int,
                  rng: Optional[np.random.Generator] = None) -> Instance:
    """An :class:`Instance` of a graph given by local edges: positional features
    (:func:`positional_features`, random signs when ``rng`` is given), ego indicator at local
    node ``ego``, degrees counted from ``receivers``."""
    n = int(num_nodes)
    if not 0 <= ego < n:
        raise ValueError(f"make_instance: ego {ego} is not a node of a graph with {n} nodes.")
    pos = positional_features(senders, receivers, n, k, rng)
    ego_col = np.zeros((n, 1), np.float32)
    ego_col[ego] = 1.0
    deg = np.bincount(np.asarray(receivers, np.int64), minlength=n).astype(np.float32)[:, None]
    return Instance(nodes=np.concatenate([pos, ego_col, deg], axis=1), senders=np.asarray(senders, np.int32),
                    receivers=np.asarray(receivers, np.int32))


def subgraph_instance(graph: CsrGraph, ego: int, *, size: int, restart_prob: float, max_steps: int, k: int,
                      rng: np.random.Generator, sign_flip: bool = True) -> Instance:
    """An RWR ego subgraph of ``graph`` as an :class:`Instance` (the ego is local node 0)."""
    nodes = rwr_subgraph(graph, ego, size, restart_prob, max_steps, rng)
    s, r = induced_subgraph(graph, nodes)
    return make_instance(s, r, len(nodes), 0, k, rng if sign_flip else None)


def whole_graph_instance(senders: np.ndarray, receivers: np.ndarray, num_nodes: int, k: int) -> Instance:
    """A whole graph as one instance (GCC's graph-classification setting): the ego is the node of
    largest degree (the first on ties), positional features of the whole graph, no sign flips."""
    deg = np.bincount(np.asarray(receivers, np.int64), minlength=int(num_nodes))
    return make_instance(senders, receivers, num_nodes, int(np.argmax(deg)) if len(deg) else 0, k, None)


def _pow2(n: int, minimum: int) -> int:
    n = max(int(n), int(minimum))
    return 1 << (n - 1).bit_length()


def instance_budget(instances: Sequence[Instance], num_devices: int = 1, min_nodes: int = 16,
                    min_edges: int = 16) -> tuple[int, int, int]:
    """Smallest power-of-two per-device budget ``(Nb, Eb, Gb)`` for ``instances`` split into
    ``num_devices`` contiguous groups (+1 padding node and graph, as jraph needs)."""
    groups = split_for_devices(np.arange(len(instances)), num_devices)
    n = max(sum(instances[i].num_nodes for i in g) for g in groups) + 1
    e = max(sum(instances[i].num_edges for i in g) for g in groups)
    k = max(len(g) for g in groups) + 1
    return _pow2(n, min_nodes), _pow2(e, min_edges), _pow2(k, 2)


def pack_instances(instances: Sequence[Instance], num_devices: int = 1,
                   sizes: Optional[tuple[int, int, int]] = None) -> dict:
    """Instances as a device-stacked padded batch dict (the layout of
    :mod:`sslx.data.graph_batch`: ``nodes [D*Nb, k+2]``, ``senders`` / ``receivers [D*Eb]``
    local to each block, ``n_node`` / ``n_edge [D*Gb]``, ``node_mask``, ``edge_mask``,
    ``graph_mask``). Device ``d`` holds instances ``d*ceil(B/D) ...``. ``sizes``: the per-device
    budget (default :func:`instance_budget`); too small a budget is a ValueError."""
    if len(instances) == 0:
        raise ValueError("pack_instances: no instances; pass at least one.")
    width = instances[0].nodes.shape[1]
    if any(inst.nodes.shape[1] != width for inst in instances):
        raise ValueError("pack_instances: every instance must have the same node feature width.")
    if sizes is None:
        sizes = instance_budget(instances, num_devices)
    blocks = []
    empty = np.zeros(0, np.int32)
    for g in split_for_devices(np.arange(len(instances)), num_devices):
        parts = [instances[int(i)] for i in g]
        n_node = np.asarray([p.num_nodes for p in parts], np.int32)
        offs = np.concatenate([[0], np.cumsum(n_node)[:-1]]).astype(np.int32) if len(parts) else np.zeros(0, np.int32)
        gt = jraph.GraphsTuple(
            nodes=np.concatenate([p.nodes for p in parts]) if parts else np.zeros((0, width), np.float32),
            edges=None,
            senders=np.concatenate([p.senders + o for p, o in zip(parts, offs)]) if parts else empty,
            receivers=np.concatenate([p.receivers + o for p, o in zip(parts, offs)]) if parts else empty,
            n_node=n_node, n_edge=np.asarray([p.num_edges for p in parts], np.int32), globals=None)
        padded, masks = pad_graph(gt, sizes)
        blocks.append({"nodes": np.asarray(padded.nodes, np.float32),
                       "senders": np.asarray(padded.senders, np.int32),
                       "receivers": np.asarray(padded.receivers, np.int32),
                       "n_node": np.asarray(padded.n_node, np.int32), "n_edge": np.asarray(padded.n_edge, np.int32),
                       **{k: np.asarray(v, bool) for k, v in masks.items()}})
    return {k: np.concatenate([b[k] for b in blocks], axis=0) for k in blocks[0]}

"""Batches of many small graphs for the sharded train step (graph-level objectives).

A global batch of ``B`` graphs is split into ``D`` contiguous per-device groups (device
``d`` gets graphs ``d * ceil(B / D) ...``); each group is one ``GraphsTuple`` padded with
``jraph.pad_with_graphs`` to the *same* static budget ``(Nb, Eb, Gb)``, and the groups'
arrays are concatenated along axis 0. Every array of the batch dict then has a leading
dimension ``D * budget``, so ``ParallelStep.put_batch`` hands device ``d`` exactly its own
padded block, and :func:`unflatten` turns that block back into a ``GraphsTuple``.

Batch dict (per device block sizes ``Nb`` nodes, ``Eb`` edges, ``Gb`` graphs)::

    nodes [D*Nb, F] float32     senders, receivers [D*Eb] int32 (ids local to the block)
    n_node, n_edge [D*Gb] int32  node_mask [D*Nb], edge_mask [D*Eb], graph_mask [D*Gb] bool
    label [D*Gb] int32 (graph labels, -1 on padding graphs; only with ``labels=True``)
    edges [D*Eb, D_e] float32 (per-edge features, 0 on padding edges; only when the dataset has them)

Budgets are powers of two (:func:`block_budget`), so a stream of batches compiles a
handful of shapes; :func:`dataset_budget` gives one budget large enough for every batch of
an epoch (one compile).
"""
from __future__ import annotations

from typing import Iterator, Optional, Sequence

import jax
import jax.numpy as jnp
import jraph
import numpy as np

from sslx.data.graph import GraphDataset, pad_graph

__all__ = ["BATCH_KEYS", "block_budget", "dataset_budget", "epoch_batches", "make_graph_batch",
           "split_for_devices", "unflatten"]

BATCH_KEYS = ("nodes", "senders", "receivers", "n_node", "n_edge", "node_mask", "edge_mask", "graph_mask")


def _pow2(n: int, minimum: int) -> int:
    n = max(int(n), int(minimum))
    return 1 << (n - 1).bit_length()


def split_for_devices(indices: Sequence[int], num_devices: int) -> list[np.ndarray]:
    """Contiguous groups ``ceil(B / D)`` graphs each (the last ones may be shorter or empty)."""
    if num_devices < 1:
        raise ValueError(f"num_devices must be >= 1, got {num_devices}.")
    idx = np.asarray(indices, np.int64)
    per = -(-len(idx) // num_devices)
    return [idx[d * per:(d + 1) * per] for d in range(num_devices)]


def block_budget(ds: GraphDataset, groups: Sequence[np.ndarray], min_nodes: int = 16, min_edges: int = 16,
                 min_graphs: int = 2) -> tuple[int, int, int]:
    """Smallest power-of-two ``(Nb, Eb, Gb)`` that holds every group (+1 padding node / graph)."""
    n = max(int(ds.n_node[g].sum()) for g in groups) + 1
    e = max(int(ds.n_edge[g].sum()) for g in groups)
    k = max(len(g) for g in groups) + 1
    return _pow2(n, min_nodes), _pow2(e, min_edges), _pow2(k, min_graphs)


def dataset_budget(ds: GraphDataset, global_batch: int, num_devices: int) -> tuple[int, int, int]:
    """A per-device budget that fits *any* ``ceil(global_batch / D)`` graphs of ``ds`` (the
    largest ones summed), so every batch of every epoch uses one compiled shape."""
    per = -(-int(global_batch) // int(num_devices))
    per = min(per, len(ds))
    top_n = np.sort(ds.n_node)[::-1][:per].sum()
    top_e = np.sort(ds.n_edge)[::-1][:per].sum()
    return _pow2(int(top_n) + 1, 16), _pow2(int(top_e), 16), _pow2(per + 1, 2)


def make_graph_batch(ds: GraphDataset, indices: Sequence[int], num_devices: int = 1,
                     sizes: Optional[tuple[int, int, int]] = None, labels: bool = False) -> dict:
    """The graphs ``indices`` as a device-stacked padded batch dict (see module docstring).

    ``sizes``: the per-device budget ``(Nb, Eb, Gb)``; default :func:`block_budget` of these
    groups. Too small a budget raises ``ValueError`` (nothing is dropped).
    """
    if len(indices) == 0:
        raise ValueError("make_graph_batch: indices is empty; pass at least one graph index.")
    groups = split_for_devices(indices, num_devices)
    if sizes is None:
        sizes = block_budget(ds, groups)
    blocks = []
    for g in groups:
        if len(g):
            gt = ds.batch(g)
        else:  # an empty device group: only padding
            no_edges = None if ds.edges is None else np.zeros((0,) + ds.edges.shape[1:], np.float32)
            gt = jraph.GraphsTuple(nodes=np.zeros((0, ds.num_features), np.float32), edges=no_edges,
                                   senders=np.zeros((0,), np.int32), receivers=np.zeros((0,), np.int32),
                                   n_node=np.zeros((0,), np.int32), n_edge=np.zeros((0,), np.int32),
                                   globals=np.zeros((0,), np.int32))
        padded, masks = pad_graph(gt, sizes)
        block = {"nodes": np.asarray(padded.nodes, np.float32),
                 "senders": np.asarray(padded.senders, np.int32),
                 "receivers": np.asarray(padded.receivers, np.int32),
                 "n_node": np.asarray(padded.n_node, np.int32), "n_edge": np.asarray(padded.n_edge, np.int32),
                 **{k: np.asarray(v, bool) for k, v in masks.items()}}
        if ds.edges is not None:
            block["edges"] = np.asarray(padded.edges, np.float32)
        if labels:
            lab = np.full((sizes[2],), -1, np.int32)
            lab[:len(g)] = ds.labels[g]
            block["label"] = lab
        blocks.append(block)
    return {k: np.concatenate([b[k] for b in blocks], axis=0) for k in blocks[0]}


def unflatten(batch: dict) -> jraph.GraphsTuple:
    """One device's block of a batch dict -> ``GraphsTuple`` (nodes float32; edges: the batch's
    ``"edges"`` when it has them, else None)."""
    missing = [k for k in BATCH_KEYS if k not in batch]
    if missing:
        raise ValueError(f"graph batch is missing keys {missing}; build it with make_graph_batch.")
    return jraph.GraphsTuple(nodes=jnp.asarray(batch["nodes"], jnp.float32), edges=batch.get("edges"),
                             senders=batch["senders"], receivers=batch["receivers"],
                             n_node=batch["n_node"], n_edge=batch["n_edge"], globals=None)


def epoch_batches(ds: GraphDataset, global_batch: int, rng: jax.Array, num_devices: int = 1,
                  sizes: Optional[tuple[int, int, int]] = None, drop_last: bool = False) -> Iterator[dict]:
    """One shuffled epoch of device-stacked batches (permutation from the JAX key ``rng``);
    the last, smaller batch is kept unless ``drop_last`` (as PyTorch's DataLoader default)."""
    if global_batch < 1:
        raise ValueError(f"global_batch must be >= 1, got {global_batch}.")
    if sizes is None:
        sizes = dataset_budget(ds, global_batch, num_devices)
    order = np.asarray(jax.random.permutation(rng, len(ds)))
    for start in range(0, len(ds), global_batch):
        idx = order[start:start + global_batch]
        if drop_last and len(idx) < global_batch:
            break
        yield make_graph_batch(ds, idx, num_devices, sizes)

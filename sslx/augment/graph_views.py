"""Graph views for MVGRL / MERIT: personalised-PageRank diffusion (dense, optionally top-k
sparsified), a random edge modification, and node windows (subgraphs of consecutive nodes).

Diffusion (Klicpera et al. 2019, as MVGRL computes it)::

    T = D^-1/2 (A + I) D^-1/2,        S = alpha (I - (1 - alpha) T)^-1        [N, N]

A diffusion view is a dict: ``{"dense": S}`` (``S @ h``), or, top-k sparsified, an edge list
``{"senders", "receivers", "weights"}`` keeping for every node ``i`` (receiver) its ``k``
largest entries ``S[i, j]`` (senders ``j``), weights unchanged (no renormalisation).
Padding nodes (no edges) form their own diagonal block of ``S``, so the real nodes' rows
do not depend on the padding.

Host-side (numpy, float64) versions for precomputing a dataset's diffusion once (graph-level
MVGRL, :func:`sslx.data.graph.with_ppr_view`): :func:`ppr_matrix_host` and
:func:`sparsify_diffusion` (entries ``>= eps``, optionally the top-k per row).
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

__all__ = ["diffusion_propagate", "modify_edges", "node_window", "ppr_diffusion", "ppr_matrix", "ppr_matrix_host",
           "sparse_features", "sparse_transform", "sparsify_diffusion", "window_batch"]


def ppr_matrix(senders: jax.Array, receivers: jax.Array, num_nodes: int, alpha: float = 0.2, *,
               add_self_loops: bool = True) -> jax.Array:
    """Dense PPR diffusion ``S [N, N]`` (float32) of the graph ``senders -> receivers``."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"ppr alpha must lie in (0, 1), got {alpha}.")
    n = int(num_nodes)
    a = jnp.zeros((n, n), jnp.float32).at[receivers, senders].set(1.0)
    if add_self_loops:
        a = a + jnp.eye(n, dtype=jnp.float32)
    deg = a.sum(1)
    inv = jnp.where(deg > 0, jax.lax.rsqrt(jnp.maximum(deg, 1e-12)), 0.0)
    t = inv[:, None] * a * inv[None, :]
    m = jnp.eye(n, dtype=jnp.float32) - (1.0 - alpha) * t
    return alpha * jnp.linalg.solve(m, jnp.eye(n, dtype=jnp.float32))


def ppr_matrix_host(senders, receivers, num_nodes: int, alpha: float = 0.2, *, add_self_loops: bool = True):
    """:func:`ppr_matrix` on the host: ``S = alpha (I - (1 - alpha) D^-1/2 (A + I) D^-1/2)^-1``
    as a float64 numpy ``[N, N]`` (``S[i, j]``: weight of sender ``j`` in receiver ``i``'s sum).

    ``A[i, j] = 1`` for every edge ``j -> i`` (duplicates count once); ``D`` the row sums of
    ``A + I``. ``S`` is symmetric when ``A`` is, and ``S d^1/2 = d^1/2`` (``d`` the degrees with
    the self-loop; the rows of ``S`` sum to 1 on a regular graph). Nodes in different connected
    components get ``S[i, j] = 0``.
    """
    import numpy as np
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"ppr alpha must lie in (0, 1), got {alpha}.")
    n = int(num_nodes)
    s_idx, r_idx = np.asarray(senders, np.int64), np.asarray(receivers, np.int64)
    if s_idx.shape != r_idx.shape or (s_idx.size and (min(s_idx.min(), r_idx.min()) < 0
                                                      or max(s_idx.max(), r_idx.max()) >= n)):
        raise ValueError(f"ppr_matrix_host: senders / receivers must be one shape of node ids in 0..{n - 1}.")
    a = np.zeros((n, n), np.float64)
    a[r_idx, s_idx] = 1.0
    if add_self_loops:
        a += np.eye(n)
    deg = a.sum(1)
    inv = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-300)), 0.0)
    t = inv[:, None] * a * inv[None, :]
    return alpha * np.linalg.solve(np.eye(n) - (1.0 - alpha) * t, np.eye(n))


def sparsify_diffusion(s, eps: float = 0.0, topk: int = 0):
    """The entries of a diffusion ``s [N, N]`` kept as weighted edges (numpy): every ``s[i, j]
    >= eps`` with ``s[i, j] > 0``, and with ``topk > 0`` only the ``topk`` largest of row ``i``
    (ties: the lower column). Weights are not renormalised. Returns ``(senders j, receivers i,
    weights)`` sorted by (receiver, sender)."""
    import numpy as np
    s = np.asarray(s)
    if s.ndim != 2 or s.shape[0] != s.shape[1]:
        raise ValueError(f"sparsify_diffusion expects a square matrix [N, N]; got shape {s.shape}.")
    if eps < 0 or topk < 0:
        raise ValueError(f"sparsify_diffusion: eps ({eps}) and topk ({topk}) must be >= 0.")
    keep = (s >= eps) & (s > 0)
    if 0 < topk < s.shape[1]:
        order = np.argsort(-s, axis=1, kind="stable")[:, :topk]
        top = np.zeros_like(keep)
        np.put_along_axis(top, order, True, axis=1)
        keep &= top
    r, c = np.nonzero(keep)  # row-major: sorted by receiver, then sender
    return c.astype(np.int32), r.astype(np.int32), s[r, c]


def ppr_diffusion(senders: jax.Array, receivers: jax.Array, num_nodes: int, alpha: float = 0.2, *,
                  topk: int = 0, add_self_loops: bool = True) -> dict:
    """A diffusion view (module docstring): dense when ``topk <= 0`` or ``topk >= N``, else
    the top-``topk`` entries of every row as a weighted edge list (``k N`` edges)."""
    s = ppr_matrix(senders, receivers, num_nodes, alpha, add_self_loops=add_self_loops)
    n = int(num_nodes)
    if topk <= 0 or topk >= n:
        return {"dense": s}
    w, idx = jax.lax.top_k(s, int(topk))  # rows = receivers i, idx = senders j
    return {"senders": idx.reshape(-1).astype(jnp.int32), "receivers": jnp.repeat(jnp.arange(n, dtype=jnp.int32), topk),
            "weights": w.reshape(-1)}


def diffusion_propagate(h: jax.Array, diffusion: dict) -> jax.Array:
    """``S h`` for a diffusion view (dense or edge list) and ``h [N, F]`` -> ``[N, F]``."""
    if "dense" in diffusion:
        s = diffusion["dense"]
        if s.shape != (h.shape[0], h.shape[0]):
            raise ValueError(f"diffusion['dense'] must be [N, N] with N={h.shape[0]}; got {s.shape}.")
        return s.astype(h.dtype) @ h
    if not {"senders", "receivers", "weights"} <= set(diffusion):
        raise ValueError("a diffusion view is {'dense': S} or {'senders', 'receivers', 'weights'}; got keys "
                         f"{sorted(diffusion)}.")
    msg = h[diffusion["senders"]] * diffusion["weights"][:, None].astype(h.dtype)
    return jax.ops.segment_sum(msg, diffusion["receivers"], h.shape[0])


def modify_edges(rng: jax.Array, senders: jax.Array, receivers: jax.Array, p: float,
                 num_real_nodes: jax.Array | int, edge_mask: Optional[jax.Array] = None
                 ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Random edge modification (MERIT's edge perturbation): every directed edge is kept with
    probability ``1 - p`` and ``round(p E)`` random directed edges between real nodes
    (``0 .. num_real_nodes - 1``; the real nodes must come first) are added.

    Returns ``(senders [E + A], receivers [E + A], keep_mask [E + A])`` for the GCN's
    ``edge_mask`` argument (static shapes: ``A = round(p E)``). With ``edge_mask`` only its
    ``E_real`` edges are real: ``p E_real`` edges are added on average.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"edge modification rate must lie in [0, 1), got {p}.")
    e = senders.shape[0]
    k_drop, k_s, k_r = jax.random.split(rng, 3)
    keep = jax.random.bernoulli(k_drop, 1.0 - p, (e,))
    if edge_mask is not None:
        keep = keep & edge_mask.astype(bool)
    n_add = int(round(p * e))
    if n_add == 0:
        return senders, receivers, keep
    hi = jnp.asarray(num_real_nodes)
    new_s = jax.random.randint(k_s, (n_add,), 0, hi).astype(senders.dtype)
    new_r = jax.random.randint(k_r, (n_add,), 0, hi).astype(receivers.dtype)
    add_keep = new_s != new_r  # no self-loops (the GCN adds its own)
    if edge_mask is not None:
        # only the real edges count: each added slot is used with probability E_real / E, so that
        # p E_real edges are added on average (a padded batch or a node window has E_real < E)
        frac = jnp.sum(edge_mask.astype(jnp.float32)) / e
        add_keep = add_keep & jax.random.bernoulli(jax.random.fold_in(rng, 1), frac, (n_add,))
    return (jnp.concatenate([senders, new_s]), jnp.concatenate([receivers, new_r]),
            jnp.concatenate([keep, add_keep]))


def node_window(start: jax.Array, size: int, senders: jax.Array, receivers: jax.Array,
                edge_mask: Optional[jax.Array] = None) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The edges inside the node window ``start .. start + size - 1``, relabelled to
    ``0 .. size - 1`` (MERIT's / MVGRL's subgraph sampling, with static shapes).

    ``senders, receivers [E]`` -> ``(senders [E], receivers [E], mask [E])``: ``mask`` is true
    for the edges with both ends in the window (and in ``edge_mask``); the others point at
    node 0 and are masked. ``start`` may be traced (a random window per step).
    """
    s, r = senders - start, receivers - start
    inside = (s >= 0) & (s < size) & (r >= 0) & (r < size)
    if edge_mask is not None:
        inside = inside & edge_mask.astype(bool)
    return (jnp.where(inside, s, 0).astype(senders.dtype), jnp.where(inside, r, 0).astype(receivers.dtype),
            inside)


def window_batch(batch: dict, diffusion: dict, size: int, rng: jax.Array) -> tuple[dict, dict, jax.Array]:
    """A random window of ``size`` consecutive real nodes of a full-graph batch (the subgraphs
    MERIT's and MVGRL's scripts train on), with static shapes.

    ``batch``: ``{"graph": GraphsTuple}`` (+ optional ``"node_mask"`` for padding nodes at the
    end, ``"edge_mask"``, ``"x_sparse"``); ``diffusion``: a diffusion view of the whole graph
    (dense or edge list). The window starts uniformly at random (``rng``) among the positions
    that fit inside the real nodes. Returns ``(batch_w, diffusion_w, window_mask [size])``:
    features ``[size, F]``, the edges, diffusion entries and feature non-zeros with both ends
    inside the window, relabelled to ``0 .. size - 1`` (the others masked / zero-weighted),
    and which window nodes are real (``batch_w`` gets it as ``"node_mask"`` when ``batch``
    has one). Edges keep their slots (``E`` of them, masked): no host work per step.
    """
    g = batch["graph"]
    x, mask, xs = g.nodes, batch.get("node_mask"), batch.get("x_sparse")
    n = x.shape[0]
    if not 0 < size <= n:
        raise ValueError(f"config.method.subgraph_size ({size}) must lie in 1 .. {n} (the graph's nodes); use a "
                         "smaller window, or 0 for full-graph steps.")
    n_real = n if mask is None else jnp.sum(mask.astype(jnp.int32))
    start = jax.random.randint(rng, (), 0, jnp.maximum(n_real - size, 0) + 1)
    wmask = jnp.arange(size) + start < n_real
    s, r, em = node_window(start, size, g.senders, g.receivers, batch.get("edge_mask"))
    out = {"graph": g._replace(nodes=jax.lax.dynamic_slice_in_dim(x, start, size), senders=s, receivers=r),
           "edge_mask": em}
    if mask is not None:
        out["node_mask"] = wmask
    if xs is not None:
        rows, _, inside = node_window(start, size, xs["rows"], xs["rows"])
        out["x_sparse"] = {"rows": rows, "cols": xs["cols"], "vals": jnp.where(inside, xs["vals"], 0.0)}
    if "dense" in diffusion:
        dw = {"dense": jax.lax.dynamic_slice(diffusion["dense"], (start, start), (size, size))}
    else:
        ds, dr, dm = node_window(start, size, diffusion["senders"], diffusion["receivers"])
        dw = {"senders": ds, "receivers": dr, "weights": jnp.where(dm, diffusion["weights"], 0.0)}
    return out, dw, wmask


def sparse_features(x) -> dict:
    """Host-side COO form of a (mostly zero) feature matrix ``x [N, F]``:
    ``{"rows", "cols", "vals"}`` of its non-zeros, for :func:`sparse_transform`. Put it in a
    batch as ``batch["x_sparse"]`` (the methods that read it use it for ``x W``; it must be
    the same ``x`` as ``batch["graph"].nodes``)."""
    import numpy as np
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"sparse_features expects node features [N, F]; got shape {x.shape}.")
    r, c = np.nonzero(x)
    return {"rows": r.astype(np.int32), "cols": c.astype(np.int32), "vals": x[r, c].astype(np.float32)}


def sparse_transform(xs: dict, kernel: jax.Array, num_nodes: int) -> jax.Array:
    """``x W`` for ``x`` in COO form (:func:`sparse_features`) and ``W [F, D]`` -> ``[N, D]``:
    one gather of ``nnz`` kernel rows and a segment sum (Cora: 49k non-zeros instead of a
    2708 x 1433 dense product)."""
    rows = kernel[xs["cols"]] * xs["vals"][:, None].astype(kernel.dtype)
    return jax.ops.segment_sum(rows, xs["rows"], num_nodes)

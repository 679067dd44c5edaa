"""Graph views for MVGRL / MERIT: personalised-PageRank diffusion (dense, optionally top-k
sparsified) and a random edge modification.

Diffusion (Klicpera et al. 2019, as MVGRL computes it)::

    T = D^-1/2 (A + I) D^-1/2,        S = alpha (I - (1 - alpha) T)^-1        [N, N]

A diffusion view is a dict: ``{"dense": S}`` (``S @ h``), or, top-k sparsified, an edge list
``{"senders", "receivers", "weights"}`` keeping for every node ``i`` (receiver) its ``k``
largest entries ``S[i, j]`` (senders ``j``), weights unchanged (no renormalisation).
Padding nodes (no edges) form their own diagonal block of ``S``, so the real nodes' rows
do not depend on the padding.
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

__all__ = ["diffusion_propagate", "modify_edges", "ppr_diffusion", "ppr_matrix", "sparse_features", "sparse_transform"]


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
    ``edge_mask`` argument (static shapes: ``A = round(p E)``).
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
    return (jnp.concatenate([senders, new_s]), jnp.concatenate([receivers, new_r]),
            jnp.concatenate([keep, add_keep]))


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

"""Graph encoders: GCN normalisation vs a dense numpy reference, permutation equivariance,
padding invariance, GIN readouts, the bilinear discriminator."""
import math

import chex
import jax
import jax.numpy as jnp
import jraph
import numpy as np
import pytest

from sslx.data.graph import _dedup_edges, pad_graph, to_graphs_tuple
from sslx.models.gnn import (GCN, GIN, BilinearDiscriminator, GCNConv, gcn_propagate, mean_readout, sum_readout,
                             torch_bilinear_init)


def random_graph(n=9, p=0.3, f=5, seed=0, isolated=True):
    """Undirected random graph (both directions), node n-1 isolated when ``isolated``."""
    rng = np.random.default_rng(seed)
    a = np.triu(rng.random((n, n)) < p, 1)
    if isolated:
        a[:, n - 1] = a[n - 1, :] = False
    s, r = np.nonzero(a)
    s, r = _dedup_edges(s, r, n, symmetric=True, self_loops=False)
    x = rng.normal(size=(n, f)).astype(np.float32)
    return x, s, r


def dense_norm_adj(s, r, n, self_loops=True):
    a = np.zeros((n, n))
    a[r, s] = 1.0  # row = receiver
    if self_loops:
        a += np.eye(n)
    deg = a.sum(1)
    inv = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-12)), 0.0)
    return inv[:, None] * a * inv[None, :]


@pytest.mark.parametrize("self_loops", [True, False])
def test_gcn_propagate_matches_dense_normalised_adjacency(self_loops):
    x, s, r = random_graph()
    want = dense_norm_adj(s, r, len(x), self_loops) @ x.astype(np.float64)
    got = gcn_propagate(jnp.asarray(x), jnp.asarray(s), jnp.asarray(r), add_self_loops=self_loops)
    chex.assert_shape(got, x.shape)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)
    # Hand value: a 2-node edge with self-loops averages the two rows (deg 2 -> weights 1/2).
    two = gcn_propagate(jnp.array([[2.0], [4.0]]), jnp.array([0, 1]), jnp.array([1, 0]))
    np.testing.assert_allclose(np.asarray(two), [[3.0], [3.0]], rtol=1e-6)


def test_gcnconv_is_propagate_of_transform_plus_bias():
    x, s, r = random_graph()
    conv = GCNConv(4)
    v = conv.init(jax.random.PRNGKey(0), x, s, r)
    v = jax.tree.map(lambda a: a + 0.1, v)  # a non-zero bias
    out = conv.apply(v, x, s, r)
    w, b = np.asarray(v["params"]["linear"]["kernel"]), np.asarray(v["params"]["bias"])
    np.testing.assert_allclose(np.asarray(out), dense_norm_adj(s, r, len(x)) @ (x @ w) + b, rtol=1e-5, atol=1e-5)
    bound = math.sqrt(6.0 / (5 + 4))  # Glorot-uniform kernel
    assert np.abs(np.asarray(conv.init(jax.random.PRNGKey(1), x, s, r)["params"]["linear"]["kernel"])).max() <= bound


def _permute(x, s, r, perm):
    """Relabel node i as inv[i]: new features x[perm], edges mapped through inv."""
    inv = np.argsort(perm)
    return x[perm], inv[s], inv[r]


def test_gcn_and_gin_are_permutation_equivariant():
    x, s, r = random_graph(n=11, f=6, seed=3)
    perm = np.random.default_rng(4).permutation(len(x))
    xp, sp_, rp = _permute(x, s, r, perm)
    gcn = GCN((8, 8), activation="prelu")
    v = gcn.init(jax.random.PRNGKey(0), x, s, r)
    h, hp = gcn.apply(v, x, s, r), gcn.apply(v, xp, sp_, rp)
    np.testing.assert_allclose(np.asarray(hp), np.asarray(h)[perm], rtol=1e-5, atol=1e-6)

    g = to_graphs_tuple(x, s, r)
    gp = to_graphs_tuple(xp, sp_, rp)
    gin = GIN(features=8, num_layers=3)
    gv = gin.init(jax.random.PRNGKey(1), g)
    (ge, ne), _ = gin.apply(gv, g, mutable=["batch_stats"])
    (gep, nep), _ = gin.apply(gv, gp, mutable=["batch_stats"])
    chex.assert_shape((ge, ne), ((1, 24), (11, 24)))
    np.testing.assert_allclose(np.asarray(nep), np.asarray(ne)[perm], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(gep), np.asarray(ge), rtol=1e-4, atol=1e-4)  # readout invariant


def test_padding_does_not_change_real_outputs():
    x1, s1, r1 = random_graph(n=7, seed=5)
    x2, s2, r2 = random_graph(n=5, seed=6)
    g = jraph.batch_np([to_graphs_tuple(x1, s1, r1), to_graphs_tuple(x2, s2, r2)])
    padded, masks = pad_graph(g, (32, 64, 4))
    gcn = GCN((6,))
    v = gcn.init(jax.random.PRNGKey(0), g.nodes, g.senders, g.receivers)
    h = gcn.apply(v, g.nodes, g.senders, g.receivers)
    hp = gcn.apply(v, padded.nodes, padded.senders, padded.receivers)
    np.testing.assert_allclose(np.asarray(hp)[:12], np.asarray(h), rtol=1e-6, atol=1e-6)

    gin = GIN(features=4, num_layers=2)
    gv = gin.init(jax.random.PRNGKey(1), g)
    (ge, ne), st = gin.apply(gv, g, mutable=["batch_stats"])
    (gep, nep), stp = gin.apply(gv, padded, jnp.asarray(masks["node_mask"]), mutable=["batch_stats"])
    np.testing.assert_allclose(np.asarray(nep)[:12], np.asarray(ne), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(gep)[:2], np.asarray(ge), rtol=1e-4, atol=1e-4)
    chex.assert_trees_all_close(st, stp, rtol=1e-4, atol=1e-5)  # BN statistics ignore padding nodes
    # eval mode runs with the running averages
    ev, _ = gin.apply({**gv, **stp}, padded, jnp.asarray(masks["node_mask"]), train=False)
    assert np.all(np.isfinite(np.asarray(ev)))


def test_readouts_match_loops():
    rng = np.random.default_rng(0)
    h = rng.normal(size=(7, 3)).astype(np.float32)
    n_node = np.array([3, 0, 4])
    mask = np.array([1, 1, 0, 1, 1, 1, 0], bool)
    want_sum = np.stack([h[0:3][mask[0:3]].sum(0), np.zeros(3), h[3:7][mask[3:7]].sum(0)])
    want_mean = np.stack([h[0:2].mean(0), np.zeros(3), h[3:6].mean(0)])
    np.testing.assert_allclose(np.asarray(sum_readout(jnp.asarray(h), jnp.asarray(n_node), jnp.asarray(mask))),
                               want_sum, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(mean_readout(jnp.asarray(h), jnp.asarray(n_node), jnp.asarray(mask))),
                               want_mean, rtol=1e-6, atol=1e-6)


def test_bilinear_discriminator_matches_loop_and_torch_init():
    rng = np.random.default_rng(0)
    h = rng.normal(size=(5, 4)).astype(np.float32)
    s = rng.normal(size=(4,)).astype(np.float32)
    d = BilinearDiscriminator()
    v = d.init(jax.random.PRNGKey(0), h, s)
    w = np.asarray(v["params"]["kernel"])
    assert np.abs(w).max() <= math.sqrt(6.0 / (16 + 4)) and w.std() > 0
    v = {"params": {"kernel": v["params"]["kernel"], "bias": jnp.asarray(0.5)}}
    want = [sum(h[i, a] * w[a, b] * s[b] for a in range(4) for b in range(4)) + 0.5 for i in range(5)]
    np.testing.assert_allclose(np.asarray(d.apply(v, h, s)), want, rtol=1e-5, atol=1e-5)
    big = torch_bilinear_init(jax.random.PRNGKey(0), (512, 512))
    assert float(jnp.abs(big).max()) <= math.sqrt(6.0 / (512 * 512 + 512))


def test_bad_activation_is_a_clear_error():
    x, s, r = random_graph()
    with pytest.raises(ValueError, match="activation"):
        GCN((4,), activation="gelu").init(jax.random.PRNGKey(0), x, s, r)
    with pytest.raises(ValueError, match="at least one"):
        GCN(()).init(jax.random.PRNGKey(0), x, s, r)


def test_padding_rows_holding_inf_do_not_leak_nan():
    """Masks select with ``where``: an inf in a padding row (as a padding node that received every
    padding edge can hold) must not become NaN through ``inf * 0``."""
    import jax.numpy as jnp
    import numpy as np

    from sslx.losses.graph import dgi_bce, jsd_mi
    from sslx.models.gnn import mean_readout, sum_readout
    h = jnp.array([[1.0, 2.0], [3.0, 4.0], [jnp.inf, -jnp.inf]])
    mask = jnp.array([True, True, False])
    n_node = jnp.array([2, 1])
    np.testing.assert_array_equal(np.asarray(sum_readout(h, n_node, mask)), [[4.0, 6.0], [0.0, 0.0]])
    np.testing.assert_array_equal(np.asarray(mean_readout(h, n_node, mask)), [[2.0, 3.0], [0.0, 0.0]])
    scores = jnp.array([1.0, -1.0, jnp.inf])
    assert np.isfinite(float(dgi_bce(scores, -scores, mask)[0]))
    assert np.isfinite(float(jsd_mi(scores, jnp.array([True, False, True]), mask)[0]))

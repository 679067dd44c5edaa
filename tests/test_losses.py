"""NT-Xent / InfoNCE: hand-derived values, a naive loop implementation, cross-device gathering."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, PartitionSpec as P

from sslx import losses


def naive_nt_xent(z1, z2, tau):
    """Loop over the 2B anchors and all candidates (SimCLR eq. 1), in float64 NumPy."""
    z = np.concatenate([z1, z2]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n2 = z.shape[0]
    b = n2 // 2
    total = 0.0
    for i in range(n2):
        j = (i + b) % n2
        denom = sum(math.exp(z[i] @ z[k] / tau) for k in range(n2) if k != i)
        total += -math.log(math.exp(z[i] @ z[j] / tau) / denom)
    return total / n2


def naive_info_nce(q, k, tau, negs=None):
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    k = k / np.linalg.norm(k, axis=1, keepdims=True)
    cands = k if negs is None else np.concatenate([k, negs / np.linalg.norm(negs, axis=1, keepdims=True)])
    out = []
    for i in range(q.shape[0]):
        logits = np.array([q[i] @ c / tau for c in cands], np.float64)
        out.append(-(logits[i] - np.log(np.sum(np.exp(logits)))))
    return float(np.mean(out))


def test_nt_xent_hand_value_orthogonal_views():
    # B=2, D=2: z1 = [e0, e1], z2 = [e0, e1]. For anchor e0 (view 1): positive e0 (sim 1),
    # negatives e1 (0), e1 (0) -> loss = -log(e^{1/t} / (e^{1/t} + 2)).
    tau = 0.5
    e = np.eye(2, dtype=np.float32)
    loss, aux = losses.nt_xent(jnp.asarray(e), jnp.asarray(e), tau)
    expected = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + 2))
    np.testing.assert_allclose(float(loss), expected, rtol=1e-6)
    assert float(aux["accuracy"]) == 1.0


def test_nt_xent_hand_value_identical_embeddings():
    # All 2B embeddings equal: every candidate has the same logit, so loss = log(2B - 1).
    z = jnp.ones((3, 4))
    loss, _ = losses.nt_xent(z, z, 0.1)
    np.testing.assert_allclose(float(loss), math.log(5), rtol=1e-6)


@pytest.mark.parametrize("b,d,tau", [(4, 8, 0.5), (7, 3, 0.1), (1, 5, 1.0)])
def test_nt_xent_matches_naive_loops(b, d, tau):
    rng = np.random.default_rng(b * 10 + d)
    z1, z2 = rng.normal(size=(b, d)).astype(np.float32), rng.normal(size=(b, d)).astype(np.float32)
    loss, _ = jax.jit(losses.nt_xent, static_argnums=2)(z1, z2, tau)
    np.testing.assert_allclose(float(loss), naive_nt_xent(z1, z2, tau), rtol=2e-5)


def test_nt_xent_invariances():
    rng = np.random.default_rng(0)
    z1, z2 = rng.normal(size=(6, 5)).astype(np.float32), rng.normal(size=(6, 5)).astype(np.float32)
    base = float(losses.nt_xent(z1, z2, 0.3)[0])
    perm = rng.permutation(6)
    # Permuting the batch (same permutation for both views) leaves the mean loss unchanged.
    np.testing.assert_allclose(float(losses.nt_xent(z1[perm], z2[perm], 0.3)[0]), base, rtol=1e-5)
    # Positive rescaling of embeddings changes nothing (cosine similarity).
    np.testing.assert_allclose(float(losses.nt_xent(3 * z1, 0.2 * z2, 0.3)[0]), base, rtol=1e-5)
    # Swapping the views is symmetric.
    np.testing.assert_allclose(float(losses.nt_xent(z2, z1, 0.3)[0]), base, rtol=1e-5)


@pytest.mark.parametrize("with_negatives", [False, True])
def test_info_nce_matches_naive(with_negatives):
    rng = np.random.default_rng(1)
    q, k = rng.normal(size=(5, 6)).astype(np.float32), rng.normal(size=(5, 6)).astype(np.float32)
    negs = rng.normal(size=(9, 6)).astype(np.float32) if with_negatives else None
    loss, _ = losses.info_nce(q, k, 0.2, negatives=negs)
    np.testing.assert_allclose(float(loss), naive_info_nce(q, k, 0.2, negs), rtol=2e-5)


@pytest.mark.parametrize("fn", ["nt_xent", "info_nce"])
def test_gathered_negatives_equal_single_device(fn):
    devices = jax.devices()
    assert len(devices) == 4, "conftest sets 4 host devices"
    mesh = Mesh(np.array(devices), ("data",))
    rng = np.random.default_rng(2)
    z1, z2 = rng.normal(size=(8, 6)).astype(np.float32), rng.normal(size=(8, 6)).astype(np.float32)
    f = getattr(losses, fn)
    single, _ = f(z1, z2, 0.5)

    def per_device(a, b):
        return jax.lax.pmean(f(a, b, 0.5, axis_name="data")[0], "data")

    sharded = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=(P("data"), P("data")), out_specs=P(),
                                    check_vma=False))(z1, z2)
    np.testing.assert_allclose(float(sharded), float(single), rtol=1e-6)
    # And without the gather the loss differs (the test can tell a missing gather).
    local = jax.jit(jax.shard_map(lambda a, b: jax.lax.pmean(f(a, b, 0.5)[0], "data"), mesh=mesh,
                                  in_specs=(P("data"), P("data")), out_specs=P(), check_vma=False))(z1, z2)
    assert abs(float(local) - float(single)) > 1e-3


def test_shape_errors():
    with pytest.raises(AssertionError):
        losses.nt_xent(jnp.ones((3, 4)), jnp.ones((2, 4)))
    with pytest.raises(AssertionError):
        losses.nt_xent(jnp.ones((3,)), jnp.ones((3,)))


def test_zero_embedding_has_finite_gradient():
    # A dead projector can output an exact zero row; the loss must not turn gradients into NaN.
    z1 = jnp.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    z2 = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    g = jax.grad(lambda a: losses.nt_xent(a, z2, 0.5)[0])(z1)
    assert bool(jnp.all(jnp.isfinite(g)))
    np.testing.assert_allclose(losses.l2_normalize(jnp.array([[3.0, 4.0]])), [[0.6, 0.8]], rtol=1e-6)

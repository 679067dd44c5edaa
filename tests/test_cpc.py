"""CPC v2: patch grids, the causal context network, the loss, 1 vs 4 devices, a short CPU run."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, PartitionSpec as P

from sslx.augment.patches import extract_patches, grid_size, make_patch_view_fn
from sslx.configs import cpc as cpc_cfg
from sslx.losses import cpc_loss
from sslx.methods import get_method
from sslx.models.cpc import ContextNetwork, CPCPredictor
from tests.helpers import assert_learns, random_batch, run_steps, short_run, tiny_training


def tiny_cpc_config(**overrides):
    """CPC on 8x8 grayscale images (3x3 grid of 4x4 patches) with a 2-layer convnet."""
    c = cpc_cfg.get_config("digits")
    c.batch_size = 8
    c.model.encoder_kwargs = {"features": (4, 8), "strides": (1, 1)}
    c.method.context_dim, c.method.context_hidden = 8, 8
    return tiny_training(c, **overrides)


# --------------------------------------------------------------------------- patches

def _naive_patches(x, p, s):
    g_h, g_w = (x.shape[0] - p) // s + 1, (x.shape[1] - p) // s + 1
    out = np.zeros((g_h, g_w, p, p, x.shape[2]), x.dtype)
    for i in range(g_h):
        for j in range(g_w):
            out[i, j] = x[i * s:i * s + p, j * s:j * s + p]
    return out


@pytest.mark.parametrize("h,w,c,p,s", [(8, 8, 1, 4, 2), (28, 28, 1, 8, 4), (32, 32, 3, 8, 4), (9, 7, 3, 3, 2),
                                       (10, 10, 1, 4, 3), (6, 6, 2, 6, 1)])
def test_extract_patches_matches_loop(h, w, c, p, s):
    x = np.random.default_rng(h * w + p).integers(0, 256, (h, w, c), dtype=np.uint8)
    got = np.asarray(jax.jit(extract_patches, static_argnums=(1, 2))(x, p, s))
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, _naive_patches(x, p, s))


@pytest.mark.parametrize("arg,size,channels,grid", [("digits", 8, 1, 3), ("fashion_mnist", 28, 1, 6),
                                                    ("cifar10", 32, 3, 7), ("imagenet", 256, 3, 7)])
def test_configured_grids(arg, size, channels, grid):
    c = cpc_cfg.get_config(arg)
    p, s = c.method.patch_size, c.method.patch_stride
    assert grid_size(size, p, s) == grid
    assert (grid - 1) * s + p == size  # the grid covers the whole image
    if arg == "imagenet":
        assert (p, s) == (64, 32)  # CPC: 64x64 patches, 50 % overlap
    img = jax.ShapeDtypeStruct((size, size, channels), jnp.uint8)
    assert jax.eval_shape(lambda x: extract_patches(x, p, s), img).shape == (grid, grid, p, p, channels)
    fn = make_patch_view_fn(p, s, c.augment)
    out = jax.eval_shape(fn, jax.random.PRNGKey(0), img)
    assert out.shape == (grid, grid, p, p, channels) and out.dtype == jnp.float32
    assert 1 <= c.method.num_preds <= min(5, grid - 1)


def test_patch_augmentation_is_per_patch_and_deterministic():
    c = tiny_cpc_config()
    c.augment.jitter_p = 1.0
    fn = jax.jit(make_patch_view_fn(4, 2, c.augment))
    img = jnp.full((8, 8, 1), 128, jnp.uint8).at[::2].set(40)  # every patch has the same content
    k = jax.random.PRNGKey(3)
    a, b = np.asarray(fn(k, img)), np.asarray(fn(k, img))
    np.testing.assert_array_equal(a, b)  # same key, same output
    assert not np.allclose(a, np.asarray(fn(jax.random.PRNGKey(4), img)))
    flat = a.reshape(9, -1)
    # Identical patches came out different: each patch drew its own augmentation.
    assert len({tuple(np.round(r, 5)) for r in flat}) == 9
    # Without augmentation the view is exactly the float patch grid.
    plain = make_patch_view_fn(4, 2, None)(k, img)
    np.testing.assert_allclose(np.asarray(plain), _naive_patches(np.asarray(img), 4, 2) / 255.0, rtol=1e-6)


# --------------------------------------------------------------------------- context network

def test_context_network_is_causal_in_rows():
    g, d = 5, 3
    net = ContextNetwork(features=6, hidden=4, num_blocks=2)
    rng = np.random.default_rng(0)
    z = jnp.asarray(rng.normal(size=(2, g, g, d)), jnp.float32)
    params = net.init(jax.random.PRNGKey(0), z)
    apply = jax.jit(net.apply)
    c0 = np.asarray(apply(params, z))
    for i in range(g):
        below = z.at[:, i + 1:].add(jnp.asarray(rng.normal(size=(2, g - i - 1, g, d)), jnp.float32))
        c1 = np.asarray(apply(params, below))
        np.testing.assert_array_equal(c1[:, :i + 1], c0[:, :i + 1])  # rows > i never reach c[<= i]
        if i + 1 < g:
            assert np.abs(c1[:, i + 1:] - c0[:, i + 1:]).max() > 1e-3
        for j in range(g):
            at = np.asarray(apply(params, z.at[0, i, j].add(1.0)))
            assert np.abs(at[0, i, j] - c0[0, i, j]).max() > 1e-4  # c[i, j] sees z[i, j]
            if i > 0:
                above = np.asarray(apply(params, z.at[0, i - 1, j].add(1.0)))
                assert np.abs(above[0, i, j] - c0[0, i, j]).max() > 1e-4  # ... and the row above
            np.testing.assert_array_equal(at[1], c0[1])  # images do not mix
    # The Jacobian of c[0, i, j] w.r.t. z is zero exactly at rows > i.
    jac = jax.jacobian(lambda zz: net.apply(params, zz)[0])(z)  # [G, G, F, 2, G, G, D]
    for i in range(g):
        assert float(jnp.abs(jac[i, :, :, :, i + 1:]).max(initial=0.0)) == 0.0
        assert float(jnp.abs(jac[i, :, :, 0, :i + 1]).max()) > 0.0


def test_predictor_shapes():
    pred = CPCPredictor(num_preds=3, out_dim=5)
    c = jnp.ones((2, 4, 4, 7))
    v = pred.init(jax.random.PRNGKey(0), c)
    out = pred.apply(v, c)
    assert out.shape == (3, 2, 4, 4, 5)
    # One separate linear map per k.
    w = v["params"]["W"]["kernel"]  # [7, 3, 5]
    np.testing.assert_allclose(np.asarray(out[1, 0, 0, 0]), np.asarray(c[0, 0, 0] @ w[:, 1]), rtol=1e-5)


# --------------------------------------------------------------------------- loss

def _naive_cpc_loss(z, preds, temperature=1.0, normalize=False):
    z = z.astype(np.float64)
    preds = preds.astype(np.float64)
    if normalize:
        z = z / np.linalg.norm(z, axis=-1, keepdims=True)
        preds = preds / np.linalg.norm(preds, axis=-1, keepdims=True)
    k_max, b, g, _, d = preds.shape
    cands = [(bb, ii, jj) for bb in range(b) for ii in range(g) for jj in range(g)]
    total, count, correct = 0.0, 0, 0
    for bb in range(b):
        for i in range(g):
            for j in range(g):
                for k in range(1, k_max + 1):
                    if i + k >= g:
                        continue
                    q = preds[k - 1, bb, i, j]
                    pos = float(q @ z[bb, i + k, j]) / temperature
                    negs = [float(q @ z[cb, ci, cj]) / temperature for (cb, ci, cj) in cands
                            if (cb, ci, cj) != (bb, i + k, j)]
                    all_logits = np.array([pos] + negs)
                    m = all_logits.max()
                    total += -(pos - (m + np.log(np.sum(np.exp(all_logits - m)))))
                    correct += int(pos > max(negs))
                    count += 1
    return total / count, correct / count


@pytest.mark.parametrize("b,g,k,d,temp,norm", [(1, 2, 1, 3, 1.0, False), (3, 3, 2, 4, 1.0, False),
                                               (2, 4, 3, 5, 0.3, True)])
def test_loss_matches_naive_loop(b, g, k, d, temp, norm):
    rng = np.random.default_rng(b * 100 + g)
    z = rng.normal(size=(b, g, g, d)).astype(np.float32)
    preds = rng.normal(size=(k, b, g, g, d)).astype(np.float32)
    loss, aux = cpc_loss(jnp.asarray(z), jnp.asarray(preds), temperature=temp, normalize=norm)
    ref, ref_acc = _naive_cpc_loss(z, preds, temp, norm)
    np.testing.assert_allclose(float(loss), ref, rtol=1e-5)
    np.testing.assert_allclose(float(aux["accuracy"]), ref_acc, atol=1e-6)


def test_loss_hand_values():
    b, g, k, d = 3, 4, 2, 5
    # All embeddings identical: every candidate ties, loss = log(#candidates) = log(B * G * G).
    z = jnp.ones((b, g, g, d))
    preds = jnp.ones((k, b, g, g, d)) * 0.7
    np.testing.assert_allclose(float(cpc_loss(z, preds)[0]), np.log(b * g * g), rtol=1e-6)
    # Orthogonal one-hot embeddings with perfect, scaled predictions: loss ~ 0, accuracy 1.
    n = b * g * g
    z = jnp.eye(n).reshape(b, g, g, n)
    shifted = jnp.stack([jnp.roll(z, -kk, axis=1) for kk in range(1, k + 1)]) * 50.0
    loss, aux = cpc_loss(z, shifted)
    assert float(loss) < 1e-6 and float(aux["accuracy"]) == 1.0
    # The masked positions (i + k >= G) do not count: corrupting them changes nothing.
    corrupt = shifted.at[0, :, g - 1].set(-3.0).at[1, :, g - 2:].set(7.0)
    np.testing.assert_allclose(float(cpc_loss(z, corrupt)[0]), float(loss), atol=1e-6)
    with pytest.raises(ValueError, match="K < G"):
        cpc_loss(z, jnp.zeros((g, b, g, g, n)))


def test_loss_gathers_negatives_across_devices():
    devs = jax.devices()
    n_dev, b, g, k, d = len(devs), 2, 3, 2, 4
    rng = np.random.default_rng(7)
    z = jnp.asarray(rng.normal(size=(n_dev * b, g, g, d)), jnp.float32)
    preds = jnp.asarray(rng.normal(size=(k, n_dev * b, g, g, d)), jnp.float32)
    ref = float(cpc_loss(z, preds)[0])
    mesh = Mesh(np.asarray(devs), ("data",))

    def per_device(axis):
        def f(zl, pl):
            return jax.lax.pmean(cpc_loss(zl, pl, axis_name=axis)[0], "data")
        return jax.jit(jax.shard_map(f, mesh=mesh, in_specs=(P("data"), P(None, "data")), out_specs=P(),
                                     check_vma=False))

    np.testing.assert_allclose(float(per_device("data")(z, preds)), ref, rtol=1e-5)
    # Without the gather (local negatives only) the loss is different: the test can fail.
    assert abs(float(per_device(None)(z, preds)) - ref) > 1e-2


# --------------------------------------------------------------------------- method / devices

def test_method_shapes_and_encode():
    c = tiny_cpc_config()
    method = get_method(c, axis_name=None)
    batch = random_batch(4)
    params, state = method.init(jax.random.PRNGKey(0), batch)
    assert set(params) == {"encoder", "context", "predictor"}
    assert params["predictor"]["W"]["kernel"].shape == (8, 2, 8)  # context 8 -> K=2 maps to D=8
    loss, (new_state, metrics) = jax.jit(method.loss_fn)(params, state, batch, jax.random.PRNGKey(1))
    assert np.isfinite(float(loss)) and set(metrics) == {"cpc_acc", "cpc_acc_k1"}
    feats = method.encode(params, state, jnp.asarray(batch["image"]))
    assert feats.shape == (4, 8)
    # encode = mean over the 3x3 grid of the encoder on the raw (float) patches.
    from sslx.methods.image.cpc import build_patch_encoder
    enc = build_patch_encoder(c, None)
    x = jnp.asarray(batch["image"], jnp.float32) / 255.0
    patches = jax.vmap(lambda im: extract_patches(im, 4, 2))(x).reshape(36, 4, 4, 1)
    ref = enc.apply({"params": params["encoder"]}, patches, train=False).reshape(4, 9, -1).mean(1)
    np.testing.assert_allclose(np.asarray(feats), np.asarray(ref), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="num_preds"):
        get_method(tiny_cpc_config(**{"method.num_preds": 3}), axis_name=None).init(jax.random.PRNGKey(0), batch)


@pytest.mark.parametrize("norm", ["layer", "batch"])
def test_cpc_four_devices_equal_one_device(norm):
    config = tiny_cpc_config(**{"model.encoder_norm": norm})
    batches = [random_batch(8, seed=s) for s in range(2)]
    host, s1, m1 = run_steps(config, jax.devices()[:1], "jit", batches)
    _, s4, m4 = run_steps(config, jax.devices(), "jit", batches)
    for a, b in zip(m1, m4):
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=3e-6)
        np.testing.assert_allclose(a["grad_norm"], b["grad_norm"], rtol=1e-4)
        np.testing.assert_allclose(a["cpc_acc"], b["cpc_acc"], atol=1e-6)
    chex.assert_trees_all_close(s1.params, s4.params, atol=6e-5, rtol=1e-5)
    chex.assert_trees_all_close(s1.state, s4.state, atol=6e-5, rtol=1e-5)
    moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), host.params, s1.params)
    assert max(jax.tree.leaves(moved)) > 1e-3
    if norm == "batch":
        assert jax.tree.leaves(s1.state)  # synced BatchNorm statistics were compared above


@pytest.mark.parametrize("arg,size,channels", [("digits", 8, 1), ("fashion_mnist", 28, 1), ("cifar10", 32, 3),
                                               ("imagenet", 256, 3)])
def test_cpc_configs_build(arg, size, channels):
    from sslx.train import make_optimizer
    c = cpc_cfg.get_config(arg)
    method = get_method(c, axis_name=None, total_steps=1000)
    batch = {"image": jnp.zeros((2, size, size, channels), jnp.uint8)}
    params, state = jax.eval_shape(method.init, jax.random.PRNGKey(0), batch)
    g = grid_size(size, c.method.patch_size, c.method.patch_stride)
    d = params["predictor"]["W"]["kernel"].shape[-1]
    assert params["predictor"]["W"]["kernel"].shape == (c.method.context_dim, c.method.num_preds, d)
    assert jax.eval_shape(method.encode, params, state, batch["image"]).shape == (2, d)
    assert g == {8: 3, 28: 6, 32: 7, 256: 7}[size]
    assert not jax.tree.leaves(state)  # LayerNorm patch encoders: no batch statistics
    tx, _ = make_optimizer(c.optimizer, 1000, c.batch_size)
    jax.eval_shape(tx.init, params)
    if arg == "imagenet":
        assert c.model.encoder == "resnet50" and d == 2048
    with pytest.raises(ValueError, match="digitz"):
        cpc_cfg.get_config("digitz")


# --------------------------------------------------------------------------- short run

def test_cpc_digits_short_run_learns(tmp_path):
    c = cpc_cfg.get_config("digits")
    _, rows = short_run(c, tmp_path)
    assert_learns(rows)
    losses = [r["loss"] for r in rows]
    # Chance level is log(#candidates) = log(128 * 9); the run gets well below it.
    assert losses[0] < np.log(128 * 9) + 1.0
    assert np.mean([r["cpc_acc"] for r in rows[-5:]]) > np.mean([r["cpc_acc"] for r in rows[:5]])

"""AMDIM / YADIM: encoder scales, the clipped multi-location NCE, 1 vs 4 devices, short CPU runs."""
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslx.configs import amdim as amdim_cfg
from sslx.configs import yadim as yadim_cfg
from sslx.losses import amdim_loss, amdim_nce, tanh_clip
from sslx.methods import get_method
from sslx.methods.image.amdim import DEFAULT_PAIRS, build_amdim_encoder, parse_pairs, resolve_scales
from sslx.models import AMDIMEncoder
from tests.helpers import assert_learns, random_batch, run_steps, short_run, tiny_training

_CFG = {"amdim": amdim_cfg, "yadim": yadim_cfg}


def tiny_config(name="amdim", **overrides):
    """AMDIM / YADIM on 8x8 grayscale images with a tiny encoder (outputs 1x1, 2x2, 4x4)."""
    c = _CFG[name].get_config("digits")
    c.batch_size = 8
    c.model.amdim = dict(c.model.amdim, ndf=4, n_rkhs=8)
    return tiny_training(c, **overrides)


# --------------------------------------------------------------------------- encoder

@pytest.mark.parametrize("arg,channels,sides", [("digits", 1, (1, 2, 4)), ("fashion_mnist", 1, (1, 5, 7)),
                                                ("cifar10", 3, (1, 5, 7)), ("imagenet", 3, (1, 5, 7)),
                                                ("imagenet_large", 3, (1, 5, 7))])
def test_encoder_output_shapes(arg, channels, sides):
    c = amdim_cfg.get_config(arg)
    enc = build_amdim_encoder(c, None)
    s, d = c.augment.crop_size, c.model.amdim["n_rkhs"]
    x = jnp.zeros((3, s, s, channels), jnp.float32)
    variables = jax.eval_shape(lambda k: enc.init(k, x, train=False), jax.random.PRNGKey(0))
    out = jax.eval_shape(lambda v: enc.apply(v, x, train=False), variables)
    assert sorted(out) == list(sides)
    assert out[1].shape == (3, d)
    for side in sides[1:]:
        assert out[side].shape == (3, side, side, d)
    # encode: the global feature; dataset images of another size are fitted to the crop.
    method = get_method(c, axis_name=None)
    size = {"fashion_mnist": 28, "imagenet": 146, "imagenet_large": 146}.get(arg, s)
    batch = {"image": jnp.zeros((2, size, size, channels), jnp.uint8)}
    params, state = jax.eval_shape(method.init, jax.random.PRNGKey(0), batch)
    assert jax.eval_shape(method.encode, params, state, batch["image"]).shape == (2, d)
    sizes = (c.model.amdim["ndf"], c.model.amdim["n_rkhs"], c.model.amdim["n_depth"])
    if arg == "imagenet":  # amdim-public README command
        assert sizes == (192, 1536, 8) and c.batch_size == 480
    if arg == "imagenet_large":  # the paper's largest model
        assert sizes == (320, 2560, 10)
    if arg == "cifar10":  # amdim-public train.py defaults
        assert sizes == (128, 1024, 3)


def test_encoder_forward_dtype_and_stats():
    kw = dict(ndf=4, n_rkhs=6, n_depth=2, stages=((1, 3, 1, 1), (2, 2, 2, 0), (4, 3, 1, 0)), local_stages=(1, 2))
    x = jax.random.uniform(jax.random.PRNGKey(0), (4, 8, 8, 1))
    bf16 = AMDIMEncoder(dtype=jnp.bfloat16, **kw)
    v16 = jax.eval_shape(lambda k: bf16.init(k, x, train=False), jax.random.PRNGKey(1))
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(v16["params"]))  # params stay float32
    out16 = jax.eval_shape(lambda v: bf16.apply(v, x, train=False), v16)
    assert all(o.dtype == jnp.float32 for o in out16.values())  # outputs at least float32
    enc = AMDIMEncoder(**kw)
    v = jax.jit(lambda k: enc.init(k, x, train=False))(jax.random.PRNGKey(1))
    out, upd = jax.jit(lambda v: enc.apply(v, x, train=True, mutable=["batch_stats"]))(v)
    assert all(np.all(np.isfinite(np.asarray(o))) for o in out.values())
    moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), v["batch_stats"], upd["batch_stats"])
    assert max(jax.tree.leaves(moved)) > 0  # train mode updates the running statistics
    with pytest.raises(ValueError, match="does not fit"):
        jax.eval_shape(lambda k: enc.init(k, jnp.zeros((1, 4, 4, 1)), train=False), jax.random.PRNGKey(1))
    with pytest.raises(ValueError, match="local_stages"):
        jax.eval_shape(lambda k: AMDIMEncoder(ndf=4, n_rkhs=6, stages=((1, 3, 1, 1),), local_stages=(3,)).init(
            k, x, train=False), jax.random.PRNGKey(1))


# --------------------------------------------------------------------------- loss

def _naive_nce(src, trg, tclip, reg_weight):
    """Loop over (image i, location l): positive trg[i, l], negatives trg[j != i, every m]."""
    b, n_loc, d = trg.shape
    raw = np.zeros((b, b, n_loc))
    for i in range(b):
        for j in range(b):
            for m in range(n_loc):
                raw[i, j, m] = sum(src[i, k] * trg[j, m, k] for k in range(d)) / math.sqrt(d)
    reg = reg_weight * np.mean(raw ** 2)
    s = tclip * np.tanh(raw / tclip) if tclip else raw
    total = 0.0
    for i in range(b):
        for l in range(n_loc):
            denom = math.exp(s[i, i, l])
            for j in range(b):
                if j != i:
                    for m in range(n_loc):
                        denom += math.exp(s[i, j, m])
            total += -(s[i, i, l] - math.log(denom))
    return total / (b * n_loc), reg


@pytest.mark.parametrize("tclip,reg_weight", [(20.0, 5e-2), (0.0, 0.0), (1.5, 0.3)])
def test_nce_matches_naive_loop(tclip, reg_weight):
    rng = np.random.default_rng(0)
    for b, n_loc, d in [(2, 1, 3), (5, 4, 6), (3, 9, 4)]:
        src = rng.normal(size=(b, d)) * 2.0
        trg = rng.normal(size=(b, n_loc, d)) * 2.0
        loss, aux = amdim_nce(jnp.asarray(src, jnp.float32), jnp.asarray(trg, jnp.float32), tclip=tclip,
                              reg_weight=reg_weight)
        want_nce, want_reg = _naive_nce(src, trg, tclip, reg_weight)
        np.testing.assert_allclose(float(aux["nce"]), want_nce, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(float(aux["reg"]), want_reg, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(float(loss), want_nce + want_reg, rtol=1e-5, atol=1e-6)
    # The clip matters on large scores: clipped and unclipped losses differ.
    src, trg = rng.normal(size=(4, 8)) * 6, rng.normal(size=(4, 3, 8)) * 6
    a = amdim_nce(jnp.asarray(src), jnp.asarray(trg), tclip=2.0, reg_weight=0.0)[1]["nce"]
    b_ = amdim_nce(jnp.asarray(src), jnp.asarray(trg), tclip=0.0, reg_weight=0.0)[1]["nce"]
    assert abs(float(a) - float(b_)) > 1e-2


def test_nce_hand_values():
    # All features equal: every score is c = |f|^2 / sqrt(D); the loss is log(#candidates) + penalty.
    b, n_loc, d = 6, 5, 4
    f = np.full(d, 0.5, np.float32)
    c = float(np.dot(f, f) / math.sqrt(d))
    src, trg = jnp.tile(f, (b, 1)), jnp.tile(f, (b, n_loc, 1))
    loss, aux = amdim_nce(src, trg, tclip=20.0, reg_weight=5e-2)
    np.testing.assert_allclose(float(aux["nce"]), math.log(1 + (b - 1) * n_loc), rtol=1e-6)
    np.testing.assert_allclose(float(aux["reg"]), 5e-2 * c * c, rtol=1e-6)
    np.testing.assert_allclose(float(loss), math.log(1 + (b - 1) * n_loc) + 5e-2 * c * c, rtol=1e-6)
    # Orthogonal one-hot images with huge norms: positives saturate at +tclip, negatives at 0.
    tclip, big = 3.0, 1e3
    src = jnp.eye(4) * big
    trg = jnp.repeat((jnp.eye(4) * big)[:, None, :], 2, axis=1)
    _, aux = amdim_nce(src, trg, tclip=tclip, reg_weight=0.0)
    np.testing.assert_allclose(float(aux["nce"]), math.log1p(3 * 2 * math.exp(-tclip)), rtol=1e-4)
    assert float(aux["accuracy"]) == 1.0


def test_tanh_clip_bounds_scores():
    x = jnp.linspace(-1e4, 1e4, 101)
    y = tanh_clip(x, 20.0)
    assert float(jnp.max(jnp.abs(y))) <= 20.0
    np.testing.assert_allclose(float(tanh_clip(jnp.float32(1e4), 20.0)), 20.0, rtol=1e-6)
    np.testing.assert_allclose(float(tanh_clip(jnp.float32(0.1), 20.0)), 0.1, rtol=1e-4)  # ~identity near 0
    np.testing.assert_array_equal(np.asarray(tanh_clip(x, 0.0)), np.asarray(x))
    # In the loss: with tclip 1 and huge scores, the NCE is bounded by log(1 + K e^{2}).
    rng = np.random.default_rng(3)
    src, trg = rng.normal(size=(4, 3)) * 100, rng.normal(size=(4, 5, 3)) * 100
    _, aux = amdim_nce(jnp.asarray(src), jnp.asarray(trg), tclip=1.0, reg_weight=0.0)
    assert float(aux["nce"]) <= math.log1p(3 * 5 * math.exp(2.0)) + 1e-5
    _, aux = amdim_nce(jnp.asarray(src), jnp.asarray(trg), tclip=0.0, reg_weight=0.0)
    assert float(aux["nce"]) > math.log1p(3 * 5 * math.exp(2.0))


def _random_feats(rng, b=4, d=6, sides=(2, 4)):
    f = {1: jnp.asarray(rng.normal(size=(b, d)), jnp.float32)}
    for s in sides:
        f[s] = jnp.asarray(rng.normal(size=(b, s, s, d)), jnp.float32)
    return f


def test_multiscale_loss_composition():
    rng = np.random.default_rng(4)
    f1, f2 = _random_feats(rng), _random_feats(rng)
    pairs = [(1, 2), (1, 4), (2, 2)]
    loss, aux = amdim_loss(f1, f2, pairs, tclip=20.0, reg_weight=5e-2)
    flat = lambda x: np.asarray(x, np.float64).reshape(x.shape[0], -1, x.shape[-1])
    src = lambda x: np.asarray(x, np.float64) if x.ndim == 2 else flat(x).max(axis=1)  # max-pooled source
    want_nce = want_reg = 0.0
    for a, b in pairs:
        n12, r12 = _naive_nce(src(f1[a]), flat(f2[b]), 20.0, 5e-2)
        n21, r21 = _naive_nce(src(f2[a]), flat(f1[b]), 20.0, 5e-2)
        want_nce += (n12 + n21) / 2
        want_reg += (r12 + r21) / 2
    np.testing.assert_allclose(float(aux["nce"]), want_nce, rtol=1e-5)
    np.testing.assert_allclose(float(aux["reg"]), want_reg, rtol=1e-5)
    np.testing.assert_allclose(float(loss), want_nce + want_reg, rtol=1e-5)
    with pytest.raises(ValueError, match="scale 7"):
        amdim_loss(f1, f2, [(1, 7)])


def test_yadim_uses_only_last_maps():
    rng = np.random.default_rng(5)
    f1, f2 = _random_feats(rng), _random_feats(rng)
    table = resolve_scales(f1)
    assert table == {"1": 1, "5": 2, "7": 4}
    pairs = {n: [(table[a], table[b]) for a, b in parse_pairs(DEFAULT_PAIRS[n])] for n in ("amdim", "yadim")}
    assert pairs["yadim"] == [(1, 1)] and pairs["amdim"] == [(1, 2), (1, 4), (2, 2)]
    g1 = {**f1, 2: f1[2] + 1.0, 4: f1[4] * 2.0}  # perturb the earlier (local) scales only
    y0, y1 = (float(amdim_loss(f, f2, pairs["yadim"])[0]) for f in (f1, g1))
    a0, a1 = (float(amdim_loss(f, f2, pairs["amdim"])[0]) for f in (f1, g1))
    assert y0 == y1
    assert abs(a0 - a1) > 1e-3
    with pytest.raises(ValueError, match="1->9"):
        parse_pairs(["1->9"])


def test_method_loss_yadim_ignores_local_heads():
    # Method level: the local NIN heads only feed the local maps, so perturbing them changes
    # AMDIM's loss and leaves YADIM's (global 1x1 of the two views) unchanged; YADIM gets no
    # gradient into them.
    batch = random_batch(8, seed=1)
    rng = jax.random.PRNGKey(3)
    for name in ("amdim", "yadim"):
        method = get_method(tiny_config(name), axis_name=None)
        params, state = jax.jit(method.init)(jax.random.PRNGKey(0), batch)
        heads = [k for k in params["encoder"] if k.startswith("nin")]
        assert sorted(heads) == ["nin2", "nin4"]
        noisy = {"encoder": {k: (jax.tree.map(lambda x: x + 0.5, v) if k in heads else v)
                             for k, v in params["encoder"].items()}}
        loss_and_grad = jax.jit(jax.value_and_grad(lambda p: method.loss_fn(p, state, batch, rng)[0]))
        base, grads = loss_and_grad(params)
        pert, _ = loss_and_grad(noisy)
        head_grad = max(float(jnp.max(jnp.abs(g))) for k in heads for g in jax.tree.leaves(grads["encoder"][k]))
        trunk_grad = max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grads["encoder"]["conv0"]))
        assert np.isfinite(float(base)) and trunk_grad > 0
        if name == "yadim":
            assert float(base) == float(pert) and head_grad == 0.0
        else:
            assert abs(float(base) - float(pert)) > 1e-4 and head_grad > 0


# --------------------------------------------------------------------------- devices

def _max_diff(a, b):
    return max(jax.tree.leaves(jax.tree.map(lambda x, y: float(jnp.max(jnp.abs(x - y))), a, b)))


@pytest.mark.parametrize("name", ["amdim", "yadim"])
def test_four_devices_equal_one_device(name):
    config = tiny_config(name)
    batches = [random_batch(8, seed=s) for s in range(2)]
    devs = jax.devices()
    assert len(devs) == 4
    host, s1, m1 = run_steps(config, devs[:1], "jit", batches)
    _, s4, m4 = run_steps(config, devs, "jit", batches)
    for a, b in zip(m1, m4):
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=3e-6)
        np.testing.assert_allclose(a["nce"], b["nce"], rtol=3e-6)
        np.testing.assert_allclose(a["grad_norm"], b["grad_norm"], rtol=1e-4)
    # Same float32 reduction-order tolerances as tests/test_train_step.py.
    chex.assert_trees_all_close(s1.params, s4.params, atol=6e-5, rtol=1e-5)
    chex.assert_trees_all_close(s1.state, s4.state, atol=6e-5, rtol=1e-5)
    assert _max_diff(host.params, s1.params) > 1e-3  # the check can fail: training moved the params
    assert _max_diff(host.state, s1.state) > 1e-3  # and the BN running statistics
    assert set(m1[0]) >= {"nce", "score_reg", "contrastive_acc", "loss", "grad_norm"}


def test_per_device_negatives_would_differ():
    # amdim_nce under shard_map with the axis equals the single-device loss; without the axis
    # (only local negatives) it does not -- so the equality above tests the gather.
    from jax.sharding import Mesh, PartitionSpec as P
    rng = np.random.default_rng(6)
    src = jnp.asarray(rng.normal(size=(8, 5)), jnp.float32)
    trg = jnp.asarray(rng.normal(size=(8, 3, 5)), jnp.float32)
    mesh = Mesh(np.asarray(jax.devices()), ("data",))

    def per_device(axis):
        f = lambda s, t: jax.lax.pmean(amdim_nce(s, t, axis_name=axis)[0], "data")
        return float(jax.jit(jax.shard_map(f, mesh=mesh, in_specs=(P("data"), P("data")), out_specs=P(),
                                           check_vma=False))(src, trg))

    full = float(amdim_nce(src, trg)[0])
    np.testing.assert_allclose(per_device("data"), full, rtol=1e-6)
    assert abs(per_device(None) - full) > 1e-2


# --------------------------------------------------------------------------- short runs

@pytest.mark.parametrize("name", ["amdim", "yadim"])
def test_digits_short_run_learns(tmp_path, name):
    c = _CFG[name].get_config("digits")
    c.batch_size = 128
    c.model.amdim = dict(c.model.amdim, ndf=8, n_rkhs=32)
    c.optimizer.warmup_steps = 5
    _, rows = short_run(c, tmp_path, name=name)
    assert_learns(rows)
    assert_learns(rows, key="nce")  # the NCE itself goes down, not only the penalty


def test_config_errors():
    with pytest.raises(ValueError, match="digitz"):
        amdim_cfg.get_config("digitz")
    with pytest.raises(ValueError, match="digitz"):
        yadim_cfg.get_config("digitz")
    c = tiny_config("amdim")
    c.model.amdim = dict(c.model.amdim, local_stages=(2,))  # only one local map: 5 and 7 are the same
    method = get_method(c, axis_name=None)
    params, _ = method.init(jax.random.PRNGKey(0), random_batch(2))
    assert "nin2" in params["encoder"] and "nin4" not in params["encoder"]
    c.model.amdim = dict(c.model.amdim, local_stages=())
    with pytest.raises(ValueError, match="scales"):
        get_method(c, axis_name=None).init(jax.random.PRNGKey(0), random_batch(2))

"""Context encoders: masks, overlap weights, inpainting/GAN losses, networks, the simultaneous
G/D update, per-part optimisers, 1 vs 4 devices (jit and pmap), a short run with its PNG, configs."""
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslx.augment.masks import central_block_mask, make_mask_fn, random_blocks_mask, random_shape_mask
from sslx.configs import context_encoder as ce_cfg
from sslx.losses import discriminator_loss, generator_adversarial_loss, masked_weighted_l2, overlap_weight_map
from sslx.methods import get_method
from sslx.methods.base import example_keys
from sslx.models import ChannelWiseFC, ContextEncoderDiscriminator, ContextEncoderGenerator
from tests.helpers import random_batch, run_steps, short_run, tiny_training


def tiny_ce_config(**overrides):
    """Context encoder on 8x8 digits-sized images, 2-layer G and D (central 4x4 block, overlap 1)."""
    c = ce_cfg.get_config("digits")
    c.model.gen_features = (4, 8)
    c.model.disc_features = (4, 8)
    c = tiny_training(c)  # plain SGD lr 0.5 for both parts (the parts inherit the base optimiser)
    c.method.lambda_adv = 0.3  # a visible adversarial term in two steps
    for k, v in overrides.items():
        node = c
        *path, last = k.split(".")
        for p in path:
            node = node[p]
        node[last] = v
    return c


def _max_diff(a, b):
    return max(jax.tree.leaves(jax.tree.map(lambda x, y: float(jnp.max(jnp.abs(x - y))), a, b)))


# --------------------------------------------------------------------------- losses

def _naive_l2(pred, target, weights):
    b, h, w, c = pred.shape
    total = 0.0
    for i in range(b):
        num = den = 0.0
        for y in range(h):
            for x in range(w):
                den += weights[i, y, x] * c
                for ch in range(c):
                    num += weights[i, y, x] * (pred[i, y, x, ch] - target[i, y, x, ch]) ** 2
        total += num / den if den > 0 else 0.0
    return total / b


def test_masked_weighted_l2_matches_naive_loop():
    rng = np.random.default_rng(0)
    for b, h, w, c in [(1, 3, 3, 1), (4, 5, 4, 3)]:
        p, t = rng.normal(size=(2, b, h, w, c))
        wts = rng.uniform(0, 10, size=(b, h, w)) * (rng.uniform(size=(b, h, w)) < 0.6)
        wts[0] = 0.0  # an example with nothing to predict contributes 0
        got, aux = masked_weighted_l2(jnp.asarray(p, jnp.float32), jnp.asarray(t, jnp.float32),
                                      jnp.asarray(wts, jnp.float32))
        np.testing.assert_allclose(float(got), _naive_l2(p, t, wts), rtol=1e-5, atol=1e-7)
        assert aux["per_example"].shape == (b,) and float(aux["per_example"][0]) == 0.0


def test_masked_weighted_l2_hand_value():
    target = jnp.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 2, 2, 1)
    weights = jnp.array([[[1.0, 0.0], [2.0, 0.0]]])
    # (1 * 1^2 + 2 * 3^2) / (1 + 2) = 19 / 3; the unweighted pixels (2, 4) do not count.
    np.testing.assert_allclose(float(masked_weighted_l2(jnp.zeros_like(target), target, weights)[0]), 19 / 3,
                               rtol=1e-6)
    # Two channels: the squared error is averaged over channels too.
    t2 = jnp.concatenate([target, jnp.zeros_like(target)], -1)
    np.testing.assert_allclose(float(masked_weighted_l2(jnp.zeros_like(t2), t2, weights)[0]), 19 / 6, rtol=1e-6)
    with pytest.raises(AssertionError):
        masked_weighted_l2(jnp.zeros((1, 2, 2, 1)), jnp.zeros((1, 2, 2, 1)), jnp.zeros((1, 2, 3)))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def test_gan_losses_match_naive_and_hand_values():
    rng = np.random.default_rng(1)
    r, f = rng.normal(size=(2, 7)) * 3
    d, aux = discriminator_loss(jnp.asarray(r), jnp.asarray(f))
    want = np.mean(-np.log(_sigmoid(r))) + np.mean(-np.log(1.0 - _sigmoid(f)))
    np.testing.assert_allclose(float(d), want, rtol=1e-5)
    np.testing.assert_allclose(float(aux["real_acc"]), np.mean(r > 0))
    np.testing.assert_allclose(float(aux["fake_acc"]), np.mean(f < 0))
    np.testing.assert_allclose(float(generator_adversarial_loss(jnp.asarray(f))), np.mean(-np.log(_sigmoid(f))),
                               rtol=1e-5)
    # Hand values: an undecided D (logits 0) costs log 2 per term.
    z = jnp.zeros((3,))
    np.testing.assert_allclose(float(discriminator_loss(z, z)[0]), 2 * np.log(2), rtol=1e-6)
    np.testing.assert_allclose(float(generator_adversarial_loss(z)), np.log(2), rtol=1e-6)
    # A confident, correct D -> ~0 (no overflow); the generator then pays ~|logit|.
    big = jnp.full((2,), 100.0)
    assert float(discriminator_loss(big, -big)[0]) < 1e-30
    np.testing.assert_allclose(float(generator_adversarial_loss(-big)), 100.0, rtol=1e-6)


def _naive_weights(mask, overlap, border):
    h, w = mask.shape
    out = np.zeros((h, w))
    for y in range(h):
        for x in range(w):
            win = mask[max(0, y - overlap):y + overlap + 1, max(0, x - overlap):x + overlap + 1]
            out[y, x] = 1.0 if mask[y, x] else (border if win.max() > 0 else 0.0)
    return out


def test_overlap_weights_match_naive_dilation():
    rng = np.random.default_rng(2)
    masks = (rng.uniform(size=(3, 9, 7)) < 0.1).astype(np.float32)
    for overlap in (0, 1, 2):
        got = np.asarray(overlap_weight_map(jnp.asarray(masks), overlap, 10.0))
        for i in range(3):
            np.testing.assert_allclose(got[i], _naive_weights(masks[i], overlap, 10.0))
    with pytest.raises(ValueError, match="overlap"):
        overlap_weight_map(jnp.asarray(masks), -1)


def test_central_overlap_weighting_is_the_papers():
    # 8x8, predicted central 4x4 block [2:6, 2:6], overlap 1: erased [3:5, 3:5] weight 1, frame weight 10.
    w = np.asarray(overlap_weight_map(central_block_mask(8, 8, 4, 1), 1, 10.0))
    want = np.zeros((8, 8))
    want[2:6, 2:6] = 10.0
    want[3:5, 3:5] = 1.0
    np.testing.assert_array_equal(w, want)
    # Paper scale: 128 px, 64 px predicted block, 7 px overlap -> exactly the central 64x64 block.
    w = np.asarray(overlap_weight_map(central_block_mask(128, 128, 64, 7), 7, 10.0))
    assert set(np.unique(w)) == {0.0, 1.0, 10.0}
    np.testing.assert_array_equal(np.argwhere(w > 0).min(0), [32, 32])
    np.testing.assert_array_equal(np.argwhere(w > 0).max(0), [95, 95])
    assert int((w == 1.0).sum()) == 50 * 50 and int((w == 10.0).sum()) == 64 * 64 - 50 * 50


# --------------------------------------------------------------------------- masks

def test_central_block_exact_location_and_size():
    m = np.asarray(central_block_mask(128, 128, 64, 7))
    ys, xs = np.nonzero(m)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (39, 88, 39, 88) and m.sum() == 50 * 50
    m = np.asarray(central_block_mask(9, 7, 4, 0))  # odd sizes: top-left at ((9-4)//2, (7-4)//2)
    want = np.zeros((9, 7), np.float32)
    want[2:6, 1:5] = 1
    np.testing.assert_array_equal(m, want)
    fn = make_mask_fn("central", 8, 8, hole_size=0, overlap=0)  # 0: half the side
    np.testing.assert_array_equal(np.asarray(fn(jax.random.PRNGKey(3))), np.asarray(central_block_mask(8, 8, 4)))
    with pytest.raises(ValueError, match="overlap"):
        central_block_mask(8, 8, 4, 2)
    with pytest.raises(ValueError, match="hole_size"):
        central_block_mask(8, 8, 9)


def _batch_masks(fn, n=64, seed=0):
    keys = jax.random.split(jax.random.PRNGKey(seed), n)
    return np.asarray(jax.jit(jax.vmap(fn))(keys))


def test_random_blocks_cover_target_fraction():
    frac, lo, hi = 0.25, 4, 8
    fn = lambda k: random_blocks_mask(k, 32, 32, frac, lo, hi, 16)
    m = _batch_masks(fn)
    cov = m.reshape(len(m), -1).mean(1)
    assert set(np.unique(m)) == {0.0, 1.0}
    assert np.all(cov >= frac) and np.all(cov < frac + hi * hi / 1024), cov
    assert len({mm.tobytes() for mm in m}) == len(m)  # different per key
    k = jax.random.PRNGKey(5)
    np.testing.assert_array_equal(np.asarray(fn(k)), np.asarray(fn(k)))  # deterministic per key
    with pytest.raises(ValueError, match="fraction"):
        make_mask_fn("random_blocks", 8, 8, fraction=1.5)
    with pytest.raises(ValueError, match="max_size"):
        make_mask_fn("random_blocks", 8, 8, min_block=3, max_block=9)


def test_random_shapes_nonempty_smooth_deterministic():
    frac = 0.25
    fn = lambda k: random_shape_mask(k, 32, 32, frac, grid=4)
    m = _batch_masks(fn, seed=1)
    cov = m.reshape(len(m), -1).mean(1)
    assert np.all(m.reshape(len(m), -1).sum(1) >= 1)
    np.testing.assert_array_equal(cov, frac)  # exactly the top 256 of 1024 pixels of the smooth field
    assert len({mm.tobytes() for mm in m}) == len(m)
    k = jax.random.PRNGKey(9)
    np.testing.assert_array_equal(np.asarray(fn(k)), np.asarray(fn(k)))
    # Shapes, not salt-and-pepper: most removed pixels have their right neighbour removed too
    # (i.i.d. pixels at the same coverage would give ~0.25).
    same = (m[:, :, :-1] * m[:, :, 1:]).sum() / m[:, :, :-1].sum()
    assert same > 0.8, same
    tiny = np.asarray(random_shape_mask(k, 8, 8, 0.01, grid=2))
    assert tiny.sum() == 1  # at least one pixel even for a tiny fraction
    with pytest.raises(ValueError, match="mask mode"):
        make_mask_fn("random_blobs", 8, 8)


def test_masks_differ_per_example_and_follow_global_index():
    fn = make_mask_fn("random_blocks", 16, 16, fraction=0.25, min_block=2, max_block=4)
    m = np.asarray(jax.jit(lambda r: jax.vmap(fn)(example_keys(r, 8, None)[:, 0]))(jax.random.PRNGKey(0)))
    assert len({mm.tobytes() for mm in m}) == 8
    # Example i's mask comes from fold_in(rng, i): a shard of examples 4..7 gets the same masks.
    shard = jax.jit(jax.vmap(lambda a: jax.vmap(fn)(example_keys(jax.random.PRNGKey(0), 4, "d")[:, 0]),
                             axis_name="d"))(jnp.zeros(2))
    np.testing.assert_array_equal(np.asarray(shard[1]), m[4:])


# --------------------------------------------------------------------------- networks

def test_generator_and_discriminator_shapes():
    g = ContextEncoderGenerator(features=(4, 8), out_channels=1)
    x = jax.random.uniform(jax.random.PRNGKey(0), (2, 8, 8, 1), minval=-1, maxval=1)
    v = jax.jit(lambda x: g.init(jax.random.PRNGKey(1), x, train=False))(x)

    @jax.jit
    def run(v, x):
        (y, h), _ = g.apply(v, x, train=True, mutable=["batch_stats"])
        return y, h, g.apply(v, x, train=False, method=ContextEncoderGenerator.encode), g.apply(v, x, train=False)[1]

    y, h, f, h_eval = run(v, x)
    chex.assert_shape([y, h, f], [(2, 8, 8, 1), (2, 2, 2, 8), (2, 8)])
    assert 0.0 < float(jnp.max(jnp.abs(y))) <= 1.0
    np.testing.assert_allclose(np.asarray(f), np.asarray(h_eval).mean((1, 2)), rtol=1e-5, atol=1e-6)
    # Other sizes and channel counts (shapes only).
    for size, c, feats in [(28, 1, (4, 8)), (32, 3, (4, 8, 8)), (128, 3, (64, 64, 128, 256, 512))]:
        g = ContextEncoderGenerator(features=feats, out_channels=c)
        x = jax.ShapeDtypeStruct((2, size, size, c), jnp.float32)
        v = jax.eval_shape(lambda x: g.init(jax.random.PRNGKey(1), x, train=False), x)
        (y, h), _ = jax.eval_shape(lambda v, x: g.apply(v, x, train=True, mutable=["batch_stats"]), v, x)
        chex.assert_shape([y, h], [(2, size, size, c), (2, size // 2 ** len(feats), size // 2 ** len(feats),
                                                            feats[-1])])
        d = ContextEncoderDiscriminator(features=(4, 8))
        dv = jax.eval_shape(lambda x: d.init(jax.random.PRNGKey(2), x, train=False), x)
        chex.assert_shape(jax.eval_shape(lambda v, x: d.apply(v, x, train=False), dv, x), (2,))
    with pytest.raises(ValueError, match="divisible"):
        g = ContextEncoderGenerator(features=(4, 8, 8), out_channels=1)
        g.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)), train=False)


def test_channel_wise_fc_matches_naive_loop():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 2, 3, 4))
    mod = ChannelWiseFC()
    v = mod.init(jax.random.PRNGKey(1), x)
    v = jax.tree.map(lambda a: a + 0.1 * jnp.arange(a.size, dtype=a.dtype).reshape(a.shape) / a.size, v)
    y = np.asarray(mod.apply(v, x))
    k, bias, xn = np.asarray(v["params"]["kernel"]), np.asarray(v["params"]["bias"]), np.asarray(x)
    assert k.shape == (4, 6, 6)  # per channel an N x N map, N = 2 * 3 positions; no cross-channel weights
    want = np.zeros_like(xn)
    for b in range(2):
        for c in range(4):
            flat = xn[b, :, :, c].reshape(-1)
            want[b, :, :, c] = (flat @ k[c] + bias[c]).reshape(2, 3)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- the update

def test_gradients_split_between_generator_and_discriminator():
    """lambda_adv = 0: G's gradient is the pure reconstruction gradient, D still trains."""
    batch = random_batch(8, seed=3)
    rng = jax.random.PRNGKey(4)

    def grads(lam_adv):
        c = tiny_ce_config(**{"method.lambda_adv": lam_adv})
        method = get_method(c, axis_name=None)
        params, state = method.init(jax.random.PRNGKey(0), batch)
        g = jax.jit(jax.grad(lambda p: method.loss_fn(p, state, batch, rng)[0]))(params)
        return c, params, state, g

    c, params, state, g0 = grads(0.0)
    gen = ContextEncoderGenerator(features=(4, 8), out_channels=1)
    x = jnp.asarray(batch["image"], jnp.float32) / 255.0 * 2 - 1
    mask = central_block_mask(8, 8, 4, 1)[None, :, :, None]
    wts = jnp.broadcast_to(jnp.asarray(_naive_weights(np.asarray(mask[0, :, :, 0]), 1, 10.0), jnp.float32), (8, 8, 8))

    def rec_only(gp):
        (y, _), _ = gen.apply({"params": gp, "batch_stats": state["generator"]}, x * (1 - mask), train=True,
                              mutable=["batch_stats"])
        return 0.999 * masked_weighted_l2(y, x, wts)[0]

    g_rec = jax.jit(jax.grad(rec_only))(params["generator"])
    chex.assert_trees_all_close(g0["generator"], g_rec, atol=1e-7, rtol=1e-5)
    assert _max_diff(g0["discriminator"], jax.tree.map(jnp.zeros_like, g0["discriminator"])) > 1e-4
    # With an adversarial term G's gradient changes (the check above can fail); D's does not
    # (its loss does not depend on lambda_adv, and no G-loss gradient leaks into D).
    _, _, _, g1 = grads(0.5)
    assert _max_diff(g1["generator"], g_rec) > 1e-4
    chex.assert_trees_all_close(g1["discriminator"], g0["discriminator"], atol=1e-7, rtol=1e-6)


@pytest.fixture(scope="module")
def device_results():
    config = tiny_ce_config()
    batches = [random_batch(8, seed=s) for s in range(2)]
    devs = jax.devices()
    assert len(devs) == 4
    return {"jit1": run_steps(config, devs[:1], "jit", batches),
            "jit4": run_steps(config, devs, "jit", batches),
            "pmap4": run_steps(config, devs, "pmap", batches)}


def test_both_networks_and_their_optimiser_states_change(device_results):
    host, s1, m1 = device_results["jit1"]
    for part in ("generator", "discriminator"):
        assert _max_diff(host.params[part], s1.params[part]) > 1e-3, part
        assert _max_diff(host.state[part], s1.state[part]) > 1e-4, part  # BN running statistics
    assert set(s1.params) == {"generator", "discriminator"}
    for k in ("rec_loss", "adv_loss", "d_loss", "d_real_acc", "d_fake_acc"):
        assert np.isfinite(m1[0][k])
    np.testing.assert_allclose(m1[0]["loss"], m1[0]["g_loss"] + m1[0]["d_loss"], rtol=1e-6)
    np.testing.assert_allclose(m1[0]["mask_fraction"], 4 / 64)  # the erased central 2x2 of 8x8


@pytest.mark.parametrize("other", ["jit4", "pmap4"])
def test_four_devices_equal_one_device(device_results, other):
    _, s1, m1 = device_results["jit1"]
    _, s4, m4 = device_results[other]
    for a, b in zip(m1, m4):
        for k in ("loss", "rec_loss", "adv_loss", "d_loss"):
            np.testing.assert_allclose(a[k], b[k], rtol=1e-5, err_msg=k)
        np.testing.assert_allclose(a["grad_norm"], b["grad_norm"], rtol=1e-4)
    chex.assert_trees_all_close(s1.params, s4.params, atol=6e-5, rtol=1e-5)
    chex.assert_trees_all_close(s1.state, s4.state, atol=6e-5, rtol=1e-5)
    assert int(s1.step) == int(s4.step) == 2


def test_four_devices_equal_one_device_float64_random_masks():
    with jax.enable_x64(True):
        config = tiny_ce_config(**{"model.dtype": "float64", "method.mask_mode": "random_blocks",
                                   "method.min_block": 1, "method.max_block": 3,
                                   "method.max_blocks": 4})
        batches = [random_batch(8, seed=s) for s in range(2)]
        _, s1, m1 = run_steps(config, jax.devices()[:1], "jit", batches)
        _, s4, m4 = run_steps(config, jax.devices(), "jit", batches)
    # float64 parameters too (the networks keep params in float64 when computing in float64): the two
    # runs differ only by float64 reduction order.
    assert jax.tree.leaves(s1.params)[0].dtype == np.float64
    for a, b in zip(m1, m4):
        for k in ("loss", "rec_loss", "adv_loss", "d_loss", "grad_norm"):
            np.testing.assert_allclose(a[k], b[k], rtol=1e-12, err_msg=k)
    chex.assert_trees_all_close(s1.params, s4.params, atol=1e-12, rtol=1e-10)
    chex.assert_trees_all_close(s1.state, s4.state, atol=1e-6, rtol=1e-6)  # BN running stats are float32 in flax


def test_per_part_optimiser():
    """``optimizer.parts``: one optimiser (and state) per top-level params entry."""
    import optax

    from sslx.train import make_optimizer
    c = tiny_ce_config()
    c.optimizer.name = "adamw"
    c.optimizer.b1 = 0.5
    c.optimizer.parts = {"generator": {}, "discriminator": {"lr": 0.1, "b1": 0.0}}
    tx, sched = make_optimizer(c.optimizer, 10, 8)
    params = {"generator": {"w": jnp.ones((2, 3))}, "discriminator": {"w": jnp.ones((3,))}}
    grads = {"generator": {"w": jnp.full((2, 3), 2.0)}, "discriminator": {"w": jnp.full((3,), -3.0)}}
    state = tx.init(params)
    upd, state = tx.update(grads, state, params)
    upd, state = tx.update(grads, state, params)
    # Reference: two separate Adams (step 2, constant gradients: the update is -lr * sign(g)).
    want = {}
    for k, (lr, b1) in {"generator": (0.5, 0.5), "discriminator": (0.1, 0.0)}.items():
        ref = optax.adamw(lr, b1=b1, b2=0.999, weight_decay=0.0)
        st = ref.init(params[k])
        _, st = ref.update(grads[k], st, params[k])
        want[k], _ = ref.update(grads[k], st, params[k])
    chex.assert_trees_all_close(upd, want, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(upd["discriminator"]["w"]), 0.1, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(upd["generator"]["w"]), -0.5, rtol=1e-5)
    np.testing.assert_allclose(float(sched(3)), 0.5)  # the base block's schedule (logged as lr)
    with pytest.raises(ValueError, match="top-level keys"):
        tx.init({"generator": params["generator"], "critic": params["discriminator"]})
    c.optimizer.parts = {"generator": {"accum_steps": 2}, "discriminator": {}}
    with pytest.raises(ValueError, match="accum_steps"):
        make_optimizer(c.optimizer, 10, 8)


# --------------------------------------------------------------------------- short run + PNG

def test_digits_short_run_learns_and_writes_png(tmp_path):
    from PIL import Image
    c = ce_cfg.get_config("digits")
    c.batch_size = 64
    c.model.gen_features = (16, 32)
    c.model.disc_features = (16, 32)
    c.optimizer.lr = 3e-3
    wd, rows = short_run(c, tmp_path, steps=30)
    rec = [r["rec_loss"] for r in rows]
    assert np.mean(rec[-5:]) < 0.7 * np.mean(rec[:5]), rec
    path = os.path.join(wd, "inpainting.png")
    assert os.path.exists(path)
    img = Image.open(path)
    img.verify()
    img = Image.open(path)
    # 8 test images of 8 px, upscaled 8x to 64 px, 2 px padding: 3 rows x 8 columns.
    assert img.size == (8 * 64 + 9 * 2, 3 * 64 + 4 * 2) and img.mode == "L"
    a = np.asarray(img)
    cell = lambda r, j: a[2 + r * 66:2 + r * 66 + 64, 2 + j * 66:2 + j * 66 + 64]
    # Row 2 (masked input) is row 1 (original) outside the hole, mid-grey in it (hole = 2x2 px -> 16x16 px).
    orig, masked = cell(0, 0).astype(int), cell(1, 0).astype(int)
    hole = np.zeros((64, 64), bool)
    hole[24:40, 24:40] = True
    np.testing.assert_array_equal(masked[~hole], orig[~hole])
    assert np.all(np.abs(masked[hole] - 128) <= 1)
    np.testing.assert_array_equal(cell(2, 0).astype(int)[~hole], orig[~hole])  # inpainted: context kept
    # The checkpoint (both networks, both Adam states in one multi_transform state) restores.
    from sslx.checkpoint import Checkpointer
    from sslx.train.loop import build, load_split
    train_ds = load_split(c, c.dataset.train_split)
    _, _, init, _ = build(c, len(train_ds), train_ds[np.arange(2)])
    final, _ = Checkpointer(os.path.join(wd, "checkpoints")).restore(init)
    assert int(final.step) == 30
    assert jax.tree.structure(final.opt_state) == jax.tree.structure(init.opt_state)
    assert _max_diff(final.params, init.params) > 1e-3 and _max_diff(final.opt_state, init.opt_state) > 1e-6


# --------------------------------------------------------------------------- configs

@pytest.mark.parametrize("arg,size,channels", [("digits", 8, 1), ("fashion_mnist", 28, 1), ("cifar10_subset", 32, 3),
                                               ("cifar10", 32, 3), ("imagenet", 128, 3)])
def test_configs_build(arg, size, channels):
    from sslx.train import make_optimizer
    c = ce_cfg.get_config(arg)
    method = get_method(c, axis_name=None, total_steps=1000)
    batch = {"image": jnp.zeros((2, size, size, channels), jnp.uint8)}
    params, state = jax.eval_shape(method.init, jax.random.PRNGKey(0), batch)
    assert set(params) == {"generator", "discriminator"} and set(state) == set(params)
    tx, sched = make_optimizer(c.optimizer, 1000, c.batch_size)
    opt = jax.eval_shape(tx.init, params)
    assert opt is not None and float(sched(0)) > 0
    feats = jax.eval_shape(method.encode, params, state, batch["image"])
    assert feats.shape == (2, c.model.gen_features[-1])
    loss, (new_state, metrics) = jax.eval_shape(
        lambda p, s: method.loss_fn(p, s, batch, jax.random.PRNGKey(1)), params, state)
    assert loss.shape == () and "rec_loss" in metrics
    if arg == "imagenet":
        assert c.dataset.image_size == 128 and c.method.hole_size == 64 and c.method.mask_mode == "central"
        assert (c.method.lambda_rec, c.method.lambda_adv, c.method.overlap_weight) == (0.999, 0.001, 10.0)
        assert (c.optimizer.lr, c.optimizer.b1) == (2e-4, 0.5)


def test_bad_config_values():
    with pytest.raises(ValueError, match="digitz"):
        ce_cfg.get_config("digitz")
    with pytest.raises(ValueError, match="mask_mode"):
        get_method(tiny_ce_config(**{"method.mask_mode": "square"}), axis_name=None)

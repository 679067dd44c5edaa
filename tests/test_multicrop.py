"""Multi-crop as a shared capability: SimCLR and BYOL with 2 large + V small crops."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslx.configs import byol as byol_cfg
from sslx.methods import get_method
from sslx.methods.image.common import (build_encoder, build_head, crop_pairs, make_multicrop_view_fns,
                                       make_multicrop_views)
from tests.helpers import random_batch, run_steps, tiny_simclr_config, tiny_training

MULTICROP = ((2, 8, (0.4, 1.0)), (2, 6, (0.2, 0.5)))


def _naive_nt_xent(a, b, t):
    z = np.concatenate([a, b]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n = a.shape[0]
    total = 0.0
    for i in range(2 * n):
        pos = (i + n) % (2 * n)
        logits = np.array([z[i] @ z[j] / t for j in range(2 * n) if j != i])
        pos_logit = z[i] @ z[pos] / t
        total += -(pos_logit - np.log(np.sum(np.exp(logits))))
    return total / (2 * n)


def test_crop_pairs():
    assert crop_pairs(2, 2) == [(0, 1)]
    assert crop_pairs(4, 2) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3)]
    assert crop_pairs(3, 1) == [(0, 1), (0, 2)]


def test_simclr_default_equals_explicit_two_crop_spec():
    c = tiny_simclr_config()
    batch = random_batch(8, seed=2)
    m1 = get_method(c, axis_name=None)
    params, state = m1.init(jax.random.PRNGKey(0), batch)
    c2 = tiny_simclr_config()
    c2.augment.multicrop = ((2, c.augment.crop_size, tuple(c.augment.crop_scale)),)
    m2 = get_method(c2, axis_name=None)
    rng = jax.random.PRNGKey(3)
    l1, _ = m1.loss_fn(params, state, batch, rng)
    l2, _ = m2.loss_fn(params, state, batch, rng)
    assert float(l1) == float(l2)


def test_simclr_multicrop_loss_is_mean_over_pairs():
    c = tiny_simclr_config(**{"model.proj_hidden": (16,)})
    c.augment.multicrop = MULTICROP
    method = get_method(c, axis_name=None)
    batch = random_batch(8, seed=4)
    params, state = method.init(jax.random.PRNGKey(0), batch)
    rng = jax.random.PRNGKey(5)
    loss, (new_state, _) = jax.jit(method.loss_fn)(params, state, batch, rng)
    views = make_multicrop_views(rng, jnp.asarray(batch["image"]), None, make_multicrop_view_fns(c))
    assert [v.shape[1] for v in views] == [8, 8, 6, 6]
    enc, proj = build_encoder(c, None), build_head(c, None, c.model.proj_hidden, c.model.proj_dim)
    # Independent forward: one encoder call per resolution (BN over that group), projector on all.
    h8, u = enc.apply({"params": params["encoder"], "batch_stats": state["encoder"]},
                      jnp.concatenate(views[:2]), train=True, mutable=["batch_stats"])
    h6, u = enc.apply({"params": params["encoder"], "batch_stats": u["batch_stats"]},
                      jnp.concatenate(views[2:]), train=True, mutable=["batch_stats"])
    z, _ = proj.apply({"params": params["projector"], "batch_stats": state["projector"]},
                      jnp.concatenate([h8, h6]), train=True, mutable=["batch_stats"])
    zs = np.split(np.asarray(z), 4)
    pairs = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3)]
    want = np.mean([_naive_nt_xent(zs[i], zs[v], c.method.temperature) for i, v in pairs])
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    chex.assert_trees_all_close(new_state["encoder"], u["batch_stats"], rtol=1e-5, atol=1e-6)
    # The small crops matter: the large-pair loss alone differs.
    assert abs(_naive_nt_xent(zs[0], zs[1], c.method.temperature) - want) > 1e-3


def _tiny_byol(**overrides):
    c = byol_cfg.get_config("digits")
    c.model.encoder_kwargs = {"features": (4, 8)}
    c.model.proj_hidden = (16,)
    c.model.proj_dim = 4
    c.model.pred_hidden = (16,)
    c.method.tau_base = 0.9
    return tiny_training(c, **overrides)


def test_byol_multicrop_loss():
    c = _tiny_byol()
    c.augment.multicrop = MULTICROP
    c.method.view2_augment = {"solarize_p": 1.0}
    method = get_method(c, axis_name=None, total_steps=4)
    batch = random_batch(8, seed=6)
    params, state = method.init(jax.random.PRNGKey(0), batch)
    rng = jax.random.PRNGKey(7)
    loss, _ = jax.jit(method.loss_fn)(params, state, batch, rng)
    from sslx.methods.image.byol import make_view_fns
    fns = make_view_fns(c)
    assert len(fns) == 4
    views = make_multicrop_views(rng, jnp.asarray(batch["image"]), None, fns)
    enc, proj = build_encoder(c, None), build_head(c, None, c.model.proj_hidden, c.model.proj_dim)
    pred = build_head(c, None, c.model.pred_hidden, c.model.proj_dim)

    def fwd(mods, ps, sts, x):
        for mod, p, st in zip(mods, ps, sts):
            x, _ = mod.apply({"params": p, "batch_stats": st}, x, train=True, mutable=["batch_stats"])
        return np.asarray(x, np.float64)

    # (Online BN running stats change between crops, but train-mode outputs use batch statistics.)
    preds = [fwd((enc, proj, pred), (params["encoder"], params["projector"], params["predictor"]),
                 (state["online"]["encoder"], state["online"]["projector"], state["online"]["predictor"]), v)
             for v in views]
    tp, ts = state["target"]["params"], state["target"]["batch_stats"]
    targets = [fwd((enc, proj), (tp["encoder"], tp["projector"]), (ts["encoder"], ts["projector"]), views[i])
               for i in range(2)]

    def reg(p, z):
        p = p / np.linalg.norm(p, axis=1, keepdims=True)
        z = z / np.linalg.norm(z, axis=1, keepdims=True)
        return np.mean(2 - 2 * np.sum(p * z, axis=1))

    total = sum(reg(preds[v], targets[i]) for i in range(2) for v in range(4) if v != i)
    np.testing.assert_allclose(float(loss), 2.0 / (2 * 3) * total, rtol=1e-5)


@pytest.mark.parametrize("name", ["simclr", "byol"])
def test_multicrop_four_devices_equal_one_device(name):
    c = tiny_simclr_config() if name == "simclr" else _tiny_byol()
    c.augment.multicrop = MULTICROP
    batches = [random_batch(8, seed=s) for s in range(2)]
    host, s1, m1 = run_steps(c, jax.devices()[:1], "jit", batches)
    _, s4, m4 = run_steps(c, jax.devices(), "jit", batches)
    for a, b in zip(m1, m4):
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)
    chex.assert_trees_all_close(s1.params, s4.params, atol=1e-4, rtol=1e-4)
    chex.assert_trees_all_close(s1.state, s4.state, atol=1e-4, rtol=1e-4)
    assert max(jax.tree.leaves(jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), host.params,
                                            s1.params))) > 1e-3

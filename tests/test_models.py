"""Encoders: shapes, stems, bf16 compute with fp32 params, input validation."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslx import models


@pytest.mark.parametrize("name,stem,size,width,out", [
    ("resnet18", "cifar", 32, 8, 64), ("resnet18", "imagenet", 64, 8, 64), ("resnet50", "imagenet", 64, 4, 128)])
def test_resnet_shapes_and_stems(name, stem, size, width, out):
    m = models.make_encoder(name, stem=stem, width=width)
    x = jnp.zeros((2, size, size, 3))
    v = m.init(jax.random.PRNGKey(0), x, train=False)
    y = m.apply(v, x, train=False)
    chex.assert_shape(y, (2, out))
    # CIFAR stem: 3x3 conv at stride 1 and no max-pool; ImageNet: 7x7 stride 2 + pool.
    k = v["params"]["stem"]["kernel"].shape
    assert k[:2] == ((3, 3) if stem == "cifar" else (7, 7))


def test_resnet18_param_count_matches_reference():
    # torchvision's resnet18 has 11,689,512 params including the 1000-way fc (513,000).
    m = models.ResNet18(stem="imagenet")
    v = m.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3)), train=False)
    n = sum(x.size for x in jax.tree.leaves(v["params"]))
    assert n == 11_689_512 - 513_000


def test_resnet50_param_count_matches_reference():
    # torchvision's resnet50: 25,557,032 params including fc (2048*1000 + 1000).
    m = models.ResNet50(stem="imagenet")
    v = jax.eval_shape(lambda: m.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3)), train=False))
    n = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(v["params"]))
    assert n == 25_557_032 - 2_049_000


def test_bf16_compute_fp32_params():
    m = models.make_encoder("small_convnet", features=(8, 16), dtype=jnp.bfloat16)
    x = jnp.ones((2, 16, 16, 1))
    v = m.init(jax.random.PRNGKey(0), x, train=False)
    chex.assert_trees_all_equal_dtypes(v["params"], jax.tree.map(lambda p: p.astype(jnp.float32), v["params"]))
    inter = m.apply(v, x, train=False, capture_intermediates=True, mutable=["intermediates"])[1]
    conv_out = inter["intermediates"]["Conv_0"]["__call__"][0]
    assert conv_out.dtype == jnp.bfloat16
    head = models.MLPHead(hidden=(8,), out_dim=4, dtype=jnp.bfloat16)
    hv = head.init(jax.random.PRNGKey(1), jnp.ones((2, 16)), train=False)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(hv["params"]))


def test_train_mode_updates_batch_stats_eval_mode_does_not():
    m = models.make_encoder("small_convnet", features=(4,))
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 8, 8, 1)) + 3.0
    v = m.init(jax.random.PRNGKey(1), x, train=False)
    _, upd = m.apply(v, x, train=True, mutable=["batch_stats"])
    before = jax.tree.leaves(v["batch_stats"])
    after = jax.tree.leaves(upd["batch_stats"])
    assert any(not np.allclose(a, b) for a, b in zip(before, after))


@pytest.mark.parametrize("bad,msg", [(jnp.zeros((8, 8, 3)), "batch"), (jnp.zeros((1, 8, 8, 3), jnp.uint8), "dtype")])
def test_bad_images_raise(bad, msg):
    m = models.make_encoder("small_convnet", features=(4,))
    with pytest.raises(ValueError, match=msg):
        m.init(jax.random.PRNGKey(0), bad, train=False)


def test_unknown_encoder_name():
    with pytest.raises(ValueError, match="resnet18"):
        models.make_encoder("resnet19")


@pytest.mark.parametrize("name,kw", [("small_convnet", {"features": (4, 8)}), ("resnet18", {"stem": "cifar", "width": 4})])
def test_layernorm_encoders_are_stateless_and_per_example(name, kw):
    m = models.make_encoder(name, norm="layer", **kw)
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 8, 8, 3))
    v = m.init(jax.random.PRNGKey(1), x, train=False)
    assert "batch_stats" not in v
    y = m.apply(v, x, train=True)
    # No statistics shared across the batch: an example's output ignores the others.
    np.testing.assert_allclose(m.apply(v, x[:1], train=True), y[:1], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="'batch' or 'layer'"):
        models.make_encoder(name, norm="group", **kw).init(jax.random.PRNGKey(1), x, train=False)

"""Every shipped config builds its method and optimiser (shapes only, no compile)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslx.configs import simclr
from sslx.methods import get_method
from sslx.train import make_optimizer


@pytest.mark.parametrize("arg,size,channels", [("digits", 8, 1), ("mnist", 28, 1), ("fashion_mnist", 28, 1),
                                               ("cifar10_subset", 32, 3), ("cifar10", 32, 3),
                                               ("imagenet", 256, 3)])
def test_simclr_configs_build(arg, size, channels):
    c = simclr.get_config(arg)
    method = get_method(c, axis_name=None)
    batch = {"image": jnp.zeros((2, size, size, channels), jnp.uint8), "label": jnp.zeros((2,), jnp.int32)}
    params, state = jax.eval_shape(method.init, jax.random.PRNGKey(0), batch)
    n = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
    assert n > 0 and jax.tree.leaves(state)
    tx, sched = make_optimizer(c.optimizer, 1000, c.batch_size)
    jax.eval_shape(tx.init, params)
    assert float(sched(c.optimizer.warmup_steps)) > 0
    if arg == "imagenet":
        assert c.model.encoder == "resnet50" and c.optimizer.name == "lars" and c.batch_size == 4096
        np.testing.assert_allclose(float(sched(c.optimizer.warmup_steps)), 0.3 * 4096 / 256, rtol=1e-2)


def test_unknown_config_arg():
    with pytest.raises(ValueError, match="digits"):
        simclr.get_config("digitz")

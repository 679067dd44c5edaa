"""Small configs and batches shared by the tests."""
import jax
import numpy as np

from sslx.methods import get_method
from sslx.train import ParallelStep, create_train_state, make_optimizer, make_step_fn

from sslx.configs import simclr as simclr_cfg

# XLA_FLAGS for subprocess smoke runs of a step or two, whose time is compilation: -O0 compiles
# about twice as fast (see conftest.py). Scripts that run real loops keep the default flags.
COMPILE_BOUND_XLA_FLAGS = "--xla_backend_optimization_level=0"


def apply_overrides(c, overrides: dict):
    """Set dotted keys (``{"model.dtype": "float64"}``) on a ConfigDict; returns it."""
    for k, v in overrides.items():
        node = c
        *path, last = k.split(".")
        for p in path:
            node = node[p]
        node[last] = v
    return c


def tiny_training(c, **overrides):
    """Fast-test training settings on any objective's config: global batch 8, plain SGD (lr 0.5,
    no momentum or decay, constant schedule, so a parameter change is the gradient), 4 steps."""
    c.batch_size = 8
    c.optimizer.name = "sgd"
    c.optimizer.lr = 0.5
    c.optimizer.momentum = 0.0
    c.optimizer.weight_decay = 0.0
    c.optimizer.warmup_steps = 0
    c.optimizer.schedule = "constant"
    c.train.num_steps = 4
    c.train.log_every = 1
    c.train.checkpoint_every = 1000
    c.train.prefetch = 1
    return apply_overrides(c, overrides)


def tiny_simclr_config(**overrides):
    """SimCLR on 8x8 grayscale images with a 2-layer convnet: compiles in seconds."""
    c = simclr_cfg.get_config("digits")
    c.model.encoder_kwargs = {"features": (4, 8)}
    c.model.proj_hidden = (8,)
    c.model.proj_dim = 4
    c.eval.probe_epochs = 5
    c.eval.knn_k = 5
    c = tiny_training(c)
    c.train.checkpoint_every = 2
    return apply_overrides(c, overrides)


def random_batch(n=8, size=8, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    return {"image": rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8),
            "label": rng.integers(0, 10, (n,), dtype=np.int32)}


def run_steps(config, devices, mode, batches):
    """Run one compiled step per batch on ``devices`` -> (initial host state, final state, metrics)."""
    method = get_method(config)
    tx, sched = make_optimizer(config.optimizer, 10, config.batch_size)
    runner = ParallelStep(make_step_fn(method, tx, sched), mode=mode, devices=devices)
    host = create_train_state(method, tx, jax.random.PRNGKey(0), batches[0])
    ts = runner.put_state(host)
    metrics = []
    for b in batches:
        ts, m = runner(ts, runner.put_batch(b))
        metrics.append(jax.device_get(m))
    return host, jax.device_get(runner.get_state(ts)), metrics


def short_run(config, tmp_path, steps: int = 30, name: str = "run"):
    """Train ``config`` for ``steps`` logged steps (no final evaluation, synchronous checkpoints).

    Returns ``(workdir, rows)``: the run directory and the metrics.jsonl rows that carry a loss,
    after checking the run reached ``steps`` and every loss is finite.
    """
    import json
    import os

    from sslx.train.loop import train
    config.train.num_steps = steps
    config.train.log_every = 1
    config.train.checkpoint_every = 1000
    config.train.async_checkpoint = False
    config.eval.at_end = False
    wd = str(tmp_path / name)
    out = train(config, wd, progress=False)
    assert out["step"] == steps
    with open(os.path.join(wd, "metrics.jsonl")) as f:
        rows = [r for r in map(json.loads, f) if "loss" in r]
    losses = [r["loss"] for r in rows]
    assert len(losses) == steps and all(np.isfinite(losses)), losses
    return wd, rows


def assert_learns(rows, key: str = "loss", margin: float = 0.05, window: int = 5):
    """The mean of the last ``window`` values of ``key`` is below the first ``window``'s by ``margin``."""
    vals = [r[key] for r in rows]
    assert np.mean(vals[-window:]) < np.mean(vals[:window]) - margin, vals


def assert_node_permutation_equivariant(encode, graph, dim: int, seed: int = 0):
    """Relabel ``graph``'s nodes by a random permutation: node embeddings [N, dim] must permute
    with them (full-graph node encoders may not depend on node order)."""
    import chex

    from sslx.data.graph import to_graphs_tuple
    n = graph.nodes.shape[0]
    p = np.random.default_rng(seed).permutation(n)
    inv = np.argsort(p)  # node i of the old graph is node inv[i] of the new one
    permuted = to_graphs_tuple(np.asarray(graph.nodes)[p], inv[graph.senders], inv[graph.receivers])
    e, ep = np.asarray(encode(graph)), np.asarray(encode(permuted))
    chex.assert_shape(e, (n, dim))
    np.testing.assert_allclose(ep, e[p], rtol=1e-4, atol=1e-5)


def cut_out_window(graph, diffusion: dict, start: int, size: int):
    """The subgraph of nodes ``start .. start + size - 1`` cut out on the host: features, the
    edges and diffusion entries with both ends inside, relabelled -- the reference for
    :func:`sslx.augment.graph_views.window_batch`. Returns ``(graph, diffusion)``."""
    import jax.numpy as jnp

    s, r = np.asarray(graph.senders), np.asarray(graph.receivers)
    inside = (s >= start) & (s < start + size) & (r >= start) & (r < start + size)
    assert 0 < inside.sum() < len(s), "the window should hold some, not all, edges"
    sub = graph._replace(nodes=graph.nodes[start:start + size], senders=jnp.asarray(s[inside] - start),
                         receivers=jnp.asarray(r[inside] - start), n_node=jnp.asarray([size]),
                         n_edge=jnp.asarray([int(inside.sum())]))
    if "dense" in diffusion:
        return sub, {"dense": diffusion["dense"][start:start + size, start:start + size]}
    ds, dr, w = (np.asarray(diffusion[k]) for k in ("senders", "receivers", "weights"))
    di = (ds >= start) & (ds < start + size) & (dr >= start) & (dr < start + size)
    return sub, {"senders": jnp.asarray(ds[di] - start), "receivers": jnp.asarray(dr[di] - start),
                 "weights": jnp.asarray(w[di])}

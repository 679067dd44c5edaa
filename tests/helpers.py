"""Small configs and batches shared by the tests."""
import numpy as np

from sslx.configs import simclr as simclr_cfg


def tiny_simclr_config(**overrides):
    """SimCLR on 8x8 grayscale images with a 2-layer convnet: compiles in seconds."""
    c = simclr_cfg.get_config("digits")
    c.batch_size = 8
    c.model.encoder_kwargs = {"features": (4, 8)}
    c.model.proj_hidden = (8,)
    c.model.proj_dim = 4
    c.optimizer.name = "sgd"
    c.optimizer.lr = 0.5
    c.optimizer.momentum = 0.0
    c.optimizer.warmup_steps = 0
    c.optimizer.schedule = "constant"
    c.train.num_steps = 4
    c.train.log_every = 1
    c.train.checkpoint_every = 2
    c.train.prefetch = 1
    c.eval.probe_epochs = 5
    c.eval.knn_k = 5
    for k, v in overrides.items():
        node = c
        *path, last = k.split(".")
        for p in path:
            node = node[p]
        node[last] = v
    return c


def random_batch(n=8, size=8, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    return {"image": rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8),
            "label": rng.integers(0, 10, (n,), dtype=np.int32)}

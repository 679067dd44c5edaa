"""Node-classification probe of frozen node embeddings (the DGI protocol).

A logistic-regression classifier (one linear layer, Glorot-uniform weights, zero bias) is
trained full-batch with Adam (lr 0.01, no weight decay) for 100 epochs on the embeddings of
the training nodes, then scored on the test (and validation) nodes. This is repeated
``runs`` times (50 in DGI) with different initialisations; the report is the mean and the
standard deviation of the test accuracy. The runs are ``vmap``-ed and the whole probe is one
jit-compiled function.
"""
from __future__ import annotations

import functools
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = ["logreg_runs", "node_probe"]


@functools.partial(jax.jit, static_argnames=("num_classes", "epochs", "lr", "weight_decay"))
def logreg_runs(keys: jax.Array, x_train: jax.Array, y_train: jax.Array, x_eval: jax.Array, *,
                num_classes: int, epochs: int = 100, lr: float = 0.01, weight_decay: float = 0.0) -> jax.Array:
    """Train one logistic regression per key (``keys [R, 2]``) on ``x_train [M, D]`` /
    ``y_train [M]``; returns predicted classes ``[R, K]`` for ``x_eval [K, D]``."""
    d = x_train.shape[1]
    tx = optax.adamw(lr, weight_decay=weight_decay) if weight_decay else optax.adam(lr)

    def one(key):
        w = jax.nn.initializers.glorot_uniform()(key, (d, num_classes), jnp.float32)
        params = (w, jnp.zeros((num_classes,), jnp.float32))

        def loss(p):
            logits = x_train @ p[0] + p[1]
            return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y_train))

        def epoch(carry, _):
            p, s = carry
            g = jax.grad(loss)(p)
            upd, s = tx.update(g, s, p)
            return (optax.apply_updates(p, upd), s), None

        (params, _), _ = jax.lax.scan(epoch, (params, tx.init(params)), None, length=epochs)
        return jnp.argmax(x_eval @ params[0] + params[1], axis=-1)

    return jax.vmap(one)(keys)


def node_probe(embeddings, labels, train_mask, test_mask, *, val_mask=None, num_classes: Optional[int] = None,
               runs: int = 50, epochs: int = 100, lr: float = 0.01, weight_decay: float = 0.0,
               seed: int = 0, l2_normalize: bool = False) -> dict:
    """The DGI linear-evaluation protocol on node embeddings ``[N, D]``.

    labels ``int [N]``; masks ``bool [N]`` choose the train / test (/ val) nodes (their labels
    must lie in ``0..num_classes-1``). Returns ``{"test_acc_mean", "test_acc_std",
    "test_accs" [runs], ("val_acc_mean", "val_acc_std")}`` in percent; std is the population
    standard deviation over runs (``np.std``), as DGI reports. ``l2_normalize`` scales each
    embedding to unit norm first (GRACE's own evaluation does; DGI's does not).
    """
    emb = np.asarray(embeddings, np.float32)
    labels = np.asarray(labels)
    if emb.ndim != 2:
        raise ValueError(f"embeddings must be [N, D]; got shape {emb.shape}.")
    if not np.all(np.isfinite(emb)):
        raise ValueError("embeddings contain NaN or inf; the encoder diverged.")
    if l2_normalize:
        emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    masks = {"train_mask": train_mask, "test_mask": test_mask}
    if val_mask is not None:
        masks["val_mask"] = val_mask
    masks = {k: np.asarray(v, bool) for k, v in masks.items()}
    for k, v in masks.items():
        if v.shape != (emb.shape[0],):
            raise ValueError(f"{k} must be a bool array [N={emb.shape[0]}]; got shape {v.shape}.")
        if not v.any():
            raise ValueError(f"{k} selects no nodes.")
        if np.any(labels[v] < 0):
            raise ValueError(f"{k} selects nodes without a label (label < 0); drop them from the mask.")
    if labels.shape != (emb.shape[0],):
        raise ValueError(f"labels must be [N={emb.shape[0]}]; got shape {labels.shape}.")
    if runs <= 0 or epochs <= 0:
        raise ValueError(f"runs and epochs must be positive, got runs={runs}, epochs={epochs}.")
    c = int(num_classes) if num_classes is not None else int(labels.max()) + 1
    tr = masks["train_mask"]
    eval_names = [k for k in ("test_mask", "val_mask") if k in masks]
    x_eval = np.concatenate([emb[masks[k]] for k in eval_names])
    keys = jax.random.split(jax.random.PRNGKey(seed), runs)
    pred = np.asarray(logreg_runs(keys, jnp.asarray(emb[tr]), jnp.asarray(labels[tr], jnp.int32),
                                  jnp.asarray(x_eval), num_classes=c, epochs=int(epochs), lr=float(lr),
                                  weight_decay=float(weight_decay)))
    out, start = {}, 0
    for k in eval_names:
        n = int(masks[k].sum())
        acc = 100.0 * np.mean(pred[:, start:start + n] == labels[masks[k]][None], axis=1)
        start += n
        name = k.replace("_mask", "")
        out[f"{name}_acc_mean"], out[f"{name}_acc_std"] = float(acc.mean()), float(acc.std())
        out[f"{name}_accs"] = acc
    return out

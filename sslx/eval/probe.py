"""Evaluation of frozen representations: weighted kNN, linear probe, feature extraction.

All heavy computation is done in jitted JAX functions with static shapes, so each
routine compiles once per (feature shape, hyper-parameter) combination.

Shapes used in the docstrings:
    N: number of training (memory-bank) examples, M: number of test examples,
    D: feature dimension, C: number of classes, B: batch / chunk size.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = ["knn_classify", "knn_accuracy", "linear_probe", "extract_features"]

ArrayLike = Any  # np.ndarray | jax.Array

_EPS = 1e-12
# Above this many batches ``extract_features`` shows a progress bar (when progress=None).
_PROGRESS_MIN_BATCHES = 4

# ----------------------------------------------------------------------------
# Input validation
# ----------------------------------------------------------------------------


def _check_features(name: str, x: ArrayLike) -> jax.Array:
    """Validate a [N, D] float feature matrix and return it as float32 jax array."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        x = np.asarray(x)
    shape = tuple(x.shape)
    if len(shape) != 2:
        raise ValueError(
            f"{name} must be a 2-D float array of shape [N, D]; got shape {shape}. "
            f"Flatten per-example features first, e.g. {name}.reshape(len({name}), -1)."
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(
            f"{name} must have a floating dtype; got dtype {x.dtype} with shape {shape}. "
            f"Cast it first, e.g. {name}.astype(np.float32)."
        )
    if shape[0] == 0 or shape[1] == 0:
        raise ValueError(
            f"{name} must be non-empty with shape [N, D], N >= 1 and D >= 1; got shape {shape}."
        )
    x = jnp.asarray(x, dtype=jnp.float32)
    if not bool(jnp.all(jnp.isfinite(x))):
        raise ValueError(
            f"{name} (shape {shape}) contains NaN or inf values; "
            f"remove or repair those rows before evaluation."
        )
    return x


def _check_labels(name: str, y: ArrayLike, feats_name: str, n: int, num_classes: int) -> np.ndarray:
    """Validate [N] integer labels in [0, num_classes) and return them as an int32 numpy array."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D integer array of shape [N]; got shape {y.shape}. "
            f"Use {name}.reshape(-1) for [N, 1] labels or {name}.argmax(-1) for one-hot labels."
        )
    if not (np.issubdtype(y.dtype, np.integer) and y.dtype != np.bool_):
        raise ValueError(
            f"{name} must have an integer dtype; got dtype {y.dtype} with shape {y.shape}. "
            f"Cast class indices with {name}.astype(np.int32)."
        )
    if y.shape[0] != n:
        raise ValueError(
            f"{name} has shape {y.shape} but {feats_name} has {n} rows; "
            f"pass exactly one label per row of {feats_name}."
        )
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= num_classes:
        raise ValueError(
            f"{name} (shape {y.shape}) must lie in [0, num_classes={num_classes}); "
            f"got values in [{lo}, {hi}]. Remap labels to 0..num_classes-1 or raise num_classes."
        )
    return y.astype(np.int32)


def _check_same_dim(name: str, x: jax.Array, ref_name: str, ref: jax.Array) -> None:
    if x.shape[1] != ref.shape[1]:
        raise ValueError(
            f"{name} has shape {tuple(x.shape)} (D={x.shape[1]}) but {ref_name} has shape "
            f"{tuple(ref.shape)} (D={ref.shape[1]}); both must come from the same encoder/layer."
        )


def _check_positive_int(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be a positive integer; got {v!r}.")
    return int(v)


def _check_positive_float(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not v > 0:
        raise ValueError(f"{name} must be a positive number; got {v!r}.")
    return float(v)


# ----------------------------------------------------------------------------
# Weighted kNN (Wu et al. 2018)
# ----------------------------------------------------------------------------


def _l2_normalize(x: jax.Array) -> jax.Array:
    norm = jnp.linalg.norm(x, axis=-1, keepdims=True)
    return x / jnp.maximum(norm, _EPS)


@functools.partial(jax.jit, static_argnames=("k", "num_classes"))
def _knn_chunk(
    train_n: jax.Array,
    train_labels: jax.Array,
    queries: jax.Array,
    temperature: jax.Array,
    *,
    k: int,
    num_classes: int,
) -> jax.Array:
    """Predict labels for a [B, D] chunk given L2-normalised train feats [N, D] -> [B]."""
    q = _l2_normalize(queries)
    sims = jnp.matmul(q, train_n.T, precision=jax.lax.Precision.HIGHEST)  # [B, N]
    top_sims, top_idx = jax.lax.top_k(sims, k)  # [B, k], sorted descending
    # exp(s / T) up to a per-row constant exp(s_max / T): identical argmax, no overflow.
    weights = jnp.exp((top_sims - top_sims[:, :1]) / temperature)  # [B, k]
    nbr_labels = train_labels[top_idx]  # [B, k]
    rows = jnp.arange(q.shape[0])[:, None]
    votes = jnp.zeros((q.shape[0], num_classes), weights.dtype).at[rows, nbr_labels].add(weights)
    return jnp.argmax(votes, axis=-1)


def knn_classify(
    train_feats: ArrayLike,
    train_labels: ArrayLike,
    test_feats: ArrayLike,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    batch_size: int = 1024,
) -> np.ndarray:
    """Weighted kNN classifier on cosine similarity (InstDisc-style SSL monitor).

    Each test row is matched to its ``k`` most cosine-similar training rows; neighbour j
    votes for its label with weight ``exp(sim_j / temperature)`` and the class with the
    largest summed weight is predicted (ties -> smallest class index).

    Args:
        train_feats: [N, D] float features of the labelled memory bank.
        train_labels: [N] int labels in [0, num_classes).
        test_feats: [M, D] float query features.
        num_classes: C, number of classes.
        k: number of neighbours; clipped to N with a warning if larger.
        temperature: softmax-style temperature (> 0) of the neighbour weights.
        batch_size: test rows processed per jitted chunk ([batch_size, N] similarities
            in memory at a time). The last chunk is padded, so there is one compile.

    Returns:
        [M] int numpy array of predicted labels.
    """
    num_classes = _check_positive_int("num_classes", num_classes)
    k = _check_positive_int("k", k)
    batch_size = _check_positive_int("batch_size", batch_size)
    temperature = _check_positive_float("temperature", temperature)
    train = _check_features("train_feats", train_feats)
    test = _check_features("test_feats", test_feats)
    _check_same_dim("test_feats", test, "train_feats", train)
    labels = _check_labels("train_labels", train_labels, "train_feats", train.shape[0], num_classes)

    n, m = train.shape[0], test.shape[0]
    if k > n:
        warnings.warn(
            f"knn_classify: k={k} exceeds the number of training examples N={n}; using k={n}.",
            UserWarning,
            stacklevel=2,
        )
        k = n

    train_n = jax.jit(_l2_normalize)(train)
    labels_j = jnp.asarray(labels)
    temp = jnp.float32(temperature)
    chunk = min(batch_size, m)
    num_chunks = math.ceil(m / chunk)
    preds = np.empty((m,), dtype=np.int32)
    for i in range(num_chunks):
        start, stop = i * chunk, min((i + 1) * chunk, m)
        q = test[start:stop]
        if stop - start < chunk:  # pad to the static chunk shape; padded rows are dropped
            q = jnp.pad(q, ((0, chunk - (stop - start)), (0, 0)))
        out = _knn_chunk(train_n, labels_j, q, temp, k=k, num_classes=num_classes)
        preds[start:stop] = np.asarray(out)[: stop - start]
    return preds


def knn_accuracy(
    train_feats: ArrayLike,
    train_labels: ArrayLike,
    test_feats: ArrayLike,
    test_labels: ArrayLike,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    batch_size: int = 1024,
) -> float:
    """Top-1 accuracy in [0, 1] of :func:`knn_classify` against ``test_labels`` [M]."""
    num_classes = _check_positive_int("num_classes", num_classes)
    m = _check_features("test_feats", test_feats).shape[0]
    y_test = _check_labels("test_labels", test_labels, "test_feats", m, num_classes)
    preds = knn_classify(
        train_feats, train_labels, test_feats, num_classes,
        k=k, temperature=temperature, batch_size=batch_size,
    )
    return float(np.mean(preds == y_test))


# ----------------------------------------------------------------------------
# Linear probe (multinomial logistic regression)
# ----------------------------------------------------------------------------


def _standardize_stats(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-dimension mean [D] and std [D] (constant dimensions get std 1)."""
    mean = jnp.mean(x, axis=0)
    std = jnp.std(x, axis=0)
    return mean, jnp.where(std < 1e-6, 1.0, std)


def _probe_loss(
    params: dict, x: jax.Array, y: jax.Array, sample_w: jax.Array, wd: jax.Array
) -> jax.Array:
    """Weighted mean cross-entropy + 0.5 * wd * ||W||^2 (bias unpenalised).

    x [B, D], y [B], sample_w [B] (0/1 masks rows out), wd scalar -> scalar.
    """
    logits = x @ params["w"] + params["b"]
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    ce = jnp.sum(sample_w * ce) / jnp.maximum(jnp.sum(sample_w), 1e-6)
    return ce + 0.5 * wd * jnp.sum(params["w"] ** 2)


def _init_params(d: int, c: int) -> dict:
    return {"w": jnp.zeros((d, c), jnp.float32), "b": jnp.zeros((c,), jnp.float32)}


@functools.partial(jax.jit, static_argnames=("num_classes", "epochs"))
def _fit_lbfgs(
    x: jax.Array,
    y: jax.Array,
    sample_w: jax.Array,
    wds: jax.Array,
    *,
    num_classes: int,
    epochs: int,
) -> dict:
    """Full-batch L-BFGS for G models in one call (sequential ``lax.map``, so the line
    searches do not run in lock-step and only one model's logits live in memory).

    x [N, D], y [N], sample_w [G, N], wds [G] -> params {"w": [G, D, C], "b": [G, C]}.
    """

    def fit_one(args: tuple[jax.Array, jax.Array]) -> dict:
        sw, wd = args
        fun = functools.partial(_probe_loss, x=x, y=y, sample_w=sw, wd=wd)
        opt = optax.lbfgs()
        value_and_grad = optax.value_and_grad_from_state(fun)
        params = _init_params(x.shape[1], num_classes)

        def step(carry, _):
            params, state = carry
            value, grad = value_and_grad(params, state=state)
            updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=fun)
            return (optax.apply_updates(params, updates), state), None

        (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=epochs)
        return params

    return jax.lax.map(fit_one, (sample_w, wds))


@functools.partial(jax.jit, static_argnames=("num_classes", "epochs", "batch_size"))
def _fit_adam(
    x: jax.Array,
    y: jax.Array,
    sample_w: jax.Array,
    wds: jax.Array,
    key: jax.Array,
    lr: jax.Array,
    *,
    num_classes: int,
    epochs: int,
    batch_size: int,
) -> dict:
    """Mini-batch Adam (cosine-decayed lr) for G models sharing the same batch order.

    x [N, D], y [N], sample_w [G, N], wds [G] -> params {"w": [G, D, C], "b": [G, C]}.
    """
    n = x.shape[0]
    steps_per_epoch = math.ceil(n / batch_size)
    padded = steps_per_epoch * batch_size
    schedule = optax.cosine_decay_schedule(1.0, epochs * steps_per_epoch)
    opt = optax.chain(optax.scale_by_adam(), optax.scale_by_schedule(schedule), optax.scale(-1.0))

    def epoch_batches(epoch: jax.Array) -> jax.Array:
        # Fresh permutation each epoch; wrap around so every row is visited once per epoch.
        perm = jax.random.permutation(jax.random.fold_in(key, epoch), n)
        idx = jnp.concatenate([perm, perm[: padded - n]]) if padded > n else perm
        return idx.reshape(steps_per_epoch, batch_size)

    def fit_one(sw: jax.Array, wd: jax.Array) -> dict:
        params = _init_params(x.shape[1], num_classes)

        def train_step(carry, idx):
            params, state = carry
            grad = jax.grad(_probe_loss)(params, x[idx], y[idx], sw[idx], wd)
            updates, state = opt.update(grad, state, params)
            updates = jax.tree_util.tree_map(lambda u: lr * u, updates)
            return (optax.apply_updates(params, updates), state), None

        def train_epoch(carry, epoch):
            carry, _ = jax.lax.scan(train_step, carry, epoch_batches(epoch))
            return carry, None

        (params, _), _ = jax.lax.scan(
            train_epoch, (params, opt.init(params)), jnp.arange(epochs)
        )
        return params

    return jax.vmap(fit_one)(sample_w, wds)


@jax.jit
def _evaluate(
    params: dict, x: jax.Array, y: jax.Array, sample_w: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Weighted accuracy and mean cross-entropy of one linear model on x [N, D], y [N]."""
    logits = x @ params["w"] + params["b"]
    total = jnp.maximum(jnp.sum(sample_w), 1e-6)
    acc = jnp.sum(sample_w * (jnp.argmax(logits, -1) == y)) / total
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    return acc, jnp.sum(sample_w * ce) / total


def linear_probe(
    train_feats: ArrayLike,
    train_labels: ArrayLike,
    test_feats: ArrayLike,
    test_labels: ArrayLike,
    num_classes: int,
    *,
    epochs: int = 100,
    lr: float = 1e-2,
    weight_decay: float | Sequence[float] = (1e-5, 1e-4, 1e-3, 1e-2),
    batch_size: int | None = None,
    seed: int = 0,
    val_fraction: float = 0.2,
) -> dict[str, Any]:
    """Multinomial logistic-regression probe on frozen features.

    Features are standardised with the mean/std of all training features (constant
    dimensions are left unscaled). The objective is
    ``mean cross-entropy + 0.5 * weight_decay * ||W||^2`` (bias not penalised),
    starting from zero weights.

    Optimiser:
        * ``batch_size=None`` (or >= N): full-batch L-BFGS (optax, zoom line search) run
          for ``epochs`` iterations; ``lr`` is unused (the line search picks step sizes).
          Converges to the optimum of the convex objective on moderate problems.
        * ``batch_size=B``: mini-batch Adam, ``epochs`` passes over a fresh seeded
          permutation each epoch, learning rate ``lr`` with cosine decay to 0.

    Weight-decay selection: if ``weight_decay`` is a sequence with more than one value,
    a random ``val_fraction`` of the training rows (drawn with ``seed``) is held out and
    one model per candidate is fitted on the remaining rows; the candidate with the best
    held-out accuracy (ties: lower held-out loss, then smaller weight decay) is chosen
    and the returned model is the one fitted on *all* training rows with that value.
    All 2G fits (G held-out + G full) run inside one jitted call, so there is a
    single compile. The test set is never used for selection. (The label-free
    standardisation stats use all training rows, held-out rows included.) A single
    float skips selection.

    Args:
        train_feats: [N, D] float features; train_labels: [N] int in [0, num_classes).
        test_feats: [M, D] float features; test_labels: [M] int in [0, num_classes).
        num_classes: C.
        epochs: L-BFGS iterations (full batch) or passes over the data (mini-batch).
        lr: Adam peak learning rate (mini-batch mode only).
        weight_decay: L2 coefficient, or a grid of candidates to choose from.
        batch_size: None for full-batch L-BFGS, else the Adam mini-batch size.
        seed: seeds the hold-out split and the mini-batch order; results are
            deterministic for a fixed seed.
        val_fraction: fraction of training rows held out for weight-decay selection.

    Returns:
        dict with ``train_acc``, ``test_acc`` (floats in [0, 1]), ``train_loss``,
        ``test_loss`` (mean cross-entropy), ``weight_decay`` (chosen value),
        ``val_acc`` ({candidate: held-out accuracy} or None without selection), and the
        fitted model as numpy arrays ``weights`` [D, C], ``bias`` [C], ``mean`` [D],
        ``std`` [D]; logits for new features are ``((x - mean) / std) @ weights + bias``.
    """
    num_classes = _check_positive_int("num_classes", num_classes)
    epochs = _check_positive_int("epochs", epochs)
    lr = _check_positive_float("lr", lr)
    if batch_size is not None:
        batch_size = _check_positive_int("batch_size", batch_size)
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1); got {val_fraction!r}.")
    wd_grid = [weight_decay] if np.isscalar(weight_decay) else list(weight_decay)
    if not wd_grid or any(
        isinstance(w, bool) or not isinstance(w, (int, float, np.integer, np.floating)) or w < 0
        for w in wd_grid
    ):
        raise ValueError(
            f"weight_decay must be a non-negative number or a non-empty sequence of them; "
            f"got {weight_decay!r}."
        )
    wd_grid = [float(w) for w in wd_grid]

    x_train = _check_features("train_feats", train_feats)
    x_test = _check_features("test_feats", test_feats)
    _check_same_dim("test_feats", x_test, "train_feats", x_train)
    y_train = jnp.asarray(
        _check_labels("train_labels", train_labels, "train_feats", x_train.shape[0], num_classes)
    )
    y_test = jnp.asarray(
        _check_labels("test_labels", test_labels, "test_feats", x_test.shape[0], num_classes)
    )

    n = x_train.shape[0]
    mean, std = _standardize_stats(x_train)
    x_train = (x_train - mean) / std
    x_test = (x_test - mean) / std
    split_key, fit_key = jax.random.split(jax.random.PRNGKey(seed))

    g = len(wd_grid)
    full_w = np.ones((1, n), np.float32)
    if g > 1:
        n_val = int(round(n * val_fraction))
        if n_val < 1 or n - n_val < 1:
            raise ValueError(
                f"train_feats has shape {(n, x_train.shape[1])}: too few rows to hold out "
                f"val_fraction={val_fraction} for weight-decay selection. Pass a single "
                f"weight_decay value or more training rows."
            )
        val_mask = np.zeros((n,), np.float32)
        val_mask[np.asarray(jax.random.permutation(split_key, n))[:n_val]] = 1.0
        # Rows 0..G-1: fit on the non-held-out part; rows G..2G-1: fit on everything.
        sample_w = np.concatenate([np.tile(1.0 - val_mask, (g, 1)), np.tile(full_w, (g, 1))])
        wds = wd_grid + wd_grid
    else:
        sample_w, wds = full_w, wd_grid

    sample_w_j = jnp.asarray(sample_w)
    wds_j = jnp.asarray(wds, jnp.float32)
    if batch_size is None or batch_size >= n:
        params = _fit_lbfgs(
            x_train, y_train, sample_w_j, wds_j, num_classes=num_classes, epochs=epochs
        )
    else:
        params = _fit_adam(
            x_train, y_train, sample_w_j, wds_j, fit_key, jnp.float32(lr),
            num_classes=num_classes, epochs=epochs, batch_size=batch_size,
        )

    val_acc: dict[float, float] | None = None
    best = 0
    if g > 1:
        held_out = jax.tree_util.tree_map(lambda p: p[:g], params)
        accs, losses = jax.vmap(_evaluate, in_axes=(0, None, None, None))(
            held_out, x_train, y_train, jnp.asarray(val_mask)
        )
        accs, losses = np.asarray(accs), np.asarray(losses)
        val_acc = {wd: float(a) for wd, a in zip(wd_grid, accs)}
        # Best accuracy, then lowest loss, then smallest weight decay.
        best = min(range(g), key=lambda i: (-accs[i], losses[i], wd_grid[i]))
        final = jax.tree_util.tree_map(lambda p: p[g + best], params)
    else:
        final = jax.tree_util.tree_map(lambda p: p[0], params)

    train_acc, train_loss = _evaluate(final, x_train, y_train, jnp.ones((n,), jnp.float32))
    test_acc, test_loss = _evaluate(
        final, x_test, y_test, jnp.ones((x_test.shape[0],), jnp.float32)
    )
    return {
        "train_acc": float(train_acc),
        "test_acc": float(test_acc),
        "train_loss": float(train_loss),
        "test_loss": float(test_loss),
        "weight_decay": wd_grid[best],
        "val_acc": val_acc,
        "weights": np.asarray(final["w"]),
        "bias": np.asarray(final["b"]),
        "mean": np.asarray(mean),
        "std": np.asarray(std),
    }


# ----------------------------------------------------------------------------
# Feature extraction
# ----------------------------------------------------------------------------


def extract_features(
    encode_fn: Callable[[Any], Any],
    images: ArrayLike,
    batch_size: int = 256,
    *,
    progress: bool | None = None,
) -> np.ndarray:
    """Run ``encode_fn`` over ``images`` in fixed-size batches and gather the features.

    Every call to ``encode_fn`` sees exactly ``min(batch_size, N)`` rows: the last batch
    is padded by repeating its final row, so a jitted encoder compiles once; the padded
    outputs are dropped. All N rows come back, in input order.

    Args:
        encode_fn: maps an image batch [B, ...] to features [B, D].
        images: [N, ...] numpy or jax array.
        batch_size: rows per call.
        progress: show a tqdm bar; None (default) shows one when there are more than
            a few batches.

    Returns:
        [N, D] numpy array (dtype of ``encode_fn``'s output).
    """
    batch_size = _check_positive_int("batch_size", batch_size)
    if not hasattr(images, "shape"):
        images = np.asarray(images)
    if len(images.shape) < 1 or images.shape[0] == 0:
        raise ValueError(
            f"images must be a non-empty array of shape [N, ...]; got shape {tuple(images.shape)}."
        )
    n = images.shape[0]
    bs = min(batch_size, n)
    num_batches = math.ceil(n / bs)
    xp = jnp if isinstance(images, jax.Array) else np
    show = num_batches > _PROGRESS_MIN_BATCHES if progress is None else bool(progress)

    batches: Any = range(num_batches)
    if show:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="extract_features", unit="batch")

    out: np.ndarray | None = None

    def store(start: int, stop: int, feats: Any) -> None:
        nonlocal out
        feats = np.asarray(feats)
        if feats.ndim != 2 or feats.shape[0] != bs:
            raise ValueError(
                f"encode_fn must return a [B, D] array for a batch of B={bs} images; got shape "
                f"{feats.shape}. Flatten or pool the encoder output to one vector per image."
            )
        if out is None:
            out = np.empty((n, feats.shape[1]), dtype=feats.dtype)
        elif feats.shape[1] != out.shape[1]:
            raise ValueError(
                f"encode_fn returned D={feats.shape[1]} features but earlier batches had "
                f"D={out.shape[1]}; the feature dimension must be fixed."
            )
        out[start:stop] = feats[: stop - start]

    pending: tuple[int, int, Any] | None = None
    for i in batches:
        start, stop = i * bs, min((i + 1) * bs, n)
        batch = images[start:stop]
        if stop - start < bs:
            fill = xp.repeat(batch[-1:], bs - (stop - start), axis=0)
            batch = xp.concatenate([batch, fill], axis=0)
        feats = encode_fn(batch)  # dispatched asynchronously for jax encoders
        if pending is not None:
            store(*pending)  # host transfer of the previous batch overlaps this one
        pending = (start, stop, feats)
    assert pending is not None
    store(*pending)
    assert out is not None
    return out

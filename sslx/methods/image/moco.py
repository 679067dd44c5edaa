"""MoCo v1 (He et al. 2019) and v2 (Chen et al. 2020): momentum contrast with a queue.

A query encoder f_q (encoder + head, the optimised ``params``) and a momentum
key encoder f_k (in the method ``state``) embed two views of each image. The
loss is InfoNCE of each query against its own key (positive) and a queue of K
keys from earlier batches (negatives); the other in-batch keys are *not*
negatives (:func:`sslx.losses.contrastive.moco_info_nce`). After every
optimiser step f_k <- m f_k + (1 - m) f_q (``after_update``).

v1 and v2 differ only in configuration: v1 has a linear head (fc -> 128) and
temperature 0.07; v2 an MLP head (fc 2048 - ReLU - fc 128, without BatchNorm as
in the paper's code, ``config.model.proj_bn=False``), temperature 0.2 and blur
in the augmentation.

State (identical on every device, as the train step requires)::

  {"encoder", "head"}: the query encoder's BN running statistics
  "key": {"params": {"encoder", "head"}, "batch_stats": {"encoder", "head"}}
  "queue": [K, D] L2-normalised keys; "queue_ptr": int32 row of the oldest
  entry; "queue_count": int32 keys enqueued so far, capped at K

Queue: every step enqueues the keys of the **global** batch (gathered over
``axis_name`` in global example order, so 1 and N devices build the same
queue) at ``queue_ptr`` and advances it by the global batch, overwriting the
oldest keys; K must be a multiple of the global batch. The loss of a step uses
the queue as it was *before* this step's keys are enqueued (as in the paper).

Shuffling BN (paper sec. 3.3, ``config.method.shuffle_bn``, default True):
with BatchNorm statistics computed over the batch that also holds the
positive key, the query can "cheat" by recognising the statistics of its own
sub-batch. The key encoder therefore runs with **per-device** BN statistics on a
sub-batch whose composition differs from the query's: the key views of the
global batch are all-gathered, permuted with a permutation drawn from the step
rng (the same on every device), device d encodes rows ``perm[d*b:(d+1)*b]``,
and the resulting keys are all-gathered again and put back in global order
(:func:`shuffled_apply`). The query encoder keeps the library's BN setting
(synchronised over devices by default). On one device the permutation stays
inside one BN batch and changes nothing. Because the per-device key BN
running statistics differ between devices, they are averaged over devices
(``pmean``) before they enter the state (they are never used: the key encoder
always runs in training mode, and ``encode`` uses the query encoder).

With ``shuffle_bn=False`` the key encoder uses the same BN setting as the query
encoder (synchronised by default), which makes 1 and N devices numerically
equivalent (tested).
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import ml_collections
from jax import lax

from sslx import augment
from sslx.losses.contrastive import l2_normalize, moco_info_nce
from sslx.methods.base import DATA_AXIS, Method
from sslx.methods.image.common import (apply_eval, apply_train, build_encoder, build_head,
                                       images_to_float, init_module, make_views)


def _axis_size(axis_name: Optional[str]) -> int:
    return 1 if axis_name is None else int(lax.axis_size(axis_name))


def check_queue_size(queue_size: int, global_batch: int) -> None:
    """ValueError unless the queue holds a whole number (>= 1) of global batches."""
    if queue_size <= 0 or queue_size % global_batch:
        lo = max(queue_size // global_batch, 1) * global_batch
        raise ValueError(
            f"MoCo queue size config.method.queue_size={queue_size} must be a positive multiple of the global "
            f"batch size {global_batch} (each step enqueues one global batch of keys); use e.g. {lo} or "
            f"{lo + global_batch}, or change config.batch_size.")


def shuffled_apply(fn: Callable[[jax.Array], tuple[jax.Array, Any]], x: jax.Array, rng: jax.Array,
                   axis_name: Optional[str], shuffle: bool = True) -> tuple[jax.Array, jax.Array, Any]:
    """Apply ``fn`` to a cross-device shuffled batch and undo the shuffle ("shuffling BN").

    Args:
      fn: ``x_local [b, ...] -> (y [b, D], aux)``, e.g. the key encoder with
        per-device BatchNorm (aux: its new batch statistics).
      x: this device's rows [b, ...] of the global batch (global rows
        ``d*b .. (d+1)*b`` on device d).
      rng: key of the permutation; must be identical on all devices.
      axis_name: device axis (None: one device, no collectives).
      shuffle: False applies ``fn`` to the local rows unshuffled.

    Returns:
      (y_local [b, D] for this device's rows, y_global [N*b, D] in global
      example order, aux of this device's ``fn`` call).
    """
    if axis_name is None:
        y, aux = fn(x)
        return y, y, aux
    b = x.shape[0]
    offset = lax.axis_index(axis_name) * b
    if not shuffle:
        y, aux = fn(x)
        return y, lax.all_gather(y, axis_name, tiled=True), aux
    xg = lax.all_gather(x, axis_name, tiled=True)  # [N*b, ...] global order
    perm = jax.random.permutation(rng, xg.shape[0])
    mine = lax.dynamic_slice_in_dim(perm, offset, b)  # global rows this device encodes
    y_sh, aux = fn(jnp.take(xg, mine, axis=0))
    yg_sh = lax.all_gather(y_sh, axis_name, tiled=True)  # yg_sh[j] belongs to example perm[j]
    yg = jnp.zeros_like(yg_sh).at[perm].set(yg_sh)  # un-shuffle: yg[perm[j]] = yg_sh[j]
    return lax.dynamic_slice_in_dim(yg, offset, b), yg, aux


def moco(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
         total_steps: Optional[int] = None) -> Method:
    """MoCo (v1 or v2, by config) as a :class:`Method`.

    Reads ``config.model`` (encoder, ``proj_hidden``, ``proj_dim``, ``proj_bn``),
    ``config.augment`` and ``config.method`` (``temperature``, ``momentum``,
    ``queue_size``, ``shuffle_bn``). Raises ValueError when ``queue_size`` is not
    a multiple of ``config.batch_size``.
    """
    del total_steps  # constant momentum, as in the paper
    m = config.method
    temperature = float(m.temperature)
    momentum = float(m.get("momentum", 0.999))
    queue_size = int(m.get("queue_size", 65536))
    shuffle_bn = bool(m.get("shuffle_bn", True))
    check_queue_size(queue_size, int(config.batch_size))
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"config.method.momentum={momentum} must be in [0, 1].")
    hidden = tuple(config.model.proj_hidden)
    dim = int(config.model.proj_dim)
    head_bn = bool(config.model.get("proj_bn", False))

    encoder = build_encoder(config, axis_name)
    head = build_head(config, axis_name, hidden, dim, use_bn=head_bn)
    # Key encoder: per-device BN under shuffling BN, else the query encoder's BN setting.
    key_axis = None if shuffle_bn else axis_name
    key_encoder = build_encoder(config, key_axis)
    key_head = build_head(config, key_axis, hidden, dim, use_bn=head_bn)
    view_fn = augment.make_view_fn(config.augment)
    crop = int(config.augment.crop_size)

    def init(rng, batch):
        x = jnp.zeros((2, crop, crop, batch["image"].shape[-1]), jnp.float32)
        k1, k2, k3 = jax.random.split(rng, 3)
        ep, es, h = init_module(encoder, k1, x)
        hp, hs, _ = init_module(head, k2, h)
        params = {"encoder": ep, "head": hp}
        stats = {"encoder": es, "head": hs}
        copy = lambda t: jax.tree.map(lambda a: jnp.array(a, copy=True), t)
        queue = l2_normalize(jax.random.normal(k3, (queue_size, dim), jnp.float32))
        state = {**stats, "key": {"params": copy(params), "batch_stats": copy(stats)},
                 "queue": queue, "queue_ptr": jnp.zeros((), jnp.int32), "queue_count": jnp.zeros((), jnp.int32)}
        return params, state

    def loss_fn(params, state, batch, rng):
        view_rng, perm_rng = jax.random.split(rng)
        xq, xk = make_views(view_fn, view_rng, batch["image"], axis_name)
        b = xq.shape[0]
        n = b * _axis_size(axis_name)
        check_queue_size(queue_size, n)

        h, enc_stats = apply_train(encoder, params["encoder"], state["encoder"], xq)
        q, head_stats = apply_train(head, params["head"], state["head"], h)

        kp, ks = state["key"]["params"], state["key"]["batch_stats"]

        def key_fn(x):
            hk, es = apply_train(key_encoder, kp["encoder"], ks["encoder"], x)
            k, hs = apply_train(key_head, kp["head"], ks["head"], hk)
            return k, {"encoder": es, "head": hs}

        k_local, k_global, key_stats = shuffled_apply(key_fn, xk, perm_rng, axis_name, shuffle=shuffle_bn)
        k_local = lax.stop_gradient(l2_normalize(k_local))
        k_global = lax.stop_gradient(l2_normalize(k_global)).astype(jnp.float32)
        if axis_name is not None:
            key_stats = lax.pmean(key_stats, axis_name)  # per-device under shuffling BN; make them identical

        loss, aux = moco_info_nce(q, k_local, state["queue"], temperature)

        ptr = state["queue_ptr"]
        queue = lax.dynamic_update_slice_in_dim(state["queue"], k_global, ptr, axis=0)
        count = jnp.minimum(state["queue_count"] + n, queue_size)
        new_state = {"encoder": enc_stats, "head": head_stats,
                     "key": {"params": kp, "batch_stats": key_stats},
                     "queue": queue, "queue_ptr": (ptr + n) % queue_size, "queue_count": count}
        metrics = {"contrastive_acc": aux["accuracy"],
                   "queue_fill": count.astype(jnp.float32) / queue_size}
        return loss, (new_state, metrics)

    def after_update(params, state, step):
        del step
        key_params = jax.tree.map(lambda k, p: momentum * k + (1.0 - momentum) * p, state["key"]["params"], params)
        return {**state, "key": {**state["key"], "params": key_params}}

    def encode(params, state, images):
        return apply_eval(encoder, params["encoder"], state["encoder"], images_to_float(images))

    return Method(name="moco", init=init, loss_fn=loss_fn, encode=encode, after_update=after_update,
                  axis_name=axis_name)

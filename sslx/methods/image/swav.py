"""SwAV (Caron et al. 2020): swapping assignments between multi-crop views.

Encoder f, projector g (Linear-BN-ReLU-Linear, e.g. 2048 -> 128) and K prototypes
C [K, D] (a bias-free linear layer, ``params["prototypes"]``). For every crop
``z = normalize(g(f(x)))`` and its scores are ``z C^T`` [B, K]. The codes of each
large crop are :func:`sslx.losses.sinkhorn` of its (stop-gradient) scores, computed
over the global batch (psum over ``axis_name``); every crop predicts the codes of
every other large crop (:func:`sslx.losses.swav_loss`).

Multi-crop (``config.augment.multicrop``, a tuple of ``(num, size, (scale_lo, scale_hi))``
groups; the first group are the large crops that get codes, e.g.
``((2, 224, (0.14, 1.0)), (6, 96, (0.05, 0.14)))``). Every crop uses ``config.augment``
with its group's ``crop_size`` / ``crop_scale``; the views come from
:func:`sslx.methods.image.common.make_multicrop_views`. The encoder runs once per
resolution group (crops of the same size concatenated, BN over that group, as the
reference), the projector once on all crops' features.

Prototype normalisation. As in the reference, the prototype rows are unit-norm at every
forward pass: they start unit-norm and the method's ``project_params`` hook
(:func:`normalize_prototypes`, run by the train step right after each optimiser update)
renormalises them, so the gradient is taken with respect to the unit rows.

Freezing. ``state["step"]`` counts optimiser steps (``after_update`` sets it to
``step + 1``); while it is < ``config.method.freeze_prototypes_steps`` the prototypes
enter the loss through ``stop_gradient`` (zero gradient; ``jnp.where`` on the counter,
no retrace). With zero gradient SGD/Adam/LARS leave them unchanged except for weight
decay, which only rescales the rows and so does not change the unit-norm prototypes.

Feature queue (``config.method.queue_length`` L > 0, for small batches, as the reference):
the normalised embeddings z of the large crops of the last L / B global batches, one queue
per large crop (``state["queue"]`` [n_large, L, D], newest first). Each step enqueues the
global batch's embeddings (gathered over ``axis_name``) once ``step >= queue_start_steps``;
once the queue is full its rows join the Sinkhorn computation (their scores against the
current prototypes, no gradient) so the equipartition runs over L + B examples, and only
the batch rows' codes are used. Every device takes its own L / N slice of the (replicated)
queue: Sinkhorn's sums are psum-ed, so the union of the slices is the whole queue and the
codes equal the 1-device computation.

state = {"encoder": bn, "projector": bn, "step": int32 (+ "queue", "queue_count")}.
``encode``: the encoder in eval mode.
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections
from jax import lax

from sslx import losses
from sslx.methods.base import DATA_AXIS, Method
from sslx.methods.image.common import (apply_eval, apply_train, build_encoder, build_head, encode_crops,
                                       images_to_float, init_module, make_multicrop_view_fns, make_multicrop_views,
                                       multicrop_specs)


def check_queue_length(queue_length: int, global_batch: int) -> None:
    """ValueError unless the feature queue holds a whole number (>= 1) of global batches."""
    if queue_length < 0 or (queue_length and queue_length % global_batch):
        lo = max(queue_length // global_batch, 1) * global_batch
        raise ValueError(f"SwAV config.method.queue_length={queue_length} must be 0 (no queue) or a positive "
                         f"multiple of the global batch size {global_batch}; use e.g. {lo}.")


def normalize_prototypes(params):
    """``params`` with unit-norm prototype rows."""
    return {**params, "prototypes": losses.l2_normalize(params["prototypes"], axis=-1)}


def normalized_prototypes(params) -> jax.Array:
    """The unit-norm prototypes C [K, D] the loss uses."""
    return losses.l2_normalize(params["prototypes"], axis=-1)


def swav(config: ml_collections.ConfigDict, axis_name: Optional[str] = DATA_AXIS,
         total_steps: Optional[int] = None) -> Method:
    """SwAV as a :class:`Method`.

    Reads ``config.model`` (``encoder``, ``proj_hidden``, ``proj_dim``), ``config.augment``
    (incl. ``multicrop``) and ``config.method``: ``num_prototypes`` K, ``temperature`` (0.1),
    ``sinkhorn_eps`` (0.05), ``sinkhorn_iters`` (3), ``freeze_prototypes_steps`` (0),
    ``queue_length`` (0: no queue; else a multiple of the global batch) and
    ``queue_start_steps`` (0; the reference starts the queue at epoch 15).
    """
    del total_steps  # no schedule-dependent state
    encoder = build_encoder(config, axis_name)
    proj_dim = int(config.model.proj_dim)
    projector = build_head(config, axis_name, config.model.proj_hidden, proj_dim)
    specs = multicrop_specs(config)
    view_fns = make_multicrop_view_fns(config)
    n_large = specs[0][0]
    k_protos = int(config.method.num_prototypes)
    temperature = float(config.method.get("temperature", 0.1))
    eps = float(config.method.get("sinkhorn_eps", 0.05))
    iters = int(config.method.get("sinkhorn_iters", 3))
    freeze = int(config.method.get("freeze_prototypes_steps", 0))
    if k_protos < 1 or eps <= 0 or iters < 1 or temperature <= 0:
        raise ValueError(f"swav: need num_prototypes >= 1, sinkhorn_eps > 0, sinkhorn_iters >= 1, temperature > 0; "
                         f"got {k_protos}, {eps}, {iters}, {temperature}.")
    sizes = [size for num, size, _ in specs for _ in range(num)]
    queue_len = int(config.method.get("queue_length", 0))
    queue_start = int(config.method.get("queue_start_steps", 0))
    if queue_len:
        check_queue_length(queue_len, int(config.batch_size))

    def init(rng, batch):
        x = jnp.zeros((2, sizes[0], sizes[0], batch["image"].shape[-1]), jnp.float32)
        k1, k2, k3 = jax.random.split(rng, 3)
        ep, es, h = init_module(encoder, k1, x)
        pp, ps, _ = init_module(projector, k2, h)
        protos = losses.l2_normalize(jax.random.normal(k3, (k_protos, proj_dim), jnp.float32))
        state = {"encoder": es, "projector": ps, "step": jnp.zeros((), jnp.int32)}
        if queue_len:
            state["queue"] = jnp.zeros((n_large, queue_len, proj_dim), jnp.float32)
            state["queue_count"] = jnp.zeros((), jnp.int32)
        return {"encoder": ep, "projector": pp, "prototypes": protos}, state

    def codes_with_queue(state, c, scores, z_large):
        """Codes of the large crops, Sinkhorn run over [this device's queue slice; batch] rows."""
        queue = state["queue"]
        n_dev = 1 if axis_name is None else lax.axis_size(axis_name)
        if queue_len % n_dev:
            raise ValueError(f"config.method.queue_length={queue_len} must be divisible by the {n_dev} devices.")
        rows = queue_len // n_dev
        start = 0 if axis_name is None else lax.axis_index(axis_name) * rows
        use = state["queue_count"] >= queue_len  # only a full queue is used, as the reference
        b = scores[0].shape[0]
        codes = []
        for i in range(n_large):
            q_slice = lax.dynamic_slice_in_dim(queue[i], start, rows, axis=0)
            q_scores = lax.stop_gradient(q_slice @ c.T.astype(jnp.float32))
            mask = jnp.concatenate([jnp.full((rows,), use), jnp.ones((b,), bool)])
            full = losses.sinkhorn(jnp.concatenate([q_scores, scores[i].astype(jnp.float32)]), eps, iters,
                                   axis_name, mask=mask)
            codes.append(full[rows:])
        # Enqueue this step's large-crop embeddings of the *global* batch (newest first).
        fill = state["step"] >= queue_start
        new_queue = []
        for i in range(n_large):
            zg = lax.stop_gradient(z_large[i]).astype(jnp.float32)
            if axis_name is not None:
                zg = lax.all_gather(zg, axis_name, tiled=True)
            shifted = jnp.concatenate([zg, queue[i, :queue_len - zg.shape[0]]])
            new_queue.append(jnp.where(fill, shifted, queue[i]))
        count = jnp.where(fill, jnp.minimum(state["queue_count"] + b * n_dev, queue_len), state["queue_count"])
        return codes, {"queue": jnp.stack(new_queue), "queue_count": count}, use

    def loss_fn(params, state, batch, rng):
        views = make_multicrop_views(rng, batch["image"], axis_name, view_fns)
        feats, enc_stats = encode_crops(encoder, params["encoder"], state["encoder"], views)
        z, proj_stats = apply_train(projector, params["projector"], state["projector"], jnp.concatenate(feats))
        z = losses.l2_normalize(z.astype(jnp.promote_types(z.dtype, jnp.float32)))
        c_raw = params["prototypes"]  # unit rows (init + project_params after every update)
        frozen = state["step"] < freeze
        c = jnp.where(frozen, jax.lax.stop_gradient(c_raw), c_raw)
        z_views = jnp.split(z, len(views), axis=0)
        scores = [zv @ c.T.astype(z.dtype) for zv in z_views]
        new_state = {**state, "encoder": enc_stats, "projector": proj_stats}
        metrics = {"prototypes_frozen": frozen.astype(jnp.float32)}
        if queue_len:
            codes, queue_state, used = codes_with_queue(state, c, scores, z_views[:n_large])
            new_state.update(queue_state)
            metrics["queue_used"] = used.astype(jnp.float32)
        else:
            codes = [losses.sinkhorn(scores[i], eps, iters, axis_name) for i in range(n_large)]
        loss, aux = losses.swav_loss(scores, codes, temperature)
        metrics["code_entropy"] = aux["entropy"]
        return loss, (new_state, metrics)

    def after_update(params, state, step):
        del params
        return {**state, "step": jnp.asarray(step, jnp.int32) + 1}

    def encode(params, state, images):
        return apply_eval(encoder, params["encoder"], state["encoder"], images_to_float(images))

    return Method(name="swav", init=init, loss_fn=loss_fn, encode=encode, after_update=after_update,
                  project_params=normalize_prototypes, axis_name=axis_name)

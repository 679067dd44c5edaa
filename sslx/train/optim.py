"""Optimisers and learning-rate schedules (optax) built from a config."""
from __future__ import annotations

from typing import Any, Callable

import jax
import ml_collections
import optax


def decay_mask(params: Any) -> Any:
    """True for weights that get weight decay: kernels (ndim > 1), not biases or BN/LN scales."""
    return jax.tree.map(lambda p: p.ndim > 1, params)


def make_schedule(cfg: ml_collections.ConfigDict, total_steps: int, global_batch: int) -> Callable:
    """Linear warmup then cosine decay (or constant) from ``cfg`` (the optimizer block).

    ``cfg.lr`` is the base rate; with ``cfg.lr_batch_scaling`` it is multiplied by
    ``global_batch / 256`` (SimCLR/BYOL convention).
    """
    peak = float(cfg.lr) * (global_batch / 256.0 if cfg.get("lr_batch_scaling", False) else 1.0)
    warmup = int(cfg.get("warmup_steps", 0))
    kind = cfg.get("schedule", "warmup_cosine")
    if kind == "constant":
        return optax.join_schedules([optax.linear_schedule(0.0, peak, max(warmup, 1)),
                                     optax.constant_schedule(peak)], [warmup]) if warmup else optax.constant_schedule(peak)
    if kind == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(
            init_value=0.0, peak_value=peak, warmup_steps=warmup,
            decay_steps=max(total_steps, warmup + 1), end_value=peak * float(cfg.get("end_lr_factor", 0.0)))
    raise ValueError(f"config.optimizer.schedule={kind!r} is unknown; use 'warmup_cosine' or 'constant'.")


def make_optimizer(cfg: ml_collections.ConfigDict, total_steps: int, global_batch: int
                   ) -> tuple[optax.GradientTransformation, Callable]:
    """Build (tx, schedule) for ``cfg.name`` in {sgd, adamw, lars}.

    Weight decay skips biases and normalisation parameters (``decay_mask``);
    LARS also excludes them from trust-ratio adaptation. ``cfg.grad_clip`` > 0
    clips the global norm; ``cfg.accum_steps`` > 1 accumulates gradients over
    that many steps before an update (optax.MultiSteps).
    """
    schedule = make_schedule(cfg, total_steps, global_batch)
    wd = float(cfg.get("weight_decay", 0.0))
    name = cfg.name
    if name == "sgd":
        tx = optax.chain(optax.add_decayed_weights(wd, mask=decay_mask),
                         optax.sgd(schedule, momentum=cfg.get("momentum", 0.9), nesterov=cfg.get("nesterov", False)))
    elif name == "adamw":
        tx = optax.adamw(schedule, b1=cfg.get("b1", 0.9), b2=cfg.get("b2", 0.999), weight_decay=wd, mask=decay_mask)
    elif name == "lars":
        tx = optax.lars(schedule, weight_decay=wd, weight_decay_mask=decay_mask, trust_ratio_mask=decay_mask,
                        momentum=cfg.get("momentum", 0.9), trust_coefficient=cfg.get("trust_coefficient", 0.001))
    else:
        raise ValueError(f"config.optimizer.name={name!r} is unknown; use 'sgd', 'adamw' or 'lars'.")
    if float(cfg.get("grad_clip", 0.0)) > 0:
        tx = optax.chain(optax.clip_by_global_norm(float(cfg.grad_clip)), tx)
    accum = int(cfg.get("accum_steps", 1))
    if accum > 1:
        tx = optax.MultiSteps(tx, every_k_schedule=accum)
    return tx, schedule

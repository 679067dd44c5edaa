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
    """Linear warmup then cosine decay, constant, or step decay from ``cfg`` (the optimizer block).

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
    if kind == "step":
        # Piecewise constant: x decay_factor at each boundary, given as fractions of the run
        # (MoCo v1: x0.1 at epochs 120 and 160 of 200 -> (0.6, 0.8)), after an optional warmup.
        fracs = tuple(float(f) for f in cfg.get("decay_boundaries", ()))
        if not fracs or any(not 0.0 < f < 1.0 for f in fracs) or list(fracs) != sorted(fracs):
            raise ValueError(f"config.optimizer.decay_boundaries={fracs!r}: the step schedule needs increasing "
                             "fractions of the run in (0, 1), e.g. (0.6, 0.8).")
        factor = float(cfg.get("decay_factor", 0.1))
        steps = {int(round(f * total_steps)): factor for f in fracs}
        decay = optax.piecewise_constant_schedule(peak, steps)
        if not warmup:
            return decay
        return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup),
                                     lambda n: decay(n + warmup)], [warmup])
    raise ValueError(f"config.optimizer.schedule={kind!r} is unknown; use 'warmup_cosine', 'constant' or 'step'.")


def make_optimizer(cfg: ml_collections.ConfigDict, total_steps: int, global_batch: int
                   ) -> tuple[optax.GradientTransformation, Callable]:
    """Build (tx, schedule) for ``cfg.name`` in {sgd, adamw, lars}.

    Weight decay skips biases and normalisation parameters (``decay_mask``);
    LARS also excludes them from trust-ratio adaptation. ``cfg.grad_clip`` > 0
    clips the global norm; ``cfg.accum_steps`` > 1 accumulates gradients over
    that many steps before an update (optax.MultiSteps).

    ``cfg.parts`` (optional, e.g. ``{"generator": {}, "discriminator": {"lr": 1e-4}}``) gives each
    top-level entry of the params dict its own optimiser (``optax.multi_transform``): part ``k``
    uses ``cfg`` updated with ``cfg.parts[k]`` (any key but ``parts`` / ``accum_steps``), with its
    own state and schedule; ``accum_steps`` then applies to the whole. The params' top-level keys
    must equal the parts' keys (a ValueError at ``tx.init`` otherwise). The returned schedule
    (what the step logs as ``lr``) is that of ``cfg`` itself, without part overrides.
    """
    if cfg.get("parts", None):
        return _make_part_optimizer(cfg, total_steps, global_batch)
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


def _make_part_optimizer(cfg: ml_collections.ConfigDict, total_steps: int, global_batch: int
                         ) -> tuple[optax.GradientTransformation, Callable]:
    """``cfg.parts``: one optimiser per top-level params entry (see :func:`make_optimizer`)."""
    parts = dict(cfg.parts)
    base = {k: v for k, v in cfg.items() if k not in ("parts", "accum_steps")}
    txs = {}
    for name, over in parts.items():
        over = dict(over or {})
        bad = {"parts", "accum_steps"} & set(over)
        if bad:
            raise ValueError(f"config.optimizer.parts[{name!r}] sets {sorted(bad)}; these apply to the whole "
                             "optimiser, set them on config.optimizer instead.")
        txs[name], _ = make_optimizer(ml_collections.ConfigDict({**base, **over}), total_steps, global_batch)

    def labels(params):
        if not isinstance(params, dict) or set(params) != set(parts):
            have = sorted(params) if isinstance(params, dict) else type(params).__name__
            raise ValueError(f"config.optimizer.parts has keys {sorted(parts)} but the params' top-level keys "
                             f"are {have}; name one part per top-level params entry.")
        return {k: jax.tree.map(lambda _: k, v) for k, v in params.items()}

    tx = optax.multi_transform(txs, labels)
    accum = int(cfg.get("accum_steps", 1))
    if accum > 1:
        tx = optax.MultiSteps(tx, every_k_schedule=accum)
    return tx, make_schedule(cfg, total_steps, global_batch)

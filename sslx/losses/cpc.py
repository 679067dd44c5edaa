"""CPC's InfoNCE over a patch grid (van den Oord et al. 2018; Henaff et al. 2019).

For every image b, grid position (i, j) and offset k = 1..K with i + k < G,
the prediction ``preds[k-1, b, i, j]`` (= W_k c[b, i, j]) must pick out its
target ``z[b, i+k, j]`` among *all* patch embeddings of the (global) batch:
the other patches of the same image and every patch of the other images
(gathered over ``axis_name``). Positions with i + k >= G are masked out.
"""
from __future__ import annotations

from typing import Optional

import chex
import jax
import jax.numpy as jnp
from jax import lax

from sslx.losses.contrastive import l2_normalize


def cpc_loss(
    z: jax.Array,
    preds: jax.Array,
    *,
    temperature: float = 1.0,
    normalize: bool = False,
    axis_name: Optional[str] = None,
) -> tuple[jax.Array, dict]:
    """CPC InfoNCE.

    Args:
      z: [B, G, G, D] patch embeddings on this device (targets and negatives).
      preds: [K, B, G, G, D]; ``preds[k-1, b, i, j]`` predicts ``z[b, i+k, j]``.
      temperature: logits are ``<pred, z> / temperature``.
      normalize: L2-normalise predictions and embeddings first (cosine logits).
      axis_name: gather the candidates (all patches) from every device.

    Returns:
      (mean loss over the valid local (b, i, j, k), {"accuracy": top-1 of the
      positive, "accuracy_k1": the same for k = 1 only}). Every device has the
      same number of valid terms, so ``lax.pmean`` of the returned loss is the
      global-batch loss.
    """
    chex.assert_rank([z, preds], [4, 5])
    k_max, b, gh, gw, d = preds.shape
    chex.assert_shape(z, (b, gh, gw, d))
    if not 1 <= k_max < gh:
        raise ValueError(f"cpc_loss: need 1 <= K < G, got K={k_max} predictions for a {gh}-row grid.")
    ftype = jnp.promote_types(z.dtype, jnp.float32)
    z, preds = z.astype(ftype), preds.astype(ftype)
    if normalize:
        z, preds = l2_normalize(z), l2_normalize(preds)
    n_local = b * gh * gw
    flat_z = z.reshape(n_local, d)
    if axis_name is None:
        cands, offset = flat_z, 0
    else:
        cands = lax.all_gather(flat_z, axis_name, tiled=True)  # [N * B*G*G, D]
        offset = lax.axis_index(axis_name) * n_local
    logits = jnp.einsum("kbijd,nd->kbijn", preds, cands) / temperature  # [K, B, G, G, N*BGG]
    kk = jnp.arange(1, k_max + 1)[:, None, None, None]
    bb = jnp.arange(b)[None, :, None, None]
    ii = jnp.arange(gh)[None, None, :, None]
    jj = jnp.arange(gw)[None, None, None, :]
    valid = jnp.broadcast_to(ii + kk < gh, (k_max, b, gh, gw))
    target = offset + (bb * gh + jnp.minimum(ii + kk, gh - 1)) * gw + jj  # flat index of z[b, i+k, j]
    target = jnp.broadcast_to(target, (k_max, b, gh, gw))
    logp = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(logp, target[..., None], axis=-1)[..., 0]
    w = valid.astype(ftype)
    loss = jnp.sum(nll * w) / jnp.sum(w)
    correct = (jnp.argmax(logits, axis=-1) == target).astype(ftype)
    acc = jnp.sum(correct * w) / jnp.sum(w)
    acc1 = jnp.sum(correct[0] * w[0]) / jnp.sum(w[0])
    return loss, {"accuracy": acc, "accuracy_k1": acc1}

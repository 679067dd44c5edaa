"""On-device text corruptions (pure JAX, one key per sequence, vmappable)."""
from __future__ import annotations

from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np


def mlm_mask(key: jax.Array, tokens: jax.Array, *, mask_id: int, vocab_size: int,
             special_ids: Sequence[int], valid: Optional[jax.Array] = None, mask_prob: float = 0.15,
             mask_token_frac: float = 0.8, random_token_frac: float = 0.1
             ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """BERT's masked-LM corruption of one sequence ``tokens`` int [T].

    Each position that is not a special token (and is ``valid``, bool [T], when given) is
    chosen independently with probability ``mask_prob``. A chosen token becomes ``mask_id``
    with probability ``mask_token_frac``, a uniformly random *non-special* token with
    probability ``random_token_frac``, and stays unchanged otherwise (BERT: 15%, 80/10/10).

    Returns ``(inputs int32 [T], targets int32 [T] (= the original tokens), weights float32 [T]``
    (1.0 on chosen positions: the loss is taken only there)). vmap over a batch with one key
    per sequence (e.g. :func:`sslx.methods.example_keys`).
    """
    if not 0.0 <= mask_prob <= 1.0 or mask_token_frac < 0 or random_token_frac < 0 \
            or mask_token_frac + random_token_frac > 1.0:
        raise ValueError(f"mlm_mask: need 0 <= mask_prob <= 1 and mask_token_frac + random_token_frac <= 1, "
                         f"got {mask_prob}, {mask_token_frac}, {random_token_frac}.")
    specials = np.unique(np.asarray(list(special_ids), np.int64))
    if mask_id not in specials:
        specials = np.unique(np.append(specials, mask_id))
    regular = np.setdiff1d(np.arange(vocab_size), specials)
    if regular.size == 0:
        raise ValueError("mlm_mask: every vocabulary id is special; no token can be masked or drawn.")
    tokens = jnp.asarray(tokens).astype(jnp.int32)
    k_sel, k_kind, k_rand = jax.random.split(key, 3)
    maskable = ~jnp.isin(tokens, jnp.asarray(specials, jnp.int32))
    if valid is not None:
        maskable = maskable & valid.astype(bool)
    chosen = maskable & jax.random.bernoulli(k_sel, mask_prob, tokens.shape)
    u = jax.random.uniform(k_kind, tokens.shape)
    random_tok = jnp.asarray(regular, jnp.int32)[jax.random.randint(k_rand, tokens.shape, 0, regular.size)]
    replaced = jnp.where(u < mask_token_frac, jnp.int32(mask_id),
                         jnp.where(u < mask_token_frac + random_token_frac, random_tok, tokens))
    inputs = jnp.where(chosen, replaced, tokens)
    return inputs, tokens, chosen.astype(jnp.float32)

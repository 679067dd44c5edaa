"""Input / output word-embedding tables (word2vec's ``syn0`` and ``syn1neg``)."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


def _uniform_init(scale_over_dim: float):
    def init(key, shape, dtype=jnp.float32):
        bound = scale_over_dim / shape[-1]
        return jax.random.uniform(key, shape, dtype, -bound, bound)
    return init


class WordEmbeddings(nn.Module):
    """Two tables float32 [vocab_size, dim]: ``input`` (the word vectors, uniform in
    ``[-0.5 / dim, 0.5 / dim]`` as word2vec.c) and ``output`` (the context / prediction
    vectors, zeros as word2vec.c; ``output_init_scale`` > 0 draws them like ``input``).

    ``__call__(ids)`` returns the input vectors [..., dim]; ``output(ids)`` the output ones.
    """
    vocab_size: int
    dim: int
    output_init_scale: float = 0.0

    def setup(self):
        if self.vocab_size < 2 or self.dim < 1:
            raise ValueError(f"WordEmbeddings: need vocab_size >= 2 and dim >= 1, got {self.vocab_size}, "
                             f"{self.dim}.")
        self.input_table = self.param("input", _uniform_init(0.5), (self.vocab_size, self.dim))
        out_init = (_uniform_init(self.output_init_scale) if self.output_init_scale > 0
                    else nn.initializers.zeros)
        self.output_table = self.param("output", out_init, (self.vocab_size, self.dim))

    def __call__(self, ids: jax.Array) -> jax.Array:
        """Input vectors [..., dim] of int ``ids`` [...]."""
        return jnp.take(self.input_table, ids, axis=0)

    def output(self, ids: jax.Array) -> jax.Array:
        """Output vectors [..., dim] of int ``ids`` [...]."""
        return jnp.take(self.output_table, ids, axis=0)

    def both(self, ids: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(input, output) vectors of ``ids``: creates both tables at init."""
        return self(ids), self.output(ids)

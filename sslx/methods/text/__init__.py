"""Text objectives (one file each) on the :class:`sslx.methods.Method` interface."""
from sslx.methods.text.gpt import gpt
from sslx.methods.text.mlm import mlm
from sslx.methods.text.bidir_lm import bidir_lm
from sslx.methods.text.masked_sentence import masked_sentence
from sslx.methods.text.neighbor_sentence import neighbor_sentence
from sslx.methods.text.nsp import nsp
from sslx.methods.text.quick_thought import quick_thought
from sslx.methods.text.sentence_order import sentence_order
from sslx.methods.text.sop import sop
from sslx.methods.text.word_order import word_order

__all__ = ["gpt", "mlm"]
__all__ += ["bidir_lm", "masked_sentence", "neighbor_sentence", "nsp", "quick_thought", "sentence_order", "sop",
            "word_order"]
from sslx.methods.text.word2vec import cbow, skipgram  # noqa: E402

__all__ += ["cbow", "skipgram"]

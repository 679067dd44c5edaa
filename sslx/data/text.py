"""Host-side text data: corpora, tokenisers, segmentation, packing and batch order.

Corpora (read from a local data dir, ``$SSLX_DATA_DIR/text`` or ``<repo>/../shared/data/text``):

* :func:`load_text_corpus` -- one long string: ``tinyshakespeare`` (splits ``train`` = first
  90% of the characters, ``val`` = last 10%, ``all``), ``wikitext2`` and ``ptb``
  (``validation`` / ``test``; their training files are not available offline).
* :func:`load_sentence_dataset` -- labelled sentences: ``mr`` (rt-polarity, 5331 positive
  (label 1) + 5331 negative (label 0), split ``all``) and ``trec`` (``train`` 5452 /
  ``test`` 500 questions, 6 coarse classes, or 50 fine ones with ``fine=True``).
* :func:`load_tfds_text` -- any tensorflow-datasets text dataset prepared in ArrayRecord
  format (e.g. ``tiny_shakespeare``, ``wikipedia``), read through ``tfds.data_source``
  without TensorFlow.

Tokenisers share one small interface (``encode(str) -> int32 [n]``, ``decode``,
``vocab_size``, ``pad_id`` ...): :class:`CharTokenizer`, :class:`WordTokenizer` (a
frequency-cut vocabulary) and :class:`SubwordTokenizer` (WordPiece or BPE trained offline
with Hugging Face ``tokenizers``). Word and subword vocabularies start with the special
tokens ``[PAD] [UNK] [CLS] [SEP] [MASK]`` (ids 0..4).

Sequences: :func:`split_sentences` / :func:`split_documents` segment text;
:func:`pad_sequences` and :func:`pack_sequences` build fixed-length ``tokens`` int32
[N, L] with boolean ``mask`` [N, L] (static shapes); :func:`lm_windows` cuts a token
stream into windows. Batch order: :func:`window_starts` (host) and :func:`sample_windows`
(on device, inside the compiled step) draw language-model windows as a pure function of
(seed, step); row datasets use :func:`sslx.data.global_batch_indices` and
:func:`sslx.data.process_slice` as the image pipeline does.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np

from sslx.data.image import DATA_DIR_ENV, _REPO_ROOT

__all__ = [
    "SPECIAL_TOKENS", "CharTokenizer", "WordTokenizer", "SubwordTokenizer", "TextDataset",
    "default_text_dir", "load_text_corpus", "load_sentence_dataset", "load_tfds_text",
    "split_sentences", "split_documents", "pad_sequences", "pack_sequences", "lm_windows",
    "window_starts", "sample_windows", "train_subword_tokenizer",
]

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, UNK, CLS, SEP, MASK)

# name -> (folder, {split: file}); splits of single-file corpora are handled below.
_CORPORA = {
    "tinyshakespeare": ("tinyshakespeare", {"all": "input.txt"}),
    "wikitext2": ("wikitext-2", {"validation": "valid.txt", "test": "test.txt"}),
    "ptb": ("ptb", {"validation": "ptb.valid.txt", "test": "ptb.test.txt"}),
}
SHAKESPEARE_TRAIN_FRACTION = 0.9


# --------------------------------------------------------------------------
# Corpora
# --------------------------------------------------------------------------


def default_text_dir() -> Path:
    """``$SSLX_DATA_DIR/text`` if the variable is set, else ``<repo root>/../shared/data/text``."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env) / "text"
    return (_REPO_ROOT / ".." / "shared" / "data" / "text").resolve()


def _find_folder(folder: str, data_dir: str | os.PathLike | None) -> Path:
    base = Path(data_dir) if data_dir is not None else default_text_dir()
    for cand in (base / folder, base / "text" / folder):
        if cand.is_dir():
            return cand
    raise FileNotFoundError(
        f"text data folder {folder!r} not found under {str(base)!r} (looked in {base / folder} and "
        f"{base / 'text' / folder}). Fix: pass data_dir=... pointing at a folder holding {folder}/ "
        f"(e.g. ../shared/data/text), or set ${DATA_DIR_ENV} to the folder above text/.")


def load_text_corpus(name: str, split: str, data_dir: str | os.PathLike | None = None) -> str:
    """One corpus split as a single string.

    ``tinyshakespeare``: ``train`` (first 90% of the characters, as nanoGPT), ``val``
    (last 10%) or ``all``. ``wikitext2`` / ``ptb``: ``validation`` or ``test`` (the
    tokenised files, with ``<unk>``; training splits are not available offline).
    """
    if name not in _CORPORA:
        raise ValueError(f"text corpus {name!r} is unknown; choose one of {sorted(_CORPORA)} "
                         "(or load_sentence_dataset for mr / trec, load_tfds_text for tfds).")
    folder, files = _CORPORA[name]
    root = _find_folder(folder, data_dir)
    if name == "tinyshakespeare":
        if split not in ("train", "val", "all"):
            raise ValueError(f"tinyshakespeare: unknown split {split!r}; use 'train', 'val' or 'all'.")
        text = (root / files["all"]).read_text(encoding="utf-8")
        cut = int(len(text) * SHAKESPEARE_TRAIN_FRACTION)
        return {"train": text[:cut], "val": text[cut:], "all": text}[split]
    if split not in files:
        raise ValueError(f"{name}: unknown split {split!r}; available here: {sorted(files)}.")
    return (root / files[split]).read_text(encoding="utf-8")


@dataclasses.dataclass(frozen=True)
class TextDataset:
    """Labelled texts: ``texts`` (N strings), ``labels`` int32 [N], ``label_names`` (num_classes)."""
    texts: list
    labels: np.ndarray
    label_names: tuple
    name: str

    def __post_init__(self) -> None:
        labels = np.asarray(self.labels)
        if labels.shape != (len(self.texts),):
            raise ValueError(f"{self.name}: labels shape {labels.shape} != ({len(self.texts)},).")
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.label_names)):
            raise ValueError(f"{self.name}: labels must lie in [0, {len(self.label_names)}).")
        object.__setattr__(self, "labels", labels.astype(np.int32))

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def __len__(self) -> int:
        return len(self.texts)


def load_sentence_dataset(name: str, split: str = "all", data_dir: str | os.PathLike | None = None,
                          fine: bool = False) -> TextDataset:
    """Labelled sentences: ``mr`` (split ``all``; negatives then positives, labels 0 / 1)
    or ``trec`` (``train`` / ``test``; coarse labels in sorted order, or fine ones with ``fine``)."""
    if name == "mr":
        if split != "all":
            raise ValueError(f"mr: unknown split {split!r}; MR has no standard split, use 'all' "
                             "(evaluate with 10-fold cross-validation).")
        root = _find_folder("rt-polarity", data_dir)
        neg = _read_lines(root / "rt-polarity.neg")
        pos = _read_lines(root / "rt-polarity.pos")
        return TextDataset(neg + pos, np.array([0] * len(neg) + [1] * len(pos)), ("negative", "positive"), "mr")
    if name == "trec":
        files = {"train": "train_5500.label", "test": "TREC_10.label"}
        if split not in files:
            raise ValueError(f"trec: unknown split {split!r}; use 'train' or 'test'.")
        root = _find_folder("trec", data_dir)
        texts, tags = [], []
        for line in _read_lines(root / files[split], encoding="latin-1"):
            tag, _, text = line.partition(" ")
            if ":" not in tag:
                raise ValueError(f"trec {split}: line {line!r} does not start with 'COARSE:fine'.")
            tags.append(tag if fine else tag.split(":")[0])
            texts.append(text.strip())
        # The label set is fixed by the training file so train and test ids agree.
        all_tags = [ln.split(" ")[0] for ln in _read_lines(root / files["train"], encoding="latin-1")]
        names = tuple(sorted(set(t if fine else t.split(":")[0] for t in all_tags) | set(tags)))
        return TextDataset(texts, np.array([names.index(t) for t in tags]), names, f"trec/{split}")
    raise ValueError(f"sentence dataset {name!r} is unknown; choose 'mr' or 'trec'.")


def _read_lines(path: Path, encoding: str = "utf-8") -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} not found; check data_dir (see sslx.data.text.default_text_dir).")
    with open(path, encoding=encoding) as f:
        return [ln.strip() for ln in f if ln.strip()]


def load_tfds_text(name: str, split: str, data_dir: str | os.PathLike | None = None, *,
                   text_key: str = "text", label_key: Optional[str] = None,
                   download: bool = False) -> TextDataset:
    """A tensorflow-datasets text dataset (ArrayRecord, read by ``tfds.data_source``, no TensorFlow).

    Returns every record's ``text_key`` feature decoded as UTF-8, with ``label_key``
    (a ClassLabel) as labels, or all-zero labels with one class ``"text"`` when
    ``label_key`` is None (e.g. ``tiny_shakespeare``: one record per split).
    """
    import tensorflow_datasets as tfds

    dd = str(data_dir) if data_dir is not None else None
    try:
        src = tfds.data_source(name, split=split, data_dir=dd, download=download,
                               builder_kwargs={"file_format": "array_record"})
    except tfds.core.registered.DatasetNotFoundError as e:
        raise ValueError(f"tfds text dataset {name!r} not found under data_dir {dd!r}. Fix: prepare it on a "
                         f"machine with internet (`tfds build {name} --file_format=array_record`) and copy "
                         f"<data_dir>/{name}/<version>/ here, or pass download=True.") from e
    except (KeyError, FileNotFoundError, AssertionError) as e:
        raise FileNotFoundError(f"tfds text dataset {name!r}, split {split!r}: no prepared ArrayRecord data "
                                f"under data_dir {dd!r} ({type(e).__name__}: {e}); pass download=True "
                                "(needs internet).") from e
    features = src.dataset_info.features
    for key in [text_key] + ([label_key] if label_key else []):
        if key not in features:
            raise ValueError(f"tfds dataset {name!r} has features {list(features.keys())}, no {key!r}; "
                             "pass text_key=/label_key=.")
    records = [src[i] for i in range(len(src))]
    texts = [_to_str(r[text_key]) for r in records]
    if label_key:
        names = tuple(features[label_key].names)
        labels = np.array([int(r[label_key]) for r in records], np.int32)
    else:
        names, labels = ("text",), np.zeros(len(texts), np.int32)
    return TextDataset(texts, labels, names, f"{name}/{split}")


def _to_str(x: Any) -> str:
    if isinstance(x, (bytes, np.bytes_)):
        return bytes(x).decode("utf-8")
    if isinstance(x, np.ndarray) and x.dtype == object:
        return _to_str(x.item())
    return str(x)


# --------------------------------------------------------------------------
# Tokenisers
# --------------------------------------------------------------------------


class _Tokenizer:
    """Shared interface: ``encode``, ``decode``, ``vocab_size``, special ids."""
    itos: list

    def __init__(self, itos: Sequence[str]):
        self.itos = list(itos)
        self.stoi = {s: i for i, s in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("tokenizer vocabulary has duplicate entries.")

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def token_to_id(self, token: str) -> int:
        if token not in self.stoi:
            raise ValueError(f"token {token!r} is not in the vocabulary.")
        return self.stoi[token]

    def _special(self, tok: str) -> Optional[int]:
        return self.stoi.get(tok)

    pad_id = property(lambda self: self._special(PAD))
    unk_id = property(lambda self: self._special(UNK))
    cls_id = property(lambda self: self._special(CLS))
    sep_id = property(lambda self: self._special(SEP))
    mask_id = property(lambda self: self._special(MASK))

    @property
    def special_ids(self) -> np.ndarray:
        """int32 ids of the special tokens present in the vocabulary."""
        return np.array([self.stoi[t] for t in SPECIAL_TOKENS if t in self.stoi], np.int32)

    def encode_batch(self, texts: Iterable[str]) -> list[np.ndarray]:
        return [self.encode(t) for t in texts]

    def encode(self, text: str) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def decode(self, ids: Iterable[int]) -> str:  # pragma: no cover - overridden
        raise NotImplementedError


class CharTokenizer(_Tokenizer):
    """Character-level: the vocabulary is the sorted set of characters of a text
    (nanoGPT's shakespeare_char: 65 characters), optionally preceded by special tokens."""

    @classmethod
    def from_text(cls, text: str, specials: Sequence[str] = ()) -> "CharTokenizer":
        return cls(list(specials) + sorted(set(text)))

    def encode(self, text: str) -> np.ndarray:
        """str -> int32 [len(text)]; an unknown character maps to [UNK] or raises ValueError."""
        unk = self.unk_id
        lut = self.stoi
        try:
            return np.fromiter((lut[c] for c in text), np.int32, count=len(text))
        except KeyError:
            if unk is None:
                bad = sorted(set(text) - set(lut))[:10]
                raise ValueError(f"CharTokenizer.encode: characters {bad} are not in the vocabulary "
                                 f"and it has no {UNK}; build it with specials=({UNK!r},) or from this text.")
            return np.fromiter((lut.get(c, unk) for c in text), np.int32, count=len(text))

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.itos[int(i)] for i in np.asarray(ids).reshape(-1))


_WORD_RE = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]", re.UNICODE)


def word_split(text: str, lower: bool = True) -> list[str]:
    """Words and single punctuation marks (``"Don't stop!" -> ["don't", "stop", "!"]``)."""
    return _WORD_RE.findall(text.lower() if lower else text)


class WordTokenizer(_Tokenizer):
    """Word level with a frequency-cut vocabulary: ``[PAD] [UNK] [CLS] [SEP] [MASK]`` then the
    words seen at least ``min_freq`` times, most frequent first (ties alphabetical), at most
    ``max_size`` entries in all. Unknown words map to [UNK]."""

    def __init__(self, itos: Sequence[str], lower: bool = True, counts: Optional[dict] = None):
        super().__init__(itos)
        self.lower = lower
        self.counts = counts or {}

    @classmethod
    def from_texts(cls, texts: Iterable[str], min_freq: int = 1, max_size: Optional[int] = None,
                   lower: bool = True) -> "WordTokenizer":
        if min_freq < 1:
            raise ValueError(f"WordTokenizer: min_freq must be >= 1, got {min_freq}.")
        if max_size is not None and max_size <= len(SPECIAL_TOKENS):
            raise ValueError(f"WordTokenizer: max_size {max_size} leaves no room for words after the "
                             f"{len(SPECIAL_TOKENS)} special tokens.")
        counts = collections.Counter(w for t in texts for w in word_split(t, lower))
        words = sorted((w for w, c in counts.items() if c >= min_freq and w not in SPECIAL_TOKENS),
                       key=lambda w: (-counts[w], w))
        if max_size is not None:
            words = words[: max_size - len(SPECIAL_TOKENS)]
        return cls(list(SPECIAL_TOKENS) + words, lower, dict(counts))

    def tokenize(self, text: str) -> list[str]:
        return word_split(text, self.lower)

    def encode(self, text: str) -> np.ndarray:
        unk = self.unk_id
        return np.array([self.stoi.get(w, unk) for w in self.tokenize(text)], np.int32)

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self.itos[int(i)] for i in np.asarray(ids).reshape(-1))


class SubwordTokenizer(_Tokenizer):
    """WordPiece or BPE from Hugging Face ``tokenizers`` (trained offline on a corpus by
    :func:`train_subword_tokenizer`). Ids 0..4 are the special tokens."""

    def __init__(self, hf_tokenizer: Any):
        self.hf = hf_tokenizer
        vocab = hf_tokenizer.get_vocab()
        super().__init__([t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])])

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self.hf.encode(text, add_special_tokens=False).ids, np.int32)

    def encode_batch(self, texts: Iterable[str]) -> list[np.ndarray]:
        return [np.asarray(e.ids, np.int32) for e in self.hf.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Iterable[int]) -> str:
        return self.hf.decode([int(i) for i in np.asarray(ids).reshape(-1)], skip_special_tokens=False)

    def to_str(self) -> str:
        return self.hf.to_str()

    @classmethod
    def from_str(cls, s: str) -> "SubwordTokenizer":
        from tokenizers import Tokenizer
        return cls(Tokenizer.from_str(s))


def train_subword_tokenizer(texts: Iterable[str], kind: str = "wordpiece", vocab_size: int = 8000,
                            min_frequency: int = 2, lower: bool = True) -> SubwordTokenizer:
    """Train a WordPiece (``##`` continuation pieces, BERT style) or BPE tokenizer on ``texts``.

    Pre-tokenisation splits on whitespace and punctuation; ``lower`` lower-cases first.
    Special tokens get ids 0..4. Deterministic for a given corpus: the same vocabulary, ids
    and merges in every process and with ``TOKENIZERS_PARALLELISM`` on or off.

    Why this needs care: the ``tokenizers`` trainers give the affixed single characters
    (``##x`` for WordPiece, ``x</w>`` for BPE) ids in the order of a per-process randomly
    seeded hash map and break ties between equally frequent merges by id. Without the fix
    below the ids are permuted from run to run (so an embedding table initialised from a fixed
    seed is not), and tied merges at the vocabulary cut-off come out differently. Here those
    affixed characters are registered, sorted, right after the special tokens, which fixes
    every id and every tie-break; the tokenizer is then rebuilt from the trained vocabulary
    (and merges), with only the five real special tokens marked special.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    if kind not in ("wordpiece", "bpe"):
        raise ValueError(f"train_subword_tokenizer: kind {kind!r} is unknown; use 'wordpiece' or 'bpe'.")
    texts = list(texts)
    normalizer = normalizers.Sequence([normalizers.NFKC()] + ([normalizers.Lowercase()] if lower else []))
    pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()])
    affixed: set[str] = set()
    for text in texts:
        for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)):
            if kind == "wordpiece":
                affixed.update("##" + c for c in word[1:])
            elif word:
                affixed.add(word[-1] + "</w>")
    fixed = list(SPECIAL_TOKENS) + sorted(affixed)

    def build(model: Any) -> Any:
        tok = Tokenizer(model)
        tok.normalizer, tok.pre_tokenizer = normalizer, pre_tokenizer
        tok.decoder = decoders.WordPiece() if kind == "wordpiece" else decoders.BPEDecoder(suffix="</w>")
        return tok

    if kind == "wordpiece":
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                            special_tokens=fixed, show_progress=False)
        tok = build(models.WordPiece(unk_token=UNK))
    else:
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=fixed,
                                      show_progress=False, end_of_word_suffix="</w>")
        tok = build(models.BPE(unk_token=UNK, end_of_word_suffix="</w>"))
    tok.train_from_iterator(texts, trainer=trainer)
    trained = json.loads(tok.to_str())["model"]
    vocab = {t: int(i) for t, i in trained["vocab"].items()}
    if kind == "wordpiece":
        model = models.WordPiece(vocab, unk_token=UNK, continuing_subword_prefix="##")
    else:
        merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in trained["merges"]]
        model = models.BPE(vocab, merges, unk_token=UNK, end_of_word_suffix="</w>")
    out = build(model)
    out.add_special_tokens(list(SPECIAL_TOKENS))
    return SubwordTokenizer(out)


# --------------------------------------------------------------------------
# Segmentation
# --------------------------------------------------------------------------

_ABBREV = {"mr", "mrs", "ms", "dr", "st", "vs", "etc", "e.g", "i.e", "jr", "sr", "prof", "no", "mt"}
_SENT_END = re.compile(r"([.!?]+[\"')\]]*)(\s+)")


def split_sentences(text: str) -> list[str]:
    """Split running text into sentences.

    A sentence ends at ``.``, ``!`` or ``?`` (with any closing quotes/brackets) followed by
    whitespace and then an upper-case letter, a digit or an opening quote, except after
    common abbreviations (Mr., Dr., e.g. ...) and inside runs of initials ("J. R. R. Tolkien";
    a lone "Z." ends a sentence). Newlines inside a
    sentence become spaces; empty pieces are dropped.
    """
    text = " ".join(text.split())
    out, start = [], 0
    for m in _SENT_END.finditer(text):
        end = m.end(1)
        nxt = text[m.end():m.end() + 1]
        if not nxt or not (nxt.isupper() or nxt.isdigit() or nxt in "\"'(["):
            continue
        words = text[start:m.start(1)].split(" ")
        last = words[-1].lower().rstrip(".")
        if m.group(1).startswith(".") and (last in _ABBREV or _is_initial(last, words, text[m.end():])):
            continue
        out.append(text[start:end].strip())
        start = m.end()
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return [s for s in out if s]


def _is_initial(last: str, words: list, rest: str) -> bool:
    """A single letter ending a run of initials ("J. R. R. Tolkien"), not "I did Z. Then"."""
    if len(last) != 1 or not last.isalpha():
        return False
    nxt = rest.split(" ", 1)[0]
    prev = words[-2] if len(words) > 1 else ""
    single = lambda w: len(w) == 2 and w[0].isalpha() and w[1] == "."
    return single(nxt) or single(prev)


def split_documents(text: str) -> list[str]:
    """Documents (or paragraphs) separated by one or more blank lines."""
    return [d.strip() for d in re.split(r"\n\s*\n", text) if d.strip()]


# --------------------------------------------------------------------------
# Fixed-length sequences
# --------------------------------------------------------------------------


def _with_specials(seq: np.ndarray, cls_id: Optional[int], sep_id: Optional[int]) -> np.ndarray:
    parts = ([np.array([cls_id], np.int32)] if cls_id is not None else []) + [np.asarray(seq, np.int32)]
    if sep_id is not None:
        parts.append(np.array([sep_id], np.int32))
    return np.concatenate(parts)


def pad_sequences(seqs: Sequence[np.ndarray], seq_len: int, pad_id: int, *, cls_id: Optional[int] = None,
                  sep_id: Optional[int] = None, truncate: bool = False) -> dict[str, np.ndarray]:
    """One sequence per row: ``[CLS] ids [SEP]`` (when given) then padding.

    Returns ``tokens`` int32 [N, seq_len], ``mask`` bool [N, seq_len] (True = real token)
    and ``lengths`` int32 [N]. A sequence longer than ``seq_len`` raises ValueError unless
    ``truncate=True`` (then it is cut, keeping the final [SEP]).
    """
    n = len(seqs)
    tokens = np.full((n, seq_len), pad_id, np.int32)
    mask = np.zeros((n, seq_len), bool)
    lengths = np.zeros(n, np.int32)
    for i, s in enumerate(seqs):
        full = _with_specials(s, cls_id, sep_id)
        if len(full) > seq_len:
            if not truncate:
                raise ValueError(f"pad_sequences: sequence {i} has {len(full)} tokens (with specials) > "
                                 f"seq_len {seq_len}; raise seq_len or pass truncate=True.")
            full = np.concatenate([full[: seq_len - 1], full[-1:]]) if sep_id is not None else full[:seq_len]
        tokens[i, : len(full)] = full
        mask[i, : len(full)] = True
        lengths[i] = len(full)
    return {"tokens": tokens, "mask": mask, "lengths": lengths}


def pack_sequences(seqs: Sequence[np.ndarray], seq_len: int, pad_id: int, *, cls_id: Optional[int] = None,
                   sep_id: Optional[int] = None, split_long: bool = False) -> dict[str, np.ndarray]:
    """Greedily pack whole sequences (in order) into rows of ``seq_len`` tokens.

    Each row is ``[CLS] s1 [SEP] s2 [SEP] ...`` (specials when given) padded with
    ``pad_id``. Returns ``tokens`` int32 [R, seq_len], ``mask`` bool [R, seq_len] and
    ``segment_ids`` int32 [R, seq_len] (1, 2, ... per packed sequence, 0 on padding). A
    sequence that does not fit an empty row raises ValueError, unless ``split_long``
    (then it is cut into consecutive pieces that each fill a row).
    """
    head = 1 if cls_id is not None else 0
    tail = 1 if sep_id is not None else 0
    room = seq_len - head - tail
    if room < 1:
        raise ValueError(f"pack_sequences: seq_len {seq_len} leaves no room for tokens after the specials.")
    pieces: list[np.ndarray] = []
    for i, s in enumerate(seqs):
        s = np.asarray(s, np.int32)
        if len(s) + tail > seq_len - head:
            if not split_long:
                raise ValueError(f"pack_sequences: sequence {i} has {len(s)} tokens, more than fit a row of "
                                 f"{seq_len} (with specials); pass split_long=True or raise seq_len.")
            pieces.extend(s[j: j + room] for j in range(0, len(s), room))
        elif len(s):
            pieces.append(s)
    rows: list[list[np.ndarray]] = []
    used = seq_len
    for p in pieces:
        need = len(p) + tail
        if used + need > seq_len:
            rows.append([])
            used = head
        rows[-1].append(p)
        used += need
    r = len(rows)
    tokens = np.full((r, seq_len), pad_id, np.int32)
    segs = np.zeros((r, seq_len), np.int32)
    for i, row in enumerate(rows):
        pos = 0
        if cls_id is not None:
            tokens[i, 0], segs[i, 0] = cls_id, 1
            pos = 1
        for j, p in enumerate(row, start=1):
            full = np.concatenate([p, [sep_id]]) if sep_id is not None else p
            tokens[i, pos: pos + len(full)] = full
            segs[i, pos: pos + len(full)] = j
            pos += len(full)
    return {"tokens": tokens, "mask": segs > 0, "segment_ids": segs}


def lm_windows(ids: np.ndarray, seq_len: int, stride: Optional[int] = None) -> np.ndarray:
    """Consecutive windows int32 [N, seq_len] of a token stream (``stride`` default ``seq_len``).

    Window ``i`` starts at ``i * stride``; trailing tokens that do not fill a whole window are
    not used (``N = (len - seq_len) // stride + 1``). A stream shorter than ``seq_len`` raises.
    """
    ids = np.asarray(ids, np.int32)
    stride = stride or seq_len
    if len(ids) < seq_len:
        raise ValueError(f"lm_windows: stream of {len(ids)} tokens is shorter than seq_len {seq_len}.")
    starts = np.arange(0, len(ids) - seq_len + 1, stride)
    return ids[starts[:, None] + np.arange(seq_len)[None, :]]


# --------------------------------------------------------------------------
# Deterministic batches of language-model windows
# --------------------------------------------------------------------------


def window_starts(step: int, num_tokens: int, global_batch: int, window: int, seed: int) -> np.ndarray:
    """Start offsets int64 [global_batch] of the windows of the global batch at ``step``.

    Uniform in ``[0, num_tokens - window]`` from ``np.random.default_rng((seed, step))``:
    a pure function of its arguments (resuming reproduces batches). Slice per process with
    :func:`sslx.data.process_slice`.
    """
    if window > num_tokens:
        raise ValueError(f"window_starts: window {window} > num_tokens {num_tokens}.")
    if step < 0 or seed < 0 or global_batch < 1:
        raise ValueError(f"window_starts: need step >= 0, seed >= 0, global_batch >= 1; got "
                         f"{step}, {seed}, {global_batch}.")
    return np.random.default_rng((seed, step)).integers(0, num_tokens - window + 1, size=global_batch)


def sample_windows(key: Any, tokens: Any, rows: Any, window: int) -> Any:
    """On device: windows int32 [len(rows), window] of the token stream ``tokens`` [N].

    Row ``r`` (a *global* example index) starts at ``randint(fold_in(key, r), 0, N - window + 1)``,
    so a batch does not depend on how its rows are split over devices or processes.
    """
    import jax
    import jax.numpy as jnp

    n = tokens.shape[0]
    if window > n:
        raise ValueError(f"sample_windows: window {window} > stream length {n}.")

    def one(r):
        start = jax.random.randint(jax.random.fold_in(key, r), (), 0, n - window + 1)
        return jax.lax.dynamic_slice(tokens, (start,), (window,))

    return jax.vmap(one)(jnp.asarray(rows)).astype(jnp.int32)


def save_tokenizer(tok: _Tokenizer, path: str | os.PathLike) -> None:
    """Write a tokenizer as JSON (``kind`` + vocabulary, or the HF tokenizer string)."""
    if isinstance(tok, SubwordTokenizer):
        d = {"kind": "subword", "hf": tok.to_str()}
    elif isinstance(tok, WordTokenizer):
        d = {"kind": "word", "itos": tok.itos, "lower": tok.lower}
    else:
        d = {"kind": "char", "itos": tok.itos}
    Path(path).write_text(json.dumps(d))


def load_tokenizer(path: str | os.PathLike) -> _Tokenizer:
    """Inverse of :func:`save_tokenizer`."""
    d = json.loads(Path(path).read_text())
    if d["kind"] == "subword":
        return SubwordTokenizer.from_str(d["hf"])
    if d["kind"] == "word":
        return WordTokenizer(d["itos"], d["lower"])
    return CharTokenizer(d["itos"])

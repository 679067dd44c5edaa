"""Text data: corpora, tokenisers, segmentation, packing, deterministic window batches, tfds path."""
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslx.data import process_slice
from sslx.data import text as T

CORPUS = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
          "First Citizen:\nYou are all resolved rather to die than to famish?\n")


def _write_corpora(root):
    (root / "tinyshakespeare").mkdir(parents=True)
    (root / "tinyshakespeare" / "input.txt").write_text(CORPUS * 3)
    (root / "rt-polarity").mkdir()
    (root / "rt-polarity" / "rt-polarity.pos").write_text("a gorgeous film .\nfunny and moving .\n")
    (root / "rt-polarity" / "rt-polarity.neg").write_text("dull , dull , dull .\nno .\nbad acting .\n")
    (root / "trec").mkdir()
    (root / "trec" / "train_5500.label").write_bytes(
        "NUM:dist How far is it ?\nHUM:ind Who was Galileo ?\nLOC:city Where is Ath\xe8nes ?\n".encode("latin-1"))
    (root / "trec" / "TREC_10.label").write_text("HUM:desc Who is he ?\nNUM:date When ?\n")
    (root / "wikitext-2").mkdir()
    (root / "wikitext-2" / "valid.txt").write_text(" = Title = \n the <unk> cat .\n")


def test_corpora_from_a_written_data_dir(tmp_path, monkeypatch):
    _write_corpora(tmp_path / "text")
    full = CORPUS * 3
    cut = int(0.9 * len(full))
    assert T.load_text_corpus("tinyshakespeare", "train", tmp_path / "text") == full[:cut]
    assert T.load_text_corpus("tinyshakespeare", "val", tmp_path) == full[cut:]  # parent folder works too
    monkeypatch.setenv("SSLX_DATA_DIR", str(tmp_path))
    assert T.default_text_dir() == tmp_path / "text"
    assert T.load_text_corpus("tinyshakespeare", "all") == full
    assert "<unk>" in T.load_text_corpus("wikitext2", "validation")
    mr = T.load_sentence_dataset("mr")
    assert len(mr) == 5 and mr.num_classes == 2
    np.testing.assert_array_equal(mr.labels, [0, 0, 0, 1, 1])
    assert mr.texts[0] == "dull , dull , dull ." and mr.texts[-1] == "funny and moving ."
    tr = T.load_sentence_dataset("trec", "train")
    te = T.load_sentence_dataset("trec", "test")
    assert tr.label_names == ("HUM", "LOC", "NUM") and tr.texts[2] == "Where is Ath\xe8nes ?"
    np.testing.assert_array_equal(tr.labels, [2, 0, 1])
    np.testing.assert_array_equal(te.labels, [0, 2])  # same ids as train
    fine = T.load_sentence_dataset("trec", "test", fine=True)
    assert "HUM:desc" in fine.label_names and fine.num_classes == 5


def test_corpus_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_dir"):
        T.load_text_corpus("tinyshakespeare", "train", tmp_path)
    with pytest.raises(ValueError, match="tinyshakespeare"):
        T.load_text_corpus("shakespear", "train", tmp_path)
    _write_corpora(tmp_path)
    with pytest.raises(ValueError, match="'train', 'val'"):
        T.load_text_corpus("tinyshakespeare", "test", tmp_path)
    with pytest.raises(ValueError, match="validation"):
        T.load_text_corpus("wikitext2", "train", tmp_path)
    with pytest.raises(ValueError, match="10-fold"):
        T.load_sentence_dataset("mr", "train", tmp_path)


def test_real_corpora(shared_data):
    root = shared_data / "text"
    train = T.load_text_corpus("tinyshakespeare", "train", root)
    val = T.load_text_corpus("tinyshakespeare", "val", root)
    assert (len(train), len(val)) == (1003854, 111540)  # nanoGPT's split
    tok = T.CharTokenizer.from_text(train + val)
    assert tok.vocab_size == 65
    mr = T.load_sentence_dataset("mr", data_dir=root)
    assert len(mr) == 10662 and mr.labels.sum() == 5331
    tr = T.load_sentence_dataset("trec", "train", root)
    assert len(tr) == 5452 and tr.num_classes == 6
    assert np.bincount(tr.labels).tolist() == [86, 1162, 1250, 1223, 835, 896]  # ABBR DESC ENTY HUM LOC NUM
    assert len(T.load_sentence_dataset("trec", "test", root)) == 500
    ptb = T.load_text_corpus("ptb", "validation", root).split("\n")
    assert sum(len(line.split()) for line in ptb) == 70390


def test_char_tokenizer_roundtrip_and_unknowns():
    tok = T.CharTokenizer.from_text(CORPUS)
    ids = tok.encode(CORPUS)
    assert ids.dtype == np.int32 and len(ids) == len(CORPUS)
    assert tok.decode(ids) == CORPUS
    assert tok.itos == sorted(set(CORPUS))
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.encode("Z#")
    tok2 = T.CharTokenizer.from_text(CORPUS, specials=T.SPECIAL_TOKENS)
    assert tok2.encode("Z")[0] == tok2.unk_id == 1 and tok2.pad_id == 0 and tok2.mask_id == 4


def test_word_tokenizer_frequency_cut():
    texts = ["the cat sat", "the cat ran", "the dog ran!", "a bird"]
    tok = T.WordTokenizer.from_texts(texts, min_freq=2)
    assert tok.itos[:5] == list(T.SPECIAL_TOKENS)
    assert tok.itos[5:] == ["the", "cat", "ran"]  # by count, ties alphabetical; singletons cut
    np.testing.assert_array_equal(tok.encode("The dog ran"), [5, 1, 7])
    capped = T.WordTokenizer.from_texts(texts, max_size=7)
    assert capped.vocab_size == 7 and capped.itos[5:] == ["the", "cat"]
    assert T.word_split("Don't stop!") == ["don't", "stop", "!"]
    with pytest.raises(ValueError, match="max_size"):
        T.WordTokenizer.from_texts(texts, max_size=5)


@pytest.mark.parametrize("kind", ["wordpiece", "bpe"])
def test_subword_tokenizer_trained_offline(kind, tmp_path):
    texts = [CORPUS] * 5 + ["speaking speaks speaker unspeakable"] * 3
    tok = T.train_subword_tokenizer(texts, kind=kind, vocab_size=120, min_frequency=1)
    assert tok.itos[:5] == list(T.SPECIAL_TOKENS) and tok.mask_id == 4
    assert 30 < tok.vocab_size <= 120
    ids = tok.encode("speak the unspeakable")
    assert ids.dtype == np.int32 and np.all(ids >= 5)
    # A word outside the training words is split into several pieces, and decoding restores it.
    assert len(tok.encode("unspeakable")) >= 1
    assert tok.decode(ids).replace(" ", "") == "speaktheunspeakable"
    T.save_tokenizer(tok, tmp_path / "tok.json")
    again = T.load_tokenizer(tmp_path / "tok.json")
    np.testing.assert_array_equal(again.encode("speak the unspeakable"), ids)
    with pytest.raises(ValueError, match="wordpiece"):
        T.train_subword_tokenizer(texts, kind="unigram")


_TIED_WORDS = "speak speaker speaking unspeakable citizen proceed further resolved famish rather".split()
_TIED_TEXTS = [" ".join(_TIED_WORDS[(i * 3) % 10:] + _TIED_WORDS[:(i * 3) % 10]) + " zq xv " for i in range(10)]


@pytest.mark.parametrize("kind", ["wordpiece", "bpe"])
def test_subword_tokenizer_is_deterministic_across_calls_and_processes(kind):
    """The tokenizers trainers order the affixed characters by a randomly seeded hash map and
    break tied merges by id; on this corpus (every word equally frequent) the unfixed trainer
    gave 4 different vocabularies in 4 calls. Ours must give one, in-process and in a fresh
    process, and every affixed single character must sit right after the special tokens, sorted."""
    import subprocess
    import sys

    runs = {T.train_subword_tokenizer(_TIED_TEXTS, kind=kind, vocab_size=60, min_frequency=1).to_str()
            for _ in range(3)}
    code = ("import sys; from sslx.data import text as T; import tests.test_text_data as t; "
            f"sys.stdout.write(T.train_subword_tokenizer(t._TIED_TEXTS, kind={kind!r}, vocab_size=60, "
            "min_frequency=1).to_str())")
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=str(repo))
    runs.add(out.stdout)
    assert len(runs) == 1
    tok = T.train_subword_tokenizer(_TIED_TEXTS, kind=kind, vocab_size=60, min_frequency=1)
    letters = sorted({c for w in _TIED_WORDS + ["zq", "xv"] for c in (w[1:] if kind == "wordpiece" else w[-1])})
    affixed = [("##" + c) if kind == "wordpiece" else (c + "</w>") for c in letters]
    assert tok.itos[5:5 + len(affixed)] == affixed
    assert tok.decode(tok.encode("speak")).replace(" ", "") == "speak"
    # Only the five real special tokens are special: an affixed piece typed into the text is not matched whole.
    assert list(tok.special_ids) == [0, 1, 2, 3, 4]
    assert len(tok.encode(affixed[0])) > 1


def test_split_sentences_and_documents():
    text = ("Finally I did Z. Then I did Y! Mr. Smith said \"I did X.\" Was it 3 p.m. or so? Yes.\n"
            "It was J. R. R. Tolkien's book.")
    assert T.split_sentences(text) == [
        "Finally I did Z.", "Then I did Y!", "Mr. Smith said \"I did X.\"", "Was it 3 p.m. or so?", "Yes.",
        "It was J. R. R. Tolkien's book."]
    assert T.split_sentences("no end mark") == ["no end mark"]
    assert T.split_sentences("Finally I did Z. Then I did Y. I did X.") == [
        "Finally I did Z.", "Then I did Y.", "I did X."]
    assert T.split_documents("a b.\nc.\n\n\nd e.\n \nf") == ["a b.\nc.", "d e.", "f"]


def test_pad_sequences_static_shapes():
    seqs = [np.array([7, 8, 9]), np.array([5]), np.array([6, 6, 6, 6, 6])]
    out = T.pad_sequences(seqs, 7, pad_id=0, cls_id=2, sep_id=3)
    np.testing.assert_array_equal(out["tokens"], [[2, 7, 8, 9, 3, 0, 0], [2, 5, 3, 0, 0, 0, 0],
                                                  [2, 6, 6, 6, 6, 6, 3]])
    np.testing.assert_array_equal(out["mask"], out["tokens"] != 0)
    np.testing.assert_array_equal(out["lengths"], [5, 3, 7])
    with pytest.raises(ValueError, match="truncate=True"):
        T.pad_sequences(seqs, 6, pad_id=0, cls_id=2, sep_id=3)
    cut = T.pad_sequences(seqs, 6, pad_id=0, cls_id=2, sep_id=3, truncate=True)
    np.testing.assert_array_equal(cut["tokens"][2], [2, 6, 6, 6, 6, 3])


def test_pack_sequences():
    seqs = [np.array([11, 12]), np.array([13, 14, 15]), np.array([16]), np.array([17, 18, 19, 20])]
    out = T.pack_sequences(seqs, 8, pad_id=0, cls_id=2, sep_id=3)
    np.testing.assert_array_equal(out["tokens"], [[2, 11, 12, 3, 13, 14, 15, 3],
                                                  [2, 16, 3, 17, 18, 19, 20, 3]])
    np.testing.assert_array_equal(out["segment_ids"], [[1, 1, 1, 1, 2, 2, 2, 2], [1, 1, 1, 2, 2, 2, 2, 2]])
    assert out["mask"].all()
    # Every token appears exactly once, in order.
    flat = out["tokens"][out["mask"] & (out["tokens"] > 3)]
    np.testing.assert_array_equal(flat, np.concatenate(seqs))
    with pytest.raises(ValueError, match="split_long"):
        T.pack_sequences([np.arange(10) + 5], 8, pad_id=0, cls_id=2, sep_id=3)
    long = T.pack_sequences([np.arange(10) + 5], 8, pad_id=0, cls_id=2, sep_id=3, split_long=True)
    np.testing.assert_array_equal(long["tokens"][long["tokens"] > 3], np.arange(10) + 5)
    assert long["tokens"].shape == (2, 8)
    np.testing.assert_array_equal(T.lm_windows(np.arange(10), 4), [[0, 1, 2, 3], [4, 5, 6, 7]])
    np.testing.assert_array_equal(T.lm_windows(np.arange(6), 4, stride=1)[-1], [2, 3, 4, 5])


def test_window_batches_are_pure_functions_of_seed_and_step():
    a = T.window_starts(5, 1000, 8, 65, seed=1)
    np.testing.assert_array_equal(a, T.window_starts(5, 1000, 8, 65, seed=1))
    assert not np.array_equal(a, T.window_starts(6, 1000, 8, 65, seed=1))
    assert not np.array_equal(a, T.window_starts(5, 1000, 8, 65, seed=2))
    assert a.min() >= 0 and a.max() <= 1000 - 65
    halves = [process_slice(a, i, 2) for i in range(2)]
    np.testing.assert_array_equal(np.concatenate(halves), a)
    stream = jnp.arange(500, dtype=jnp.int32)
    key = jax.random.PRNGKey(3)
    full = np.asarray(T.sample_windows(key, stream, jnp.arange(8), 17))
    assert full.shape == (8, 17)
    np.testing.assert_array_equal(np.diff(full, axis=1), 1)  # contiguous windows
    assert full[:, 0].min() >= 0 and full[:, -1].max() <= 499
    # Row r is the same window whichever subset of rows is asked for (device/process split).
    np.testing.assert_array_equal(np.asarray(T.sample_windows(key, stream, jnp.arange(4, 8), 17)), full[4:])
    assert len(np.unique(full[:, 0])) > 4
    # Uniform start offsets over many rows.
    starts = np.asarray(T.sample_windows(key, stream, jnp.arange(4000), 101))[:, 0]
    assert starts.min() == 0 and starts.max() == 399
    assert abs(starts.mean() - 199.5) < 8


@pytest.fixture(scope="module")
def tfds_text_dir(tmp_path_factory):
    tfds = pytest.importorskip("tensorflow_datasets")
    data_dir = tmp_path_factory.mktemp("tfds_text")
    written = {"train": [("to be or not to be", 1), ("that is the question", 0), ("whether tis nobler", 1)],
               "test": [("in the mind to suffer", 0)]}

    class SslxTinyText(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
                {"text": tfds.features.Text(), "label": tfds.features.ClassLabel(names=["neg", "pos"])}))

        def _split_generators(self, dl_manager):
            return {s: self._generate_examples(s) for s in written}

        def _generate_examples(self, split):
            for i, (t, lb) in enumerate(written[split]):
                yield i, {"text": t, "label": lb}

    SslxTinyText(data_dir=str(data_dir), file_format="array_record").download_and_prepare()
    return data_dir, SslxTinyText.name, written


def test_tfds_text_path(tfds_text_dir):
    data_dir, name, written = tfds_text_dir
    ds = T.load_tfds_text(name, "train", data_dir, label_key="label")
    assert ds.label_names == ("neg", "pos")
    assert sorted(zip(ds.texts, ds.labels.tolist())) == sorted(written["train"])
    plain = T.load_tfds_text(name, "test", data_dir)
    assert plain.texts == ["in the mind to suffer"] and plain.num_classes == 1
    tok = T.WordTokenizer.from_texts(ds.texts)
    assert tok.decode(tok.encode(ds.texts[0])) == ds.texts[0]
    with pytest.raises(ValueError, match="no 'sentence'"):
        T.load_tfds_text(name, "train", data_dir, text_key="sentence")
    with pytest.raises(ValueError, match="not found"):
        T.load_tfds_text("sslx_no_such_text", "train", data_dir)

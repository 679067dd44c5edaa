"""Train word2vec (CBOW, skip-gram) and evaluate the vectors (not a test).

  python scripts/reproduce_word2vec.py --variants cbow,skipgram --steps 1500 --out docs/results_word2vec.md

Corpus: one lower-cased word stream of tiny shakespeare (all) + the MR sentences + the
WikiText-2 validation split (those of ``config.dataset.corpora`` found under the data dir),
vocabulary = words with count >= ``dataset.min_count`` (``WordTokenizer``), ``[UNK]`` dropped
from the stream. Training: the config's method on the train step (``ParallelStep`` over all
local devices), batches from :func:`sslx.methods.text.word2vec.word2vec_batch` (pure function
of seed and step). Evaluation: cosine nearest neighbours of a few words, and the MR sentiment
probe (10-fold CV logistic regression, ``sslx.eval.text``) on averaged word vectors, against the
same average of the random initial vectors and a bag-of-words baseline. MR's sentences are
part of the (unlabelled) training stream. Writes a markdown table with wall times and the
machine's load average.
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from sslx.configs import word2vec as w2v_cfg  # noqa: E402
from sslx.data.text import WordTokenizer, load_sentence_dataset, load_text_corpus  # noqa: E402
from sslx.eval.text import bag_of_words_accuracy, cv_logistic_accuracy, sentence_features  # noqa: E402
from sslx.methods import get_method  # noqa: E402
from sslx.methods.text.word2vec import nearest_neighbours, word2vec_batch  # noqa: E402
from sslx.train import ParallelStep, create_train_state, make_optimizer, make_step_fn  # noqa: E402


def load_corpus(corpora, data_dir=None) -> tuple[list, list]:
    """(texts of the corpora found, names used)."""
    texts, used = [], []
    for name in corpora:
        try:
            if name == "tinyshakespeare":
                texts.append(load_text_corpus(name, "all", data_dir))
            elif name in ("wikitext2", "ptb"):
                texts.append(load_text_corpus(name, "validation", data_dir))
            elif name == "mr":
                texts.append("\n".join(load_sentence_dataset("mr", "all", data_dir).texts))
            else:
                raise ValueError(f"unknown corpus {name!r}")
            used.append(name)
        except FileNotFoundError as e:
            print(f"skipping {name}: {e}")
    if not texts:
        raise FileNotFoundError("no corpus found; pass --data_dir.")
    return texts, used


def build_stream(texts, min_count: int):
    tok = WordTokenizer.from_texts(texts, min_freq=min_count)
    ids = np.concatenate([tok.encode(t) for t in texts])
    ids = ids[ids != tok.unk_id]
    counts = np.bincount(ids, minlength=tok.vocab_size).astype(np.float64)
    return tok, ids, counts


def train_variant(variant: str, tok, ids, counts, steps: int, batch: int, seed: int, lr: float = 0.0):
    c = w2v_cfg.get_config(f"shakespeare_{variant}")
    if lr > 0:
        c.optimizer.lr = lr
    c.model.vocab_size = tok.vocab_size
    c.method.counts = tuple(float(x) for x in counts)
    c.train.num_steps = steps
    c.batch_size = batch
    c.seed = seed
    method = get_method(c)
    tx, sched = make_optimizer(c.optimizer, steps, batch)
    runner = ParallelStep(make_step_fn(method, tx, sched), devices=jax.devices())
    w = int(c.method.window)
    host = create_train_state(method, tx, jax.random.PRNGKey(seed), word2vec_batch(ids, 0, batch, w, seed))
    ts = runner.put_state(host)
    losses, t0 = [], time.time()
    for step in range(steps):
        ts, m = runner(ts, runner.put_batch(word2vec_batch(ids, step, batch, w, seed)))
        if step % max(steps // 20, 1) == 0 or step == steps - 1:
            m = jax.device_get(m)
            losses.append((step, float(m["loss"])))
            print(f"{variant} step {step} loss {float(m['loss']):.4f} pos_prob {float(m['pos_prob']):.3f}", flush=True)
    final = jax.device_get(runner.get_state(ts))
    return c, method, host, final, losses, time.time() - t0


def mr_probe(method, params, state, tok, mr, folds: int):
    token_ids = [tok.encode(t) for t in mr.texts]
    seq_len = max(len(t) for t in token_ids) + 2
    feats = sentence_features(method.encode, params, state, token_ids, seq_len,
                              cls_id=tok.cls_id, sep_id=tok.sep_id, pad_id=tok.pad_id)
    return cv_logistic_accuracy(feats, mr.labels, folds)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", default="cbow,skipgram")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=0.0, help="> 0: override config.optimizer.lr")
    p.add_argument("--folds", type=int, default=10)
    p.add_argument("--data_dir", default=None, help="text data dir (default ../shared/data/text)")
    p.add_argument("--out", default="docs/results_word2vec.md")
    p.add_argument("--bow", type=int, default=1, help="1: also the bag-of-words baseline (slow under load)")
    args = p.parse_args(argv)

    base = w2v_cfg.get_config()
    texts, used = load_corpus(tuple(base.dataset.corpora), args.data_dir)
    tok, ids, counts = build_stream(texts, int(base.dataset.min_count))
    print(f"corpora {used}: {len(ids)} tokens, vocabulary {tok.vocab_size}")
    mr = load_sentence_dataset("mr", "all", args.data_dir)
    t0 = time.time()
    bow = bag_of_words_accuracy(mr.texts, mr.labels, args.folds) if args.bow else None
    bow_s = time.time() - t0

    rows, neigh, random_row = [], {}, None
    words = [w for w in base.eval.neighbour_words if w in tok.stoi]
    for variant in args.variants.split(","):
        c, method, host, final, losses, secs = train_variant(variant, tok, ids, counts, args.steps, args.batch,
                                                             args.seed, args.lr)
        if random_row is None:
            random_row = mr_probe(method, host.params, host.state, tok, mr, args.folds)
        probe = mr_probe(method, final.params, final.state, tok, mr, args.folds)
        rows.append((variant, c, losses, secs, probe))
        vecs = np.asarray(final.params["input"])
        nn = nearest_neighbours(vecs, [tok.stoi[w] for w in words], k=6, exclude=list(range(5)))
        neigh[variant] = {w: [(tok.itos[i], s) for i, s in lst] for w, lst in zip(words, nn)}
        print(variant, f"MR {probe['mean']:.4f} ± {probe['std']:.4f}", flush=True)

    load = open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else ["?"] * 3
    c0 = rows[0][1]
    lines = [
        "# word2vec: CBOW and skip-gram with negative sampling", "",
        f"Generated by `scripts/reproduce_word2vec.py` on {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, "
        f"{len(jax.devices())} {jax.devices()[0].platform} device(s), load average {' '.join(load)}.", "",
        f"Corpus: {' + '.join(used)} ({len(ids):,} tokens after dropping [UNK]; vocabulary {tok.vocab_size:,} = "
        f"5 specials + words with count >= {int(base.dataset.min_count)}). Dim {c0.model.dim}, window "
        f"{c0.method.window} (dynamic), {c0.method.negatives} negatives from unigram^{c0.method.noise_power}, "
        f"subsampling t = {c0.method.sample}, batch {args.batch} windows, {args.steps} steps of Adam "
        f"(lr {args.lr or c0.optimizer.lr}, cosine), seed {args.seed}.", "",
        f"MR sentiment probe: mean of the input vectors of a sentence's in-vocabulary words, "
        f"{args.folds}-fold stratified CV logistic regression (`sslx.eval.text.cv_logistic_accuracy`; "
        "MR's sentences are in the unlabelled training stream).", "",
        "| features | dim | MR accuracy (mean ± std over folds) | first / last logged loss | train time (s) |",
        "| --- | --- | --- | --- | --- |",
        (f"| bag of words (binary unigrams) | sparse | {100 * bow['mean']:.2f} ± {100 * bow['std']:.2f} | - | "
         f"{bow_s:.0f} (probe) |") if bow else "| bag of words | - | not run (--bow 0) | - | - |",
        f"| random vectors (initial input table) | {c0.model.dim} | "
        f"{100 * random_row['mean']:.2f} ± {100 * random_row['std']:.2f} | - | - |",
    ]
    for variant, c, losses, secs, probe in rows:
        lines.append(f"| {variant} | {c.model.dim} | {100 * probe['mean']:.2f} ± {100 * probe['std']:.2f} | "
                     f"{losses[0][1]:.3f} / {losses[-1][1]:.3f} | {secs:.0f} |")
    lines += ["", "Nearest neighbours (cosine similarity of the input vectors):", ""]
    for variant in neigh:
        lines += [f"**{variant}**", "", "| word | neighbours |", "| --- | --- |"]
        for w, lst in neigh[variant].items():
            lines.append(f"| {w} | " + ", ".join(f"{n} ({s:.2f})" for n, s in lst) + " |")
        lines.append("")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()

"""Sentence-level text objectives: brief CPU pre-training, then the MR sentiment linear probe.

    python scripts/reproduce_text_sentence.py [--data_dir ../shared/data/text]
        [--out docs/results_text_sentence.md] [--steps 300] [--objectives nsp,sop,...] [--seed 0]

For each objective of ``sslx/configs/text_sentence.py`` (NSP, SOP, shuffled word order,
shuffled sentence order, masked sentence, neighbour sentences, forward+backward LM) a small
pre-LN encoder (2 layers, width 64) is pre-trained for ``--steps`` steps of batch 64 on one
CPU device: the single-sentence objectives on the MR sentences (no labels used), the
document-level ones on windows of consecutive sentences of tiny shakespeare passages (8 consecutive speeches per document). One
WordPiece vocabulary (4000) is trained on MR + shakespeare. Then frozen mean-pooled features
of the 10662 MR sentences go to a 10-fold cross-validated logistic regression, next to the same
encoder at its random initialisation and a bag-of-words logistic regression. Writes a markdown
table to ``--out`` and prints timings with the load average.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from sslx.augment.text_pairs import sentence_windows  # noqa: E402
from sslx.configs import text_sentence as ts_cfg  # noqa: E402
from sslx.data.text import (load_sentence_dataset, load_text_corpus, split_documents, split_sentences,  # noqa: E402
                            train_subword_tokenizer)
from sslx.eval.text import bag_of_words_accuracy, probe_sentences  # noqa: E402
from sslx.methods import get_method  # noqa: E402
from sslx.train import ParallelStep, create_train_state, make_optimizer, make_step_fn  # noqa: E402

PROBE_LEN = 50  # [CLS] + up to 48 word pieces + [SEP] per MR sentence in the probe


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def corpus_documents(name: str, data_dir, speeches_per_doc: int = 8) -> list[list[str]]:
    """Documents as lists of sentences: passages of ``speeches_per_doc`` consecutive shakespeare
    speeches (speaker lines dropped) or
    WikiText-2 validation paragraphs (heading lines dropped)."""
    if name == "tinyshakespeare":
        speeches = []
        for block in split_documents(load_text_corpus("tinyshakespeare", "all", data_dir)):
            lines = block.split("\n")
            if lines and lines[0].rstrip().endswith(":"):
                lines = lines[1:]
            speeches.append(split_sentences(" ".join(lines)))
        # Most speeches hold one or two sentences: a document is a passage of consecutive speeches.
        docs = [sum(speeches[i:i + speeches_per_doc], []) for i in range(0, len(speeches), speeches_per_doc)]
        return [d for d in docs if d]
    if name == "wikitext2":
        text = load_text_corpus("wikitext2", "validation", data_dir)
        paras = [ln.strip() for ln in text.split("\n") if ln.strip() and not ln.strip().startswith("=")]
        return [split_sentences(p) for p in paras]
    raise ValueError(f"document corpus {name!r} is unknown; use tinyshakespeare or wikitext2.")


def pretrain(config, data: dict, steps: int, seed: int, log=print) -> tuple:
    """Train ``config``'s method for ``steps`` steps on rows of ``data`` drawn with a JAX key."""
    method = get_method(config, total_steps=steps)
    tx, sched = make_optimizer(config.optimizer, steps, config.batch_size)
    runner = ParallelStep(make_step_fn(method, tx, sched), devices=jax.devices()[:1])
    n = len(next(iter(data.values())))
    rows = np.asarray(jax.random.randint(jax.random.PRNGKey(seed + 1), (steps, config.batch_size), 0, n))
    host = create_train_state(method, tx, jax.random.PRNGKey(seed), {k: v[rows[0]] for k, v in data.items()})
    init_params = jax.tree.map(np.asarray, host.params)
    ts = runner.put_state(host)
    t0 = time.perf_counter()
    first = last = None
    hist = []
    for i in range(steps):
        ts, m = runner(ts, runner.put_batch({k: v[rows[i]] for k, v in data.items()}))
        if i == 0:
            jax.block_until_ready(m)
            t_compile = time.perf_counter() - t0
        if i % 50 == 0 or i == steps - 1:
            m = jax.device_get(m)
            hist.append(float(m["loss"]))
            log(f"  step {i:4d} loss {float(m['loss']):.4f}" + "".join(
                f" {k} {float(v):.3f}" for k, v in m.items() if "accuracy" in k or k == "exact_order"))
    jax.block_until_ready(ts)
    wall = time.perf_counter() - t0
    final = jax.device_get(runner.get_state(ts))
    return method, init_params, final.params, final.state, {"first_loss": hist[0], "last_loss": hist[-1],
                                                             "wall_s": wall, "compile_s": t_compile}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data_dir", default=None)
    ap.add_argument("--out", default="docs/results_text_sentence.md")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch_size", type=int, default=64)
    ap.add_argument("--objectives", default=",".join(ts_cfg.OBJECTIVES))
    ap.add_argument("--doc_corpus", default="tinyshakespeare", choices=("tinyshakespeare", "wikitext2"))
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max_mr", type=int, default=0, help="> 0: probe on a class-balanced subset (smoke runs)")
    args = ap.parse_args(argv)
    objectives = [o for o in args.objectives.split(",") if o]
    t_all = time.perf_counter()
    load0 = loadavg()

    mr = load_sentence_dataset("mr", "all", args.data_dir)
    texts, labels = mr.texts, mr.labels
    if args.max_mr:
        half = args.max_mr // 2
        idx = np.r_[np.arange(half), len(texts) // 2 + np.arange(half)]
        texts, labels = [texts[i] for i in idx], labels[idx]
    docs = corpus_documents(args.doc_corpus, args.data_dir)
    base = ts_cfg.get_config(objectives[0])
    tok = train_subword_tokenizer(list(mr.texts) + [s for d in docs for s in d], "wordpiece",
                                  int(base.dataset.vocab_size))
    mr_ids = tok.encode_batch(texts)
    doc_ids = [tok.encode_batch(d) for d in docs]
    print(f"MR {len(texts)} sentences; {args.doc_corpus}: {len(docs)} documents, "
          f"{sum(map(len, docs))} sentences; vocab {tok.vocab_size}; load {load0}")

    bow = bag_of_words_accuracy(texts, labels, args.folds, args.seed)
    print(f"bag of words: {bow['mean']:.4f} +- {bow['std']:.4f}")
    results = {"bow": bow, "objectives": {}}
    for name in objectives:
        c = ts_cfg.get_config(name)
        c.model.vocab_size = tok.vocab_size
        c.batch_size = args.batch_size
        s = int(c.dataset.max_tokens)
        if c.method.window > 1:
            data = sentence_windows(doc_ids, int(c.method.window), s, truncate=True)
        else:
            pad = np.zeros((len(mr_ids), s), np.int32)
            mask = np.zeros((len(mr_ids), s), bool)
            for i, ids in enumerate(mr_ids):
                ids = ids[:s]
                pad[i, :len(ids)], mask[i, :len(ids)] = ids, True
            keep = mask.any(1)
            data = {"tokens": pad[keep], "mask": mask[keep]}
        print(f"{name}: {len(next(iter(data.values())))} training rows ({c.dataset.name if c.method.window == 1 else args.doc_corpus})")
        method, p0, p1, st, info = pretrain(c, data, args.steps, args.seed)
        t0 = time.perf_counter()
        rand = probe_sentences(method.encode, p0, st, mr_ids, labels, PROBE_LEN, args.folds, args.seed)
        trained = probe_sentences(method.encode, p1, st, mr_ids, labels, PROBE_LEN, args.folds, args.seed)
        info.update(random=rand, trained=trained, probe_s=time.perf_counter() - t0,
                    data=c.dataset.name if c.method.window == 1 else args.doc_corpus)
        results["objectives"][name] = info
        print(f"{name}: MR {trained['mean']:.4f} +- {trained['std']:.4f} (random init {rand['mean']:.4f}); "
              f"loss {info['first_loss']:.3f} -> {info['last_loss']:.3f}; train {info['wall_s']:.1f} s "
              f"(compile {info['compile_s']:.1f} s), probe {info['probe_s']:.1f} s; load {loadavg()}")
        results.update(total_s=time.perf_counter() - t_all, load_start=load0, load_end=loadavg(), steps=args.steps,
                       n=len(texts), folds=args.folds, doc_corpus=args.doc_corpus, batch_size=c.batch_size)
        write_table(results, args.out)  # after every objective, so a partial run leaves its rows
    print(f"wrote {args.out}; total {results['total_s']:.1f} s")
    return results


def write_table(res: dict, path: str) -> None:
    lines = [
        "# Sentence-level text objectives: MR sentiment linear probe",
        "",
        f"Frozen mean-pooled features of the {res['n']} MR sentences, logistic regression with "
        f"{res['folds']}-fold stratified cross-validation (mean +- std of the fold accuracies). Each encoder "
        f"(pre-LN transformer, 2 layers, width 64, WordPiece 4000) was pre-trained for {res['steps']} steps of "
        f"batch {res['batch_size']} on one CPU device; 'random init' is the same encoder before training. Document-level "
        f"objectives use windows of consecutive sentences of {res['doc_corpus']}; the others MR sentences "
        "(no labels). `bidir_lm` features concatenate forward and backward states (2 x 64 dims).",
        "",
        "| objective | pre-training data | loss start -> end | MR acc (trained) | MR acc (random init) | gain | train s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in res["objectives"].items():
        t, z = r["trained"], r["random"]
        lines.append(f"| {name} | {r['data']} | {r['first_loss']:.3f} -> {r['last_loss']:.3f} | "
                     f"{100 * t['mean']:.2f} +- {100 * t['std']:.2f} | {100 * z['mean']:.2f} +- {100 * z['std']:.2f} | "
                     f"{100 * (t['mean'] - z['mean']):+.2f} | {r['wall_s']:.1f} |")
    b = res["bow"]
    lines += [f"| bag of words (unigrams, binary) | - | - | {100 * b['mean']:.2f} +- {100 * b['std']:.2f} | - | - | - |",
              "", f"Total wall time {res['total_s']:.0f} s on {os.cpu_count()} CPUs; load average at start "
              f"{res['load_start']}, at end {res['load_end']} (shared machine: timings are not idle-machine numbers).",
              ""]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines))


if __name__ == "__main__":
    main()

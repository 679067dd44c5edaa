"""Sentence-level text objectives and masked LM: CPU pre-training, then the MR sentiment linear probe.

    python scripts/reproduce_text_sentence.py [--data_dir ../shared/data/text]
        [--out docs/results_text_sentence.md] [--steps 1000] [--objectives mlm,nsp,...] [--seed 0]
        [--set quick_thought/method.qt_cosine=True ...]

For each objective of ``sslx/configs/text_sentence.py`` (masked LM, NSP, SOP, shuffled word
order, shuffled sentence order, masked sentence, neighbour sentences and their quick-thought
variant, forward+backward LM) one
small pre-LN encoder (2 layers, width 64) is pre-trained with the same budget (``--steps`` steps
of batch 64, AdamW 2e-3, 100 warmup steps, cosine to 2e-4) on one CPU device:

* the single-sentence objectives (masked LM, word order, bidirectional LM) on 90% of the MR
  sentences (no labels); the other 10% are held out for masked LM's masked-token accuracy
  and perplexity (exp of the mean cross-entropy over the masked tokens of 5 fixed maskings);
* the document-level ones on windows of consecutive sentences of WikiText-2 articles
  (validation + test files: the training file is not available offline) plus pseudo-documents
  made of the MR training snippets split at clause punctuation (`` , ; : -- `` ...). MR
  sentences are independent snippets of different reviews, so they make no documents of
  sentences; grouping consecutive lines of the positive or negative file would leak the
  sentiment label into NSP (negatives "from another document" would be the other polarity).

One WordPiece vocabulary (4000) is trained on the MR training sentences + the document corpus.
Then frozen mean-pooled features of all 10662 MR sentences (``[CLS] s [SEP]``, padding
excluded) go to a 10-fold cross-validated logistic regression whose C is picked inside each
training fold by a 3-fold inner CV; the same protocol is applied to the same encoder at its
random initialisation, and a bag-of-words logistic regression is the reference. Writes a
markdown table to ``--out`` and prints timings with the load average.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from sslx.augment.text import mlm_mask, word_start_mask  # noqa: E402
from sslx.augment.text_pairs import sentence_windows  # noqa: E402
from sslx.configs import apply_overrides, select_overrides  # noqa: E402
from sslx.configs import text_sentence as ts_cfg  # noqa: E402
from sslx.data.text import (load_sentence_dataset, load_text_corpus, pad_sequences, split_documents,  # noqa: E402
                            split_sentences, train_subword_tokenizer)
from sslx.eval.text import bag_of_words_accuracy, cv_logistic_accuracy, sentence_features  # noqa: E402
from sslx.methods import get_method  # noqa: E402
from sslx.methods.text.common import build_transformer  # noqa: E402
from sslx.train import ParallelStep, create_train_state, make_optimizer, make_step_fn  # noqa: E402

PROBE_LEN = 50  # [CLS] + up to 48 word pieces + [SEP] per MR sentence in the probe
PROBE_CS = (1e-3, 1e-2, 1e-1, 1.0)  # the probe's C candidates (inner 3-fold CV per training fold)
DEFAULT_OBJECTIVES = ("mlm",) + ts_cfg.OBJECTIVES
BOW_C = 1.0  # the bag-of-words reference: fixed C (an inner CV over PROBE_CS picked 1.0 in every fold, ~4x slower)
HELDOUT_FRACTION = 0.1
MLM_EVAL_DRAWS = 5


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def _clean_wikitext(line: str) -> str:
    """WikiText's tokenised markup back to plain text: ``@-@`` -> ``-``, ``@,@`` -> ``,``, ``@.@``
    -> ``.``; ``<unk>`` (out-of-vocabulary words of the original release) is dropped."""
    line = re.sub(r" @(.)@ ", r"\1", line)
    return re.sub(r"\s+", " ", line.replace("<unk>", " ")).strip()


def clause_documents(texts: list) -> list[list[str]]:
    """MR snippets as pseudo-documents: each snippet split at clause punctuation (`` , ; : -- ``
    and sentence ends) into segments of at least two words; snippets with one segment are dropped."""
    docs = []
    for t in texts:
        segs = [x.strip() for x in re.split(r"\s(?:,|;|:|--|\.\.\.|\.|\?|!)\s", " " + t + " ")]
        segs = [x for x in segs if len(x.split()) >= 2]
        if len(segs) >= 2:
            docs.append(segs)
    return docs


def corpus_documents(name: str, data_dir, speeches_per_doc: int = 8) -> list[list[str]]:
    """Documents as lists of sentences.

    ``wikitext2``: the articles of the WikiText-2 validation and test files (a ``= Title =``
    line starts an article; section headings are dropped, paragraphs concatenated in order).
    ``tinyshakespeare``: passages of ``speeches_per_doc`` consecutive speeches (speaker lines dropped).
    """
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
        docs: list[list[str]] = []
        for split in ("validation", "test"):
            for line in load_text_corpus("wikitext2", split, data_dir).split("\n"):
                s = line.strip()
                if not s:
                    continue
                if re.fullmatch(r"= [^=].* =", s):      # article title: a new document
                    docs.append([])
                elif not s.startswith("=") and docs:     # a paragraph (section headings dropped)
                    docs[-1].extend(x for x in split_sentences(_clean_wikitext(s)) if x)
        return [d for d in docs if d]
    raise ValueError(f"document corpus {name!r} is unknown; use wikitext2 or tinyshakespeare.")


def heldout_split(n: int, seed: int, fraction: float = HELDOUT_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, held-out indices) of ``n`` rows: a JAX-keyed permutation, ``fraction`` held out."""
    perm = np.asarray(jax.random.permutation(jax.random.PRNGKey(seed + 7), n))
    k = int(round(fraction * n))
    return np.sort(perm[k:]), np.sort(perm[:k])


def sentence_rows(ids: list, max_tokens: int) -> dict:
    """Single sentences without specials -> ``tokens`` int32 [N, S], ``mask`` bool (empty rows dropped)."""
    pad = np.zeros((len(ids), max_tokens), np.int32)
    mask = np.zeros((len(ids), max_tokens), bool)
    for i, x in enumerate(ids):
        x = x[:max_tokens]
        pad[i, :len(x)], mask[i, :len(x)] = x, True
    keep = mask.any(1)
    return {"tokens": pad[keep], "mask": mask[keep]}


def mlm_rows(ids: list, max_tokens: int, tok, whole_word: bool) -> dict:
    """``[CLS] s [SEP]`` rows (at most ``max_tokens`` pieces per sentence) for masked LM."""
    d = pad_sequences([x[:max_tokens] for x in ids if len(x)], max_tokens + 2, 0, cls_id=2, sep_id=3)
    out = {"tokens": d["tokens"], "mask": d["mask"]}
    if whole_word:
        out["word_start"] = word_start_mask(d["tokens"], tok)
    return out


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
    t_compile = 0.0
    hist = []
    every = max(steps // 10, 1)
    for i in range(steps):
        ts, m = runner(ts, runner.put_batch({k: v[rows[i]] for k, v in data.items()}))
        if i == 0:
            jax.block_until_ready(m)
            t_compile = time.perf_counter() - t0
        if i % every == 0 or i >= steps - 20:
            m = jax.device_get(m)
            hist.append((i, float(m["loss"])))
            if i % every == 0 or i == steps - 1:
                log(f"  step {i:4d} loss {float(m['loss']):.4f}" + "".join(
                    f" {k} {float(v):.3f}" for k, v in m.items() if "accuracy" in k or k == "exact_order"))
    jax.block_until_ready(ts)
    wall = time.perf_counter() - t0
    final = jax.device_get(runner.get_state(ts))
    # Losses are noisy per batch: report the first step and the mean of the last 20.
    last = float(np.mean([v for i, v in hist if i >= steps - 20]))
    return method, init_params, final.params, final.state, {"first_loss": hist[0][1], "last_loss": last,
                                                             "wall_s": wall, "compile_s": t_compile}


def mlm_heldout(config, params, rows: dict, seed: int, draws: int = MLM_EVAL_DRAWS, batch_size: int = 256) -> dict:
    """Masked-token accuracy and perplexity (exp of the mean masked-token cross-entropy) of a
    masked-LM ``params`` on held-out ``[CLS] s [SEP]`` rows, over ``draws`` fixed maskings
    (the same keys for every model)."""
    model = build_transformer(config, causal=False, output_bias=True)
    mc = config.method
    corrupt = dict(mask_id=int(mc.mask_id), vocab_size=int(config.model.vocab_size),
                   special_ids=tuple(mc.special_ids), mask_prob=float(mc.mask_prob),
                   mask_token_frac=float(mc.mask_token_frac), random_token_frac=float(mc.random_token_frac))
    ww = bool(mc.get("whole_word", False))

    @jax.jit
    def stats(params, key, tokens, valid, word_start):
        keys = jax.random.split(key, tokens.shape[0])
        inp, tgt, w = jax.vmap(lambda k, t, v, s: mlm_mask(k, t, valid=v, word_start=s if ww else None,
                                                           **corrupt))(keys, tokens, valid, word_start)
        logits = model.apply({"params": params}, inp, valid)
        nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), tgt[..., None], -1)[..., 0]
        hit = (jnp.argmax(logits, -1) == tgt).astype(jnp.float32)
        return jnp.sum(nll * w), jnp.sum(hit * w), jnp.sum(w)

    tot = np.zeros(3, np.float64)
    n = len(rows["tokens"])
    ws = rows.get("word_start", np.ones_like(rows["mask"]))
    for d in range(draws):
        for i in range(0, n, batch_size):
            sl = slice(i, min(i + batch_size, n))
            t, v, s = rows["tokens"][sl], rows["mask"][sl], ws[sl]
            k = len(t)
            if k < batch_size:  # pad with empty rows (no maskable token) so one shape compiles
                t = np.concatenate([t, np.zeros((batch_size - k, t.shape[1]), np.int32)])
                v = np.concatenate([v, np.zeros((batch_size - k, v.shape[1]), bool)])
                s = np.concatenate([s, np.ones((batch_size - k, s.shape[1]), bool)])
            key = jax.random.fold_in(jax.random.PRNGKey(seed + 11), d * 100003 + i)
            tot += np.asarray(jax.device_get(stats(params, key, t, v, s)), np.float64)
    return {"perplexity": float(np.exp(tot[0] / tot[2])), "accuracy": float(tot[1] / tot[2]),
            "masked_tokens": int(tot[2])}


class Prober:
    """The MR probe with a cache: identical feature matrices (e.g. one random initialisation
    shared by several objectives) are cross-validated once."""

    def __init__(self, token_ids, labels, folds: int, seed: int, cs=PROBE_CS):
        self.ids, self.labels, self.folds, self.seed, self.cs = token_ids, labels, folds, seed, cs
        self.cache: dict = {}

    def __call__(self, encode, params, state) -> dict:
        feats = sentence_features(encode, params, state, self.ids, PROBE_LEN)
        key = hashlib.sha1(np.ascontiguousarray(feats).tobytes()).hexdigest()
        if key not in self.cache:
            res = cv_logistic_accuracy(feats, self.labels, self.folds, self.seed, C=self.cs)
            res["dim"] = int(feats.shape[1])
            self.cache[key] = res
        return self.cache[key]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data_dir", default=None)
    ap.add_argument("--out", default="docs/results_text_sentence.md")
    ap.add_argument("--steps", type=int, default=None, help="pre-training steps (default: the config's, 1000)")
    ap.add_argument("--batch_size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the config's, 2e-3)")
    ap.add_argument("--objectives", default=",".join(DEFAULT_OBJECTIVES),
                    help="comma-separated; '<objective>+mlm' trains it jointly with masked LM (e.g. nsp+mlm)")
    ap.add_argument("--doc_corpus", default="wikitext2+mr_clauses",
                    choices=("wikitext2", "tinyshakespeare", "mr_clauses", "wikitext2+mr_clauses"))
    ap.add_argument("--whole_word", action="store_true", help="masked LM masks whole words")
    ap.add_argument("--no_bow", action="store_true", help="skip the bag-of-words reference row (~5 min of probe)")
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--fixed_c", type=float, default=None, help="probe with this C instead of the inner CV")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max_mr", type=int, default=0, help="> 0: probe on a class-balanced subset (smoke runs)")
    ap.add_argument("--set", action="append", default=[], metavar="[OBJECTIVE/]SECTION.KEY=VALUE",
                    help="config override for every objective, or for one with its prefix (repeatable), e.g. "
                         "--set quick_thought/method.qt_cosine=True; the row label shows it")
    args = ap.parse_args(argv)
    objectives = [o for o in args.objectives.split(",") if o]
    for o in objectives:
        if o not in ts_cfg.ARGS + ts_cfg.JOINT:
            raise ValueError(f"--objectives: {o!r} is unknown; use some of {', '.join(ts_cfg.ARGS + ts_cfg.JOINT)}.")
        apply_overrides(ts_cfg.get_config(o), select_overrides(args.set, o))  # bad --set items fail before any work
    t_all = time.perf_counter()
    load0 = loadavg()

    mr = load_sentence_dataset("mr", "all", args.data_dir)
    texts, labels = mr.texts, mr.labels
    if args.max_mr:
        half = args.max_mr // 2
        idx = np.r_[np.arange(half), len(texts) // 2 + np.arange(half)]
        texts, labels = [texts[i] for i in idx], labels[idx]
    tr_idx, ho_idx = heldout_split(len(mr.texts), args.seed)
    docs = []
    for part in args.doc_corpus.split("+"):
        if part == "mr_clauses":
            docs += clause_documents([mr.texts[i] for i in tr_idx])
        else:
            docs += corpus_documents(part, args.data_dir)
    base = ts_cfg.get_config(objectives[0])
    tok = train_subword_tokenizer([mr.texts[i] for i in tr_idx] + [s for d in docs for s in d], "wordpiece",
                                  int(base.dataset.vocab_size))
    all_mr_ids = tok.encode_batch(mr.texts)
    mr_ids = tok.encode_batch(texts)
    train_ids = [all_mr_ids[i] for i in tr_idx]
    heldout_ids = [all_mr_ids[i] for i in ho_idx]
    doc_ids = [tok.encode_batch(d) for d in docs]
    print(f"MR {len(texts)} sentences to probe ({len(tr_idx)} pre-training / {len(ho_idx)} held out); "
          f"{args.doc_corpus}: {len(docs)} documents, {sum(map(len, docs))} sentences; vocab {tok.vocab_size}; "
          f"load {load0}")

    cs = PROBE_CS if args.fixed_c is None else (args.fixed_c,)
    bow = None if args.no_bow else bag_of_words_accuracy(texts, labels, args.folds, args.seed, C=BOW_C)
    if bow is not None:
        print(f"bag of words: {bow['mean']:.4f} +- {bow['std']:.4f} (C {bow['C']})")
    probe = Prober(mr_ids, labels, args.folds, args.seed, cs)
    argv_list = sys.argv[1:] if argv is None else list(argv)
    results = {"bow": bow, "objectives": {}, "probe_cs": cs,
                "command": " ".join(["python scripts/reproduce_text_sentence.py"] + [shlex.quote(a) for a in argv_list]),
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    for name in objectives:
        sets = select_overrides(args.set, name)
        c = apply_overrides(ts_cfg.get_config(name), sets)
        c.model.vocab_size = tok.vocab_size
        c.batch_size = args.batch_size
        if args.lr is not None:
            c.optimizer.lr = args.lr
        if name == "mlm":
            c.method.whole_word = bool(args.whole_word)
        steps = int(args.steps or c.train.num_steps)
        s = int(c.dataset.max_tokens)
        if c.method.window > 1:
            data = sentence_windows(doc_ids, int(c.method.window), s, truncate=True)
        elif name == "mlm":
            data = mlm_rows(train_ids, s, tok, c.method.whole_word)
        else:
            data = sentence_rows(train_ids, s)
        src = "mr (90%, no labels)" if c.method.window == 1 else args.doc_corpus
        print(f"{name}: {len(next(iter(data.values())))} training rows ({src})")
        method, p0, p1, st, info = pretrain(c, data, steps, args.seed)
        t0 = time.perf_counter()
        rand, trained = probe(method.encode, p0, st), probe(method.encode, p1, st)
        info.update(random=rand, trained=trained, probe_s=time.perf_counter() - t0, data=src, steps=steps,
                    overrides=sets)
        if name == "mlm":
            ho = mlm_rows(heldout_ids, s, tok, c.method.whole_word)
            info["heldout"] = {"trained": mlm_heldout(c, p1, ho, args.seed), "random": mlm_heldout(c, p0, ho, args.seed)}
            info["whole_word"] = bool(c.method.whole_word)
            h = info["heldout"]
            print(f"mlm held-out: accuracy {h['trained']['accuracy']:.4f} perplexity {h['trained']['perplexity']:.1f} "
                  f"(random init {h['random']['accuracy']:.4f}, {h['random']['perplexity']:.1f}; "
                  f"{h['trained']['masked_tokens']} masked tokens)")
        results["objectives"][name] = info
        print(f"{name}: MR {trained['mean']:.4f} +- {trained['std']:.4f} (random init {rand['mean']:.4f}); "
              f"loss {info['first_loss']:.3f} -> {info['last_loss']:.3f}; train {info['wall_s']:.1f} s "
              f"(compile {info['compile_s']:.1f} s), probe {info['probe_s']:.1f} s; load {loadavg()}")
        results.update(total_s=time.perf_counter() - t_all, load_start=load0, load_end=loadavg(),
                       n=len(texts), folds=args.folds, doc_corpus=args.doc_corpus, batch_size=c.batch_size,
                       lr=float(c.optimizer.lr), heldout_n=len(ho_idx))
        write_table(results, args.out)  # after every objective, so a partial run leaves its rows
    print(f"wrote {args.out}; total {results['total_s']:.1f} s")
    return results


def write_table(res: dict, path: str) -> None:
    steps = sorted({r["steps"] for r in res["objectives"].values()})
    cs = res["probe_cs"]
    c_text = (f"C chosen in each training fold by a 3-fold inner CV from {list(cs)}" if len(cs) > 1
              else f"C = {cs[0]}")
    joint_only = all(n.endswith("+mlm") for n in res["objectives"])
    lines = [
        "# Sentence-level objectives trained jointly with masked LM: MR sentiment linear probe" if joint_only else
        "# Sentence-level text objectives and masked LM: MR sentiment linear probe",
        "",
        f"Generated by `{res['command']}` on {res['date']} (jax {jax.__version__}, {jax.default_backend()}).",
        "",
        f"Frozen mean-pooled final states (real tokens of `[CLS] s [SEP]`, padding excluded) of the {res['n']} MR "
        f"sentences, standardised, logistic regression with {res['folds']}-fold stratified cross-validation "
        f"({c_text}; mean +- std of the fold accuracies). Every encoder (pre-LN transformer, 2 layers, width 64, "
        f"2 heads, WordPiece 4000) was pre-trained with the same budget: {'/'.join(map(str, steps))} steps of batch "
        f"{res['batch_size']}, AdamW peak lr {res['lr']:g}, 100 warmup steps, cosine decay to 0.1x, one CPU device. "
        "'random init' is the same encoder before training, probed the same way. Single-sentence objectives "
        f"train on 90% of the MR sentences (no labels; the other {res['heldout_n']} are held out for masked LM); "
        f"document-level ones on windows of consecutive sentences of `{res['doc_corpus']}` "
        "(wikitext2: the articles of the validation + test files; mr_clauses: the MR training snippets split "
        "at clause punctuation; tinyshakespeare: passages of 8 speeches). "
        "`bidir_lm` features concatenate forward and backward states, `quick_thought` features the sentence and "
        "context encoders' (2 x 64 dims each). Loss 'end' is the mean of "
        "the last 20 steps." + (" `<objective>+mlm`: the objective trained jointly with masked LM on its own encoder "
                                "input (loss = objective + masked-LM cross-entropy, weight 1; BERT's NSP + MLM, ALBERT's SOP + MLM); "
                                "its loss column is the sum." if any(n.endswith("+mlm") for n in res["objectives"]) else ""),
        "",
        "| objective | pre-training data | loss start -> end | MR acc (trained) | MR acc (random init) | gain | train s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in res["objectives"].items():
        t, z = r["trained"], r["random"]
        label = name + (" (whole word)" if r.get("whole_word") else "") + (
            f" ({', '.join(r['overrides'])})" if r.get("overrides") else "")
        lines.append(f"| {label} | {r['data']} | {r['first_loss']:.3f} -> {r['last_loss']:.3f} | "
                     f"{100 * t['mean']:.2f} +- {100 * t['std']:.2f} | {100 * z['mean']:.2f} +- {100 * z['std']:.2f} | "
                     f"{100 * (t['mean'] - z['mean']):+.2f} | {r['wall_s']:.1f} |")
    b = res["bow"]
    if b is not None:
        lines.append(f"| bag of words (unigrams, binary) | - | - | {100 * b['mean']:.2f} +- {100 * b['std']:.2f} | - | - "
                     "| - |")
    mlm = res["objectives"].get("mlm")
    if mlm is not None:
        h = mlm["heldout"]
        lines += ["", f"Masked LM on the {res['heldout_n']} held-out MR sentences ({h['trained']['masked_tokens']} "
                  f"masked tokens over {MLM_EVAL_DRAWS} fixed maskings, 15% of the {'words (whole-word masking)' if mlm.get('whole_word') else 'pieces'}, "
                  "80/10/10): perplexity = exp(mean masked-token cross-entropy).", "",
                  "| model | masked-token accuracy | perplexity |", "|---|---|---|",
                  f"| masked LM, trained | {100 * h['trained']['accuracy']:.2f}% | {h['trained']['perplexity']:.1f} |",
                  f"| masked LM, random init | {100 * h['random']['accuracy']:.2f}% | {h['random']['perplexity']:.1f} |"]
    lines += ["", f"Total wall time {res['total_s']:.0f} s on {os.cpu_count()} CPUs; load average at start "
              f"{res['load_start']}, at end {res['load_end']} (1 / 5 / 15 min; the run keeps about 2 CPUs busy itself, so "
              "a start load well above 0 means other work was running and the times are not idle-machine numbers).",
              ""]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines))


if __name__ == "__main__":
    main()

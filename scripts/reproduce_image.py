"""Reproduce the image results table of ``docs/results.md`` (not a test).

  python scripts/reproduce_image.py                       # every image objective, 1 epoch of Fashion-MNIST
  python scripts/reproduce_image.py --epochs 2 --objectives simclr,byol --out /tmp/results.md

Every objective is trained for the same budget (``--epochs`` of its small ``--dataset``
config), then its frozen encoder and the same architecture at random initialisation are
evaluated with the same protocol (linear probe and weighted kNN, k=200, T=0.1, on the
test split; probe trained on ``--probe_examples`` training images). Raw pixels are the
floor. The step throughput comes from ``scripts/benchmark.py`` on the same config.
Writes the ``image`` section of ``--out`` and a JSON file next to it with every number.
"""
from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402
from absl import logging as absl_logging  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE_OBJECTIVES = ("simclr", "moco", "byol", "swav", "cpc", "amdim", "yadim", "rotation", "relative_patch",
                    "context_encoder", "deepcluster")

_OBJECTIVES = flags.DEFINE_list("objectives", list(IMAGE_OBJECTIVES), "Objectives (sslx/configs/<name>.py).")
_DATASET = flags.DEFINE_string("dataset", "fashion_mnist", "Config arg of every objective (its small config).")
_EPOCHS = flags.DEFINE_integer("epochs", 1, "Training epochs, the same for every objective.")
_STEPS = flags.DEFINE_integer("steps", 0, "If > 0: this many steps instead of --epochs (smoke runs).")
_PROBE_EXAMPLES = flags.DEFINE_integer("probe_examples", 5000, "Training images for the probe / kNN bank.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/reproduce_image", "Run directories (one per objective).")
_OUT = flags.DEFINE_string("out", "docs/results.md", "Markdown file whose 'image' section is rewritten.")
_BENCH = flags.DEFINE_bool("benchmark", True, "Time the train step with scripts/benchmark.py.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Dataset directory (default: $SSLX_DATA_DIR or ../shared/data).")
_RECORDS = flags.DEFINE_string("records", None, "JSON-lines file of finished objectives (default "
                               "<workdir>/records.jsonl): objectives recorded there with the same budget are "
                               "not retrained, so an interrupted reproduction resumes and several processes "
                               "can share the work.")
_RERUN = flags.DEFINE_bool("rerun", False, "Retrain objectives even if --records has them.")

# The same small encoder for every objective that uses the generic convnet: narrow and strided
# early (28 -> 14 -> 7 -> 7), so one epoch of 60k images costs minutes, not an hour, on 2 CPU cores.
SMALL_CONVNET = {"features": (16, 32, 64), "strides": (2, 2, 1)}


def objective_config(name: str):
    """``sslx/configs/<name>.py:<dataset>`` with the shared budget and evaluation protocol."""
    import importlib
    c = importlib.import_module(f"sslx.configs.{name}").get_config(_DATASET.value)
    if c.model.encoder == "small_convnet":
        c.model.encoder_kwargs = dict(SMALL_CONVNET)
    c.train.num_epochs = _EPOCHS.value
    c.train.num_steps = _STEPS.value
    c.train.eval_every = 0
    c.train.log_every = 10
    c.train.checkpoint_every = 100000
    c.eval.at_end = False
    c.eval.knn_k = 200
    c.eval.knn_temperature = 0.1
    c.eval.probe_epochs = 100
    c.eval.max_train_examples = _PROBE_EXAMPLES.value
    if _DATA_DIR.value:
        c.dataset.data_dir = _DATA_DIR.value
    return c


def benchmark(config) -> dict:
    """``scripts/benchmark.py``'s timing of this objective's compiled step (the same function)."""
    from sslx.train.benchmark import benchmark_step
    return benchmark_step(config, steps=3, repeats=2, warmup=1)


def raw_pixels(config) -> dict:
    """Linear probe + kNN on flattened pixels in [0, 1] (the floor every encoder should beat)."""
    import numpy as np

    from sslx import data as sdata
    from sslx import eval as seval
    from sslx.train.loop import load_split
    tr, te = load_split(config, config.dataset.train_split), load_split(config, config.dataset.eval_split)
    xtr, ytr = sdata.dataset_arrays(tr, max_examples=config.eval.max_train_examples, seed=config.seed)
    xte, yte = sdata.dataset_arrays(te)
    ftr = xtr.reshape(len(xtr), -1).astype(np.float32) / 255.0
    fte = xte.reshape(len(xte), -1).astype(np.float32) / 255.0
    knn = seval.knn_accuracy(ftr, ytr, fte, yte, tr.num_classes, k=200, temperature=0.1)
    probe = seval.linear_probe(ftr, ytr, fte, yte, tr.num_classes, epochs=100, seed=config.seed)
    return {"knn_acc": float(knn), "linear_acc": float(probe["test_acc"])}


def main(argv):
    absl_logging.set_verbosity(absl_logging.WARNING)
    import jax

    from sslx.eval.report import machine_line, markdown_table, update_section
    from sslx.train.loop import evaluate_checkpoint, restore_checkpoint, train

    unknown = [n for n in _OBJECTIVES.value if not os.path.exists(os.path.join(REPO, "sslx", "configs", f"{n}.py"))]
    if unknown:
        raise ValueError(f"--objectives: no config for {unknown}; known image objectives: {list(IMAGE_OBJECTIVES)}.")
    machine = machine_line()
    rows, records = [], {}
    budget_key = {"dataset": _DATASET.value, "epochs": _EPOCHS.value, "steps": _STEPS.value,
                  "probe_examples": _PROBE_EXAMPLES.value}
    records_path = _RECORDS.value or os.path.join(_WORKDIR.value, "records.jsonl")
    done = {}
    if os.path.exists(records_path) and not _RERUN.value:
        with open(records_path) as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    if r.get("budget") == budget_key:
                        done[r["objective"]] = r["record"]
    for name in _OBJECTIVES.value:
        if name in done:
            records[name] = done[name]
            print(f"== {name}: already in {records_path}, not retrained", flush=True)
            continue
        c = objective_config(name)
        wd = os.path.join(_WORKDIR.value, name)
        if os.path.exists(os.path.join(wd, "checkpoints")):
            import shutil
            shutil.rmtree(wd)  # a fresh run each time: the timing must cover the whole budget
        print(f"== {name}: {_EPOCHS.value if not _STEPS.value else _STEPS.value} "
              f"{'epoch(s)' if not _STEPS.value else 'steps'} of {_DATASET.value}", flush=True)
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        out = train(c, wd, progress=True)
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = evaluate_checkpoint(wd, config=c, random_init=True, restored=restore_checkpoint(wd, config=c))
        eval_s = time.perf_counter() - t0
        bench = benchmark(c) if _BENCH.value else {}
        rec = {"steps": out["step"], "train_s": train_s, "eval_s": eval_s, "ssl": res["ssl"],
               "random_init": res["random_init"], "encoder": c.model.encoder, "batch_size": c.batch_size,
               "benchmark": bench, "load": [round(load0, 1), round(os.getloadavg()[0], 1)]}
        records[name] = rec
        print(json.dumps({name: rec}), flush=True)
        os.makedirs(os.path.dirname(os.path.abspath(records_path)), exist_ok=True)
        with open(records_path, "a") as f:
            f.write(json.dumps({"objective": name, "budget": budget_key, "record": rec}) + "\n")
    base = objective_config(_OBJECTIVES.value[0])
    records["raw_pixels"] = raw_pixels(base)

    def pct(x):
        return f"{100 * x:.2f}"

    for name in _OBJECTIVES.value:
        r = records[name]
        d_lin = r["ssl"]["linear_acc"] - r["random_init"]["linear_acc"]
        d_knn = r["ssl"]["knn_acc"] - r["random_init"]["knn_acc"]
        thr = r["benchmark"].get("examples_per_sec", "n/a")
        rows.append([name, r["encoder"], r["steps"], r["batch_size"], f"{r['train_s']:.0f}",
                     pct(r["ssl"]["linear_acc"]), pct(r["ssl"]["knn_acc"]),
                     pct(r["random_init"]["linear_acc"]), pct(r["random_init"]["knn_acc"]),
                     f"{100 * d_lin:+.2f} / {100 * d_knn:+.2f}", thr, f"{r['load'][0]} / {r['load'][1]}"])
    raw = records["raw_pixels"]
    rows.append(["raw pixels", "-", "-", "-", "-", pct(raw["linear_acc"]), pct(raw["knn_acc"]), "-", "-", "-", "-",
                 "-"])
    budget = f"{_STEPS.value} steps" if _STEPS.value else f"{_EPOCHS.value} epoch(s)"
    import shlex
    cmd = " ".join(["python scripts/reproduce_image.py"] + [shlex.quote(a) for a in sys.argv[1:]])
    md = "\n".join([
        f"## Image objectives: {budget} of {_DATASET.value}, then frozen features",
        "",
        f"Command: `{cmd}`.",
        f"Machine: {machine}.",
        "",
        f"Each objective trains for the same budget with its `sslx/configs/<name>.py:{_DATASET.value}` config "
        f"(generic convnet encoders: SmallConvNet {SMALL_CONVNET['features']}, strides {SMALL_CONVNET['strides']}); "
        "then linear probe (L-BFGS logistic regression, weight decay chosen on a held-out split) and weighted kNN "
        f"(k=200, T=0.1) on the {_DATASET.value} test set, trained on {_PROBE_EXAMPLES.value} training images. "
        "\"random init\" is the same architecture untrained. Train time is wall seconds for the whole budget "
        "(compilation included); throughput is `scripts/benchmark.py` images/s of the compiled step on this machine; "
        "\"load\" is the 1-minute load average when the objective's training started and ended (2 cores: above ~2 "
        "other work shared the machine, so times are inflated by roughly load / 2).",
        "",
        markdown_table(["objective", "encoder", "steps", "batch", "train s", "linear %", "kNN %",
                        "random linear %", "random kNN %", "gain linear / kNN", "step img/s",
                        "load start / end"], rows),
    ])
    update_section(_OUT.value, "image", md)
    with open(os.path.splitext(_OUT.value)[0] + "_image.json", "w") as f:
        json.dump({"machine": machine, "budget": budget, "dataset": _DATASET.value, "records": records}, f, indent=2)
    print(md)
    del jax


if __name__ == "__main__":
    app.run(main)

"""Reproduce the graph objectives' node-classification numbers (not a test).

  python scripts/reproduce_graph.py --methods dgi --datasets cora,citeseer --seeds 0,1,2 \
      --out docs/results_graph.md

For each (method, dataset, seed): load the Planetoid dataset (public split), train on the
full graph with the method's config (``sslx/configs/<method>.py:<dataset>``; early stopping
where the config asks for it), freeze the node embeddings and run the DGI probe (logistic
regression, Adam lr 0.01, 100 epochs, ``--probe_runs`` initialisations on the public train
nodes). Prints one JSON line per run and writes a markdown table (per seed: test accuracy
mean ± std over the probe runs; over seeds: the mean of the seed means ± their std), with
epochs, wall times and the machine's load average.
"""
from __future__ import annotations

import datetime
import importlib
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

_METHODS = flags.DEFINE_list("methods", ["dgi"], "Objectives (config files in sslx/configs/).")
_DATASETS = flags.DEFINE_list("datasets", ["cora", "citeseer"], "Planetoid datasets.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Training seeds (one trained encoder each).")
_PROBE_RUNS = flags.DEFINE_integer("probe_runs", 0, "Probe initialisations per encoder (0: the config's, 50).")
_MAX_EPOCHS = flags.DEFINE_integer("max_epochs", 0, "Override config.train.max_epochs (0: keep).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Graph data dir (default: $SSLX_DATA_DIR/graph or "
                                "../shared/data/graph).")
_OUT = flags.DEFINE_string("out", "docs/results_graph.md", "Markdown table to write ('' to skip).")
_PROGRESS = flags.DEFINE_bool("progress", False, "Show a tqdm bar per training run.")
_JSONL = flags.DEFINE_string("jsonl", "", "Also append each run's JSON row to this file and build the table "
                             "from every row in it (accumulates runs over several invocations).")
_SAVE_EMB = flags.DEFINE_string("save_embeddings", "", "Folder to save each run's frozen embeddings (.npy).")

PAPER = {("dgi", "cora"): "82.3 ± 0.6", ("dgi", "citeseer"): "71.8 ± 0.7",
         ("grace", "cora"): "83.3 ± 0.4 (random 10/10/80 splits)",
         ("grace", "citeseer"): "72.1 ± 0.5 (random 10/10/80 splits)"}


def run_one(method_name: str, dataset: str, seed: int) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from sslx.data.graph import load_planetoid
    from sslx.eval.node import node_probe
    from sslx.methods import get_method
    from sslx.train import make_optimizer
    from sslx.train.graph import fit_full_graph

    config = importlib.import_module(f"sslx.configs.{method_name}").get_config(dataset)
    if _MAX_EPOCHS.value:
        config.train.max_epochs = _MAX_EPOCHS.value
    ds = load_planetoid(dataset, _DATA_DIR.value or config.dataset.get("data_dir"),
                        normalize_features=bool(config.dataset.get("normalize_features", True)))
    method = get_method(config)
    max_epochs = int(config.train.max_epochs)
    tx, schedule = make_optimizer(config.optimizer, max_epochs, 1)
    t0 = time.perf_counter()
    res = fit_full_graph(method, tx, {"graph": ds.graph}, jax.random.PRNGKey(seed), max_epochs=max_epochs,
                         patience=int(config.train.get("patience", 0)), progress=_PROGRESS.value,
                         keep_best=bool(config.train.get("keep_best", True)))
    train_s = time.perf_counter() - t0
    emb = jax.jit(method.encode)(res.params, res.state, jax.tree.map(jnp.asarray, ds.graph))
    t1 = time.perf_counter()
    runs = _PROBE_RUNS.value or int(config.eval.get("probe_runs", 50))
    out = node_probe(np.asarray(emb), ds.labels, ds.train_mask, ds.test_mask, val_mask=ds.val_mask & (ds.labels >= 0),
                     num_classes=ds.num_classes, runs=runs, epochs=int(config.eval.probe_epochs),
                     lr=float(config.eval.get("probe_lr", 0.01)),
                     weight_decay=float(config.eval.get("probe_weight_decay", 0.0)), seed=seed,
                     l2_normalize=bool(config.eval.get("probe_l2_normalize", False)))
    probe_s = time.perf_counter() - t1
    if _SAVE_EMB.value:
        os.makedirs(_SAVE_EMB.value, exist_ok=True)
        np.save(os.path.join(_SAVE_EMB.value, f"{method_name}_{dataset}_seed{seed}.npy"), np.asarray(emb))
    return {"method": method_name, "dataset": dataset, "seed": seed, "test_acc": round(out["test_acc_mean"], 2),
            "test_std": round(out["test_acc_std"], 2), "val_acc": round(out["val_acc_mean"], 2),
            "epochs": res.epochs, "best_epoch": res.best_epoch, "best_loss": round(res.best_loss, 4),
            "train_s": round(train_s, 1), "ms_per_epoch_incl_compile": round(1e3 * train_s / res.epochs, 1),
            "probe_s": round(probe_s, 1), "probe_runs": runs,
            "probe_l2_normalize": bool(config.eval.get("probe_l2_normalize", False))}


def write_table(path: str, rows: list[dict], wall_s: float, load_before: str, load_after: str) -> None:
    import jax
    import numpy as np

    lines = ["# Graph objectives: node classification (DGI protocol)", "",
             f"Generated by `python scripts/reproduce_graph.py` on {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} "
             f"UTC; device `{jax.devices()[0].platform}`, {os.cpu_count()} CPU cores, {platform.processor() or 'cpu'}; "
             f"this invocation's load average before / after: {load_before} / {load_after}, wall time {wall_s:.0f} s "
             "(rows from earlier invocations of a --jsonl file keep their own train times).", "",
             "Protocol: public Planetoid split; encoder trained on the full graph (early stopping on the training "
             "loss where the config asks); frozen embeddings; logistic regression (Adam lr 0.01, 100 epochs) on the "
             "train nodes; test accuracy (%) mean ± std over the probe runs.", "",
             "| method | dataset | seeds | test acc (mean of seeds ± std of seed means) | paper | per seed: test acc ± std "
             "over probe runs (epochs, train s) |",
             "| --- | --- | --- | --- | --- | --- |"]
    keys = sorted({(r["method"], r["dataset"]) for r in rows}, key=lambda k: (k[0], k[1]))
    for m, d in keys:
        rs = [r for r in rows if (r["method"], r["dataset"]) == (m, d)]
        means = np.array([r["test_acc"] for r in rs])
        per = "; ".join(f"s{r['seed']}: {r['test_acc']:.1f} ± {r['test_std']:.1f} ({r['epochs']}, {r['train_s']:.0f})"
                        for r in rs)
        note = " (embeddings L2-normalised before the probe)" if rs[0].get("probe_l2_normalize") else ""
        lines.append(f"| {m} | {d} | {len(rs)} | {means.mean():.1f} ± {means.std():.1f}{note} | "
                     f"{PAPER.get((m, d), '-')} | {per} |")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def _loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


def main(argv):
    del argv
    load_before = _loadavg()
    t0 = time.perf_counter()
    rows = []
    for m in _METHODS.value:
        for d in _DATASETS.value:
            for s in _SEEDS.value:
                row = run_one(m, d, int(s))
                print(json.dumps(row), flush=True)
                rows.append(row)
                if _JSONL.value:
                    with open(_JSONL.value, "a") as f:
                        f.write(json.dumps(row) + "\n")
    wall = time.perf_counter() - t0
    if _JSONL.value:
        with open(_JSONL.value) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    if _OUT.value:
        write_table(_OUT.value, rows, wall, load_before, _loadavg())
        print(f"wrote {_OUT.value} (total {wall:.0f} s)")


if __name__ == "__main__":
    app.run(main)

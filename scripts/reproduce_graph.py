"""Reproduce every graph table of ``docs/results_graph.md`` with one command (not a test).

  python scripts/reproduce_graph.py                                   # all four tables, 3 seeds
  python scripts/reproduce_graph.py --tables node --node dgi:cora,grace:cora --seeds 0,1,2
  python scripts/reproduce_graph.py --tables graph_level --graph_level infograph:mutag --set infograph/train.num_epochs=40
  python scripts/reproduce_graph.py --records runs/graph.jsonl        # resume: recorded runs are not rerun

Four protocols, one row per (table, method, dataset, seed) appended to ``--records``:

- ``node`` (DGI protocol): Planetoid public split; the encoder of ``sslx/configs/<method>.py:
  <dataset>`` trained on the full graph (:func:`sslx.train.graph.fit_full_graph`, early stopping
  on the training loss where the config asks); frozen node embeddings; logistic regression (Adam
  lr 0.01, 100 epochs, 50 initialisations) on the train nodes; test accuracy.
- ``graph_level`` (InfoGraph protocol): the method trained on every graph of a TU dataset (no
  labels, :func:`sslx.train.graph_level.train_graph_level`); frozen graph embeddings; 10-fold
  stratified CV of an SVM with C from inner CV (:func:`sslx.eval.graph_level.svm_cross_validation`),
  averaged over ``--cv_repeats`` fold splits; the same encoder at random initialisation alongside.
- ``transfer`` (GCC): pre-train on the structure of the config's source graphs, embed the target
  TU datasets' graphs, the same SVM protocol; pre-trained vs random initialisation
  (:func:`sslx.methods.graph.gcc.gcc_transfer`).
- ``semi`` (self-supervised GCN, You et al. 2020): a semi-supervised GCN trained jointly with each
  auxiliary task vs the plain GCN; early stopping on the validation loss; test accuracy
  (:func:`sslx.methods.graph.ssgcn.run_ssgcn`).

The markdown tables give mean ± std over seeds, the paper's number, wall times and the load
average (train seconds are inflated when other work shares the machine; accuracies are not).
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

from sslx.configs import apply_overrides, select_overrides  # noqa: E402

TABLES = ("node", "graph_level", "transfer", "semi")
_TABLES = flags.DEFINE_list("tables", list(TABLES), f"Which tables to run and write: {', '.join(TABLES)}.")
_NODE = flags.DEFINE_list("node", ["dgi:cora", "dgi:citeseer", "grace:cora", "mvgrl:cora", "gmi:cora", "merit:cora"],
                          "method:dataset runs of the node table.")
_GRAPH_LEVEL = flags.DEFINE_list("graph_level", ["infograph:mutag", "infograph:imdb_binary", "graphlog:mutag",
                                                 "graphlog:imdb_binary", "mvgrl:mutag", "mvgrl:imdb_binary"],
                                   "method:dataset runs of the graph-level table.")
_TRANSFER = flags.DEFINE_list("transfer", ["gcc:transfer"], "method:config_arg runs of the transfer table.")
_SEMI = flags.DEFINE_list("semi", ["none:cora", "clustering:cora", "partitioning:cora", "completion:cora"],
                          "task:dataset runs of the self-supervised GCN table.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds: one trained encoder (and probe/CV split) each.")
_SEMI_SEEDS = flags.DEFINE_integer("semi_seeds", 10, "Seeds 0..N-1 of the semi table (a GCN run takes seconds).")
_SET = flags.DEFINE_multi_string("set", [], "Config override '[method/]section.key=python_literal', e.g. "
                                 "'grace/optimizer.lr=1e-3' or 'train.max_epochs=50' (every method).")
_PROBE_RUNS = flags.DEFINE_integer("probe_runs", 0, "Node probe initialisations (0: the config's, 50).")
_CV_REPEATS = flags.DEFINE_integer("cv_repeats", 3, "Graph-level: fold splits averaged per seed.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Graph data dir (default: $SSLX_DATA_DIR/graph or "
                                "../shared/data/graph).")
_RECORDS = flags.DEFINE_string("records", "runs/reproduce_graph.jsonl", "JSON-lines file of finished runs: runs "
                               "recorded there (same table, method, dataset, seed and overrides) are not rerun, "
                               "and the tables are built from every row in it.")
_RERUN = flags.DEFINE_bool("rerun", False, "Run again even if --records has the run (the new row replaces it).")
_OUT = flags.DEFINE_string("out", "docs/results_graph.md", "Markdown file to write ('' to skip).")
_PROGRESS = flags.DEFINE_bool("progress", False, "A tqdm bar per full-graph training run.")

PAPER = {
    ("dgi", "cora"): "82.3 ± 0.6", ("dgi", "citeseer"): "71.8 ± 0.7",
    ("grace", "cora"): "83.3 ± 0.4 †", ("grace", "citeseer"): "72.1 ± 0.5 †",
    ("mvgrl", "cora"): "86.8 ± 0.5", ("mvgrl", "citeseer"): "73.3 ± 0.5",
    ("gmi", "cora"): "83.0 ± 0.3", ("gmi", "citeseer"): "72.4 ± 0.1",
    ("merit", "cora"): "83.1 ± 0.6", ("merit", "citeseer"): "74.0 ± 0.7",
    ("infograph", "MUTAG"): "89.01 ± 1.13", ("infograph", "IMDB-BINARY"): "73.03 ± 0.87",
    ("infograph", "PTC_MR"): "61.65 ± 1.43", ("infograph", "IMDB-MULTI"): "49.69 ± 0.53",
    ("mvgrl", "MUTAG"): "89.7 ± 1.1", ("mvgrl", "IMDB-BINARY"): "74.2 ± 0.7", ("mvgrl", "PTC_MR"): "62.5 ± 1.7",
    ("mvgrl", "IMDB-MULTI"): "51.2 ± 0.5",
    ("gcc", "IMDB-BINARY"): "71.7 (freeze; pre-trained on 6 large graphs)",
    ("gcc", "IMDB-MULTI"): "49.3 (freeze)",
    ("none", "cora"): "81.0 (GCN)", ("clustering", "cora"): "81.6", ("partitioning", "cora"): "81.8",
    ("completion", "cora"): "81.0",
}


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


def parse_runs(items: list[str], flag: str) -> list[tuple[str, str]]:
    out = []
    for item in items:
        if item.count(":") != 1:
            raise ValueError(f"--{flag} {item!r}: expected 'method:dataset', e.g. 'dgi:cora'.")
        out.append(tuple(item.split(":")))
    return out


def overrides_for(method: str) -> list[str]:
    """The ``--set`` items that apply to ``method`` (unprefixed ones apply to every method)."""
    return select_overrides(_SET.value, method)


def get_config(method: str, arg: str):
    return apply_overrides(importlib.import_module(f"sslx.configs.{method}").get_config(arg), overrides_for(method))


# ----------------------------------------------------------------------------------------- runs


def run_node(method_name: str, dataset: str, seed: int) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from sslx.augment.graph_views import sparse_features
    from sslx.data.graph import load_planetoid
    from sslx.eval.node import node_probe
    from sslx.methods import get_method
    from sslx.train import make_optimizer
    from sslx.train.graph import fit_full_graph

    config = get_config(method_name, dataset)
    ds = load_planetoid(dataset, _DATA_DIR.value or config.dataset.get("data_dir"),
                        normalize_features=bool(config.dataset.get("normalize_features", True)))
    method = get_method(config)
    max_epochs = int(config.train.max_epochs)
    tx, _ = make_optimizer(config.optimizer, max_epochs, 1)
    # the features' non-zeros for x W: the same values as the dense product (Cora's are 1.3 % dense)
    batch = {"graph": ds.graph, "x_sparse": sparse_features(ds.graph.nodes)}
    t0 = time.perf_counter()
    res = fit_full_graph(method, tx, batch, jax.random.PRNGKey(seed), max_epochs=max_epochs,
                         patience=int(config.train.get("patience", 0)), progress=_PROGRESS.value,
                         keep_best=bool(config.train.get("keep_best", True)))
    train_s = time.perf_counter() - t0
    emb = jax.jit(method.encode)(res.params, res.state, jax.tree.map(jnp.asarray, ds.graph))
    runs = _PROBE_RUNS.value or int(config.eval.get("probe_runs", 50))
    l2 = bool(config.eval.get("probe_l2_normalize", False))
    out = node_probe(np.asarray(emb), ds.labels, ds.train_mask, ds.test_mask, val_mask=ds.val_mask & (ds.labels >= 0),
                     num_classes=ds.num_classes, runs=runs, epochs=int(config.eval.probe_epochs),
                     lr=float(config.eval.get("probe_lr", 0.01)),
                     weight_decay=float(config.eval.get("probe_weight_decay", 0.0)), seed=seed, l2_normalize=l2)
    return {"acc": out["test_acc_mean"], "probe_std": out["test_acc_std"], "val_acc": out["val_acc_mean"],
            "epochs": res.epochs, "best_epoch": res.best_epoch, "train_s": train_s,
            "ms_per_epoch": 1e3 * train_s / max(res.epochs, 1), "probe_runs": runs, "l2_normalize": l2}


def run_graph_level(method_name: str, dataset: str, seed: int) -> dict:
    import jax
    import numpy as np

    from sslx.eval.graph_level import svm_cross_validation
    from sslx.methods import get_method
    from sslx.train.graph_level import embed_dataset, load_graph_dataset, train_graph_level

    c = get_config(method_name, dataset)
    c.seed = seed
    ds = load_graph_dataset(c, _DATA_DIR.value)
    out = train_graph_level(c, ds, devices=jax.devices()[:1], seed=seed)
    method = get_method(c, axis_name=None)

    def score(params, state) -> tuple[float, float]:
        """CV accuracy on the raw embeddings and on embeddings z-scored inside each training fold."""
        x, y = embed_dataset(method, params, state, ds)
        accs = [[svm_cross_validation(x, y, folds=int(c.eval.folds), inner_folds=int(c.eval.inner_folds),
                                      kernel=c.eval.kernel, seed=1000 * seed + r, standardize=z)["mean"]
                 for r in range(_CV_REPEATS.value)] for z in (False, True)]
        return float(np.mean(accs[0])), float(np.mean(accs[1]))

    t0 = time.perf_counter()
    acc, acc_z = score(out["params"], out["state"])
    row = {"dataset": ds.name, "acc": acc, "acc_z": acc_z, "train_s": out["seconds"],
           "epochs": int(c.train.num_epochs), "steps": out["steps"], "final_loss": float(np.mean(out["losses"][-5:]))}
    row["eval_s"] = time.perf_counter() - t0
    row["random_acc"], row["random_acc_z"] = score(out["init_params"], out["init_state"])
    return row


def run_transfer(method_name: str, arg: str, seed: int) -> dict:
    from sslx.methods.graph.gcc import gcc_transfer
    if method_name != "gcc":
        raise ValueError(f"--transfer {method_name}:{arg}: only 'gcc' has a transfer protocol.")
    return gcc_transfer(get_config("gcc", arg), _DATA_DIR.value, seed)


def run_semi(task: str, dataset: str, seed: int) -> dict:
    from sslx.methods.graph.ssgcn import run_ssgcn
    r = run_ssgcn(get_config("ssgcn", f"{dataset}-{task}"), dataset, seed, _DATA_DIR.value)
    return {k: v for k, v in r.items() if not k.endswith("_history") and isinstance(v, (int, float, str, bool))}


RUNNERS = {"node": run_node, "graph_level": run_graph_level, "transfer": run_transfer, "semi": run_semi}


# ------------------------------------------------------------------------------------- records


def resolved_config(table: str, method: str, dataset: str, overrides):
    """The config of one run: its config file's arg with ``overrides`` applied."""
    if table == "semi":  # the semi table's "method" is ssgcn's auxiliary task
        name, arg = "ssgcn", f"{dataset}-{method}"
    else:
        name, arg = method, dataset
    return apply_overrides(importlib.import_module(f"sslx.configs.{name}").get_config(arg), list(overrides))


def config_hash(config) -> str:
    import hashlib
    return hashlib.sha1(config.to_json(sort_keys=True).encode()).hexdigest()[:12]


def record_key(table: str, method: str, dataset: str, seed: int) -> dict:
    """What identifies a run: a recorded row is reused only when all of it matches, including the
    hash of the resolved config (so a row made before a config file changed is not taken for the
    new setting; it stays in the records but leaves the tables)."""
    overrides = sorted(overrides_for("ssgcn" if table == "semi" else method))
    return {"table": table, "method": method, "dataset": dataset, "seed": seed, "overrides": overrides,
            "config": config_hash(resolved_config(table, method, dataset, overrides))}


KEY_FIELDS = ("table", "method", "dataset", "seed", "overrides", "config")


def read_records(path: str) -> list[dict]:
    if not path or not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def append_record(path: str, row: dict) -> None:
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")


def latest(rows: list[dict]) -> list[dict]:
    """The last row of each key (a rerun replaces the earlier row)."""
    out = {}
    for r in rows:
        out[json.dumps({k: r.get(k) for k in KEY_FIELDS}, sort_keys=True)] = r
    return list(out.values())


def current(rows: list[dict]) -> list[dict]:
    """The rows made with the config their (table, method, dataset, overrides) resolves to today."""
    cache: dict = {}
    out = []
    for r in rows:
        k = (r["table"], r["method"], r["dataset"], tuple(r["overrides"]))
        if k not in cache:
            try:
                cache[k] = config_hash(resolved_config(*k))
            except (ValueError, KeyError, ImportError):  # the config file or arg no longer exists
                cache[k] = None
        if r.get("config") == cache[k]:
            out.append(r)
    return out


# -------------------------------------------------------------------------------------- tables


def _mean_std(values) -> str:
    import numpy as np
    v = np.asarray(values, dtype=float)
    return f"{v[0]:.1f}" if len(v) == 1 else f"{v.mean():.1f} ± {v.std():.1f}"  # no spread from one seed


def _groups(rows: list[dict], table: str):
    groups: dict = {}
    for r in rows:
        if r["table"] == table:
            groups.setdefault((r["method"], r["dataset"], tuple(r["overrides"])), []).append(r)
    return sorted(groups.items(), key=lambda kv: kv[0])


def _label(method: str, overrides) -> str:
    return method + (f" ({', '.join(overrides)})" if overrides else "")


def node_table(rows: list[dict]) -> list[str]:
    lines = ["## Node classification (DGI protocol)", "",
             "Public Planetoid split; encoder trained on the full graph; frozen embeddings; logistic regression "
             "(Adam lr 0.01, 100 epochs) on the train nodes; test accuracy (%) mean ± std over seeds (each seed: "
             "the mean over the probe initialisations). † GRACE's paper uses random 10/10/80 splits; its probe input "
             "is L2-normalised as in GRACE's evaluation.", "",
             "| method | dataset | seeds | test acc | paper | epochs (mean) | train s / seed | ms / epoch | load |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for (m, d, ov), rs in _groups(rows, "node"):
        r0 = [r["result"] for r in rs]
        lines.append(f"| {_label(m, ov)} | {d} | {len(rs)} | {_mean_std([r['acc'] for r in r0])} | "
                     f"{PAPER.get((m, d), '—')} | {sum(r['epochs'] for r in r0) / len(r0):.0f} | "
                     f"{sum(r['train_s'] for r in r0) / len(r0):.0f} | "
                     f"{sum(r['ms_per_epoch'] for r in r0) / len(r0):.0f} | {rs[0]['load']} |")
    return lines


def graph_level_table(rows: list[dict]) -> list[str]:
    lines = ["## Graph classification, unsupervised (InfoGraph protocol)", "",
             "Every graph of the dataset used for training (no labels); frozen graph embeddings; 10-fold stratified "
             "CV of an SVM, C from inner 5-fold CV over {1e-3, ..., 1e3}, averaged over the fold splits; accuracy "
             "(%) mean ± std over seeds. The final parameters are evaluated (no epoch selection). 'random init': "
             "the same encoder untrained, same protocol. 'z-scored': the same protocol with every embedding "
             "dimension standardised inside each training fold (mean and std of the training graphs), which "
             "removes the RBF kernel's sensitivity to feature scale; '—' where a row predates that column. "
             "Node features: one-hot node labels (MUTAG), one-hot node degree where a dataset has none "
             "(IMDB-BINARY; MVGRL: labels and degree); 'node_features=constant' rows give every node the feature "
             "1 instead, as InfoGraph's code does.", "",
             "| method | dataset | seeds | accuracy | random init | accuracy (z-scored) | random init (z-scored) "
             "| paper | epochs | train s / seed | eval s / seed | load |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for (m, d, ov), rs in _groups(rows, "graph_level"):
        r0 = [r["result"] for r in rs]
        name = r0[0]["dataset"]
        z = [_mean_std([r[k] for r in r0]) if all(k in r for r in r0) else "—" for k in ("acc_z", "random_acc_z")]
        lines.append(f"| {_label(m, ov)} | {name} | {len(rs)} | {_mean_std([r['acc'] for r in r0])} | "
                     f"{_mean_std([r['random_acc'] for r in r0])} | {z[0]} | {z[1]} | {PAPER.get((m, name), '—')} | "
                     f"{r0[0]['epochs']} | "
                     f"{sum(r['train_s'] for r in r0) / len(r0):.0f} | {sum(r['eval_s'] for r in r0) / len(r0):.0f} "
                     f"| {rs[0]['load']} |")
    return lines


def transfer_table(rows: list[dict]) -> list[str]:
    lines = ["## Transfer (GCC)", "",
             "Pre-trained on the structure of the source graphs (subgraph instance discrimination), then the target "
             "datasets' graphs embedded by the frozen encoder and scored with the graph-level SVM protocol; "
             "accuracy (%) mean ± std over seeds.", "",
             "| method | sources | target | seeds | pre-trained | random init | paper | pre-train steps | "
             "pre-train s / seed | load |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for (m, d, ov), rs in _groups(rows, "transfer"):
        r0 = [r["result"] for r in rs]
        targets = sorted({k[: -len("_pretrained_mean")] for k in r0[0] if k.endswith("_pretrained_mean")})
        for t in targets:
            name = t.upper().replace("_", "-")
            lines.append(f"| {_label(m, ov)} | {r0[0]['sources']} | {name} | {len(rs)} | "
                         f"{_mean_std([r[t + '_pretrained_mean'] for r in r0])} | "
                         f"{_mean_std([r[t + '_random_mean'] for r in r0])} | {PAPER.get((m, name), '—')} | "
                         f"{r0[0]['pretrain_steps']} | {sum(r['pretrain_seconds'] for r in r0) / len(r0):.0f} | "
                         f"{rs[0]['load']} |")
    return lines


def semi_table(rows: list[dict]) -> list[str]:
    lines = ["## Self-supervised GCN (multi-task, You et al. 2020)", "",
             "Semi-supervised GCN (public split) trained jointly with the auxiliary self-supervised task; early "
             "stopping on the validation loss; test accuracy (%) mean ± std over seeds. 'none' is the plain GCN, the "
             "same code path without the auxiliary loss.", "",
             "| auxiliary task | dataset | seeds | test acc | paper | epochs (mean) | train s / seed | load |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for (m, d, ov), rs in sorted(_groups(rows, "semi"), key=lambda kv: (kv[0][0] != "none", kv[0])):  # GCN first
        r0 = [r["result"] for r in rs]
        lines.append(f"| {_label(m, ov)} | {d} | {len(rs)} | {_mean_std([r['test_acc'] for r in r0])} | "
                     f"{PAPER.get((m, d), '—')} | {sum(r['epochs'] for r in r0) / len(r0):.0f} | "
                     f"{sum(r['train_s'] for r in r0) / len(r0):.1f} | {rs[0]['load']} |")
    return lines


TABLE_WRITERS = {"node": node_table, "graph_level": graph_level_table, "transfer": transfer_table,
                 "semi": semi_table}


def write_markdown(path: str, rows: list[dict], tables) -> None:
    import jax
    lines = ["# Graph objectives", "",
             f"Written by `python scripts/reproduce_graph.py` on {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} "
             f"UTC from the records in `{_RECORDS.value}`; device `{jax.devices()[0].platform}`, {os.cpu_count()} CPU "
             f"cores, {platform.machine()}, jax {jax.__version__}. 'load' is the 1-minute load average when each "
             "group's first run started (2 cores: above ~2, other work shared the machine and times are inflated).",
             ""]
    for t in tables:
        if any(r["table"] == t for r in rows):
            lines += TABLE_WRITERS[t](rows) + [""]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines))


def planned_runs() -> list[tuple[str, str, str, int]]:
    seeds = [int(s) for s in _SEEDS.value]
    plan = []
    for table, flag, items in (("node", "node", _NODE.value), ("graph_level", "graph_level", _GRAPH_LEVEL.value),
                               ("transfer", "transfer", _TRANSFER.value), ("semi", "semi", _SEMI.value)):
        if table not in _TABLES.value:
            continue
        table_seeds = list(range(_SEMI_SEEDS.value)) if table == "semi" else seeds
        for method, dataset in parse_runs(items, flag):
            plan += [(table, method, dataset, s) for s in table_seeds]
    return plan


def main(argv):
    del argv
    bad = [t for t in _TABLES.value if t not in TABLES]
    if bad:
        raise ValueError(f"--tables {bad}: unknown; choose from {', '.join(TABLES)}.")
    done = {json.dumps({k: r.get(k) for k in KEY_FIELDS}, sort_keys=True) for r in read_records(_RECORDS.value)}
    t_start = time.perf_counter()
    for table, method, dataset, seed in planned_runs():
        key = record_key(table, method, dataset, seed)
        if not _RERUN.value and json.dumps(key, sort_keys=True) in done:
            print(f"recorded: {table} {method} {dataset} seed {seed}", flush=True)
            continue
        load = loadavg()
        t0 = time.perf_counter()
        result = RUNNERS[table](method, dataset, seed)
        row = {**key, "result": result, "wall_s": time.perf_counter() - t0, "load": load.split()[0],
               "date": f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M}"}
        append_record(_RECORDS.value, row)
        print(json.dumps(row), flush=True)
    rows = [r for r in current(latest(read_records(_RECORDS.value))) if r["table"] in _TABLES.value]
    if _OUT.value:
        write_markdown(_OUT.value, rows, [t for t in TABLES if t in _TABLES.value])
        print(f"wrote {_OUT.value} ({time.perf_counter() - t_start:.0f} s)")


if __name__ == "__main__":
    app.run(main)

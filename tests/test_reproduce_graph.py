"""scripts/reproduce_graph.py: the one script behind docs/results_graph.md (records, resume, tables)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.test_graph_data import _write_planetoid

SCRIPT = str(REPO / "scripts" / "reproduce_graph.py")


def _run(*args, timeout=600):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)


def test_node_table_records_and_resume(tmp_path):
    _write_planetoid(tmp_path / "cora")
    md, rec = tmp_path / "table.md", tmp_path / "rows.jsonl"
    common = ["--tables=node", "--node=dgi:cora", f"--data_dir={tmp_path}", "--probe_runs=2", f"--out={md}",
              f"--records={rec}", "--set=dgi/model.features=(8,)"]
    proc = _run(*common, "--seeds=3,4", "--set=train.max_epochs=2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in rec.read_text().splitlines()]
    assert [(r["table"], r["method"], r["dataset"], r["seed"]) for r in rows] == [("node", "dgi", "cora", 3),
                                                                                 ("node", "dgi", "cora", 4)]
    assert all(r["result"]["epochs"] <= 2 and 0 <= r["result"]["acc"] <= 100 for r in rows)
    assert rows[0]["overrides"] == ["model.features=(8,)", "train.max_epochs=2"]
    table = md.read_text()
    assert "| dgi (model.features=(8,), train.max_epochs=2) | cora | 2 |" in table and "82.3 ± 0.6" in table
    # the same runs again are read from the records, not retrained; a new seed is trained
    proc = _run(*common, "--seeds=3,5", "--set=train.max_epochs=2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "recorded: node dgi cora seed 3" in proc.stdout
    rows = [json.loads(line) for line in rec.read_text().splitlines()]
    assert [r["seed"] for r in rows] == [3, 4, 5]
    assert "| dgi (model.features=(8,), train.max_epochs=2) | cora | 3 |" in md.read_text()
    # a row made with another config (here: a stale hash) is neither reused nor shown
    rows[2]["config"] = "stale"
    rec.write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = _run(*common, "--seeds=3,5", "--set=train.max_epochs=2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "recorded: node dgi cora seed 3" in proc.stdout and "recorded: node dgi cora seed 5" not in proc.stdout
    assert len(rec.read_text().splitlines()) == 4 and "| cora | 3 |" in md.read_text()


def _script_module():
    """The script imported as a module, once per process (its absl flags can be defined only once)."""
    import importlib.util

    mod = sys.modules.get("reproduce_graph_script")
    if mod is None:
        spec = importlib.util.spec_from_file_location("reproduce_graph_script", SCRIPT)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules["reproduce_graph_script"] = mod
    return mod


def test_bad_flags_are_named():
    from sslx.configs import dgi as dgi_cfg
    mod = _script_module()
    with pytest.raises(ValueError, match="expected 'method:dataset'"):
        mod.parse_runs(["dgi"], "node")
    with pytest.raises(ValueError, match="no key 'train.no_such_key'"):
        mod.apply_overrides(dgi_cfg.get_config("cora"), ["train.no_such_key=1"])
    c = mod.apply_overrides(dgi_cfg.get_config("cora"), ["model.features=(8,)", "optimizer.name=sgd"])
    assert tuple(c.model.features) == (8,) and c.optimizer.name == "sgd"  # literal, then plain string
    with pytest.raises(ValueError, match="expected"):
        mod.flags.FLAGS(["prog", "--set=dgi/train"])
        mod.overrides_for("dgi")
    mod.flags.FLAGS.unparse_flags()
    mod.flags.FLAGS(["prog", "--set=dgi/dataset.data_dir=/a/b", "--set=grace/train.max_epochs=3"])
    assert mod.overrides_for("dgi") == ["dataset.data_dir=/a/b"] and mod.overrides_for("gmi") == []
    mod.flags.FLAGS.unparse_flags()
    proc = _run("--tables=nodes", "--out=", "--records=")
    assert proc.returncode != 0 and "--tables ['nodes']: unknown" in proc.stderr, proc.stderr[-1500:]


def test_graph_level_table_with_random_init_baseline(shared_data, tmp_path):
    md, rec = tmp_path / "table.md", tmp_path / "rows.jsonl"
    sets = ["model.num_layers=1", "model.hidden=8", "train.num_epochs=1", "eval.folds=3", "eval.inner_folds=2",
            "eval.kernel='linear'"]
    proc = _run("--tables=graph_level", "--graph_level=infograph:mutag", "--seeds=0", "--cv_repeats=1",
                f"--data_dir={shared_data / 'graph'}", f"--out={md}", f"--records={rec}",
                *[f"--set=infograph/{s}" for s in sets])
    assert proc.returncode == 0, proc.stderr[-2000:]
    (row,) = [json.loads(line) for line in rec.read_text().splitlines()]
    res = row["result"]
    assert res["dataset"] == "MUTAG" and all(50 < res[k] <= 100 for k in ("acc", "random_acc", "acc_z",
                                                                             "random_acc_z"))
    assert res["epochs"] == 1 and res["steps"] == 2  # 188 graphs, batch 128
    table = md.read_text()
    cells = {f"{res[k]:.1f}" for k in ("acc", "random_acc", "acc_z", "random_acc_z")}
    (line,) = [ln for ln in table.splitlines() if "| MUTAG | 1 |" in ln]
    assert all(f" {v} |" in line for v in cells) and "89.01" in line


def test_train_graph_level_returns_the_untrained_encoder(tmp_path):
    import jax
    import numpy as np

    from sslx.configs import infograph as infograph_cfg
    from sslx.train.graph_level import train_graph_level
    from tests.test_infograph import random_graph_dataset

    c = infograph_cfg.get_config("mutag")
    c.model.num_layers, c.model.hidden, c.batch_size, c.train.num_epochs = 1, 8, 4, 1
    ds = random_graph_dataset(8, seed=0)
    c.dataset.name = ds.name
    out = train_graph_level(c, ds, devices=jax.devices()[:1], seed=3)
    again = train_graph_level(c, ds, devices=jax.devices()[:1], seed=3)
    jax.tree.map(np.testing.assert_array_equal, out["init_params"], again["init_params"])
    moved = jax.tree.leaves(jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()),
                                         out["init_params"], out["params"]))
    assert max(moved) > 0  # trained parameters differ from the returned initial ones


def test_semi_table_plain_gcn_vs_partitioning(tmp_path):
    _write_planetoid(tmp_path / "cora")
    md, rec = tmp_path / "table.md", tmp_path / "rows.jsonl"
    proc = _run("--tables=semi", "--semi=none:cora,partitioning:cora", "--semi_seeds=2", f"--data_dir={tmp_path}",
                f"--out={md}", f"--records={rec}", "--set=ssgcn/method.num_parts=2", "--set=ssgcn/train.max_epochs=3")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in rec.read_text().splitlines()]
    assert sorted((r["method"], r["seed"]) for r in rows) == [("none", 0), ("none", 1), ("partitioning", 0),
                                                             ("partitioning", 1)]
    assert all(r["result"]["epochs"] <= 3 and 0 <= r["result"]["test_acc"] <= 100 for r in rows)
    table = md.read_text()
    assert "| none (method.num_parts=2, train.max_epochs=3) | cora | 2 |" in table and "81.0 (GCN)" in table


def test_graph_level_table_marks_rows_without_z_scored_columns():
    """Rows recorded before the z-scored columns existed render '—' there, not a crash or a zero."""
    mod = _script_module()
    base = {"table": "graph_level", "method": "infograph", "dataset": "mutag", "overrides": [], "load": "idle"}
    res = {"dataset": "MUTAG", "acc": 85.0, "random_acc": 80.0, "epochs": 20, "train_s": 1.0, "eval_s": 1.0}
    old = [dict(base, seed=s, result=dict(res)) for s in (0, 1)]
    (line,) = [ln for ln in mod.graph_level_table(old) if "| MUTAG |" in ln]
    assert line.startswith("| infograph | MUTAG | 2 | 85.0 ± 0.0 | 80.0 ± 0.0 | — | — |")
    new = [dict(base, seed=s, result=dict(res, acc_z=88.0 + s, random_acc_z=70.0)) for s in (0, 1)]
    (line,) = [ln for ln in mod.graph_level_table(new) if "| MUTAG |" in ln]
    assert "| 85.0 ± 0.0 | 80.0 ± 0.0 | 88.5 ± 0.5 | 70.0 ± 0.0 |" in line

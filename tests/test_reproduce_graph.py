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


@pytest.mark.parametrize("bad, message", [(["--set=train.no_such_key=1"], "no key"),
                                          (["--node=dgi"], "expected 'method:dataset'"),
                                          (["--tables=nodes"], "unknown")])
def test_bad_flags_are_named(tmp_path, bad, message):
    _write_planetoid(tmp_path / "cora")
    proc = _run("--tables=node", "--node=dgi:cora", "--seeds=0", f"--data_dir={tmp_path}", "--out=",
                f"--records={tmp_path / 'r.jsonl'}", *bad)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr[-1500:]

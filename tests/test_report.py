"""docs/results.md sections and the image reproduction script (smoke run on digits)."""
import json
import os
import subprocess
import sys

import pytest

from sslx.eval.report import markdown_table, update_section
from tests.conftest import REPO


def test_update_section_rewrites_only_its_block(tmp_path):
    p = str(tmp_path / "results.md")
    update_section(p, "image", "A1")
    update_section(p, "graph", "G1")
    update_section(p, "image", "A2\nmore")
    text = open(p).read()
    assert text.startswith("# sslx results")
    assert "A1" not in text and "A2\nmore" in text and "G1" in text
    assert text.index("<!-- image:begin -->") < text.index("<!-- graph:begin -->")  # order kept
    with open(p, "a") as f:
        f.write("<!-- text:begin -->\n")
    with pytest.raises(ValueError, match="markers"):
        update_section(p, "text", "T")
    with pytest.raises(ValueError, match="section name"):
        update_section(p, "Bad Name", "x")
    assert markdown_table(["a", "b"], [[1, 2]]) == "| a | b |\n|---|---|\n| 1 | 2 |"


def test_reproduce_image_smoke(tmp_path):
    out = tmp_path / "docs" / "results.md"
    env = dict(os.environ, XLA_FLAGS="", PYTHONPATH=str(REPO))
    args = [sys.executable, str(REPO / "scripts" / "reproduce_image.py"), "--objectives=simclr", "--dataset=digits",
            "--steps=2", "--nobenchmark", "--probe_examples=400", f"--out={out}", f"--workdir={tmp_path / 'runs'}"]
    r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    text = out.read_text()
    rows = [l for l in text.splitlines() if l.startswith("| simclr") or l.startswith("| raw pixels")]
    assert len(rows) == 2
    rec = json.loads((tmp_path / "docs" / "results_image.json").read_text())["records"]
    assert rec["simclr"]["steps"] == 2
    for key in ("ssl", "random_init"):
        assert 0.1 < rec["simclr"][key]["linear_acc"] <= 1.0
    assert rec["raw_pixels"]["knn_acc"] > 0.8  # digits pixels are already a decent feature
    assert f"{100 * rec['simclr']['ssl']['linear_acc']:.2f}" in rows[0]
    assert "--steps=2" in text
    # A second run finds the objective in <workdir>/records.jsonl and does not retrain it.
    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already in" in again.stdout and "simclr:" not in again.stderr  # no progress bar: no training
    assert [l for l in out.read_text().splitlines() if l.startswith("| simclr")] == rows[:1]

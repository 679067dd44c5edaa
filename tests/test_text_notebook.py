"""Executes notebooks/text_ssl.ipynb end to end in a fresh Jupyter kernel (like tests/test_notebook.py)."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.test_notebook import KERNEL_NAME, _install_kernelspec, _kernel_env, _stdout

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "text_ssl.ipynb"


def test_committed_text_notebook_has_no_outputs():
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"clear the outputs of {NOTEBOOK.name}"


def test_text_notebook_runs(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    jupyter_dir = _install_kernelspec(tmp_path / "kernelspec")
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join(
        [str(jupyter_dir)] + [p for p in [os.environ.get("JUPYTER_PATH")] if p]))
    workdir = tmp_path / "run"
    workdir.mkdir()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name=KERNEL_NAME, resources={"metadata": {"path": str(workdir)}})
    t0 = time.perf_counter()
    try:
        client.execute(env=_kernel_env())
    except CellExecutionError as e:
        pytest.fail(f"a notebook cell raised:\n{e}")
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    lines = [ln for ln in _stdout(code_cells[-1]).splitlines() if ln.startswith("{")]
    assert lines, "last cell printed no JSON summary"
    s = json.loads(lines[-1])
    print(f"text notebook ran in {time.perf_counter() - t0:.0f}s: {s}")
    assert s["num_devices"] == 1
    # Both objectives start near the uniform guess and clearly learn.
    assert s["mlm_last"] < s["mlm_first"] - 0.5, s
    assert s["gpt_first"] > 3.0 and s["gpt_last"] < s["gpt_first"] - 1.0, s
    assert s["generated_chars"] == 200

"""Executes notebooks/quickstart.ipynb end to end in a fresh Jupyter kernel.

The kernel runs this interpreter (a kernelspec written to a temp dir, so a stale
user-level ``python3`` spec pointing at another Python cannot interfere), with the
repo root on PYTHONPATH and without the 4-fake-device XLA_FLAGS of conftest: the
notebook is meant to run on one device, as a user's would. The notebook's last cell
prints a JSON summary that the assertions below check.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "quickstart.ipynb"
KERNEL_NAME = "sslx-notebook-test"


def _install_kernelspec(prefix: Path) -> Path:
    """Writes a kernelspec for ``sys.executable`` under ``prefix``; returns its jupyter data dir."""
    try:
        from ipykernel.kernelspec import install
    except ImportError as e:  # pragma: no cover - depends on the environment
        pytest.fail(f"ipykernel is required to execute the notebook (pip install ipykernel): {e}")
    spec_dir = install(kernel_name=KERNEL_NAME, display_name="sslx test kernel", prefix=str(prefix))
    return Path(spec_dir).parents[1]  # <prefix>/share/jupyter (contains kernels/<name>)


def _kernel_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)  # conftest's --xla_force_host_platform_device_count=4
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    env.setdefault("JAX_PLATFORMS", "cpu")
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"  # silence a debugger warning on kernel start
    return env


def _stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", [])
                   if o.get("output_type") == "stream" and o.get("name") == "stdout")


def test_committed_notebook_has_no_outputs():
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                "commit the notebook with outputs cleared (e.g. jupyter nbconvert --clear-output --inplace "
                f"notebooks/quickstart.ipynb); cell {cell.get('id')} has outputs")


def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    jupyter_dir = _install_kernelspec(tmp_path / "kernelspec")
    # jupyter_client looks kernelspecs up in $JUPYTER_PATH first.
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join(
        [str(jupyter_dir)] + [p for p in [os.environ.get("JUPYTER_PATH")] if p]))
    workdir = tmp_path / "run"
    workdir.mkdir()

    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name=KERNEL_NAME,
                            resources={"metadata": {"path": str(workdir)}})
    t0 = time.perf_counter()
    try:
        client.execute(env=_kernel_env())  # kwargs go to KernelManager.start_kernel
    except CellExecutionError as e:
        pytest.fail(f"a notebook cell raised:\n{e}")
    except Exception as e:  # kernel did not start / died
        pytest.fail(f"could not run the notebook in a Jupyter kernel ({type(e).__name__}: {e}). "
                    f"Is ipykernel installed for {sys.executable}?")
    elapsed = time.perf_counter() - t0

    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code_cells for o in c.outputs if o.get("output_type") == "error"]
    assert not errors, errors
    lines = [ln for ln in _stdout(code_cells[-1]).splitlines() if ln.startswith("{")]
    assert lines, f"last cell printed no JSON summary; stdout was:\n{_stdout(code_cells[-1])}"
    s = json.loads(lines[-1])
    print(f"notebook ran in {elapsed:.0f}s: {s}")

    assert s["num_devices"] == 1, "XLA_FLAGS leaked into the kernel"
    # NT-Xent starts near log(2B - 1) = log(511) ~ 6.2 and must clearly go down.
    assert 5.5 < s["loss_first"] < 7.0, s
    assert s["loss_last"] < 0.9 * s["loss_first"], s
    # Training must beat the same encoder at its random initialisation in the kNN probe.
    assert s["knn_ssl"] > s["knn_random"], s
    assert s["knn_ssl"] > 0.9 and s["linear_ssl"] > 0.9, s
    # The library-path cell ran the shortened config to the end with its final evaluation.
    assert s["library_step"] == 30 and s["library_knn"] > 0.5, s

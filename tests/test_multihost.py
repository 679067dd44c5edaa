"""Multi-host readiness: 2 processes x 2 CPU devices on localhost, gloo collectives.

Two ``tests/multihost_worker.py`` processes join one jax.distributed cluster
(process 0 from the ``config.distributed`` block, process 1 from the
``SSLX_*`` environment variables), each reads only its half of every global
batch, and they train the tiny SimCLR model together: 3 hand-driven jit steps,
then the whole training loop with an orbax checkpoint and a resume. The
results must match a single-process run on this process's 4 devices.

Never skipped: if the cluster cannot start (gloo, ports), the test fails and
shows the workers' output.
"""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from sslx import data as sdata
from sslx.train.loop import build
from tests.multihost_worker import example_batch, param_report, worker_config

REPO = Path(__file__).resolve().parents[1]
WORKER = REPO / "tests" / "multihost_worker.py"
NUM_PROCESSES = 2
STEPS = 3
LOOP_STEPS = 3  # the loop checkpoints at step 2, then resumes to step 3
TIMEOUT_S = 180


def _free_port() -> int:
    try:
        import portpicker
        return portpicker.pick_unused_port()
    except Exception:  # noqa: BLE001 - portpicker missing or failing: ask the OS
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]


def _worker_env(cache_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SSLX_") or k in ("SSLX_DATA_DIR", "SSLX_SHARED_DATA")}
    flags = [f for f in env.get("XLA_FLAGS", "").split()
             if not f.startswith("--xla_force_host_platform_device_count")]
    env["XLA_FLAGS"] = " ".join(flags + ["--xla_force_host_platform_device_count=2"])
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    # Each worker compiles the same step three times (hand-driven, loop, resumed loop):
    # a per-process persistent compilation cache makes the repeats cache hits.
    env["JAX_COMPILATION_CACHE_DIR"] = str(cache_dir)
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.2"
    return env


def _tail(path: Path, n: int = 6000) -> str:
    text = path.read_text(errors="replace") if path.exists() else "<no output>"
    return text[-n:]


class Workers:
    """The worker subprocesses; output goes to files so full pipes never block them."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.port = _free_port()
        self.workdir = tmp / "workdir"  # shared by both processes (orbax coordinates the writes)
        self.procs, self.logs, self.outs = [], [], []
        for i in range(NUM_PROCESSES):
            log, out = tmp / f"worker{i}.log", tmp / f"worker{i}.json"
            cmd = [sys.executable, str(WORKER), "--process_id", str(i), "--num_processes", str(NUM_PROCESSES),
                   "--port", str(self.port), "--out", str(out), "--workdir", str(self.workdir),
                   "--init", "config" if i == 0 else "env", "--steps", str(STEPS),
                   "--loop_steps", str(LOOP_STEPS)]
            with open(log, "wb") as f:
                self.procs.append(subprocess.Popen(cmd, cwd=REPO, env=_worker_env(tmp / f"jax_cache{i}"),
                                                   stdout=f, stderr=subprocess.STDOUT))
            self.logs.append(log)
            self.outs.append(out)
        self.deadline = time.monotonic() + TIMEOUT_S

    def output(self) -> str:
        return "\n".join(f"----- worker {i} (exit code {p.returncode}) -----\n{_tail(log)}"
                         for i, (p, log) in enumerate(zip(self.procs, self.logs)))

    def kill(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def wait(self) -> list[dict]:
        """Both reports, or pytest.fail with both logs (a crash of one stops the other)."""
        failed_at = None
        while True:
            codes = [p.poll() for p in self.procs]  # poll every process (no short-circuit)
            if all(c is not None for c in codes):
                break
            now = time.monotonic()
            if any(c not in (None, 0) for c in codes):
                failed_at = failed_at or now
                if now - failed_at > 5:  # the survivor may hang on a barrier: stop it
                    break
            if now > self.deadline:
                self.kill()
                pytest.fail(f"multi-host workers timed out after {TIMEOUT_S}s (port {self.port}):\n"
                            + self.output())
            time.sleep(0.2)
        self.kill()
        if any(p.returncode != 0 for p in self.procs):
            pytest.fail(f"a multi-host worker failed (port {self.port}):\n" + self.output())
        missing = [str(o) for o in self.outs if not o.exists()]
        if missing:
            pytest.fail(f"workers exited 0 but wrote no report {missing}:\n" + self.output())
        return [json.loads(o.read_text()) for o in self.outs]


def reference_run():
    """The same steps in this one process on its 4 devices, fed the full global batches."""
    assert jax.process_count() == 1 and jax.device_count() == 4
    config = worker_config()
    ds = sdata.load_image_dataset(config.dataset.name, config.dataset.train_split)
    _, runner, host_state, _ = build(config, len(ds), example_batch(ds))
    assert runner.devices == jax.devices() and runner.mode == "jit"
    # Read before stepping: put_state can alias device 0's buffer (even with may_alias=False)
    # and the donating step then deletes the host state's arrays.
    host_params = param_report(host_state.params)
    ts = runner.put_state(host_state)
    batches, losses = [], []
    for step in range(STEPS):
        idx = sdata.global_batch_indices(step, len(ds), config.batch_size, config.seed)
        batches.append(idx.tolist())
        ts, metrics = runner(ts, runner.put_batch(ds[idx]))
        losses.append(float(jax.device_get(metrics["loss"])))
    final = jax.device_get(runner.get_state(ts))
    return {"batches": batches, "losses": losses, "step": int(final.step),
            "params": param_report(final.params), "state": param_report(final.state),
            "host_params": host_params}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multihost")
    t0 = time.perf_counter()
    workers = Workers(tmp)
    try:
        ref = reference_run()  # overlaps with the workers' start-up and compilation
        reports = workers.wait()
    finally:
        workers.kill()
    print(f"multi-host run: {time.perf_counter() - t0:.1f}s; worker timings "
          f"{[r['timings'] for r in reports]}")
    return reports, ref, workers.workdir


def _assert_trees_close(got: dict, want: dict, what: str) -> None:
    assert got.keys() == want.keys(), what
    for k in want:
        # Cross-process (gloo) and in-process all-reduces sum in different orders: ~1e-6 apart.
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=5e-6, err_msg=f"{what} {k}")


def test_cluster_shape(runs):
    reports, _, _ = runs
    assert [r["process_index"] for r in reports] == [0, 1]
    assert [r["init"] for r in reports] == ["config", "env"]
    for r in reports:
        assert r["process_count"] == 2
        assert r["device_count"] == 4 and r["local_device_count"] == 2
        # jax.devices() is process-major, so process p's devices hold rows p*4 .. p*4+3.
        assert [pi for _, pi in r["devices"]] == [0, 0, 1, 1]


def test_processes_read_disjoint_halves(runs):
    reports, ref, _ = runs
    for step, global_idx in enumerate(ref["batches"]):
        halves = [r["local_indices"][step] for r in reports]
        assert [len(h) for h in halves] == [4, 4]
        assert not set(halves[0]) & set(halves[1])
        assert halves[0] + halves[1] == global_idx  # contiguous halves, in global order


def test_processes_agree_exactly(runs):
    reports, _, _ = runs
    a, b = reports
    assert a["step"] == b["step"] == STEPS
    assert a["losses"] == b["losses"]
    assert a["params"] == b["params"]  # the replicas did not drift apart
    assert a["state"] == b["state"]


def test_matches_single_process_four_devices(runs):
    reports, ref, _ = runs
    for r in reports:
        np.testing.assert_allclose(r["losses"], ref["losses"], rtol=1e-6)
        _assert_trees_close(r["params"], ref["params"], "params")
        _assert_trees_close(r["state"], ref["state"], "batch-norm state")
    moved = max(np.max(np.abs(np.subtract(ref["params"][k], ref["host_params"][k]))) for k in ref["params"])
    assert moved > 1e-3  # the steps did change the parameters


def test_training_loop_checkpoints_and_resumes(runs):
    reports, ref, workdir = runs
    for r in reports:
        loop = r["loop"]
        assert (loop["first_step"], loop["final_step"]) == (LOOP_STEPS - 1, LOOP_STEPS)
        assert loop["checkpoint_steps"] == [LOOP_STEPS - 1, LOOP_STEPS]
        assert loop["restored_step"] == LOOP_STEPS
        # Checkpoint at step 2, resume, one more step: the same parameters as 3 straight steps.
        _assert_trees_close(loop["params"], r["params"], "loop params vs hand-driven steps")
        _assert_trees_close(loop["params"], ref["params"], "loop params vs single process")
        assert 0.0 <= loop["ssl"]["linear_acc"] <= 1.0
    assert reports[0]["loop"]["params"] == reports[1]["loop"]["params"]
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == list(range(1, LOOP_STEPS + 1))  # only process 0 writes
    np.testing.assert_allclose([row["loss"] for row in rows], ref["losses"][:LOOP_STEPS], rtol=1e-6)
    assert (workdir / "results.json").exists()

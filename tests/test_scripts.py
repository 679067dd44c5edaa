"""The command-line scripts end to end on digits (short schedules)."""
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.helpers import COMPILE_BOUND_XLA_FLAGS

SMALL = ["--config.train.num_steps=20", "--config.batch_size=64", "--config.model.encoder_kwargs.features=(8, 16)",
         "--config.model.encoder_kwargs.strides=(1, 2)", "--config.train.checkpoint_every=10",
         "--config.eval.probe_epochs=20", "--config.train.eval_every=10"]


def _run(script, *args, timeout=300, compile_bound=False):
    env = dict(os.environ, XLA_FLAGS=COMPILE_BOUND_XLA_FLAGS if compile_bound else "", PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, str(REPO / "scripts" / script), *args], env=env, capture_output=True,
                       text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-4000:]
    return r


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    wd = tmp_path_factory.mktemp("digits")
    r = _run("train.py", "--config", f"{REPO}/sslx/configs/simclr.py:digits", "--workdir", str(wd), *SMALL)
    return wd, r


def test_train_writes_metrics_checkpoints_and_results(trained):
    wd, r = trained
    rows = [json.loads(l) for l in (wd / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "loss" in r]
    assert [row["step"] for row in train_rows] == [10, 20]
    assert all({"loss", "lr", "examples_per_sec", "grad_norm"} <= set(row) for row in train_rows)
    monitor = [r for r in rows if "monitor_knn_acc" in r]  # the kNN monitor ran mid-training
    assert [r["step"] for r in monitor] == [10] and 0.1 < monitor[0]["monitor_knn_acc"] <= 1.0
    assert sorted(int(p.name) for p in (wd / "checkpoints").iterdir() if p.name.isdigit()) == [10, 20]
    assert any(p.name.startswith("events.out.tfevents") for p in (wd / "tb").iterdir())
    res = json.loads((wd / "results.json").read_text())
    for key in ("ssl", "random_init"):
        assert 0.0 <= res[key]["linear_acc"] <= 1.0 and 0.0 <= res[key]["knn_acc"] <= 1.0
    assert "linear probe" in r.stdout and "random init" in r.stdout
    assert "simclr" in r.stderr  # the tqdm progress bar
    # Running again resumes at the end and retrains nothing.
    again = _run("train.py", "--config", f"{REPO}/sslx/configs/simclr.py:digits", "--workdir", str(wd), *SMALL,
                 "--config.eval.at_end=False")
    assert "Resuming from checkpoint step 20" in again.stdout


def test_evaluate_script_matches_training_results(trained):
    from PIL import Image
    wd, _ = trained
    r = _run("evaluate.py", "--workdir", str(wd), "--plot", "--plot_points=300")
    out = json.loads((wd / "eval_20.json").read_text())
    res = json.loads((wd / "results.json").read_text())
    assert out["ssl"] == pytest.approx(res["ssl"], abs=1e-6)  # same checkpoint, same features, same probe
    assert "SSL" in r.stdout
    for name in ("embedding_20.png", "curves.png"):  # --plot: t-SNE map and training curves
        with Image.open(wd / name) as im:
            assert im.format == "PNG" and im.size[0] > 300 and im.size[1] > 200


def test_benchmark_prints_a_json_line():
    r = _run("benchmark.py", "--config", f"{REPO}/sslx/configs/simclr.py:digits", "--config.batch_size=32",
             "--config.model.encoder_kwargs.features=(8, 16)", "--config.model.encoder_kwargs.strides=(1, 2)", "--steps=2", "--repeats=2", "--noaugment", compile_bound=True)
    line = json.loads(r.stdout.strip().splitlines()[-1])
    assert line["examples_per_sec"] > 0 and line["device"].startswith("cpu") and line["augment"] is False
    assert line["batch_size"] == 32


# Every image objective's step goes through the same ``benchmark_step`` (and each objective's own test
# file trains its step); these three cover the distinct state layouts: a generator/discriminator pair
# with two optimisers, a patch grid, and a queue with multi-crop views. DeepCluster's is in its file.
@pytest.mark.parametrize("name", ["context_encoder", "cpc", "swav"])
def test_benchmark_runs_objectives(name):
    r = _run("benchmark.py", "--config", f"{REPO}/sslx/configs/{name}.py:digits", "--config.batch_size=32",
             "--steps=1", "--repeats=1", "--warmup=0", compile_bound=True)
    line = json.loads(r.stdout.strip().splitlines()[-1])
    assert line["method"] == name and line["image_size"] == 8 and line["examples_per_sec"] > 0

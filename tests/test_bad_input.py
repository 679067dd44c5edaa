"""Bad input at the user-facing entry points gives errors that name the problem and the fix."""
import os
import subprocess
import sys

import numpy as np
import pytest

from sslx.data import write_npz_dataset
from sslx.train.loop import train
from tests.conftest import REPO
from tests.helpers import tiny_simclr_config


def _run_cli(*args):
    env = dict(os.environ, XLA_FLAGS="", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_unknown_config_key_is_an_error(tmp_path):
    r = _run_cli("--config", f"{REPO}/sslx/configs/simclr.py:digits", "--workdir", str(tmp_path),
                 "--config.optimizer.learning_rate=0.3")
    assert r.returncode != 0
    assert "Unknown config key 'optimizer.learning_rate'" in r.stderr
    assert "'lr'" in r.stderr  # lists the valid keys under optimizer
    assert not (tmp_path / "checkpoints").exists()  # nothing ran


def test_unknown_config_arg_is_an_error(tmp_path):
    r = _run_cli("--config", f"{REPO}/sslx/configs/simclr.py:digitz", "--workdir", str(tmp_path))
    assert r.returncode != 0 and "digitz" in r.stderr and "digits" in r.stderr


def test_missing_data_dir_names_the_path_and_the_fix(tmp_path):
    c = tiny_simclr_config(**{"dataset.name": "mnist", "dataset.data_dir": str(tmp_path / "nowhere")})
    with pytest.raises(FileNotFoundError) as e:
        train(c, str(tmp_path / "run"), progress=False)
    msg = str(e.value)
    assert "nowhere" in msg and "data_dir" in msg


def test_data_dir_with_wrong_files(tmp_path):
    (tmp_path / "mnist").mkdir()
    np.savez(tmp_path / "mnist" / "train.npz", pixels=np.zeros((4, 28, 28), np.uint8))
    c = tiny_simclr_config(**{"dataset.name": "mnist", "dataset.data_dir": str(tmp_path)})
    with pytest.raises(ValueError, match="images"):
        train(c, str(tmp_path / "run"), progress=False)


def test_batch_larger_than_dataset(tmp_path):
    write_npz_dataset(tmp_path / "toy" / "train.npz", np.zeros((6, 8, 8), np.uint8), np.arange(6) % 2)
    c = tiny_simclr_config(**{"dataset.name": "toy", "dataset.data_dir": str(tmp_path)})
    with pytest.raises(ValueError, match="batch_size=8 exceeds the 6 training examples"):
        train(c, str(tmp_path / "run"), progress=False)


def test_batch_not_divisible_by_devices_at_train_time(tmp_path):
    c = tiny_simclr_config(**{"batch_size": 6})
    with pytest.raises(ValueError, match="not divisible by the 4 devices.*multiple of 4"):
        train(c, str(tmp_path / "run"), progress=False)


def test_unknown_method_name(tmp_path):
    c = tiny_simclr_config(**{"method.name": "simclr2"})
    with pytest.raises(ValueError, match="simclr2.*simclr"):
        train(c, str(tmp_path / "run"), progress=False)

"""Test setup: 4 fake CPU devices (set before jax is imported) and shared fixtures."""
import os
from pathlib import Path

# In-process, the suite's tiny shapes spend most of their time in LLVM's optimisation passes:
# the backend of the test processes is built with --xla_backend_optimization_level=0, which
# compiles about twice as fast and computes the same thing (float summation order may differ,
# as between any two backends; the tolerances say so). Subprocesses (scripts, notebooks) get the
# default flags back: they run real loops, which -O0 code slows down. SSLX_TEST_XLA_OPT=1 keeps
# the default optimisation in-process too.
_BASE_FLAGS = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
os.environ["XLA_FLAGS"] = _BASE_FLAGS
os.environ.setdefault("JAX_PLATFORMS", "cpu")
if os.environ.get("SSLX_TEST_XLA_OPT", "0") != "1" and "xla_backend_optimization_level" not in _BASE_FLAGS:
    os.environ["XLA_FLAGS"] = _BASE_FLAGS + " --xla_backend_optimization_level=0"
    import jax  # noqa: E402

    jax.devices()  # the CPU client reads XLA_FLAGS here, once per process
    os.environ["XLA_FLAGS"] = _BASE_FLAGS

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SSLX_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    """Path to ../shared/data; skips the test when the folder is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared datasets not found at {SHARED_DATA} (set SSLX_SHARED_DATA)")
    return SHARED_DATA

"""One process of a 2-process multi-host run on localhost CPU (driven by tests/test_multihost.py).

Run as ``python tests/multihost_worker.py --process_id I --port P --out FILE
--workdir DIR``, once per process, with ``XLA_FLAGS`` giving 2 CPU devices
each. The process

1. joins the cluster with ``sslx.train.maybe_initialize_distributed`` (from the
   ``config.distributed`` block or, with ``--init env``, from the ``SSLX_*``
   environment variables);
2. builds the tiny SimCLR step exactly as ``sslx.train.loop.train`` does,
   reads ONLY its own rows of each global batch with ``BatchIterator``
   (``put_fn=runner.put_batch`` makes the global ``jax.Array``), and takes
   ``--steps`` jit steps;
3. runs the whole training loop (``sslx.train.loop.train``) in the shared
   ``--workdir``: ``--loop_steps - 1`` steps with an orbax checkpoint, then
   again to ``--loop_steps`` so it resumes from that checkpoint, and restores
   the final checkpoint (every process calls save and restore);

and writes a JSON report to ``--out``. The model functions below are also
imported by the test to compute the single-process reference.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def worker_config(process_id=None, port=None, num_processes=2):
    """The tiny SimCLR config shared by the workers and the reference run."""
    from tests.helpers import tiny_simclr_config

    c = tiny_simclr_config()
    c.batch_size = 8  # global: 4 rows per process, 1 per device
    c.eval.compare_random_init = False
    c.train.async_checkpoint = True
    if process_id is not None:
        c.distributed.initialize = True
        c.distributed.coordinator_address = f"127.0.0.1:{port}"
        c.distributed.num_processes = num_processes
        c.distributed.process_id = process_id
    return c


def example_batch(dataset):
    import numpy as np

    return dataset[np.arange(2)]  # what the loop initialises with


def param_report(params) -> dict:
    """float64 view of every param leaf: {path: flat list} (the tiny model has ~1k values)."""
    import jax
    import numpy as np

    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        out[jax.tree_util.keystr(path)] = np.asarray(jax.device_get(leaf), np.float64).ravel().tolist()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--process_id", type=int, required=True)
    p.add_argument("--num_processes", type=int, default=2)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--workdir", default="")
    p.add_argument("--init", choices=("config", "env"), default="config")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--loop_steps", type=int, default=3, help="0: skip the training-loop part")
    args = p.parse_args(argv)

    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                                   + " --xla_force_host_platform_device_count=2").strip()

    import jax
    import numpy as np

    from sslx import data as sdata
    from sslx.train import maybe_initialize_distributed
    from sslx.train.loop import build

    def make_config():
        if args.init == "env":  # no distributed block: the SSLX_* variables drive it, as on a cluster
            return worker_config()
        return worker_config(args.process_id, args.port, args.num_processes)

    t0 = time.perf_counter()
    if args.init == "env":
        os.environ["SSLX_COORDINATOR"] = f"127.0.0.1:{args.port}"
        os.environ["SSLX_NUM_PROCESSES"] = str(args.num_processes)
        os.environ["SSLX_PROCESS_ID"] = str(args.process_id)
    config = make_config()
    ran = maybe_initialize_distributed(config.distributed)
    assert ran, "maybe_initialize_distributed did not initialise"
    report = {
        "init": args.init,
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "device_count": jax.device_count(),
        "local_device_count": jax.local_device_count(),
        "devices": [[d.id, d.process_index] for d in jax.devices()],
        "timings": {"init": time.perf_counter() - t0},
    }

    # -- 2. hand-built steps over process-local batches --------------------------------
    t0 = time.perf_counter()
    ds = sdata.load_image_dataset(config.dataset.name, config.dataset.train_split)
    _, runner, host_state, _ = build(config, len(ds), example_batch(ds))
    assert runner.num_devices == jax.device_count() == args.num_processes * jax.local_device_count()
    assert runner.mode == "jit"
    ts = runner.put_state(host_state)
    report["timings"]["build"] = time.perf_counter() - t0
    local_indices, losses = [], []
    it = sdata.BatchIterator(ds, config.batch_size, seed=config.seed, start_step=0, prefetch=1,
                             put_fn=runner.put_batch, num_steps=args.steps)
    with it:
        for step in range(args.steps):
            idx = sdata.process_slice(
                sdata.global_batch_indices(step, len(ds), config.batch_size, config.seed),
                jax.process_index(), jax.process_count())
            local_indices.append(idx.tolist())
            batch = next(it)
            # The global array holds this process's rows on its own devices, in order.
            local_rows = np.concatenate([np.asarray(s.data) for s in sorted(
                batch["image"].addressable_shards, key=lambda s: s.index[0].start)])
            assert batch["image"].shape[0] == config.batch_size, batch["image"].shape
            assert np.array_equal(local_rows, ds[idx]["image"]), "put_batch placed other rows here"
            ts, metrics = runner(ts, batch)
            losses.append(float(jax.device_get(metrics["loss"])))
            report["timings"][f"step{step}"] = time.perf_counter() - t0
    final = runner.get_state(ts)
    report.update(local_indices=local_indices, losses=losses, step=int(jax.device_get(final.step)),
                  params=param_report(final.params), state=param_report(final.state))
    report["timings"]["manual_steps"] = time.perf_counter() - t0

    # -- 3. the whole training loop, with a checkpoint and a resume -----------------------
    if args.loop_steps:
        from sslx.checkpoint import Checkpointer
        from sslx.train.loop import train

        t0 = time.perf_counter()
        first = args.loop_steps - 1
        cfg = make_config()
        cfg.train.num_steps = first
        cfg.train.checkpoint_every = first
        r1 = train(cfg, args.workdir, progress=False)
        report["timings"]["loop1"] = time.perf_counter() - t0
        cfg.train.num_steps = args.loop_steps
        r2 = train(cfg, args.workdir, progress=False)  # resumes from step `first`
        ckpt = Checkpointer(os.path.join(args.workdir, "checkpoints"))
        restored, meta = ckpt.restore(host_state)
        steps = ckpt.steps()
        ckpt.close()
        report["loop"] = {
            "first_step": r1["step"], "final_step": r2["step"], "ssl": r2["ssl"],
            "checkpoint_steps": steps,
            "restored_step": int(meta["step"]),
            "params": param_report(restored.params),
        }
        report["timings"]["loop"] = time.perf_counter() - t0

    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(report, f)
    os.replace(tmp, args.out)
    print(f"process {jax.process_index()}: done {report['timings']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

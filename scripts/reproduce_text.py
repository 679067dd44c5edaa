"""Reproduce the text results: GPT on tiny shakespeare at character level (nanoGPT's CPU config).

    python scripts/reproduce_text.py [--data_dir ../shared/data/text] [--out docs/results_text.md]
        [--steps 2000] [--steps_per_call 50] [--seed 0] [--sample 300] [--devices 1]

Trains ``sslx/configs/gpt.py:shakespeare_char`` (context 64, batch 12, 4x4x128, AdamW 1e-3,
100 warmup steps, cosine to 1e-4, beta2 0.99, wd 0.1 on 2-D weights, clip 1.0) with the
token stream on device: every step samples its windows inside the compiled step (no host
work per step), ``steps_per_call`` steps per call (``lax.scan``), the state donated. At the
end the train and validation losses are estimated on 200 random batches each (nanoGPT's
``estimate_loss``). Prints the losses, wall time (total, compile, training), ms/iteration,
thread settings and load average, and writes a markdown table to ``--out``.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _host_devices_flag(argv: list[str]) -> None:
    """``--devices N`` on the CPU needs N host devices, which XLA reads from XLA_FLAGS once, at
    backend start: set it before jax is imported (no effect on GPU/TPU backends)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--devices", type=int, default=1)
    n = pre.parse_known_args(argv)[0].devices
    flags = os.environ.get("XLA_FLAGS", "")
    if n > 1 and "xla_force_host_platform_device_count" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()


if __name__ == "__main__":
    _host_devices_flag(sys.argv[1:])

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from sslx.configs import gpt as gpt_cfg  # noqa: E402
from sslx.data.text import CharTokenizer, load_text_corpus  # noqa: E402
from sslx.methods import get_method  # noqa: E402
from sslx.methods.text.gpt import lm_logits, sample  # noqa: E402
from sslx.methods.text.stream import StreamStep, make_loss_estimator  # noqa: E402
from sslx.train import create_train_state, make_optimizer, make_step_fn  # noqa: E402

NANOGPT = {"val": 1.886, "train": 1.765, "wall_s": 57.8, "ms_per_iter": 26.2}


def thread_settings() -> str:
    keys = ("XLA_FLAGS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    env = ", ".join(f"{k}={os.environ[k]!r}" for k in keys if k in os.environ) or "no thread env vars set"
    return f"{os.cpu_count()} CPUs visible, affinity {len(os.sched_getaffinity(0))}; {env}; XLA CPU default threading"


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def train_gpt(config, data_dir=None, steps_per_call: int = 50, log=print, devices=None) -> dict:
    """Train the GPT of ``config`` on tiny shakespeare characters; returns losses, timings and params.

    ``devices`` (default: the first device) split each batch of ``config.batch_size`` windows
    (data parallel, gradients averaged across them)."""
    devices = list(devices) if devices is not None else jax.devices()[:1]
    t_start = time.perf_counter()
    load0 = loadavg()
    train_text = load_text_corpus("tinyshakespeare", "train", data_dir)
    val_text = load_text_corpus("tinyshakespeare", "val", data_dir)
    tok = CharTokenizer.from_text(train_text + val_text)
    if tok.vocab_size != config.model.vocab_size:
        config.model.vocab_size = tok.vocab_size
    train_ids, val_ids = tok.encode(train_text), tok.encode(val_text)
    window = int(config.dataset.seq_len) + 1
    steps = int(config.train.num_steps)
    if steps % steps_per_call:
        raise ValueError(f"--steps {steps} must be a multiple of --steps_per_call {steps_per_call}.")
    method = get_method(config)
    tx, schedule = make_optimizer(config.optimizer, steps, config.batch_size)
    runner = StreamStep(make_step_fn(method, tx, schedule), window, config.batch_size,
                        devices=devices, steps_per_call=steps_per_call)
    example = {"tokens": jnp.zeros((1, window), jnp.int32)}
    ts = runner.put_state(create_train_state(method, tx, jax.random.PRNGKey(config.seed), example))
    train_stream, val_stream = runner.put_stream(train_ids), runner.put_stream(val_ids)
    estimate = make_loss_estimator(lambda p, x: lm_logits(config, p, x), window, int(config.eval.batch_size),
                                   int(config.eval.num_batches))
    t_ready = time.perf_counter()
    ts, m = runner(ts, train_stream)  # compiles
    first_loss = float(m["loss"])
    t_compiled = time.perf_counter()
    for i in range(1, steps // steps_per_call):
        ts, m = runner(ts, train_stream)
        if log and config.train.log_every and ((i + 1) * steps_per_call) % int(config.train.log_every) == 0:
            log(f"step {(i + 1) * steps_per_call}: loss {float(m['loss']):.4f}")  # host sync only when logging
    jax.block_until_ready(ts.params)
    t_trained = time.perf_counter()
    key = jax.random.PRNGKey(config.seed + 1)
    val = float(estimate(ts.params, val_stream, key))
    train = float(estimate(ts.params, train_stream, jax.random.fold_in(key, 1)))
    t_end = time.perf_counter()
    timed_steps = steps - steps_per_call
    return {"val_loss": val, "train_loss": train, "first_loss": first_loss, "steps": steps,
            "wall_s": t_end - t_start, "setup_s": t_ready - t_start, "compile_first_call_s": t_compiled - t_ready,
            "train_s": t_trained - t_ready, "eval_s": t_end - t_trained,
            "ms_per_iter": 1000 * (t_trained - t_compiled) / max(timed_steps, 1),
            "load_before": load0, "load_after": loadavg(), "threads": thread_settings(), "devices": len(devices),
            "params": ts.params, "tokenizer": tok, "config": config}


def write_table(res: dict, path: str, sample_text: str = "") -> None:
    ndev = f", {res['devices']} devices" if res.get("devices", 1) > 1 else ""
    lines = [
        "# Text results", "",
        "## GPT, tiny shakespeare, character level (nanoGPT CPU configuration)", "",
        "| run | val loss | train loss | wall (s) | ms / iteration | load average (1, 5, 15 min) |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| sslx (JAX, {jax.devices()[0].platform}{ndev}) | {res['val_loss']:.4f} | {res['train_loss']:.4f} | "
        f"{res['wall_s']:.1f} | {res['ms_per_iter']:.1f} | before {res['load_before']}, after {res['load_after']} |",
        f"| nanoGPT (PyTorch 2.13 CPU, idle machine) | {NANOGPT['val']} | {NANOGPT['train']} | {NANOGPT['wall_s']} | "
        f"{NANOGPT['ms_per_iter']} | idle |", "",
        f"{res['steps']} iterations; losses estimated on 200 random batches of 12 x 64 characters (val = last 10%). "
        f"Wall time covers data loading, compilation ({res['compile_first_call_s']:.1f} s for the first call), "
        f"training and both loss estimates ({res['eval_s']:.1f} s). Threads: {res['threads']}. "
        f"Machine: {platform.machine()}, jax {jax.__version__}.", "",
    ]
    try:
        busy = float(res["load_before"].split()[0]) > 1.0 or float(res["load_after"].split()[0]) > 1.5
    except (ValueError, IndexError):
        busy = False
    if busy:
        lines += ["The machine was busy during this run (see the load averages): wall time and ms/iteration are "
                  "not comparable with the idle-machine nanoGPT numbers; rerun on an idle machine to compare.", ""]
    if sample_text:
        lines += ["Sample (temperature 0.8):", "", "```", sample_text, "```", ""]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="shakespeare_char")
    ap.add_argument("--data_dir", default=None)
    ap.add_argument("--out", default="docs/results_text.md")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--steps_per_call", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sample", type=int, default=300, help="characters to sample after training (0: none)")
    ap.add_argument("--devices", type=int, default=1,
                    help="devices to split each batch over (data parallel); on the CPU these are host devices "
                         "running on separate threads")
    args = ap.parse_args(argv)
    if args.devices < 1 or args.devices > len(jax.devices()):
        raise SystemExit(f"--devices {args.devices}: {len(jax.devices())} {jax.devices()[0].platform} device(s) are "
                         "available. On the CPU, run the script directly (it then sets XLA_FLAGS="
                         "--xla_force_host_platform_device_count) or set that flag before jax starts.")
    config = gpt_cfg.get_config(args.config)
    config.seed = args.seed
    if args.steps:
        config.train.num_steps = args.steps
    spc = args.steps_per_call or int(config.train.get("steps_per_call", 1))
    res = train_gpt(config, args.data_dir, spc, devices=jax.devices()[:args.devices])
    print(f"GPT shakespeare_char: val loss {res['val_loss']:.4f}, train loss {res['train_loss']:.4f} "
          f"after {res['steps']} iterations")
    print(f"wall {res['wall_s']:.1f} s (setup {res['setup_s']:.1f}, first call incl. compile "
          f"{res['compile_first_call_s']:.1f}, training {res['train_s']:.1f}, eval {res['eval_s']:.1f}); "
          f"{res['ms_per_iter']:.1f} ms/iteration")
    print(f"threads: {res['threads']}; load average before {res['load_before']}, after {res['load_after']}")
    text = ""
    if args.sample:
        tok = res["tokenizer"]
        out = sample(config, res["params"], tok.encode("\n"), args.sample, 0.8, jax.random.PRNGKey(args.seed))
        text = tok.decode(out)
        print(text)
    write_table(res, args.out, text)
    print(f"wrote {args.out}")
    return res


if __name__ == "__main__":
    main()

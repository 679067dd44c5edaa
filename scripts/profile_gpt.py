"""Where a GPT training step spends its time on this machine (not a test).

  python scripts/profile_gpt.py                 # parts + full step, 1 device
  python scripts/profile_gpt.py --devices 2     # also the real train step on 2 host devices
  python scripts/profile_gpt.py --trace         # + where the library step's wall time goes, per XLA op

Times forward + backward of each piece of the nanoGPT CPU configuration (batch 12 x 64
tokens, width 128, 4 heads, vocabulary 65; ``--config tiny`` for a smoke run), each compiled
once and run ``--steps`` times inside one ``lax.scan`` (so dispatch is excluded), median of
``--repeats``: the four dense
layers of a block, causal attention (``jax.nn.dot_product_attention`` and a hand-written
einsum version), GELU, LayerNorm, the tied logits + cross-entropy, the whole model with SGD,
the whole model with AdamW + clipping, and the library's own train step
(:class:`sslx.methods.text.stream.StreamStep`) on ``--devices`` CPU devices (data parallel:
the batch split across devices, which run on separate threads). Prints one line per piece.

``--trace`` then records one call of the library step with ``jax.profiler.trace`` and reads the
trace back: how many XLA CPU ops (thunks, and their parallel sub-tasks) run per step, each
thread's busy time per step against the wall time (the rest is scheduling and waiting between
ops), and the op kinds that take the most time.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=1, help="host CPU devices for the library step")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--config", default="shakespeare_char", help="gpt config arg giving the shapes (tiny: a smoke run)")
    ap.add_argument("--trace", action="store_true", help="profile one library-step call and summarise it per op")
    args = ap.parse_args()
    if args.devices > 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                                   + f" --xla_force_host_platform_device_count={args.devices}").strip()
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from jax import lax

    from sslx.configs.gpt import get_config
    from sslx.methods import get_method
    from sslx.methods.text.stream import StreamStep
    from sslx.models.transformer import Transformer
    from sslx.train import create_train_state, make_optimizer, make_step_fn

    c = get_config(args.config)
    b, t, w, h, v = c.batch_size, c.dataset.seq_len, c.model.width, c.model.num_heads, c.model.vocab_size
    n, r = b * t, args.steps

    def timed(run, *a) -> float:
        jax.block_until_ready(run(*a))
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(run(*a))
            times.append(time.perf_counter() - t0)
        return 1000 * float(np.median(times)) / r

    def bench(name: str, f, *a) -> None:
        grad = jax.value_and_grad(f)

        @jax.jit
        def run(*a):
            def body(c, _):
                val, g = grad(c, *a[1:])
                return jax.tree.map(lambda x, y: x - 1e-6 * y, c, g), val
            return lax.scan(body, a[0], None, length=r)
        print(f"{name:44s} {timed(run, *a):7.2f} ms / step", flush=True)

    key = jax.random.PRNGKey(0)
    x = jax.random.normal(key, (n, w))
    x4 = jax.random.normal(key, (n, 4 * w))
    act = lambda y: jnp.sum(jnp.tanh(y))  # noqa: E731
    print(f"jax {jax.__version__}, {os.cpu_count()} CPUs, backend {jax.default_backend()}; forward + backward:")
    bench(f"dense {w} -> {3 * w} (qkv)", lambda k, x: act(x @ k), jnp.full((w, 3 * w), 0.01), x)
    bench(f"dense {w} -> {w} (attention out)", lambda k, x: act(x @ k), jnp.full((w, w), 0.01), x)
    bench(f"dense {w} -> {4 * w} (mlp fc)", lambda k, x: act(x @ k), jnp.full((w, 4 * w), 0.01), x)
    bench(f"dense {4 * w} -> {w} (mlp proj)", lambda k, x: act(x @ k), jnp.full((4 * w, w), 0.01), x4)
    qkv = jax.random.normal(key, (b, t, 3, h, w // h))
    bench("attention (jax.nn.dot_product_attention)",
          lambda a: act(jax.nn.dot_product_attention(a[:, :, 0], a[:, :, 1], a[:, :, 2], is_causal=True)), qkv)

    def einsum_attention(a):
        s = jnp.einsum("bqhd,bkhd->bhqk", a[:, :, 0], a[:, :, 1]) / np.sqrt(w // h)
        s = jnp.where(jnp.tril(jnp.ones((t, t), bool)), s, -1e30)
        return act(jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(s, -1), a[:, :, 2]))
    bench("attention (einsum, causal where)", einsum_attention, qkv)
    bench(f"gelu (erf) [{n}, {4 * w}]", lambda y: jnp.sum(jax.nn.gelu(y, approximate=False)), x4)

    def layer_norm(y):
        m = y.mean(-1, keepdims=True)
        return act((y - m) * lax.rsqrt(((y - m) ** 2).mean(-1, keepdims=True) + 1e-5))
    bench(f"layer norm [{n}, {w}]", layer_norm, x)
    targets = jax.random.randint(key, (n,), 0, v)
    bench("tied logits + cross-entropy", lambda e, x, y: -jnp.mean(
        jnp.sum(jax.nn.log_softmax(x @ e.T) * jax.nn.one_hot(y, v), -1)), jax.random.normal(key, (v, w)) * 0.02, x,
        targets)

    layers = c.model.num_layers
    model = Transformer(vocab_size=v, max_len=t, num_layers=layers, num_heads=h, width=w, use_bias=False)
    tokens = jax.random.randint(key, (b, t + 1), 0, v)
    params = model.init(key, tokens[:, :-1])["params"]

    def lm_loss(p, tok):
        logp = jax.nn.log_softmax(model.apply({"params": p}, tok[:, :-1]))
        return -jnp.mean(jnp.sum(logp * jax.nn.one_hot(tok[:, 1:], v), -1))
    bench(f"whole model ({layers} blocks), SGD", lm_loss, params, tokens)
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-3, b2=0.99, weight_decay=0.1))

    @jax.jit
    def adam_run(p, o, tok):
        def body(c, _):
            val, g = jax.value_and_grad(lm_loss)(c[0], tok)
            u, o2 = tx.update(g, c[1], c[0])
            return (optax.apply_updates(c[0], u), o2), val
        return lax.scan(body, (p, o), None, length=r)
    print(f"{'whole model, AdamW + clipping':44s} {timed(adam_run, params, tx.init(params), tokens):7.2f} ms / step")

    method = get_method(c)
    tx, schedule = make_optimizer(c.optimizer, int(c.train.num_steps), c.batch_size)
    devices = jax.devices()[:args.devices]
    runner = StreamStep(make_step_fn(method, tx, schedule), t + 1, b, devices=devices, steps_per_call=r)
    ts = runner.put_state(create_train_state(method, tx, key, {"tokens": jnp.zeros((1, t + 1), jnp.int32)}))
    stream = runner.put_stream(np.random.default_rng(0).integers(0, v, 100_000))
    holder = {"ts": ts}

    def lib_step():
        holder["ts"], m = runner(holder["ts"], stream)
        return m
    print(f"{f'sslx train step (StreamStep, {len(devices)} device(s))':44s} {timed(lib_step):7.2f} ms / step")
    if args.trace:
        trace_summary(lambda: jax.block_until_ready(lib_step()), r)


def trace_summary(run, steps: int, top: int = 8) -> None:
    """Profile one ``run()`` (``steps`` training steps) and print per-step op counts, busy time per
    thread and the op kinds (HLO instruction names without their ``.N`` suffix) taking the most time."""
    import collections
    import glob
    import gzip
    import json
    import re
    import tempfile

    import jax
    with tempfile.TemporaryDirectory() as d:
        with jax.profiler.trace(d):
            run()
        files = glob.glob(os.path.join(d, "**", "*.trace.json.gz"), recursive=True)
        if not files:
            print(f"--trace: jax.profiler wrote no *.trace.json.gz under {d}; no per-op summary.")
            return
        with gzip.open(files[0]) as f:
            events = [e for e in json.load(f)["traceEvents"] if e.get("ph") == "X"]
    # XLA CPU op events are named after HLO instructions ("dot.171", "ynn_fusion.41"); skip executor,
    # threadpool and Python events and the control-flow thunks that contain other ops.
    hlo = re.compile(r"^[a-z][\w\-]*(\.\d+)?$")
    ops = [e for e in events if hlo.match(e["name"]) and re.sub(r"\.\d+$", "", e["name"]) not in
           ("while", "conditional", "call")]
    if not ops:
        print("--trace: the trace holds no XLA op events; no per-op summary.")
        return
    busy = collections.Counter()
    kinds, counts = collections.Counter(), collections.Counter()
    for e in ops:
        busy[e["tid"]] += e["dur"]
        kind = re.sub(r"\.\d+$", "", e["name"])
        kinds[kind] += e["dur"]
        counts[kind] += 1
    span = (max(e["ts"] + e["dur"] for e in ops) - min(e["ts"] for e in ops)) / 1000 / steps
    threads = [t for t, _ in busy.most_common() if busy[t] / 1000 / steps > 0.01 * span]
    print(f"trace: {len(ops) / steps:.0f} op events per step over {len(threads)} thread(s); wall {span:.2f} ms / step; "
          "busy " + " / ".join(f"{busy[t] / 1000 / steps:.2f}" for t in threads) + " ms / step per thread")
    for kind, us in kinds.most_common(top):
        print(f"  {kind:40s} {counts[kind] / steps:6.1f} x {us / 1000 / steps:7.2f} ms / step")


if __name__ == "__main__":
    main()

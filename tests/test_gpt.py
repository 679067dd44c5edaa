"""GPT: token cross-entropy, the loss_fn, 1 vs 4 devices, on-device window sampling, sampling, configs."""
import math
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslx.configs import gpt as gpt_cfg
from sslx.losses import token_cross_entropy
from sslx.methods import get_method
from sslx.methods.text.gpt import lm_logits, sample
from sslx.methods.text.stream import StreamStep, data_key, make_loss_estimator
from sslx.data.text import sample_windows
from sslx.train import create_train_state, make_optimizer, make_step_fn
from tests.helpers import COMPILE_BOUND_XLA_FLAGS, run_steps, tiny_training

V = 11


def tiny_gpt_config(**overrides):
    c = gpt_cfg.get_config("tiny")
    c.model.vocab_size = V
    c.model.max_len = 8
    c.dataset.seq_len = 8
    c.model.num_layers = 2
    c.model.width = 16
    c.model.num_heads = 2
    c = tiny_training(c, **{"optimizer.lr": 0.1, **overrides})
    return c


def _batch(n=8, t=9, seed=0, padded=False):
    rng = np.random.default_rng(seed)
    b = {"tokens": rng.integers(0, V, (n, t)).astype(np.int32)}
    if padded:
        lengths = rng.integers(3, t + 1, n)
        b["mask"] = np.arange(t)[None, :] < lengths[:, None]
    return b


# --------------------------------------------------------------------------- loss

def _naive_ce(logits, targets, weights):
    tot, wsum, corr = 0.0, 0.0, 0.0
    for idx in np.ndindex(targets.shape):
        z = logits[idx].astype(np.float64)
        lse = math.log(sum(math.exp(v - z.max()) for v in z)) + z.max()
        tot += weights[idx] * (lse - z[targets[idx]])
        corr += weights[idx] * float(np.argmax(z) == targets[idx])
        wsum += weights[idx]
    return tot / wsum, corr / wsum


def test_token_cross_entropy_matches_naive():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 5, 7)).astype(np.float32) * 3
    targets = rng.integers(0, 7, (3, 5))
    weights = (rng.uniform(size=(3, 5)) < 0.6).astype(np.float32)
    loss, aux = token_cross_entropy(jnp.asarray(logits), jnp.asarray(targets), jnp.asarray(weights))
    want, acc = _naive_ce(logits, targets, weights)
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    np.testing.assert_allclose(float(aux["accuracy"]), acc, rtol=1e-6)
    assert float(aux["num_tokens"]) == weights.sum()
    # Unweighted = all ones; zero-weight positions do not matter.
    l1, _ = token_cross_entropy(jnp.asarray(logits), jnp.asarray(targets))
    np.testing.assert_allclose(float(l1), _naive_ce(logits, targets, np.ones((3, 5)))[0], rtol=1e-5)
    noisy = np.where(weights[..., None] > 0, logits, 100 * rng.normal(size=logits.shape)).astype(np.float32)
    np.testing.assert_allclose(float(token_cross_entropy(jnp.asarray(noisy), jnp.asarray(targets),
                                                         jnp.asarray(weights))[0]), want, rtol=1e-5)


def test_token_cross_entropy_hand_values():
    # Uniform logits: -log(1/V) = log V for every target.
    loss, aux = token_cross_entropy(jnp.zeros((2, 4, 13)), jnp.ones((2, 4), jnp.int32))
    np.testing.assert_allclose(float(loss), math.log(13), rtol=1e-6)
    # Two classes, logits (0, log 3): p = (1/4, 3/4); targets 1 and 0 -> (-log .75 - log .25) / 2.
    lg = jnp.asarray([[0.0, math.log(3)], [0.0, math.log(3)]])
    loss, aux = token_cross_entropy(lg, jnp.asarray([1, 0]))
    np.testing.assert_allclose(float(loss), (-math.log(0.75) - math.log(0.25)) / 2, rtol=1e-6)
    assert float(aux["accuracy"]) == 0.5
    with pytest.raises(ValueError, match="integer"):
        token_cross_entropy(jnp.zeros((2, 3)), jnp.zeros((2,), jnp.float32))


# --------------------------------------------------------------------------- method

def test_gpt_loss_is_next_token_cross_entropy():
    c = tiny_gpt_config()
    method = get_method(c, axis_name=None)
    batch = _batch(4, 9, seed=1, padded=True)
    params, state = method.init(jax.random.PRNGKey(0), batch)
    loss, (new_state, metrics) = jax.jit(method.loss_fn)(params, state, batch, jax.random.PRNGKey(1))
    x, m = batch["tokens"], batch["mask"]
    logits = np.asarray(lm_logits(c, params, jnp.asarray(x[:, :-1])))  # no mask: causal, padding at the end
    want, acc = _naive_ce(logits, x[:, 1:], (m[:, 1:] & m[:, :-1]).astype(np.float64))
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    np.testing.assert_allclose(float(metrics["accuracy"]), acc, rtol=1e-5)
    assert new_state == {}
    # Shifting matters: predicting the current token instead gives another loss.
    same, _ = _naive_ce(logits, x[:, :-1], np.ones((4, 8)))
    assert abs(same - want) > 1e-3
    with pytest.raises(ValueError, match="tokens"):
        method.loss_fn(params, state, {"image": jnp.zeros((2, 3))}, jax.random.PRNGKey(0))


def _max_diff(a, b):
    return max(jax.tree.leaves(jax.tree.map(lambda x, y: float(jnp.max(jnp.abs(x - y))), a, b)))


@pytest.mark.parametrize("padded", [False, True])
def test_gpt_four_devices_equal_one_device(padded):
    c = tiny_gpt_config()
    batches = [_batch(8, 9, seed=s, padded=padded) for s in range(2)]
    host, s1, m1 = run_steps(c, jax.devices()[:1], "jit", batches)
    _, s4, m4 = run_steps(c, jax.devices(), "jit", batches)
    for a, b in zip(m1, m4):
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=3e-6)
        np.testing.assert_allclose(a["accuracy"], b["accuracy"], rtol=1e-6)
    chex.assert_trees_all_close(s1.params, s4.params, atol=3e-5, rtol=1e-5)
    assert _max_diff(host.params, s1.params) > 1e-3


def test_stream_step_four_devices_equal_one_device():
    c = tiny_gpt_config()
    stream = np.random.default_rng(0).integers(0, V, 300).astype(np.int32)
    method = get_method(c)
    tx, sched = make_optimizer(c.optimizer, 10, c.batch_size)
    host = create_train_state(method, tx, jax.random.PRNGKey(0), {"tokens": jnp.zeros((1, 9), jnp.int32)})
    out = {}
    for n in (1, 4):
        runner = StreamStep(make_step_fn(method, tx, sched), 9, 8, devices=jax.devices()[:n], steps_per_call=3)
        ts, m = runner(runner.put_state(host), runner.put_stream(stream))
        out[n] = (jax.device_get(ts), jax.device_get(m))
    assert int(out[1][0].step) == int(out[4][0].step) == 3
    np.testing.assert_allclose(out[1][1]["loss"], out[4][1]["loss"], rtol=3e-6)
    chex.assert_trees_all_close(out[1][0].params, out[4][0].params, atol=3e-5, rtol=1e-5)
    # The third step's metrics are those of make_step_fn on the windows drawn by data_key(rng, 2).
    runner = StreamStep(make_step_fn(method, tx, sched), 9, 8, devices=jax.devices()[:1], steps_per_call=2)
    ts2, _ = runner(runner.put_state(host), runner.put_stream(stream))
    tokens = sample_windows(data_key(ts2.rng, ts2.step), jnp.asarray(stream), jnp.arange(8), 9)
    np.testing.assert_allclose(_one_step(ts2, method, tx, sched, tokens)["loss"], out[1][1]["loss"], rtol=1e-5)


def _one_step(ts, method, tx, sched, tokens):
    """One ParallelStep step from state ``ts`` on ``tokens`` -> metrics (host)."""
    from sslx.train import ParallelStep
    runner = ParallelStep(make_step_fn(method, tx, sched), devices=jax.devices()[:1])
    return jax.device_get(runner(runner.put_state(ts), runner.put_batch({"tokens": np.asarray(tokens)}))[1])


def test_loss_estimator_matches_direct_computation():
    c = tiny_gpt_config()
    method = get_method(c, axis_name=None)
    params, _ = method.init(jax.random.PRNGKey(0), _batch())
    stream = jnp.asarray(np.random.default_rng(1).integers(0, V, 200), jnp.int32)
    est = make_loss_estimator(lambda p, x: lm_logits(c, p, x), 9, 4, 6, chunk=3)
    key = jax.random.PRNGKey(5)
    got = float(est(params, stream, key))
    w = np.asarray(sample_windows(key, stream, jnp.arange(24), 9))
    logits = np.asarray(lm_logits(c, params, jnp.asarray(w[:, :-1])))
    np.testing.assert_allclose(got, _naive_ce(logits, w[:, 1:], np.ones((24, 8)))[0], rtol=1e-5)


def test_gpt_learns_a_repetitive_text():
    c = tiny_gpt_config(**{"optimizer.name": "adamw", "optimizer.lr": 1e-2})
    stream = np.tile(np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0], np.int32), 40)
    method = get_method(c)
    tx, sched = make_optimizer(c.optimizer, 60, c.batch_size)
    runner = StreamStep(make_step_fn(method, tx, sched), 9, 8, devices=jax.devices()[:1], steps_per_call=20)
    ts = runner.put_state(create_train_state(method, tx, jax.random.PRNGKey(0), {"tokens": jnp.zeros((1, 9), jnp.int32)}))
    s = runner.put_stream(stream)
    ts, m0 = runner(ts, s)
    for _ in range(2):
        ts, m = runner(ts, s)
    assert float(m["loss"]) < 0.3 < math.log(V) - 0.5
    # Greedy sampling continues the cycle.
    out = np.asarray(sample(c, ts.params, jnp.asarray([3, 4, 5]), 12, temperature=0.0))
    np.testing.assert_array_equal(out[:3], [3, 4, 5])
    np.testing.assert_array_equal(out, (np.arange(3, 18)) % 11)


def test_sample_matches_naive_greedy_decoding_and_uses_the_key():
    c = tiny_gpt_config()
    method = get_method(c, axis_name=None)
    params, _ = method.init(jax.random.PRNGKey(3), _batch())
    prompt = jnp.asarray([1, 2, 3], jnp.int32)
    out = np.asarray(sample(c, params, prompt, 10, temperature=0.0))
    assert out.shape == (13,) and out.dtype == np.int32
    seq = [1, 2, 3]
    for _ in range(10):  # naive: re-run the model on the last max_len tokens
        ctx = jnp.asarray([seq[-8:]], jnp.int32)
        seq.append(int(np.argmax(np.asarray(lm_logits(c, params, ctx))[0, -1])))
    np.testing.assert_array_equal(out, seq)
    a = np.asarray(sample(c, params, prompt, 20, 1.0, jax.random.PRNGKey(0)))
    b = np.asarray(sample(c, params, prompt, 20, 1.0, jax.random.PRNGKey(0)))
    d = np.asarray(sample(c, params, prompt, 20, 1.0, jax.random.PRNGKey(1)))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, d)
    assert np.asarray(sample(c, params, jnp.stack([prompt, prompt]), 4, 1.0, jax.random.PRNGKey(0))).shape == (2, 7)
    with pytest.raises(ValueError, match="key"):
        sample(c, params, prompt, 3, temperature=1.0)
    from sslx.methods.text.gpt import make_sampler
    np.testing.assert_array_equal(np.asarray(make_sampler(c)(params, prompt, 20, 1.0, jax.random.PRNGKey(0))), a)


def test_shakespeare_char_config():
    c = gpt_cfg.get_config("shakespeare_char")
    assert (c.dataset.seq_len, c.batch_size, c.model.num_layers, c.model.num_heads, c.model.width) == (64, 12, 4, 4, 128)
    assert (c.train.num_steps, c.optimizer.b2, c.optimizer.weight_decay, c.model.dropout) == (2000, 0.99, 0.1, 0.0)
    method = get_method(c, axis_name=None)
    params, _ = jax.eval_shape(method.init, jax.random.PRNGKey(0), {"tokens": jnp.zeros((1, 65), jnp.int32)})
    n = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
    assert n == 65 * 128 + 64 * 128 + 4 * (2 * 128 + 12 * 128 * 128) + 128  # ~0.80 M, nanoGPT's size
    tx, sched = make_optimizer(c.optimizer, c.train.num_steps, c.batch_size)
    np.testing.assert_allclose([float(sched(0)), float(sched(50)), float(sched(100)), float(sched(2000))],
                               [0.0, 5e-4, 1e-3, 1e-4], rtol=1e-5, atol=1e-9)
    # Weight decay on 2-D weights (matrices, embeddings) only: a zero gradient still shrinks them.
    p = {"w": jnp.ones((2, 2)), "ln": jnp.ones((2,))}
    zeros, opt = jax.tree.map(jnp.zeros_like, p), tx.init(p)
    update = jax.jit(tx.update)
    for _ in range(101):  # the 101st update (step 100) has the peak lr 1e-3
        upd, opt = update(zeros, opt, p)
    np.testing.assert_allclose(np.asarray(upd["w"]), -1e-3 * 0.1, rtol=1e-4)
    assert float(jnp.abs(upd["ln"]).max()) == 0.0
    with pytest.raises(ValueError, match="shakespeare_char"):
        gpt_cfg.get_config("shakespeare")


@pytest.mark.parametrize("name", ["gpt", "mlm"])
def test_benchmark_text_config_runs(name):
    from sslx.configs import mlm as mlm_cfg
    from sslx.methods.text.bench import benchmark_text_config
    c = gpt_cfg.get_config("tiny") if name == "gpt" else mlm_cfg.get_config("tiny")
    c.train.parallel = "jit"
    out = benchmark_text_config(c, steps=1, repeats=1, warmup=0)
    assert out["method"] == name and out["ms_per_step"] > 0 and np.isfinite(out["loss"])
    assert out["seq_len"] == c.dataset.seq_len + (1 if name == "gpt" else 0)


def test_reproduce_text_script_smoke(tmp_path):
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location("reproduce_text", Path(__file__).resolve().parents[1]
                                                  / "scripts" / "reproduce_text.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    (tmp_path / "tinyshakespeare").mkdir()
    (tmp_path / "tinyshakespeare" / "input.txt").write_text("To be, or not to be: that is the question.\n" * 60)
    out = tmp_path / "results.md"
    res = mod.main(["--config", "tiny", "--data_dir", str(tmp_path), "--out", str(out), "--steps", "40",
                    "--steps_per_call", "20", "--sample", "30", "--devices", "2"])  # batch 8 split over 2
    assert res["config"].model.vocab_size == res["tokenizer"].vocab_size == len(set("To be, or not to be: that is the question.\n"))
    assert np.isfinite(res["val_loss"]) and res["val_loss"] < math.log(res["tokenizer"].vocab_size)
    assert res["ms_per_iter"] > 0 and res["wall_s"] >= res["train_s"]
    table = out.read_text()
    assert "| sslx (JAX, cpu, 2 devices)" in table and f"{res['val_loss']:.4f}" in table and "nanoGPT" in table
    assert res["devices"] == 2
    with pytest.raises(SystemExit, match="--devices 9: 4 cpu device"):
        mod.main(["--config", "tiny", "--data_dir", str(tmp_path), "--out", str(out), "--devices", "9"])


def test_profile_gpt_script_smoke():
    """scripts/profile_gpt.py times every piece and the library step on 2 host devices (tiny shapes)."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, XLA_FLAGS=COMPILE_BOUND_XLA_FLAGS)
    out = subprocess.run([sys.executable, "scripts/profile_gpt.py", "--config", "tiny", "--steps", "2", "--repeats", "1",
                          "--devices", "2", "--trace"], cwd=repo, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    rows = [line for line in lines if line.endswith("ms / step") and not line.startswith(("trace:", "  "))]
    assert len(rows) == 12 and "StreamStep, 2 device(s)" in rows[-1]
    assert all(float(line.split()[-4]) > 0 for line in rows)
    # --trace: op events, wall and per-thread busy time per step, then the costliest op kinds
    trace = [line for line in lines if line.startswith("trace:")]
    assert len(trace) == 1, out.stdout[-2000:]
    nums = [float(x) for x in re.findall(r"\d+\.?\d*", trace[0])]
    assert nums[0] > 10 and all(x > 0 for x in nums[:3]), trace[0]
    kinds = lines[lines.index(trace[0]) + 1:]
    assert kinds and all(k.startswith("  ") and k.endswith("ms / step") for k in kinds)

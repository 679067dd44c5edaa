"""An independent PyTorch implementation of the GPT run, to tell implementation from noise.

    pip install torch            # not a dependency of sslx; use a separate environment
    python scripts/torch_reference_gpt.py --seed 0 [--data_dir ../shared/data/text]

Not part of the library and not run by the tests (torch is not installed there). It trains the
configuration of ``sslx/configs/gpt.py:shakespeare_char`` in eager PyTorch on the CPU: the
same data split and character vocabulary (read through ``sslx.data.text``), context 64,
batch 12 of uniformly drawn windows, 4 pre-LayerNorm blocks of width 128 with 4 heads, no
biases, exact GELU, tied embeddings, GPT-2 initialisation (normal 0.02; the two residual
output projections 0.02 / sqrt(2 * layers)), AdamW (0.9, 0.99, weight decay 0.1 on the 2-D
tensors only), lr 1e-3 with 100 linear warmup steps from 0 and cosine decay to 1e-4 at step
2000, gradient clipping at global norm 1.0. Then the train and validation losses are
estimated on 200 random batches each, as ``scripts/reproduce_text.py`` does. Prints one JSON
line with the losses, the training time and ms per iteration (torch's default threading).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover - depends on the environment
    raise SystemExit(f"torch_reference_gpt.py needs PyTorch ({e}); install it in a separate environment "
                     "with `pip install torch`.")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sslx.data.text import CharTokenizer, load_text_corpus  # noqa: E402

CONTEXT, BATCH, LAYERS, HEADS, WIDTH = 64, 12, 4, 4, 128
PEAK_LR, END_LR, WARMUP = 1e-3, 1e-4, 100


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(WIDTH, bias=False), nn.LayerNorm(WIDTH, bias=False)
        self.qkv, self.out = nn.Linear(WIDTH, 3 * WIDTH, bias=False), nn.Linear(WIDTH, WIDTH, bias=False)
        self.fc, self.proj = nn.Linear(WIDTH, 4 * WIDTH, bias=False), nn.Linear(4 * WIDTH, WIDTH, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        heads = lambda z: z.view(b, t, HEADS, WIDTH // HEADS).transpose(1, 2)  # noqa: E731
        q, k, v = map(heads, self.qkv(self.ln1(x)).split(WIDTH, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, WIDTH)
        x = x + self.out(y)
        return x + self.proj(F.gelu(self.fc(self.ln2(x))))


class TinyGPT(nn.Module):
    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, WIDTH), nn.Embedding(CONTEXT, WIDTH)
        self.blocks = nn.ModuleList(Block() for _ in range(LAYERS))
        self.ln_f = nn.LayerNorm(WIDTH, bias=False)
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                residual_out = name.endswith(("out.weight", "proj.weight"))
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * LAYERS) if residual_out else 0.02)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.tok(x) + self.pos(torch.arange(x.shape[1]))
        for block in self.blocks:
            h = block(h)
        logits = self.ln_f(h) @ self.tok.weight.T
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def lr_at(step: int, steps: int) -> float:
    """optax.warmup_cosine_decay_schedule(0, PEAK_LR, WARMUP, steps, END_LR) written out."""
    if step < WARMUP:
        return PEAK_LR * step / WARMUP
    return END_LR + 0.5 * (1 + math.cos(math.pi * (step - WARMUP) / (steps - WARMUP))) * (PEAK_LR - END_LR)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--eval_batches", type=int, default=200)
    ap.add_argument("--data_dir", default=None)
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    train_text = load_text_corpus("tinyshakespeare", "train", args.data_dir)
    val_text = load_text_corpus("tinyshakespeare", "val", args.data_dir)
    tok = CharTokenizer.from_text(train_text + val_text)
    data = {k: torch.from_numpy(tok.encode(t).astype(np.int64)) for k, t in (("train", train_text), ("val", val_text))}

    def batch(d: torch.Tensor) -> tuple:
        starts = torch.randint(len(d) - CONTEXT, (BATCH,))
        w = torch.stack([d[i:i + CONTEXT + 1] for i in starts.tolist()])
        return w[:, :-1], w[:, 1:]

    model = TinyGPT(tok.vocab_size)
    groups = [{"params": [p for p in model.parameters() if p.dim() >= 2], "weight_decay": 0.1},
              {"params": [p for p in model.parameters() if p.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=PEAK_LR, betas=(0.9, 0.99))
    t0 = time.perf_counter()
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps)
        loss = model(*batch(data["train"]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    train_s = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        est = {k: float(np.mean([model(*batch(d)).item() for _ in range(args.eval_batches)])) for k, d in data.items()}
    res = {"seed": args.seed, "train_loss": round(est["train"], 4), "val_loss": round(est["val"], 4),
           "train_s": round(train_s, 1), "ms_per_iter": round(1000 * train_s / args.steps, 1),
           "torch": torch.__version__, "threads": torch.get_num_threads()}
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()

"""A tiny character-level GPT on 4.9 KB of Shakespeare, watched by sgdlab's Monitor.

    .venv/bin/python examples/char_gpt.py [--quick] [--store sgdlab-results/sgdlab.duckdb]

The text is the opening of *Coriolanus*, Act I, Scene 1 (public domain; see
``examples/data/README.md``). The model: token and position embeddings, two pre-LayerNorm
blocks of causal self-attention (``F.scaled_dot_product_attention``) and an MLP, a linear head.
The loss is the mean cross-entropy over every position of every window; all windows have the
same length, so it is the mean over windows of each window's own mean — the per-sample
(per-window) gradients the Monitor measures are those of that per-window loss.

It prints the final loss, the gradient-noise trace, the noise scale B_simple (the critical
batch size estimate; McCandlish et al. 2018), the temperature and the Monitor's advice, and a
line of text sampled from the model. ``--quick`` trains 30 small steps (seconds) instead of
600.
Then ``sgdlab show RUN_ID`` draws the run's dashboard.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

import sgdlab
from sgdlab.store import default_store_path

TEXT = Path(__file__).resolve().parent / "data" / "coriolanus_act1_scene1.txt"


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.ln2(x))


class CharGPT(nn.Module):
    """Characters → next-character logits ``[B, T, vocab]``."""

    def __init__(self, vocab: int, context: int, d: int = 64, layers: int = 2, heads: int = 4):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(context, d)
        self.blocks = nn.Sequential(*(Block(d, heads) for _ in range(layers)))
        self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        # positions as a [B, T] batch (not broadcast [T]): each window's position gradient
        # is then its own, and the per-sample statistics take the Embedding fast path
        pos = torch.arange(idx.shape[1], device=idx.device).expand_as(idx)
        return self.head(self.ln(self.blocks(self.tok(idx) + self.pos(pos))))


def token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-character cross-entropy over all positions (``reduction="mean"``)."""
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def sample(model: CharGPT, chars: str, prompt: str, n: int, context: int, gen) -> str:
    """``n`` characters after ``prompt``, drawn from the model's softmax with ``gen``."""
    stoi = {c: i for i, c in enumerate(chars)}
    idx = torch.tensor([[stoi[c] for c in prompt]])
    model.eval()
    with torch.no_grad():
        for _ in range(n):
            probs = model(idx[:, -context:])[0, -1].softmax(-1)
            idx = torch.cat([idx, torch.multinomial(probs, 1, generator=gen)[None]], dim=1)
    model.train()
    return "".join(chars[i] for i in idx[0].tolist())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=str(default_store_path()))
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--quick", action="store_true",
                        help="30 steps of 16 windows of 32 characters: a run of seconds")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--context", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.batch_size, args.context = 30, 16, 32

    text = TEXT.read_text()
    chars = sorted(set(text))
    data = torch.tensor([chars.index(c) for c in text])
    gen = torch.Generator().manual_seed(0)  # the windows drawn, and the sampled text
    torch.manual_seed(0)  # your own script: the global RNG is yours to seed
    model = CharGPT(len(chars), args.context)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    n_windows = len(data) - args.context - 1

    with sgdlab.Monitor(model, token_loss, optimizer, store=args.store, every=5,
                        noise_every=10, name="char-gpt") as mon:  # fmt: skip
        for _ in range(args.steps):
            start = torch.randint(n_windows, (args.batch_size,), generator=gen)
            window = start[:, None] + torch.arange(args.context + 1)
            x, y = data[window[:, :-1]], data[window[:, 1:]]
            loss = token_loss(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            mon.step(x, y, loss)

    last = mon.summary()
    print(f"run {mon.run_id}: {mon.t} steps, final loss {last['loss']:.3f} nats/char "
          f"(uniform over {len(chars)} characters: {math.log(len(chars)):.3f})")  # fmt: skip
    print(f"gradient noise tr Σ = {last['trace_cov']:.3g}; noise scale B_simple ≈ "
          f"{last['noise_scale']:.3g} (smoothed; NaN: not resolved at this batch) at batch "
          f"{args.batch_size}")  # fmt: skip
    for item in mon.advice():
        print(f"advice ({item.kind}): {item.message}")
    print("sample:", repr(sample(model, chars, "MENENIUS:\n", 60, args.context, gen)))
    print(f"next: sgdlab show {mon.run_id} --store {args.store}")
    return {"run_id": mon.run_id, "summary": last, "model": model}


if __name__ == "__main__":
    main()

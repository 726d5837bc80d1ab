"""Benchmark: per-sample gradient statistics on a 2-layer GPT against a plain training step.

Model: ``benchmarks/_tiny_gpt.py`` (nanoGPT-style, d = 128, 4 heads, 2 blocks, T = 64,
vocabulary 65, untied head; ``--tied`` shares the embedding with the head), batch b = 32 of
random tokens, token-level cross-entropy (mean over the batch's tokens), CPU, float32. Times
(all in one run, blocks of consecutive steps of one variant alternating between variants, see
``bench_noise.timeit``):

* ``plain``: forward, backward, SGD step;
* ``fast``: the same step through ``per_sample_stats(..., backward=True)`` plus tr Σ and the
  per-parameter variance (every parameter on an exact kernel: embedding, LayerNorm, Linear on
  ``[B, T, ·]``; the positional table ``wpe(arange(T))`` expanded over the batch);
* ``vmap``: every per-sample gradient by ``torch.func.vmap(grad(·))`` over sequences
  (``per_sample_grads(method="vmap")``), then the same statistics;
* ``torch_func``: the peer as a user writes it — ``torch.func.vmap(grad(·))`` over sequences
  with ``functional_call``, torch's default attention backend (on CPU the flash kernel, which
  has no batching rule: vmap runs it per sample), then the same statistics;
* ``backpack``: BackPACK's ``Variance`` extension where it is installed. It has no extension
  for ``nn.LayerNorm`` or ``nn.Embedding`` (those parameters get none) and its samples are the
  rows of the loss's input: the B·T tokens of the reshaped logits, not the B sequences — so it
  is timed beside the others, not compared numerically.

Targets (issue 14): fast ≤ 2× plain, vmap ≥ 10× fast. Before timing, tr Σ from ``fast`` and
``vmap`` are compared (same parameters). Writes ``benchmarks/results/noise_gpt.json``.
Run: ``python benchmarks/bench_noise_gpt.py [--repeats 10] [--threads N] [--tied]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
from pathlib import Path

import torch
from _tiny_gpt import TinyGPT, gpt_batch, lm_loss
from bench_noise import timeit

from sgdlab.measure.noise.per_sample import per_sample_grads, per_sample_stats, stats_from_grads

RESULTS = Path(__file__).resolve().parent / "results" / "noise_gpt.json"


def build(tied: bool):
    torch.manual_seed(0)  # benchmark script: layer initialisation only
    model = TinyGPT(tied=tied)
    x, y = gpt_batch()
    return model, x, y


def trace(stats) -> float:
    return float(sum(v.sum() for v in stats.variance().values()))


def make_steps(model, x, y, peer: bool = False) -> dict:
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)

    def plain():
        opt.zero_grad(set_to_none=True)
        lm_loss(model(x), y).backward()
        opt.step()

    def fast():
        opt.zero_grad(set_to_none=True)
        st = per_sample_stats(model, lm_loss, x, y, backward=True)
        out = trace(st)
        opt.step()
        return out

    def vmap():
        opt.zero_grad(set_to_none=True)
        st = stats_from_grads(per_sample_grads(model, lm_loss, x, y, method="vmap"))
        for p, g in zip(model.parameters(), st.grad_mean.values(), strict=True):
            p.grad = g
        out = trace(st)
        opt.step()
        return out

    def torch_func():
        params = {k: v.detach() for k, v in model.named_parameters()}

        def one(p, xi, yi):
            return lm_loss(torch.func.functional_call(model, p, (xi[None],)), yi[None])

        grads = torch.func.vmap(torch.func.grad(one), in_dims=(None, 0, 0))(params, x, y)
        out = 0.0
        for name, p in model.named_parameters():
            g = grads[name]
            p.grad = g.mean(0)
            out += float(g.var(0, unbiased=True).sum())
        opt.step()
        return out

    steps = {"plain": plain, "fast": fast, "vmap": vmap, "torch_func": torch_func}
    if peer:  # on a model of its own: BackPACK's extend() leaves hooks that vmap cannot pass
        other, _, _ = build(model.head.weight is model.wte.weight)
        bp = backpack_step(other, x, y, torch.optim.SGD(other.parameters(), lr=1e-4))
        if bp is not None:
            steps["backpack"] = bp
    return steps


def backpack_step(model, x, y, opt):
    """BackPACK's Variance step, or ``None`` where BackPACK is not installed or fails."""
    try:
        from backpack import backpack, extend
        from backpack.extensions import Variance
    except ImportError:
        return None
    ext = extend(model)
    loss_fn = extend(torch.nn.CrossEntropyLoss())

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(ext(x).reshape(-1, 65), y.reshape(-1))
        with backpack(Variance()):
            loss.backward()
        opt.step()
        params = list(model.parameters())
        return f"{sum(hasattr(p, 'variance') for p in params)} of {len(params)} tensors"

    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "no extension for Module …": reported below
            step()
    except Exception as exc:  # a peer that does not run on this model: report, do not time
        print(f"backpack: does not run ({type(exc).__name__}: {exc})")
        return None
    return step


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10, help="blocks of timed steps")
    ap.add_argument("--vmap-repeats", type=int, default=5, help="blocks of 3 timed vmap steps")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--tied", action="store_true")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    check = {}
    for name in ("fast", "vmap", "torch_func"):
        model, x, y = build(args.tied)
        check[name] = make_steps(model, x, y)[name]()
    model, x, y = build(args.tied)
    methods = per_sample_stats(model, lm_loss, x, y).method
    steps = make_steps(model, x, y, peer=True)
    covered = steps["backpack"]() if "backpack" in steps else None
    times = timeit({k: steps[k] for k in ("plain", "fast")}, args.repeats, block=6, warmup=2)
    slow = {"plain_vmap": steps["plain"], "vmap": steps["vmap"]}
    times.update(timeit(slow, args.vmap_repeats, block=4, warmup=1))
    slow = {"plain_torch_func": steps["plain"], "torch_func": steps["torch_func"]}
    times.update(timeit(slow, args.vmap_repeats, block=4, warmup=1))
    if "backpack" in steps:  # seconds per step: one short block
        slow = {"plain_backpack": steps["plain"], "backpack": steps["backpack"]}
        times.update(timeit(slow, 1, block=3, warmup=0))
    med = {k: statistics.median(v) for k, v in times.items()}
    low = {k: min(v) for k, v in times.items()}
    rows = []
    for k in [v for v in ("plain", "fast", "vmap", "torch_func", "backpack") if v in times]:
        base = f"plain_{k}" if k in ("vmap", "torch_func", "backpack") else "plain"
        rows.append(
            {
                "variant": k,
                "median_ms": 1e3 * med[k],
                "ratio_to_plain": med[k] / med[base],
                "min_ms": 1e3 * low[k],
                "min_ratio_to_plain": low[k] / low[base],
                "repeats": len(times[k]),
            }
        )
    fast_ratio = med["fast"] / med["plain"]
    vmap_over_fast = (med["vmap"] / med["plain_vmap"]) / fast_ratio
    torch_func_over_fast = (med["torch_func"] / med["plain_torch_func"]) / fast_ratio
    result = {
        "benchmark": "noise_gpt",
        "setup": f"TinyGPT d=128 L=2 T=64 b=32 V=65 {'tied' if args.tied else 'untied'}, "
        "CPU, float32",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "machine": platform.processor() or platform.machine(),
        "methods": sorted(set(methods.values())),
        "trace_cov": check,
        "backpack_coverage": covered,
        "vmap_over_fast": vmap_over_fast,
        "torch_func_over_fast": torch_func_over_fast,
        "rows": rows,
    }
    head = f"{'variant':<9} {'median ms':>10} {'× plain':>8} {'min ms':>9} {'× plain':>8}"
    print(head, f"{'reps':>5}")
    for r in rows:
        print(
            f"{r['variant']:<9} {r['median_ms']:>10.2f} {r['ratio_to_plain']:>8.2f} "
            f"{r['min_ms']:>9.2f} {r['min_ratio_to_plain']:>8.2f} {r['repeats']:>5d}"
        )
    print(f"vmap / fast (each against its own plain steps): {vmap_over_fast:.1f}×")
    print(f"torch.func as written (default attention) / fast: {torch_func_over_fast:.1f}×")
    print("kernels:", result["methods"], "| tr Σ:", {k: f"{v:.6g}" for k, v in check.items()})
    if covered:
        print("backpack: variance on", covered, "(samples = tokens)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()

"""Benchmark: cost of measuring gradient noise (tr Σ and per-parameter variance) in a step.

MLP 784–128–10 (ReLU), batch 256, CPU, float32, synthetic inputs. Times (median over repeats,
after warm-up, all in one run) of

* ``plain``: forward, backward, SGD step;
* ``fast``: the same step through :func:`sgdlab.measure.noise.per_sample.per_sample_stats`
  (``backward=True``: one ordinary backward pass, hooks capture the layer inputs and output
  gradients) plus tr Σ and the per-parameter variance;
* ``vmap``: per-sample gradients by ``torch.func.vmap(grad(...))``, then the same statistics;
* ``loop``: one backward pass per sample (fewer repeats);
* ``floor``: the plain step plus only the arithmetic that any exact per-parameter variance
  must add, the products Σ_i δ_i² a_i² = (δ²)ᵀ(a²) of every layer, on squared inputs and
  output gradients prepared in advance (no hooks, no norms, no bookkeeping). It bounds what
  ratio the fast path could reach on the machine at hand.

Each variant is timed in its steady state: blocks of consecutive steps of one variant,
alternating between variants (see :func:`timeit`); ``vmap`` and ``loop`` are compared with
plain steps timed alongside them. Writes ``benchmarks/results/noise.json`` and prints a table
with ratios to the plain step (medians, and minima, which are robust to background load on a
shared machine).
Run: ``python benchmarks/bench_noise.py [--repeats 30] [--threads N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from sgdlab.measure.noise.per_sample import per_sample_grads, per_sample_stats, stats_from_grads

RESULTS = Path(__file__).resolve().parent / "results" / "noise.json"


def build(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # benchmark script: layer initialisation only
    model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    x = torch.randn(256, 784, generator=gen)
    y = torch.randint(0, 10, (256,), generator=gen)
    return model, nn.CrossEntropyLoss(), x, y


def noise_from(stats) -> tuple[float, dict[str, torch.Tensor]]:
    """tr Σ (1/(n−1)) and per-parameter variance from per-sample sums."""
    var = stats.variance()
    return float(sum(v.sum() for v in var.values())), var


def make_steps(model, loss_fn, x, y):
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def plain():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    def fast():
        opt.zero_grad(set_to_none=True)
        st = per_sample_stats(model, loss_fn, x, y, backward=True)
        out = noise_from(st)
        opt.step()
        return out

    def materialized(method: str):
        def step():
            opt.zero_grad(set_to_none=True)
            st = stats_from_grads(per_sample_grads(model, loss_fn, x, y, method=method))
            for p, g in zip(model.parameters(), st.grad_mean.values(), strict=True):
                p.grad = g
            out = noise_from(st)
            opt.step()
            return out

        return step

    # the floor: the same step plus the one product per layer that the per-parameter variance
    # needs, on tensors of the real shapes prepared outside the timed region
    squares = []
    for lin in (m for m in model if isinstance(m, nn.Linear)):
        gen = torch.Generator().manual_seed(1)
        a = torch.randn(x.shape[0], lin.in_features, generator=gen)
        d = torch.randn(x.shape[0], lin.out_features, generator=gen)
        squares.append((a * a, d * d))

    def floor():
        plain()
        with torch.no_grad():
            return [d2.T @ a2 for a2, d2 in squares]

    return {
        "plain": plain,
        "floor": floor,
        "fast": fast,
        "vmap": materialized("vmap"),
        "loop": materialized("loop"),
    }


def timeit(fns: dict, repeats: int, block: int, warmup: int = 3) -> dict[str, list[float]]:
    """Per-call times in alternating blocks: each repeat runs every variant ``block`` times in a
    row and keeps all but the first call of the block. A training loop repeats one kind of
    step, so each variant is timed in its own steady state (caches and allocator warm from
    the same step), while alternating the blocks lets background load affect all alike.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            fn()  # the step after a switch of variant is not a steady-state step
            for _ in range(block - 1):
                t = time.perf_counter()
                fn()
                out[k].append(time.perf_counter() - t)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30, help="blocks of 10 timed steps")
    ap.add_argument("--loop-repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, loss_fn, x, y = build()
    steps = make_steps(model, loss_fn, x, y)
    # agreement of the three ways of getting tr Σ (same parameters: a fresh copy each)
    check = {}
    for name in ("fast", "vmap", "loop"):
        m, lf, xx, yy = build()
        check[name] = make_steps(m, lf, xx, yy)[name]()[0]
    fast_ones = {k: steps[k] for k in ("plain", "floor", "fast")}
    times = timeit(fast_ones, args.repeats, block=11)
    slow = {"plain_vmap": steps["plain"], "vmap": steps["vmap"]}
    times.update(timeit(slow, args.loop_repeats, block=4, warmup=1))
    slow = {"plain_loop": steps["plain"], "loop": steps["loop"]}
    times.update(timeit(slow, args.loop_repeats, block=2, warmup=1))
    med = {k: statistics.median(v) for k, v in times.items()}
    low = {k: min(v) for k, v in times.items()}
    rows = []
    for k in ("plain", "floor", "fast", "vmap", "loop"):
        base = f"plain_{k}" if k in ("vmap", "loop") else "plain"
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
    result = {
        "benchmark": "noise",
        "setup": "MLP 784-128-10 ReLU, batch 256, CPU, float32, synthetic inputs",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "machine": platform.processor() or platform.machine(),
        "trace_cov": check,
        "rows": rows,
    }
    print(
        f"{'variant':<8} {'median ms':>10} {'× plain':>8} {'min ms':>9} {'× plain':>8} {'reps':>5}"
    )
    for r in rows:
        print(
            f"{r['variant']:<8} {r['median_ms']:>10.3f} {r['ratio_to_plain']:>8.2f} "
            f"{r['min_ms']:>9.3f} {r['min_ratio_to_plain']:>8.2f} {r['repeats']:>5d}"
        )
    print("tr Σ:", {k: f"{v:.6g}" for k, v in check.items()})
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()

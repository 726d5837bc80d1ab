"""Benchmark: the public ``gradient_noise`` call against the fast path it wraps.

``gradient_noise(model, loss_fn, x, y)`` checks its arguments, sets and restores the modules'
modes, calls ``per_sample_stats(..., reference="mean")`` (one batch pass with hooks, the
exact per-layer kernels) and summarizes (tr Σ ± SE, |ḡ|² ± SE, per-parameter variance; the
per-layer breakdown and GSNR are computed on first access only). The ratio of the two calls,
timed in alternating blocks in one run (``bench_noise.timeit``), is the public call's
overhead. Models: the MLP 784–128–10 of ``bench_noise.py`` (b = 256) and the GPT of
``bench_noise_gpt.py`` (d = 128, T = 64, b = 32). Target (issue 14): ≤ 1.2×.
Writes ``benchmarks/results/noise_overhead.json``.
Run: ``python benchmarks/bench_noise_overhead.py [--repeats 20] [--threads N]``.
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
from bench_noise import build as build_mlp
from bench_noise import timeit

from sgdlab.measure import gradient_noise
from sgdlab.measure.noise.per_sample import per_sample_stats

RESULTS = Path(__file__).resolve().parent / "results" / "noise_overhead.json"


def cases() -> dict:
    model, loss_fn, x, y = build_mlp()
    torch.manual_seed(0)  # benchmark script: layer initialisation only
    gpt = TinyGPT()
    gx, gy = gpt_batch()
    return {"mlp": (model, loss_fn, x, y), "gpt": (gpt, lm_loss, gx, gy)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20, help="blocks of timed calls")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for name, (model, loss_fn, x, y) in cases().items():
        fns = {
            "fast_path": lambda m=model, f=loss_fn, a=x, b=y: per_sample_stats(
                m, f, a, b, reference="mean"
            ).variance(),
            "gradient_noise": lambda m=model, f=loss_fn, a=x, b=y: gradient_noise(m, f, a, b),
        }
        reps = args.repeats if name == "mlp" else max(2, args.repeats // 2)
        times = timeit(fns, reps, block=6, warmup=2)
        med = {k: statistics.median(v) for k, v in times.items()}
        low = {k: min(v) for k, v in times.items()}
        rows.append(
            {
                "model": name,
                "fast_path_ms": 1e3 * med["fast_path"],
                "gradient_noise_ms": 1e3 * med["gradient_noise"],
                "ratio": med["gradient_noise"] / med["fast_path"],
                "min_ratio": low["gradient_noise"] / low["fast_path"],
                "repeats": len(times["fast_path"]),
            }
        )
    result = {
        "benchmark": "noise_overhead",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "machine": platform.processor() or platform.machine(),
        "rows": rows,
    }
    print(f"{'model':<6} {'fast path ms':>12} {'public ms':>10} {'ratio':>6} {'min ratio':>9}")
    for r in rows:
        print(
            f"{r['model']:<6} {r['fast_path_ms']:>12.2f} {r['gradient_noise_ms']:>10.2f} "
            f"{r['ratio']:>6.3f} {r['min_ratio']:>9.3f}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()

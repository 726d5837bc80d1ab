"""Benchmark: HVPs and time to λ_max within relative error 1e-3 — Lanczos vs power iteration.

Model: an MLP 64–32–10 (ReLU) on sklearn's ``digits`` (1797 samples, standardized features),
float64, initialized and trained briefly by minibatch SGD from fixed generators, so its Hessian
is not trivial. Exact reference: ``torch.linalg.eigvalsh`` of the full Hessian
(:func:`sgdlab.measure.curvature.hvp.hessian_matrix`, d = 2410, by blocks of vmapped HVPs).
Over several start vectors (seeds):

* Lanczos (``hessian_eigs``, tol = 1e-3) with the residual bound and with the gap bound:
  HVPs, time, and the true relative error of the returned λ_max;
* power iteration with PyHessian's rule (relative change of the Rayleigh quotient < 1e-3):
  HVPs, time and how far from λ_max it actually stops;
* power iteration run long: the first iteration whose estimate is *truly* within 1e-3, and the
  iteration at which the residual rule r ≤ 1e-3·θ certifies it;
* a sweep over five MLP shapes on digits (64–32–10 … 64–128–128–10, d up to 26 122), two
  activations (tanh, ReLU) and three training lengths (300, 1000, 3000 SGD steps), with the
  reference λ_max from Lanczos at tol 1e-12, since the comparison depends on the spectrum
  (λ_2/λ_max and beyond). For each it also records the *oracle* Lanczos count (first Ritz value
  truly within 1e-3), the least any stopping rule of Lanczos could use from that start.

Prints a table and writes ``benchmarks/results/curvature.json``. Run:
``python benchmarks/bench_curvature.py``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

from sgdlab.measure.curvature.eigs import lanczos, power_iteration
from sgdlab.measure.curvature.hvp import HessianOperator, hessian_matrix

TOL = 1e-3
SEEDS = range(10)
RESULTS = Path(__file__).parent / "results" / "curvature.json"


def digits(dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Standardized digits features ``[1797, 64]`` and labels."""
    X, y = load_digits(return_X_y=True)
    std = X.std(axis=0)
    X = (X - X.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return torch.tensor(X, dtype=dtype), torch.tensor(y, dtype=torch.long)


def mlp(sizes: tuple[int, ...], generator: torch.Generator, act: str = "relu") -> nn.Module:
    """MLP (``act``: ``"relu"`` or ``"tanh"``) with PyTorch's default init,
    uniform(±1/√fan_in), drawn from ``generator``."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        lin = nn.Linear(a, b).double()
        with torch.no_grad():
            bound = a**-0.5
            lin.weight.copy_(torch.rand(b, a, generator=generator, dtype=torch.float64) * 2 - 1)
            lin.weight.mul_(bound)
            lin.bias.copy_(torch.rand(b, generator=generator, dtype=torch.float64) * 2 - 1)
            lin.bias.mul_(bound)
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(nn.ReLU() if act == "relu" else nn.Tanh())
    return nn.Sequential(*layers)


def train(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    generator: torch.Generator,
    steps: int = 300,
    lr: float = 0.1,
    batch: int = 64,
) -> None:
    """Plain minibatch SGD on the cross-entropy (batches sampled from ``generator``)."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        idx = torch.randint(0, len(X), (batch,), generator=generator)
        opt.zero_grad()
        nn.functional.cross_entropy(model(X[idx]), y[idx]).backward()
        opt.step()


SWEEP_SIZES = ((64, 32, 10), (64, 128, 10), (64, 256, 10), (64, 64, 64, 10), (64, 128, 128, 10))
SWEEP_STEPS = (300, 1000, 3000)


def trained_digits_mlp(
    sizes: tuple[int, ...] = (64, 32, 10), steps: int = 300, act: str = "relu"
) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The benchmark's model and data, trained from fixed generators."""
    X, y = digits()
    model = mlp(sizes, torch.Generator().manual_seed(0), act=act)
    train(model, X, y, torch.Generator().manual_seed(1), steps=steps)
    return model, X, y


def _first_within(history: list[float], exact: float, tol: float) -> int | None:
    for i, theta in enumerate(history):
        if abs(theta - exact) <= tol * abs(exact):
            return i + 1
    return None


def _median(rows: list[dict], key: str) -> float:
    vals = [r[key] for r in rows if r[key] is not None]
    return float(np.median(vals)) if vals else float("nan")


def compare(op: HessianOperator, lam_max: float, seeds: range = SEEDS) -> dict:
    """Lanczos (two bounds) vs power iteration on ``op`` against the reference ``lam_max``."""
    rows: dict[str, list[dict]] = {"lanczos_residual": [], "lanczos_gap": [], "power_pyhessian": []}
    long_power: list[dict] = []

    def record(name: str, res: object, dt: float, seed: int) -> None:
        value = float(res.values[0])  # type: ignore[attr-defined]
        rows[name].append(
            dict(seed=seed, n_hvp=res.n_hvp, time_s=dt, value=value,  # type: ignore[attr-defined]
                 rel_error=abs(value - lam_max) / lam_max,
                 converged=res.converged,  # type: ignore[attr-defined]
                 first_truly_within_n_hvp=_first_within(res.history, lam_max, TOL))  # type: ignore[attr-defined]
        )  # fmt: skip

    for seed in seeds:
        for name, bound in (("lanczos_residual", "residual"), ("lanczos_gap", "gap")):
            t0 = time.perf_counter()
            res = lanczos(op, 1, "largest", TOL, generator=torch.Generator().manual_seed(seed),
                          bound=bound)  # fmt: skip
            record(name, res, time.perf_counter() - t0, seed)
        t0 = time.perf_counter()
        res = power_iteration(op, TOL, 5000, generator=torch.Generator().manual_seed(seed))
        record("power_pyhessian", res, time.perf_counter() - t0, seed)
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(seed)
        longrun = power_iteration(op, TOL, 3000, rule="residual", generator=gen)
        dt = time.perf_counter() - t0
        truly = _first_within(longrun.history, lam_max, TOL)
        long_power.append(
            dict(seed=seed, truly_within_n_hvp=truly,
                 truly_within_time_s=None if truly is None else dt * truly / longrun.n_hvp,
                 residual_rule_n_hvp=longrun.n_hvp, residual_rule_converged=longrun.converged)
        )  # fmt: skip
    summary: dict[str, dict | float] = {
        name: {
            "median_n_hvp": _median(rs, "n_hvp"),
            "mean_n_hvp": float(np.mean([r["n_hvp"] for r in rs])),
            "median_time_s": _median(rs, "time_s"),
            "max_rel_error": max(r["rel_error"] for r in rs),
            "median_rel_error": _median(rs, "rel_error"),
            # NaN when some run stopped before its estimate was ever truly within tol
            "median_first_truly_within_n_hvp": _median(rs, "first_truly_within_n_hvp")
            if all(r["first_truly_within_n_hvp"] is not None for r in rs)
            else float("nan"),
        }
        for name, rs in rows.items()
    }
    summary["power_truly_within"] = {
        "median_n_hvp": _median(long_power, "truly_within_n_hvp"),
        "mean_n_hvp": float(np.mean([r["truly_within_n_hvp"] or np.nan for r in long_power])),
        "median_time_s": _median(long_power, "truly_within_time_s"),
        "median_residual_rule_n_hvp": _median(long_power, "residual_rule_n_hvp"),
    }
    power_needs = summary["power_truly_within"]["median_n_hvp"]  # type: ignore[index]
    for name in ("lanczos_residual", "lanczos_gap"):
        summary[f"hvp_ratio_{name}_to_power_truly_within"] = (
            summary[name]["median_n_hvp"] / power_needs  # type: ignore[index]
        )
    hvp_times = [r["time_s"] / r["n_hvp"] for r in rows["lanczos_residual"]]
    summary["median_time_per_hvp_s"] = float(np.median(hvp_times))
    return {"summary": summary, "runs": rows, "power_long_runs": long_power}


def main(threads: int | None = None) -> dict:
    """Run the benchmark (``threads``: torch intra-op threads; ``None`` keeps the default)."""
    if threads is not None:
        torch.set_num_threads(threads)
    loss = nn.functional.cross_entropy
    model, X, y = trained_digits_mlp(act="relu")
    t0 = time.perf_counter()
    evals = torch.linalg.eigvalsh(hessian_matrix(model, loss, X, y, block=256))
    t_exact = time.perf_counter() - t0
    lam_max, lam_2, lam_min = float(evals[-1]), float(evals[-2]), float(evals[0])
    op = HessianOperator.from_model(model, loss, X, y)
    main_cmp = compare(op, lam_max)

    sweep = []
    configs = list(itertools.product(SWEEP_SIZES, ("tanh", "relu"), SWEEP_STEPS))
    for i, (sizes, act, steps) in enumerate(configs):
        print(f"\rsweep {i + 1}/{len(configs)}", end="", flush=True)
        m, Xs, ys = trained_digits_mlp(sizes, steps=steps, act=act)
        op_s = HessianOperator.from_model(m, loss, Xs, ys)
        ref = lanczos(op_s, 2, "largest", 1e-12, generator=torch.Generator().manual_seed(99))
        c = compare(op_s, float(ref.values[0]), seeds=range(5))["summary"]
        power = c["power_truly_within"]["median_n_hvp"]
        oracle = c["lanczos_residual"]["median_first_truly_within_n_hvp"]
        sweep.append(
            dict(sizes="-".join(map(str, sizes)), dim=op_s.dim, act=act, sgd_steps=steps,
                 lambda_max=float(ref.values[0]),
                 lambda_2_over_max=float(ref.values[1] / ref.values[0]),
                 lanczos_n_hvp=c["lanczos_residual"]["median_n_hvp"],
                 lanczos_gap_n_hvp=c["lanczos_gap"]["median_n_hvp"],
                 lanczos_oracle_n_hvp=oracle,
                 power_truly_within_n_hvp=power,
                 pyhessian_n_hvp=c["power_pyhessian"]["median_n_hvp"],
                 pyhessian_max_rel_error=c["power_pyhessian"]["max_rel_error"],
                 ratio=c["hvp_ratio_lanczos_residual_to_power_truly_within"],
                 ratio_gap=c["hvp_ratio_lanczos_gap_to_power_truly_within"],
                 ratio_oracle=oracle / power)
        )  # fmt: skip
    print()
    ratios = np.array([r["ratio"] for r in sweep])
    sweep_summary = {
        "configs": len(sweep),
        "ratio_median": float(np.median(ratios)),
        "ratio_min": float(ratios.min()),
        "ratio_max": float(ratios.max()),
        "share_ratio_at_most_half": float(np.mean(ratios <= 0.5)),
        "share_oracle_ratio_at_most_half": float(
            np.mean([r["ratio_oracle"] <= 0.5 for r in sweep])
        ),
        "lanczos_n_hvp_median": float(np.median([r["lanczos_n_hvp"] for r in sweep])),
        "power_truly_within_n_hvp_median": float(
            np.median([r["power_truly_within_n_hvp"] for r in sweep])
        ),
        "pyhessian_max_rel_error": max(r["pyhessian_max_rel_error"] for r in sweep),
    }
    out = {
        "model": "MLP 64-32-10 relu, digits (N=1797), float64, 300 SGD steps (lr 0.1, b 64)",
        "dim": op.dim,
        "tol": TOL,
        "exact": {
            "lambda_max": lam_max,
            "lambda_2": lam_2,
            "lambda_min": lam_min,
            "hessian_plus_eigvalsh_s": t_exact,
        },
        **main_cmp,
        "sweep": sweep,
        "sweep_summary": sweep_summary,
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
    }
    _print(out)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2))
    print(f"\nwrote {RESULTS}")
    return out


def _print(out: dict) -> None:
    ex, s = out["exact"], out["summary"]
    hvp_ms = s["median_time_per_hvp_s"] * 1e3
    print(f"{out['model']}, d = {out['dim']}; one HVP ≈ {hvp_ms:.1f} ms")
    print(f"exact: λ_max = {ex['lambda_max']:.6g}, λ_2 = {ex['lambda_2']:.6g} "
          f"(λ_2/λ_max = {ex['lambda_2'] / ex['lambda_max']:.4f}), λ_min = {ex['lambda_min']:.4g}; "
          f"full Hessian + eigvalsh {ex['hessian_plus_eigvalsh_s']:.1f} s")  # fmt: skip
    print(f"\nmedians over {len(SEEDS)} start vectors, tol = {out['tol']:g}; 'first within' = "
          "first estimate truly within tol (needs the exact value)")  # fmt: skip
    print(f"{'method (stopping rule)':44s} {'HVPs':>5s} {'mean':>5s} {'time[s]':>8s} "
          f"{'med.rel.err':>12s} {'max':>9s} {'first within':>13s}")  # fmt: skip
    labels = {
        "lanczos_residual": "Lanczos, residual (Weyl) bound r ≤ tol·|θ|",
        "lanczos_gap": "Lanczos, gap estimate min(r,r²/gap) ≤ tol·|θ|",
        "power_pyhessian": "power, PyHessian rel. change < tol",
    }
    for key, label in labels.items():
        r = s[key]
        print(f"{label:44s} {r['median_n_hvp']:5.0f} {r['mean_n_hvp']:5.1f} "
              f"{r['median_time_s']:8.3f} "
              f"{r['median_rel_error']:12.2e} {r['max_rel_error']:9.2e} "
              f"{r['median_first_truly_within_n_hvp']:13.0f}")  # fmt: skip
    p = s["power_truly_within"]
    print(f"{'power, residual rule r ≤ tol·|θ|':44s} {p['median_residual_rule_n_hvp']:5.0f}")
    print(f"\npower iteration needs {p['median_n_hvp']:.0f} HVPs (mean {p['mean_n_hvp']:.1f}; "
          f"{p['median_time_s']:.3f} s) to be truly within 1e-3 (oracle)")  # fmt: skip
    for name, label in (("lanczos_residual", "certified (residual)"), ("lanczos_gap", "gap")):
        ratio = s[f"hvp_ratio_{name}_to_power_truly_within"]
        print(f"Lanczos {label} / power truly within: HVP ratio {ratio:.2f} (target ≤ 0.5)")
    print("\nsweep (5 start vectors each; reference λ_max by Lanczos at tol 1e-12):")
    print(f"{'MLP':14s} {'act':5s} {'steps':>5s} {'λ2/λ1':>6s} {'Lanczos':>8s} {'gap':>4s} "
          f"{'oracle':>6s} {'power*':>7s} {'PyH':>4s} {'PyH max err':>11s} {'ratio':>6s} "
          f"{'ratio gap':>9s} {'ratio oracle':>12s}")  # fmt: skip
    for r in out["sweep"]:
        print(f"{r['sizes']:14s} {r['act']:5s} {r['sgd_steps']:5d} {r['lambda_2_over_max']:6.3f} "
              f"{r['lanczos_n_hvp']:8.0f} {r['lanczos_gap_n_hvp']:4.0f} "
              f"{r['lanczos_oracle_n_hvp']:6.0f} "
              f"{r['power_truly_within_n_hvp']:7.0f} {r['pyhessian_n_hvp']:4.0f} "
              f"{r['pyhessian_max_rel_error']:11.2e} {r['ratio']:6.2f} "
              f"{r['ratio_gap']:9.2f} {r['ratio_oracle']:12.2f}")  # fmt: skip
    print("power* = power iteration, first iterate truly within 1e-3 (oracle); "
          "oracle = Lanczos, first Ritz value truly within 1e-3; PyH = PyHessian rule; "
          "ratio = Lanczos (certified) HVPs / power*")  # fmt: skip
    w = out["sweep_summary"]
    print(f"sweep: certified ratio median {w['ratio_median']:.2f} "
          f"(range {w['ratio_min']:.2f}–{w['ratio_max']:.2f}); ≤ 0.5 in "
          f"{w['share_ratio_at_most_half']:.0%} of {w['configs']} models "
          f"(oracle Lanczos: {w['share_oracle_ratio_at_most_half']:.0%}); "
          f"PyHessian rule's worst error {w['pyhessian_max_rel_error']:.2g}")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    main(parser.parse_args().threads)

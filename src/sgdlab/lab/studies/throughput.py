"""Study ``throughput``: hardware utilisation and wall-clock time to a target vs b (§4).

Article §4: small batches give "faster iterations" but "underutilization of parallel
hardware"; large batches "better hardware utilization" but are "computationally expensive per
iteration". Measured on the machine at hand (labelled with it: CPU model, cores, torch threads;
the GPU when there is one), so the verdicts are about **shape**, not absolute numbers:

* **examples per second of one training step vs b** — for the engine (16 chains of the digits
  MLP, 1 torch thread, as the lab runs), from five timing runs per b; and for a plain PyTorch
  step (forward, cross-entropy, backward, ``torch.optim.SGD`` step) of the digits MLP
  (64–32–10) and of a 784–512–512–10 MLP on random inputs, five repeats per b, in this
  process with one torch thread too;
* **wall-clock time to the target** T(b) = S(b) × seconds per plain step of the digits MLP,
  S(b) the tuned steps of ``critical-batch``'s digits-MLP sweep (the same stored runs).

Findings (article, ``details["machine"]``): small batches under-use the hardware — the slope
of log throughput vs log b over the two smallest b is positive (engine; plain digits MLP); the
throughput of the 784–512–512–10 MLP saturates — the b where it first reaches 80% of its
largest value lies inside the measured range; the time to target is smallest at an interior b
— the minimiser of T(b) (a parabola in log b through the best grid point and its neighbours)
lies strictly inside the range. Intervals: bootstrap over the timing repeats (and, for T(b),
over the chains of the sweep, re-tuned in each resample).
"""

from __future__ import annotations

import math
import time
from itertools import pairwise

import numpy as np
import torch
from torch import nn
from torch.nn.utils import skip_init

from sgdlab.engine.result import RunResult
from sgdlab.lab.findings import Finding
from sgdlab.lab.stats import probe_seed
from sgdlab.lab.studies._batch_common import Sweep, percentile_ci
from sgdlab.lab.studies._batch_sweeps import MLP, MLP_SPEC, sweep_grid
from sgdlab.lab.studies._common import figure, machine, save
from sgdlab.lab.study import Context, Study, register

CLAIM_HW = ("Small mini-batches underutilize parallel hardware; large mini-batches give better "
            "hardware utilization (§4).")
CLAIM_TIME = ("Small batches give faster iterations, large ones fewer, more expensive iterations: "
              "a trade-off in time to a target (§4).")
FIG = "throughput.png"
REPEATS = 5
N_BOOT = 1000
SATURATION = 0.8
CI = "percentile bootstrap over the 5 timing repeats (1000 resamples)"


def _settings(quick: bool) -> dict:
    if quick:
        return {"bs": (1, 4, 16, 64, 256, 1024), "engine_steps": 40, "min_seconds": 0.03}
    return {"bs": tuple(2**i for i in range(12)), "engine_steps": 100, "min_seconds": 0.1}


@register
class Throughput(Study):
    name = "throughput"
    section = "4"
    claim = "examples/s of a training step vs b (engine, PyTorch MLPs); wall-clock time to target"

    def grid(self, quick: bool) -> dict[str, dict]:
        s = _settings(quick)
        g = dict(sweep_grid(MLP_SPEC, quick))
        for b in s["bs"]:
            for r in range(REPEATS):  # distinct seeds: separate timings
                g[f"time/b{b}/{r}"] = {
                    "problem": MLP, "seed": 70 + r, "dtype": "float32", "chains": 16,
                    "steps": s["engine_steps"], "optimizer": {"name": "sgd", "lr": 0.1},
                    "batch": {"size": b, "sampling": "with_replacement"},
                    "record": {"every": s["engine_steps"], "objective": False}}  # fmt: skip
        return g

    def analyze(self, runs: dict[str, RunResult], ctx: Context) -> list[Finding]:
        s = _settings(ctx.quick)
        bs = np.array(s["bs"], float)
        rng = np.random.default_rng(probe_seed(70))
        device = "cuda" if torch.cuda.is_available() else "cpu"
        where = machine()
        if device == "cuda":
            where += f"; PyTorch steps on {torch.cuda.get_device_name(0)}"
        engine = np.array([[16 * b * s["engine_steps"] / runs[f"time/b{int(b)}/{r}"].wall_seconds
                            for r in range(REPEATS)] for b in bs])  # fmt: skip
        small_net = _plain_throughput((64, 32, 10), bs, s["min_seconds"], device)
        big_net = _plain_throughput((784, 512, 512, 10), bs, s["min_seconds"], device)
        common = {"figure": FIG, "machine": where, "ci_method": CI}
        out = []
        for label, thr in (("engine (16 chains, digits MLP)", engine),
                           ("plain PyTorch step, digits MLP 64–32–10", small_net)):  # fmt: skip
            slope = _slope(bs[:2], thr[:2].mean(1))
            boots = np.array([_slope(bs[:2], _resample(thr[:2], rng)) for _ in range(N_BOOT)])
            out.append(self.finding(
                CLAIM_HW, f"{label}: slope of log examples/s vs log b between b={int(bs[0])} and "
                f"{int(bs[1])} (seconds on this machine ({where}))", slope, percentile_ci(boots),
                kind="article", predicted=None, rule="positive", theory="direction",
                examples_per_second=thr.mean(1).tolist(), **common,
            ))  # fmt: skip
        sat = _saturation(bs, big_net.mean(1))
        boots = np.array([_saturation(bs, _resample(big_net, rng)) for _ in range(N_BOOT)])
        out.append(self.finding(
            CLAIM_HW, f"plain PyTorch step, MLP 784–512–512–10: b where examples/s first reaches "
            f"{SATURATION:.0%} of its largest value (seconds on this machine ({where}))", sat,
            percentile_ci(boots), kind="article", predicted=None, rule="inside",
            range=(float(bs[0]), float(bs[-1])), theory="saturation inside the measured range",
            examples_per_second=big_net.mean(1).tolist(), **common,
        ))  # fmt: skip
        out.append(self._time_to_target(runs, ctx, bs, small_net, rng, where))
        self._figure(ctx, bs, engine, small_net, big_net, out[-1], where)
        return out

    def _time_to_target(self, runs, ctx, bs, small_net, rng, where) -> Finding:
        sweep_bs = MLP_SPEC.batch_sizes(ctx.quick)
        sweep = Sweep.from_runs([runs[f"mlp/b{b}"] for b in sweep_bs], MLP_SPEC.target,
                                MLP_SPEC.metric, probe_seed(MLP_SPEC.seed))  # fmt: skip
        idx = [int(np.nonzero(bs == b)[0][0]) for b in sweep_bs]
        sec = 1.0 / small_net[idx] * np.array(sweep_bs, float)[:, None]  # s/step [n_b, R]
        S, _ = sweep.tuned()
        Sb, _ = sweep.tuned_boot()
        T = S * sec.mean(1)
        b_star = _interior_min(np.array(sweep_bs, float), T)
        boots = np.array([_interior_min(np.array(sweep_bs, float),
                                        Sb[i] * _resample(sec, rng))
                          for i in range(Sb.shape[0])])  # fmt: skip
        return self.finding(
            CLAIM_TIME, f"digits MLP: b minimising the wall-clock time to F ≤ {MLP_SPEC.target:g} "
            f"(tuned steps × seconds per plain step; seconds on this machine ({where}))", b_star,
            percentile_ci(boots), kind="article", predicted=None, rule="inside",
            range=(float(sweep_bs[1]), float(sweep_bs[-2])), figure=FIG, machine=where,
            ci_method="percentile bootstrap over the sweep's chains (re-tuned) and the timing "
            "repeats (1000 resamples)", theory="an interior minimum (strictly inside the range)",
            seconds_to_target=T.tolist(), batch_sizes=list(sweep_bs),
        )  # fmt: skip

    def _figure(self, ctx, bs, engine, small_net, big_net, t_find, where) -> None:
        fig, axes = figure(1, 2)
        for thr, label in ((engine, "engine, 16 chains (digits MLP)"),
                           (small_net, "PyTorch step, 64–32–10"),
                           (big_net, "PyTorch step, 784–512–512–10")):  # fmt: skip
            axes[0].errorbar(bs, thr.mean(1), yerr=thr.std(1, ddof=1), fmt="o-", capsize=2,
                             label=label)  # fmt: skip
        axes[0].set(xscale="log", yscale="log", xlabel="batch size b", ylabel="examples / s",
                    title="throughput of one training step")  # fmt: skip
        axes[0].legend(fontsize=7)
        b = np.array(t_find.details["batch_sizes"], float)
        axes[1].plot(b, t_find.details["seconds_to_target"], "o-")
        axes[1].axvline(t_find.measured, color="k", ls=":", label="minimiser")
        axes[1].set(xscale="log", yscale="log", xlabel="batch size b",
                    ylabel=f"seconds to F ≤ {MLP_SPEC.target:g}",
                    title="digits MLP: time to target (tuned η per b)")  # fmt: skip
        axes[1].legend(fontsize=7)
        fig.suptitle(where, fontsize=7)
        save(fig, ctx.figure(FIG))


def _plain_throughput(widths: tuple[int, ...], bs: np.ndarray, min_seconds: float,
                      device: str) -> np.ndarray:  # fmt: skip
    """``[n_b, REPEATS]`` examples/s of a plain PyTorch SGD step of an MLP with ``widths``,
    with one torch thread (as the lab's runs: intra-op threads that spin on a shared machine
    distort small steps by 10–50×), restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _plain(widths, bs, min_seconds, device)
    finally:
        torch.set_num_threads(threads)


def _plain(widths: tuple[int, ...], bs: np.ndarray, min_seconds: float,
           device: str) -> np.ndarray:  # fmt: skip
    gen = torch.Generator().manual_seed(0)
    layers: list[nn.Module] = []
    for i, (a, z) in enumerate(pairwise(widths)):
        lin = skip_init(nn.Linear, a, z)
        with torch.no_grad():  # PyTorch's default init, drawn from our generator
            lin.weight.uniform_(-1 / math.sqrt(a), 1 / math.sqrt(a), generator=gen)
            lin.bias.uniform_(-1 / math.sqrt(a), 1 / math.sqrt(a), generator=gen)
        layers.append(lin)
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    out = np.empty((bs.size, REPEATS))
    for i, b in enumerate(bs.astype(int)):
        x = torch.randn(b, widths[0], generator=gen).to(device)
        y = torch.randint(0, widths[-1], (b,), generator=gen).to(device)

        def step(x: torch.Tensor = x, y: torch.Tensor = y) -> None:
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()

        for _ in range(2):  # warm-up
            step()
        n = 1
        while True:  # enough steps for a measurable time
            t = _timed(step, n, device)
            if t >= min_seconds or n >= 4096:
                break
            n *= 4
        for r in range(REPEATS):
            out[i, r] = b * n / _timed(step, n, device)
    return out


def _timed(step, n: int, device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def _resample(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row means of ``values [n, R]`` over a resample of the R repeats."""
    R = values.shape[1]
    return values[:, rng.integers(0, R, R)].mean(1)


def _slope(bs: np.ndarray, y: np.ndarray) -> float:
    return float(np.diff(np.log(y))[0] / np.diff(np.log(bs))[0])


def _saturation(bs: np.ndarray, thr: np.ndarray) -> float:
    """The b where ``thr`` first reaches SATURATION × its maximum (log-linear interpolation)."""
    level = SATURATION * thr.max()
    i = int(np.argmax(thr >= level))
    if i == 0:
        return float(bs[0])
    x0, x1 = np.log(bs[i - 1]), np.log(bs[i])
    y0, y1 = np.log(thr[i - 1]), np.log(thr[i])
    return float(math.exp(x0 + (x1 - x0) * (math.log(level) - y0) / (y1 - y0)))


def _interior_min(bs: np.ndarray, T: np.ndarray) -> float:
    """Minimiser of T(b): a parabola in log b through the best grid point and its neighbours
    (the grid end itself when the best point is an end; NaN if T is not finite there)."""
    if not np.isfinite(T).all():
        return float("nan")
    i = int(np.argmin(T))
    if i in (0, len(bs) - 1):
        return float(bs[i])
    x, y = np.log(bs[i - 1 : i + 2]), np.log(T[i - 1 : i + 2])
    a, b_, _ = np.polyfit(x, y, 2)
    return float(math.exp(-b_ / (2 * a))) if a > 0 else float(bs[i])

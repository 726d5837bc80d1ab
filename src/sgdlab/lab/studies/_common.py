"""Helpers shared by the built-in studies: slopes, figures, problem rebuilding."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from sgdlab.config import load_config
from sgdlab.engine.result import RunResult
from sgdlab.problems import Problem, build_problem


def ols_slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of log y on log x (for theory curves; no CI needed)."""
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    xc = lx - lx.mean()
    return float(xc @ (ly - ly.mean()) / (xc @ xc))


def build(run: RunResult) -> Problem:
    """The :class:`~sgdlab.problems.Problem` of ``run``, rebuilt in float64 from its own config
    and the root entropy it used (so its data are the run's own)."""
    c = load_config(run.config)
    streams = c.make_streams(run.seed_entropy)
    return build_problem(c.problem.name, c.problem.params(), streams, torch.float64)


def subopt(run: RunResult, name: str = "suboptimality") -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of a suboptimality metric, clipped at the smallest positive float."""
    steps, v = run.metric(name)
    return steps, np.maximum(v, np.finfo(float).tiny)


def figure(nrows: int = 1, ncols: int = 2, w: float = 5.2, h: float = 3.8):
    fig, axes = plt.subplots(nrows, ncols, figsize=(w * ncols, h * nrows), dpi=110)
    return fig, np.atleast_1d(axes).reshape(-1)


def save(fig, path) -> str:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path.name


def errbar(ax, x, m, lo, hi, **kw) -> None:
    m, lo, hi = (np.asarray(a, float) for a in (m, lo, hi))
    ax.errorbar(x, m, yerr=[m - lo, hi - m], fmt="o", capsize=3, **kw)


def machine() -> str:
    """This machine in words (CPU model, cores, torch threads of a lab run), for findings
    measured in seconds."""
    import os
    import platform

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            model = next(
                (line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")),
                model,
            )
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, 1 torch thread per run"

"""The ``debugging`` study's figure: failure rate by remedy (Wilson intervals), the median
loss curves, and the oscillation statistic before divergence."""

from __future__ import annotations

import numpy as np

from sgdlab.lab.stats import mean_ci, wilson_ci
from sgdlab.lab.studies._common import figure, save

ORDER = ("unstable", "lower_lr", "larger_b", "clip", "combined", "advised")
LABELS = {"unstable": "unstable", "lower_lr": "η÷3", "larger_b": "b×4", "clip": "clip",
          "combined": "all three", "advised": "advise --apply"}  # fmt: skip


def debugging_figure(path, runs, failed, probes) -> str:
    """``runs``: key → RunResult (keys of :data:`ORDER`); ``failed``: run → bool per chain;
    ``probes``: (η, per-chain fraction of steps raising F) for the third panel."""
    fig, axes = figure(1, 3)
    keys = [k for k in ORDER if k in runs]
    rates = [wilson_ci(int(failed(runs[k]).sum()), runs[k].chains) for k in keys]
    x = np.arange(len(keys))
    p = np.array([r[0] for r in rates])
    axes[0].bar(x, p, color=["tab:red"] + ["tab:blue"] * (len(keys) - 1))
    err = [np.maximum(p - [r[1] for r in rates], 0), np.maximum([r[2] for r in rates] - p, 0)]
    axes[0].errorbar(x, p, yerr=err, fmt="none", ecolor="k", capsize=3)  # rounding at p = 1
    axes[0].set_xticks(x, [LABELS[k] for k in keys], rotation=30, fontsize=8)
    axes[0].set(ylabel="failure rate (95% Wilson)", ylim=(0, 1.05),
                title="divergence rate by remedy")  # fmt: skip
    for k in keys:
        steps, loss = runs[k].metric("loss")
        with np.errstate(all="ignore"):
            med = np.nanmedian(np.where(np.isfinite(loss), loss, np.nan), axis=0)
        axes[1].plot(steps, med, label=LABELS[k])
    axes[1].set(yscale="log", xlabel="step", ylabel="minibatch loss (median over chains)",
                title="loss curves")  # fmt: skip
    axes[1].legend(fontsize=7)
    stats = [mean_ci(fr) for _, fr in probes]
    m = np.array([s[0] for s in stats])
    err = [np.maximum(m - [s[1] for s in stats], 0), np.maximum([s[2] for s in stats] - m, 0)]
    axes[2].errorbar([f"η={lr:.3g}" for lr, _ in probes], m, yerr=np.nan_to_num(err), fmt="o",
                     capsize=3)  # fmt: skip
    axes[2].set(ylabel="fraction of steps raising F (before divergence)",
                title="the loss curve's oscillation")  # fmt: skip
    return save(fig, path)

"""The ``sources`` study's figure: tr Σ by source (t-intervals over independent groups) with
the total and the marginal contributions, and the dispersion of the final iterates."""

from __future__ import annotations

import numpy as np

from sgdlab.lab.studies._common import figure, save


def _bars(ax, labels, vals, color="tab:blue") -> None:
    m = np.array([v[0] for v in vals], float)
    lo = np.array([v[1] for v in vals], float)
    hi = np.array([v[2] for v in vals], float)
    x = np.arange(len(labels))
    ax.bar(x, m, color=color)
    err = [np.maximum(m - lo, 0), np.maximum(hi - m, 0)]  # a percentile CI may miss m
    ax.errorbar(x, m, yerr=err, fmt="none", ecolor="k", capsize=3)
    ax.set_xticks(x, labels, rotation=30, fontsize=8)


def sources_figure(path, traces: dict, marginal: dict, training: dict) -> str:
    """``traces``: name → (tr Σ, lo, hi) at the fixed w (sources alone and ``all``);
    ``marginal``: name → tr Σ_all − tr Σ_all−s; ``training``: name → (spread, train, test)
    each (value, lo, hi)."""
    fig, axes = figure(1, 3)
    names = [n for n in traces if n != "all"]
    _bars(axes[0], [*names, "all"], [traces[n] for n in names] + [traces["all"]])
    total = sum(traces[n][0] for n in names if n != "nearest")
    axes[0].axhline(total, color="tab:red", ls="--", lw=1, label="sum of the sources alone")
    axes[0].set(ylabel="tr Σ of the gradient at w (95% CI, groups of draws)", yscale="symlog",
                title="variance by source")  # fmt: skip
    axes[0].legend(fontsize=7)
    keys = [k for k in marginal]
    x = np.arange(len(keys))
    axes[1].bar(x - 0.2, [traces[k][0] for k in keys], 0.4, label="alone")
    axes[1].bar(x + 0.2, [marginal[k] for k in keys], 0.4, label="tr Σ_all − tr Σ_all−s")
    axes[1].set_xticks(x, keys, rotation=30, fontsize=8)
    axes[1].set(ylabel="tr Σ", yscale="symlog", title="alone vs marginal contribution")
    axes[1].legend(fontsize=7)
    keys = list(training)
    _bars(axes[2], keys, [training[k][0] for k in keys], "tab:green")
    axes[2].set(ylabel="tr Cov(w_T) over chains (95% CI, groups of chains)", yscale="symlog",
                title="spread of the final iterates")  # fmt: skip
    return save(fig, path)

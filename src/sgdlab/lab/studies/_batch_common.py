"""Shared pieces of the batch-size studies (``critical-batch``, ``lr-scaling``, ``throughput``).

* The **step-size lattice** η_j = 2^{j/2}: every sweep takes its steps from it, so a step tuned
  at b₀ and scaled by k = 2^m (linear: j + 2m; square root: j + m) is again on the lattice,
  and the scaling rules can be read off the same runs.
* :class:`Sweep` — steps to a target for every batch size and lattice step of a b × η sweep
  (one run per b, one chain group per step), from the mean over each group's chains, with a
  **bootstrap over chains**: every resample redraws the chains of every (b, η) group (within
  the group) and recomputes every hitting time, so a statistic that tunes the step (a tuned
  S(b), a fit through the tuned S(b), a rule applied from the tuned step at b₀) is re-tuned
  inside every resample (as :mod:`sgdlab.lab.studies.efficiency` does).
* The problems and run settings shared by the studies, so that ``lr-scaling`` and
  ``throughput`` reuse ``critical-batch``'s stored runs (same configs, same hashes).

Hitting times: :func:`sgdlab.theory.target_steps.first_passage` of the chain-mean curve
(interpolated in log F between records), the functional the exact reference uses too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sgdlab.engine.result import RunResult
from sgdlab.lab.stats import groups
from sgdlab.theory.batch_size import fit_critical_batch
from sgdlab.theory.target_steps import first_passage

#: resamples of the sweep bootstraps
N_BOOT = 1000
CI_SWEEP = ("percentile bootstrap over chains (1000 resamples): the chains of every (b, η) group "
            "redrawn within the group, every hitting time recomputed and the step re-tuned in "
            "each resample")
CI_STEPS = ("percentile bootstrap over chains (1000 resamples): the chains of every (b, η) group "
            "redrawn within the group and every hitting time recomputed, at fixed steps")


def eta(j: int) -> float:
    """The lattice step η_j = 2^{j/2}."""
    return 2.0 ** (j / 2)


def lattice_index(value: float) -> int:
    """The j with η_j = ``value`` (which must be on the lattice)."""
    j = round(2 * math.log2(value))
    if not math.isclose(eta(j), value, rel_tol=1e-12):
        raise ValueError(f"{value} is not on the step lattice 2^(j/2)")
    return j


def sweep_config(base: dict, b: int, js: list[int], chains_per_lr: int, steps: int,
                 every: int) -> dict:  # fmt: skip
    """One run of a sweep: batch size ``b`` (with replacement), one chain group per lattice
    step η_j (``js``), ``steps`` steps, the objective recorded every ``every`` steps.

    Each b gets its own ``sampling`` stream (seed = root seed · 10⁴ + b; the data, from the
    root seed, stay the same problem): runs of different b must be independent for the
    bootstraps, which redraw each run's chains on their own (with one sampling stream, chain k
    would draw overlapping batches at every b, and the errors of S(b) would be correlated)."""
    streams = dict(base.get("streams") or {})
    streams["seeds"] = {**streams.get("seeds", {}), "sampling": int(base["seed"]) * 10**4 + b}
    return {**base, "streams": streams, "batch": {"size": b, "sampling": "with_replacement"},
            "chains": chains_per_lr * len(js), "steps": steps,
            "optimizer": {"name": "sgd", "lr": [eta(j) for j in js]},
            "record": {"every": every, "objective": True}}  # fmt: skip


def run_lattice(run: RunResult) -> list[int]:
    """The lattice indices of a sweep run's chain groups, from its config."""
    lr = run.config["optimizer"]["lr"]
    return [lattice_index(v) for v in (lr if isinstance(lr, list) else [lr])]


def boot_means(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``[n_boot, n]`` chain means of bootstrap resamples of the rows of ``values [K, n]``.

    A resample that holds a chain with a non-finite value at a record is NaN there (as the mean
    over the chains is)."""
    K = values.shape[0]
    counts = rng.multinomial(K, np.full(K, 1.0 / K), size=n_boot).astype(float)
    bad = ~np.isfinite(values)
    means = counts @ np.where(bad, 0.0, values) / K
    return np.where(counts @ bad.astype(float) > 0, np.nan, means)


@dataclass
class Sweep:
    """Steps to ``target`` of a b × η sweep, at the point estimate and per bootstrap resample.

    Attributes:
        batch_sizes: ``[n_b]``.
        js: per batch size, the lattice indices of its chain groups.
        hits: per batch size, ``[n_lr]`` steps to the target of each group's chain mean (NaN:
            never within the run).
        boot: per batch size, ``[R, n_lr]`` the same for every resample.
        run_steps: per batch size, the run's length (a non-hit means "more than this").
    """

    batch_sizes: np.ndarray
    js: list[np.ndarray]
    hits: list[np.ndarray]
    boot: list[np.ndarray]
    run_steps: np.ndarray

    @classmethod
    def from_runs(cls, runs: list[RunResult], target: float, metric: str, seed: int,
                  n_boot: int = N_BOOT) -> Sweep:  # fmt: skip
        """Hitting times of the runs (one per batch size, in increasing b)."""
        rng = np.random.default_rng(seed)
        bs, js, hits, boot, lengths = [], [], [], [], []
        for run in runs:
            lattice = run_lattice(run)
            steps, values = run.metric(metric)
            groups_ = groups(values, len(lattice))
            means = np.array([g.mean(axis=0) for g in groups_])
            hits.append(first_passage(steps, means, target))
            boot.append(np.stack([first_passage(steps, boot_means(g, n_boot, rng), target)
                                  for g in groups_], axis=1))  # fmt: skip
            bs.append(int(run.config["batch"]["size"]))
            js.append(np.array(lattice))
            lengths.append(int(run.config["steps"]))
        return cls(np.array(bs, float), js, hits, boot, np.array(lengths, float))

    def tuned(self) -> tuple[np.ndarray, np.ndarray]:
        """``(S* [n_b], j* [n_b])``: the fewest steps over each batch size's steps, and its j
        (NaN / −999 where no step reaches the target)."""
        return _tune(self.hits, self.js)

    def tuned_boot(self) -> tuple[np.ndarray, np.ndarray]:
        """``(S* [R, n_b], j* [R, n_b])`` re-tuned in every resample."""
        return _tune(self.boot, self.js)

    def at_edge(self) -> np.ndarray:
        """``[n_b]`` whether the tuned step is the smallest or largest of its sweep (the
        optimum may lie outside the swept steps)."""
        _, j = self.tuned()
        return np.array([jj in (js.min(), js.max()) for jj, js in zip(j, self.js, strict=True)])

    def hit_at(self, i: int, j: np.ndarray | int) -> np.ndarray:
        """Steps to target of batch size ``batch_sizes[i]`` at lattice step(s) ``j``: for an
        int, the point estimate; for ``j [R]``, resample r's value at j[r] (NaN where the run
        has no such step)."""
        js = self.js[i]
        if np.ndim(j) == 0:
            k = np.nonzero(js == j)[0]
            return np.asarray(self.hits[i][k[0]] if k.size else np.nan)
        jj = np.asarray(j)
        col = np.searchsorted(js, jj)
        ok = (col < js.size) & (js[np.minimum(col, js.size - 1)] == jj)
        rows = np.arange(jj.size)
        return np.where(ok, self.boot[i][rows, np.minimum(col, js.size - 1)], np.nan)


def _tune(hits: list[np.ndarray], js: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    S, J = [], []
    for h, j in zip(hits, js, strict=True):
        finite = np.isfinite(h)
        best = np.argmin(np.where(finite, h, np.inf), axis=-1)
        any_ = finite.any(axis=-1)
        S.append(np.where(any_, np.take_along_axis(h, np.expand_dims(best, -1), -1)[..., 0],
                          np.nan))  # fmt: skip
        J.append(np.where(any_, j[best], -999))
    return np.stack(S, axis=-1), np.stack(J, axis=-1)


def percentile_ci(boots: np.ndarray, min_finite: float = 0.9) -> tuple[float, float]:
    """95% percentile interval of the finite resamples (NaN if fewer than ``min_finite`` of
    them are finite: the statistic is undefined in too many resamples)."""
    v = np.asarray(boots, float).reshape(-1)
    f = v[np.isfinite(v)]
    if f.size < min_finite * v.size or f.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(f, [0.025, 0.975])
    return float(lo), float(hi)


@dataclass
class CritFit:
    """The McCandlish fit of a sweep's tuned S(b): point, bootstrap resamples and intervals."""

    s_min: float
    b_crit: float
    at_edge: bool
    boot_s_min: np.ndarray
    boot_b_crit: np.ndarray

    @classmethod
    def of(cls, sweep: Sweep) -> CritFit:
        """The fit of the tuned S(b), re-tuned and refitted in every resample."""
        return cls.of_steps(sweep.batch_sizes, sweep.tuned()[0], sweep.tuned_boot()[0])

    @classmethod
    def of_steps(cls, batch_sizes: np.ndarray, S: np.ndarray, S_boot: np.ndarray) -> CritFit:
        """The fit of S(b) ``[n_b]`` and of each resample ``S_boot [R, n_b]``."""
        fit = fit_critical_batch(batch_sizes, S)
        boot = fit_critical_batch(batch_sizes, S_boot)
        return cls(float(fit.s_min), float(fit.b_crit), bool(fit.at_edge),
                   np.asarray(boot.s_min), np.asarray(boot.b_crit))  # fmt: skip

    @property
    def b_crit_ci(self) -> tuple[float, float]:
        return percentile_ci(self.boot_b_crit)

    def steps(self, b: np.ndarray) -> np.ndarray:
        """The fitted S(b) = S_min (1 + B_crit/b)."""
        return self.s_min * (1.0 + self.b_crit / np.asarray(b, float))

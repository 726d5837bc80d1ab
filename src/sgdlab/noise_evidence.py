"""The noise-scale evidence behind ``sgdlab advise``'s batch-size advice, with its uncertainty.

McCandlish et al. (2018, §2.2–2.3): with B the gradient noise scale, training to a target
takes S(b) = S_min(1 + B_crit/b) steps and E(b) = E_min(1 + b/B_crit) examples, and
B_crit ≈ B. At a batch b the implied costs are therefore

    S(b)/S_min = 1 + B/b,     E(b)/E_min = 1 + b/B,

both 2 at b = B (the knee). Estimates (each with a 95% interval; never advice from a NaN):

* **B_simple of an engine run** — the per-chain noise probe (``noise_trace`` = tr Σ̂ of the
  minibatch, ``noise_grad_sq`` = |ḡ|²) over the last quarter of the records: per chain the
  window averages, then over the live chains the ratio of averages
  tr Σ̄ / (|ḡ|²‾ − tr Var ḡ) (finite-population aware); interval: percentile bootstrap over the
  chains (independent; 2000 resamples, generator seeded with ``seed``), whose upper end is ∞
  when the corrected |G|² is ≤ 0 in more than 2.5% of the resamples.
* **B_simple of a Monitor run** (one chain) — the same window ratio of the per-step
  ``trace_cov`` and ``grad_norm_sq``; interval by the delta method from the per-step standard
  errors the Monitor records (each step's batch is a fresh draw, so given the path the
  per-step errors are independent); without them the EMA ``noise_scale`` has no interval.
* **B_noise of an engine run** (on request) — at the live chains' final parameters, exact
  tr Σ and |G|² over the dataset and Hutchinson tr(HΣ), GᵀHG (:mod:`sgdlab.run_noise`); ratio
  of averages over the chains, bootstrap over the chains.

What the lab measured (``docs/lab.md, part 3``, ``critical-batch``): the noise scales grow about
tenfold along training, and B_crit lies between their values at the start and their averages
along the path (B_crit / B_simple averaged along the path ≈ 0.25 on logistic regression and
≈ 0.5 on the digits MLP; ≈ 0.06 and 0.2 for B_noise); at the noise floor of a small-batch run
of the logistic regression both scales were within a factor 2 of B_crit (``tests/
test_lab_batch.py``). The advice therefore gives B as an order of magnitude.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from sgdlab.theory._common import population_noise_traces

#: bootstrap resamples of the noise-scale intervals
N_BOOT = 2000
LAB_NOTE = ("the noise scale changes about tenfold along training (lab study critical-batch: "
            "B_crit lies between its value at the start and its average along the path), so "
            "read B as the order of magnitude of B_crit")


@dataclass(frozen=True)
class NoiseScale:
    """A measured noise scale: ``name`` (B_simple / B_noise), ``estimate``, its 95% interval
    ``ci`` (NaN bounds where none exists), and how it was measured (``method``)."""

    name: str
    estimate: float
    ci: tuple[float, float]
    method: str

    @property
    def usable(self) -> bool:
        """A finite, positive estimate (advice is never given from a NaN or an ∞)."""
        return math.isfinite(self.estimate) and self.estimate > 0

    def implied(self, b: int) -> dict[str, object]:
        """S(b)/S_min = 1 + B/b and E(b)/E_min = 1 + b/B at batch ``b`` (with the intervals
        implied by the interval of B: both are monotone in B)."""
        lo, hi = self.ci

        def pair(f):  # an upper end B = ∞ gives S/S_min = ∞ and E/E_min = 1
            ok = math.isfinite(lo) and lo > 0 and not math.isnan(hi)
            ends = (f(lo), f(hi)) if ok else (float("nan"), float("nan"))
            return f(self.estimate), (min(ends), max(ends))

        s, s_ci = pair(lambda B: 1.0 + B / b)
        e, e_ci = pair(lambda B: 1.0 + b / B)
        return {"steps_over_min": s, "steps_over_min_ci": s_ci, "examples_over_min": e,
                "examples_over_min_ci": e_ci}  # fmt: skip

    def describe(self) -> str:
        lo, hi = self.ci
        interval = f" [95% CI {lo:.3g}, {hi:.3g}]" if math.isfinite(lo) else " (no interval)"
        return f"{self.name} ≈ {self.estimate:.3g}{interval} ({self.method})"


def _ratio(trace: np.ndarray, grad_sq: np.ndarray, b: int, population: int | None) -> float:
    trace_sigma, var_mean = population_noise_traces(float(trace.mean()), b, population)
    den = float(grad_sq.mean()) - var_mean
    return trace_sigma / den if den > 0 else math.inf


def engine_b_simple(metrics: dict[str, tuple[np.ndarray, np.ndarray]], b: int,
                    live: np.ndarray | None, population: int | None,
                    seed: int = 0) -> NoiseScale | None:  # fmt: skip
    """B_simple of an engine run from its noise probe (module docstring); ``None`` without
    the probe's metrics."""
    if "noise_trace" not in metrics or "noise_grad_sq" not in metrics:
        return None
    tr = np.asarray(metrics["noise_trace"][1], dtype=float)
    g2 = np.asarray(metrics["noise_grad_sq"][1], dtype=float)
    if live is not None and live.shape[0] == tr.shape[0] and live.any():
        tr, g2 = tr[live], g2[live]
    q = max(1, tr.shape[1] // 4)
    with np.errstate(all="ignore"):
        tr_k, g2_k = np.nanmean(tr[:, -q:], axis=1), np.nanmean(g2[:, -q:], axis=1)
    ok = np.isfinite(tr_k) & np.isfinite(g2_k)
    tr_k, g2_k = tr_k[ok], g2_k[ok]
    if tr_k.size == 0:
        return None
    est = _ratio(tr_k, g2_k, b, population)
    ci = (float("nan"), float("nan"))
    if tr_k.size >= 2:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, tr_k.size, (N_BOOT, tr_k.size))
        # a resample whose corrected |G|² is ≤ 0 has B = ∞ (|G| not resolved from 0): kept,
        # so the interval's upper end is ∞ when that happens in more than 2.5% of them
        boots = np.array([_ratio(tr_k[i], g2_k[i], b, population) for i in idx])
        ci = tuple(float(x) for x in np.quantile(boots, [0.025, 0.975], method="inverted_cdf"))
    return NoiseScale("B_simple", est, ci, f"engine noise probe, last quarter of the records, "
                      f"{tr_k.size} chains; bootstrap over chains")  # fmt: skip


def monitor_b_simple(metrics: dict[str, tuple[np.ndarray, np.ndarray]], b: int,
                     population: int | None) -> NoiseScale | None:  # fmt: skip
    """B_simple of a Monitor run from its per-step ``trace_cov`` / ``grad_norm_sq`` and their
    standard errors (module docstring); ``None`` without them."""
    need = ("trace_cov", "grad_norm_sq", "trace_cov_se", "grad_norm_sq_se")
    if any(n not in metrics for n in need):
        return None
    tr, g2, se_tr, se_g2 = (np.asarray(metrics[n][1], dtype=float).reshape(-1) for n in need)
    q = max(1, tr.size // 4)
    tr, g2, se_tr, se_g2 = tr[-q:], g2[-q:], se_tr[-q:], se_g2[-q:]
    ok = np.isfinite(tr) & np.isfinite(g2) & np.isfinite(se_tr) & np.isfinite(se_g2)
    if not ok.any():
        return None
    tr, g2, se_tr, se_g2 = tr[ok], g2[ok], se_tr[ok], se_g2[ok]
    n = tr.size
    trace_sigma, var_mean = population_noise_traces(float(tr.mean()), b, population)
    factor = trace_sigma / float(tr.mean())
    den = float(g2.mean()) - var_mean
    if den <= 0:
        return NoiseScale("B_simple", math.inf, (float("nan"), float("nan")),
                          "Monitor window: the corrected |G|² is not positive")  # fmt: skip
    est = trace_sigma / den
    # delta method: independent per-step errors of the window means (tr Var ḡ moves with tr)
    s_tr = math.sqrt(float((se_tr**2).sum())) / n * factor
    s_den = math.sqrt(float((se_g2**2).sum()) / n**2 + (var_mean / trace_sigma * s_tr) ** 2)
    rel = math.sqrt((s_tr / trace_sigma) ** 2 + (s_den / den) ** 2)
    z = float(sps.norm.ppf(0.975))
    ci = (est * math.exp(-z * rel), est * math.exp(z * rel))  # log-normal: B > 0
    return NoiseScale("B_simple", est, ci, f"Monitor window of {n} noise steps; delta method "
                      "from the per-step standard errors")  # fmt: skip


def chains_b_noise(values: dict[str, np.ndarray], seed: int = 0) -> NoiseScale:
    """B_noise from :func:`sgdlab.run_noise.chain_noise_scales` of the live chains: ratio of
    averages over the chains, bootstrap over the chains."""
    th, ghg = values["trace_h_sigma"], values["ghg"]

    def ratio(i: np.ndarray) -> float:
        den = float(ghg[i].mean())
        return float(th[i].mean()) / den if den > 0 else math.nan

    est = ratio(np.arange(th.size))
    ci = (float("nan"), float("nan"))
    if th.size >= 2:
        rng = np.random.default_rng(seed)
        boots = np.array([ratio(rng.integers(0, th.size, th.size)) for _ in range(N_BOOT)])
        boots = boots[np.isfinite(boots)]
        if boots.size >= 0.9 * N_BOOT:
            ci = tuple(float(x) for x in np.quantile(boots, [0.025, 0.975]))
    return NoiseScale("B_noise", est, ci, f"final parameters of {th.size} chains: exact tr Σ "
                      "and |G|² over the data, Hutchinson tr(HΣ); bootstrap over chains")

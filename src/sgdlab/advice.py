"""Advice from measured noise: batch size, learning rate, clipping (the article's §4–§5).

:func:`advise` turns a run's recorded metrics into a short list of :class:`Advice`, each with
the rule that fired and the numbers behind it. The rules, in order:

1. **Instability** — any chain with a non-finite loss (a diverged chain; the other rules then
   summarize the chains that stayed finite), or a loss that ends clearly above where it started
   (last-quarter mean > 1.5 × first-quarter mean, by more than 3 standard errors of the
   difference, so minibatch noise alone does not trigger it): lower the learning rate (§5).
2. **Batch size against the noise scale** (McCandlish et al. 2018): with B_simple the
   measured noise scale (tr Σ/|G|²: the Monitor's EMA-smoothed ``noise_scale``, or for engine
   runs tr Σ̄ / (|ḡ|²‾ − tr Var ḡ) from the averages of ``noise_trace`` and ``noise_grad_sq``
   over the last quarter of the steps and the live chains), a batch b < B_simple/4 is
   noise-dominated — a batch near B_simple needs
   S(b)/S(B) = (1 + B_simple/b)/(1 + B_simple/B) times fewer steps (McCandlish et al. 2018,
   taking B_crit ≈ B_simple), with the learning rate scaled linearly (or by √k);
   b > 4·B_simple is past the critical batch size — diminishing returns, a smaller batch
   needs fewer examples for the same progress.
   Otherwise b is near the critical batch size and nothing is advised.
3. **Gradient spikes** — max/median of the recorded gradient norms above 10: clip the
   global norm near the 95th percentile of the recorded norms (§5, "gradient clipping").
4. **Oscillating loss** — the median absolute deviation of the last half of the loss, relative
   to how far the loss has come down (median of the first quarter − minimum), above 0.25:
   the step is large for the noise level; lower η or raise b, which both lower the
   temperature T ∝ η/b (§5). Measured against the drop, it does not change when a constant
   is added to the loss.

The thresholds are rules of thumb, stated here and in each advice's evidence; advice never
replaces looking at the curves.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sgdlab.store import Store
from sgdlab.theory._common import population_noise_traces
from sgdlab.theory.batch_size import steps_to_target

#: a batch this many times below (above) the noise scale is noise-dominated (past critical)
BATCH_FACTOR = 4.0
#: max/median gradient norm above which clipping is advised
SPIKE_RATIO = 10.0
#: median absolute deviation of the loss's last half, relative to its total drop (early
#: median − minimum), above which it is called oscillating
OSCILLATION = 0.25


@dataclass(frozen=True)
class Advice:
    """One piece of advice: ``kind`` (instability, batch_size, clipping, oscillation),
    a one-line ``message`` and the ``evidence`` (numbers and the rule's threshold)."""

    kind: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)


def _live(metrics: dict[str, tuple[np.ndarray, np.ndarray]]) -> np.ndarray | None:
    """Chains whose recorded loss stayed finite (``None``: no loss recorded)."""
    if "loss" not in metrics:
        return None
    return np.isfinite(np.asarray(metrics["loss"][1], dtype=float)).all(axis=1)


def _series(
    metrics: dict[str, tuple[np.ndarray, np.ndarray]], name: str, live: np.ndarray | None = None
) -> np.ndarray | None:
    """The median over the live chains of metric ``name`` at each recorded step."""
    if name not in metrics:
        return None
    values = np.asarray(metrics[name][1], dtype=float)
    if live is not None and live.shape[0] == values.shape[0] and live.any():
        values = values[live]
    if values.shape[0] == 1:
        return values.reshape(-1)
    with warnings.catch_warnings():  # steps where every chain is NaN stay NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(values, axis=0)


def _window_noise_scale(
    metrics: dict[str, tuple[np.ndarray, np.ndarray]],
    b: int,
    live: np.ndarray | None,
    population: int | None,
) -> float | None:
    """B_simple from the engine's per-step ``noise_trace`` and ``noise_grad_sq`` as a ratio of
    averages over the last quarter of the recorded steps and the live chains (one minibatch's
    estimate is far too noisy, and averaging ratios is biased): tr Σ̄ / (|ḡ|²‾ − tr Var ḡ)."""
    if "noise_trace" not in metrics or "noise_grad_sq" not in metrics:
        return None
    tr = np.asarray(metrics["noise_trace"][1], dtype=float)
    g2 = np.asarray(metrics["noise_grad_sq"][1], dtype=float)
    if live is not None and live.shape[0] == tr.shape[0] and live.any():
        tr, g2 = tr[live], g2[live]
    q = max(1, tr.shape[1] // 4)
    tr, g2 = tr[:, -q:], g2[:, -q:]
    ok = np.isfinite(tr) & np.isfinite(g2)
    if not ok.any():
        return None
    trace, grad_sq = float(tr[ok].mean()), float(g2[ok].mean())
    trace_sigma, var_mean = population_noise_traces(trace, b, population)
    denominator = grad_sq - var_mean
    return trace_sigma / denominator if denominator > 0 else math.inf


def _last_finite(x: np.ndarray | None) -> float | None:
    if x is None:
        return None
    finite = x[np.isfinite(x)]
    return float(finite[-1]) if finite.size else None


def advise(
    metrics: dict[str, tuple[np.ndarray, np.ndarray]],
    batch_size: int | None = None,
    lr: float | None = None,
    population: int | None = None,
) -> list[Advice]:
    """Advice for a run from its metrics ``name -> (steps, values [K, n])``. Any chain whose
    loss is not finite is reported as instability; the other rules summarize the live chains
    (median over chains). ``batch_size`` and ``lr`` are the run's settings; ``population`` is
    N when its batches hold distinct samples of N (without replacement)."""
    out: list[Advice] = []
    live = _live(metrics)
    if live is not None and not live.all():
        bad = int((~live).sum())
        out.append(
            Advice(
                "instability",
                f"{bad} of {live.size} chains diverged (non-finite loss): lower the learning "
                "rate (e.g. ÷3), then check the data pipeline and the gradient "
                "(sgdlab.measure.gradcheck)",
                {"diverged_chains": bad, "chains": int(live.size), "rule": "any non-finite loss"},
            )
        )
    loss = _series(metrics, "loss", live)
    if loss is not None and loss.size >= 8 and (live is None or live.all()):
        q = loss.size // 4
        head, tail = loss[:q], loss[-q:]
        first, last = float(np.mean(head)), float(np.mean(tail))
        se = math.sqrt(np.var(head, ddof=1) / q + np.var(tail, ddof=1) / q)
        rose = last > 1.5 * first and last - first > 3 * se
        if not np.isfinite(loss).all() or rose:
            out.append(
                Advice(
                    "instability",
                    "the loss diverged or rose: lower the learning rate (e.g. ÷3), then check the "
                    "data pipeline and the gradient (sgdlab.measure.gradcheck)",
                    {
                        "first_quarter_loss": first,
                        "last_quarter_loss": last,
                        "rule": "non-finite, or last-quarter mean > 1.5 × first-quarter mean and "
                        "above it by more than 3 standard errors",
                    },
                )
            )
    scale = _last_finite(_series(metrics, "noise_scale", live))  # Monitor: EMA-smoothed
    if scale is None and batch_size:
        scale = _window_noise_scale(metrics, batch_size, live, population)
    if scale is None:
        scale = _last_finite(_series(metrics, "noise_b_simple", live))
    if scale is not None and batch_size and 0 < scale < math.inf:
        k = scale / batch_size
        evidence = {
            "batch_size": batch_size,
            "noise_scale": scale,
            "lr": lr,
            "rule": f"b < B_simple/{BATCH_FACTOR:g} or b > {BATCH_FACTOR:g}·B_simple",
        }
        if k > BATCH_FACTOR:
            target = int(2 ** round(math.log2(scale)))
            fewer = float(
                steps_to_target(batch_size, 1.0, scale) / steps_to_target(target, 1.0, scale)
            )
            lr_txt = (
                ""
                if lr is None
                else (
                    f" (linear scaling: lr {lr:g} → {lr * target / batch_size:.3g}; "
                    f"square-root: {lr * math.sqrt(target / batch_size):.3g})"
                )
            )
            out.append(
                Advice(
                    "batch_size",
                    f"batch {batch_size} is well below the noise scale B_simple ≈ {scale:.0f}: "
                    f"gradient noise dominates; a batch of {target} needs about {fewer:.1f}× fewer "
                    f"steps (S ∝ 1 + B_simple/b){lr_txt}",
                    evidence,
                )
            )
        elif k < 1 / BATCH_FACTOR:
            out.append(
                Advice(
                    "batch_size",
                    f"batch {batch_size} is far above the noise scale B_simple ≈ {scale:.1f} (the "
                    "critical batch size): larger batches bring diminishing returns; a smaller "
                    "batch reaches the same loss with fewer examples",
                    evidence,
                )
            )
    norms = _series(metrics, "grad_norm", live)
    if norms is not None:
        finite = norms[np.isfinite(norms)]
        if finite.size >= 5 and np.median(finite) > 0:
            ratio = float(finite.max() / np.median(finite))
            if ratio > SPIKE_RATIO:
                clip = float(np.percentile(finite, 95))
                out.append(
                    Advice(
                        "clipping",
                        f"gradient-norm spikes (max/median = {ratio:.0f}): clip the global norm "
                        f"at about {clip:.3g} (the 95th percentile of the recorded norms)",
                        {
                            "max_over_median": ratio,
                            "suggested_max_norm": clip,
                            "rule": f"max/median > {SPIKE_RATIO:g}",
                        },
                    )
                )
    if loss is not None and loss.size >= 8:
        finite = loss[np.isfinite(loss)]
        tail = loss[loss.size // 2 :]
        tail = tail[np.isfinite(tail)]
        head = finite[: max(1, finite.size // 4)]
        drop = float(np.median(head) - finite.min()) if finite.size else 0.0
        if tail.size >= 4 and drop > 0:
            # spread relative to how far the loss has come down: adding a constant to the loss
            # (F* ≠ 0) changes nothing, and a run resting at its noise floor stays quiet
            rel = float(np.median(np.abs(tail - np.median(tail))) / drop)
            if rel > OSCILLATION:
                out.append(
                    Advice(
                        "oscillation",
                        f"the loss oscillates (its spread over the last half is {rel:.2f} of its "
                        "total drop): the step is large for this noise level; lower the learning "
                        "rate or raise the batch size (both lower the temperature T ∝ η/b)",
                        {
                            "mad_over_drop": rel,
                            "rule": f"MAD(last half) / (early median − min) > {OSCILLATION:g}",
                        },
                    )
                )
    return out


#: metrics from which the batch-size advice reads the noise scale
NOISE_METRICS = ("noise_scale", "noise_b_simple")


def advise_stored_run(run_id: str, store_path: Path) -> tuple[list[Advice], bool]:
    """:func:`advise` on a stored run (engine or Monitor), and whether the run recorded noise
    statistics (without them there is no batch-size advice)."""
    with Store(store_path, read_only=True) as db:
        info = db.run(run_id)
        metrics = db.metrics(info["run_id"])
    cfg = info["config"]
    batch = cfg.get("batch") or {}
    b = batch.get("size") if batch.get("sampling") != "full" else (info["problem"] or {}).get("n")
    lr = None
    with warnings.catch_warnings():  # chains that diverged hold NaN; all of them may
        warnings.simplefilter("ignore", RuntimeWarning)
        if "batch_size" in metrics:
            median = float(np.nanmedian(metrics["batch_size"][1][:, -1]))
            b = int(median) if np.isfinite(median) else b
        if "lr" in metrics:
            median = float(np.nanmedian(metrics["lr"][1][:, -1]))
            lr = median if np.isfinite(median) else None
        n = (info["problem"] or {}).get("n")
        distinct = batch.get("sampling") in ("without_replacement", "full", "auto")
        items = advise(metrics, batch_size=b, lr=lr, population=n if distinct and n else None)
    return items, any(name in metrics for name in NOISE_METRICS)

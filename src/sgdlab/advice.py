"""Advice from measured noise: batch size, learning rate, clipping (the article's §4–§5).

:func:`advise` turns a run's recorded metrics into a short list of :class:`Advice`, each with
the rule that fired and the numbers behind it. The rules, in order:

1. **Instability** — a non-finite loss, or a loss that ends clearly above where it started
   (last-quarter mean > 1.5 × first-quarter mean, by more than 3 standard errors of the
   difference, so minibatch noise alone does not trigger it): lower the learning rate (§5).
2. **Batch size against the noise scale** (McCandlish et al. 2018): with B_simple the
   measured noise scale (tr Σ/|G|²; ``noise_scale`` from the Monitor or ``noise_b_simple``
   from the engine), a batch b < B_simple/4 is noise-dominated — a batch near B_simple needs
   S(b)/S(B) = (1 + B_simple/b)/(1 + B_simple/B) times fewer steps (McCandlish et al. 2018,
   taking B_crit ≈ B_simple), with the learning rate scaled linearly (or by √k);
   b > 4·B_simple is past the critical batch size — diminishing returns, a smaller batch
   needs fewer examples for the same progress.
   Otherwise b is near the critical batch size and nothing is advised.
3. **Gradient spikes** — max/median of the recorded gradient norms above 10: clip the
   global norm near the 95th percentile of the recorded norms (§5, "gradient clipping").
4. **Oscillating loss** — the loss's relative spread around its running median (median
   absolute deviation / median over the last half) above 0.5: the step is large for the
   noise level; lower η or raise b, which both lower the temperature T ∝ η/b (§5).

The thresholds are rules of thumb, stated here and in each advice's evidence; advice never
replaces looking at the curves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sgdlab.theory.batch_size import steps_to_target

#: a batch this many times below (above) the noise scale is noise-dominated (past critical)
BATCH_FACTOR = 4.0
#: max/median gradient norm above which clipping is advised
SPIKE_RATIO = 10.0
#: relative median absolute deviation of the loss above which it is called oscillating
OSCILLATION = 0.5


@dataclass(frozen=True)
class Advice:
    """One piece of advice: ``kind`` (instability, batch_size, clipping, oscillation),
    a one-line ``message`` and the ``evidence`` (numbers and the rule's threshold)."""

    kind: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)


def _series(metrics: dict[str, tuple[np.ndarray, np.ndarray]], name: str) -> np.ndarray | None:
    if name not in metrics:
        return None
    values = np.asarray(metrics[name][1], dtype=float)
    return values.reshape(-1) if values.shape[0] == 1 else np.nanmedian(values, axis=0)


def _last_finite(x: np.ndarray | None) -> float | None:
    if x is None:
        return None
    finite = x[np.isfinite(x)]
    return float(finite[-1]) if finite.size else None


def advise(
    metrics: dict[str, tuple[np.ndarray, np.ndarray]],
    batch_size: int | None = None,
    lr: float | None = None,
) -> list[Advice]:
    """Advice for a run from its metrics ``name -> (steps, values [K, n])`` (several chains
    are summarized by their median). ``batch_size`` and ``lr`` are the run's settings."""
    out: list[Advice] = []
    loss = _series(metrics, "loss")
    if loss is not None and loss.size >= 8:
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
    scale = _last_finite(_series(metrics, "noise_scale"))
    if scale is None:
        scale = _last_finite(_series(metrics, "noise_b_simple"))
    if scale is not None and batch_size and scale > 0:
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
    norms = _series(metrics, "grad_norm")
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
        tail = loss[loss.size // 2 :]
        tail = tail[np.isfinite(tail)]
        if tail.size >= 4 and np.median(tail) > 0:
            rel = float(np.median(np.abs(tail - np.median(tail))) / np.median(tail))
            if rel > OSCILLATION:
                out.append(
                    Advice(
                        "oscillation",
                        f"the loss oscillates (relative spread {rel:.2f} over the last half): the "
                        "step is large for this noise level; lower the learning rate or raise the "
                        "batch size (both lower the temperature T ∝ η/b)",
                        {"relative_mad": rel, "rule": f"MAD/median > {OSCILLATION:g}"},
                    )
                )
    return out

"""The batch-size rule of :mod:`sgdlab.advice` (rule 2 there), and :class:`Advice` itself.

:func:`batch_size_advice` advises from a finite, positive noise scale B only.
:func:`unresolved_batch_advice` covers the case where B cannot be resolved at the run's batch
size — the bias-corrected |G|² estimate is ≤ 0 (B = ∞ in :mod:`sgdlab.noise_evidence`; the
Monitor's ``noise_scale`` is NaN then): the gradient signal is below the noise at this
batch, so the noise scale *exceeds* what the batch can resolve. No batch size is advised
from that; the advice quotes the lower bound on B that the measurement gives (the Monitor's
``noise_scale_lower``, or the lower end of B's interval) when it is finite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sgdlab.noise_evidence import LAB_NOTE, NoiseScale
from sgdlab.theory.batch_size import optimal_step, steps_to_target

__all__ = ["BATCH_FACTOR", "Advice", "batch_size_advice", "unresolved_batch_advice"]

#: a batch this many times below (above) the noise scale is noise-dominated (past critical)
BATCH_FACTOR = 4.0


@dataclass(frozen=True)
class Advice:
    """One piece of advice: ``kind`` (instability, batch_size, clipping, oscillation),
    a one-line ``message`` and the ``evidence`` (numbers and the rule's threshold)."""

    kind: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)


def batch_size_advice(noise: NoiseScale, batch_size: int, lr: float | None) -> Advice | None:
    """Rule 2 (module docstring) from a measured noise scale B: a batch below B/4 (by the
    whole interval) is noise-dominated, one above 4B (by the whole interval) is past the
    critical batch size; ``None`` otherwise, or when B is not a finite positive number."""
    if not noise.usable:
        return None
    lo, hi = noise.ci
    low = lo if math.isfinite(lo) else noise.estimate
    high = hi if math.isfinite(hi) else noise.estimate
    implied = noise.implied(batch_size)
    evidence = {
        "batch_size": batch_size,
        "noise_scale": noise.estimate,
        "noise_scale_ci": noise.ci,
        "noise_scale_name": noise.name,
        "method": noise.method,
        "lr": lr,
        **implied,
        "lab": LAB_NOTE,
        "rule": f"b < {noise.name}/{BATCH_FACTOR:g} or b > {BATCH_FACTOR:g}·{noise.name} "
        "(by the whole 95% interval when there is one)",
    }
    ratios = (f"at b = {batch_size}: S/S_min ≈ {implied['steps_over_min']:.3g}, "
              f"E/E_min ≈ {implied['examples_over_min']:.3g}")
    scale = noise.estimate
    if batch_size * BATCH_FACTOR < low:
        target = int(2 ** round(math.log2(scale)))
        fewer = float(
            steps_to_target(batch_size, 1.0, scale) / steps_to_target(target, 1.0, scale)
        )
        new_lr = _scaled_lr(lr, batch_size, target, scale)
        evidence.update(suggested_batch_size=target, suggested_lr=new_lr)
        lr_txt = (
            ""
            if lr is None
            else (
                f" (step: lr {lr:g} → {new_lr:.3g} by McCandlish's optimal step ε ∝ 1/(1 + B/b), "
                f"between the square-root {lr * math.sqrt(target / batch_size):.3g} and the "
                f"linear scaling: lr {lr:g} → {lr * target / batch_size:.3g}; the lab's "
                "lr-scaling study: linear holds only well below B_crit, and a large factor can "
                "cross the stability edge η·λ_max = 2 — raise the step gradually)"
            )
        )
        return Advice(
            "batch_size",
            f"batch {batch_size} is well below the noise scale {noise.describe()}: gradient "
            f"noise dominates ({ratios}); a batch of {target} needs about {fewer:.1f}× fewer "
            f"steps (S ∝ 1 + B/b){lr_txt}; {LAB_NOTE}",
            evidence,
        )
    if batch_size > BATCH_FACTOR * high:
        target = max(1, int(2 ** round(math.log2(scale))))
        evidence.update(suggested_batch_size=target,
                        suggested_lr=_scaled_lr(lr, batch_size, target, scale))
        return Advice(
            "batch_size",
            f"batch {batch_size} is far above the noise scale {noise.describe()} (the critical "
            f"batch size; {ratios}): larger batches bring diminishing returns; a batch of "
            f"{target} reaches the same loss with about {implied['examples_over_min'] / 2:.1f}× "
            "fewer examples",
            evidence,
        )
    return None


def _scaled_lr(lr: float | None, b: int, b_new: int, scale: float) -> float | None:
    """The step for batch ``b_new`` from ``lr`` at ``b`` by McCandlish's optimal step
    ε_opt(b) ∝ 1/(1 + B/b) (:func:`sgdlab.theory.batch_size.optimal_step`): linear in b for
    b ≪ B, saturating for b ≫ B."""
    if lr is None:
        return None
    return float(lr * optimal_step(b_new, 1.0, scale) / optimal_step(b, 1.0, scale))


#: the message of :func:`unresolved_batch_advice` (issue 14's agreed wording)
UNRESOLVED = ("the signal is below the noise at this batch: the noise scale exceeds what this "
              "batch can resolve")


def unresolved_batch_advice(
    noise: NoiseScale, batch_size: int, lower: float | None = None
) -> Advice | None:
    """The batch-size advice when B is not resolved (``noise.estimate`` is +∞: the corrected
    |G|² is ≤ 0; see the module docstring); ``None`` for any other value. ``lower``: a lower
    bound on B (the Monitor's ``noise_scale_lower``); else the finite lower end of B's
    interval, if any, is quoted."""
    if not (math.isinf(noise.estimate) and noise.estimate > 0):
        return None
    if lower is None or not math.isfinite(lower) or lower <= 0:
        lo = noise.ci[0]
        lower = lo if math.isfinite(lo) and lo > 0 else None
    bound = "; no lower bound on it follows from this window"
    if lower is not None:
        bound = f"; {noise.name} ≥ {lower:.3g} (the measured lower bound)"
        if lower > BATCH_FACTOR * batch_size:
            bound += f", above {BATCH_FACTOR:g}× this batch: the batch is noise-dominated"
    return Advice(
        "batch_size",
        f"{UNRESOLVED} (b = {batch_size}; {noise.method}){bound}; no batch size is advised "
        "from an unresolved scale: measure over a longer window or at a larger batch",
        {
            "batch_size": batch_size,
            "noise_scale": noise.estimate,
            "noise_scale_lower": lower,
            "method": noise.method,
            "rule": "bias-corrected |G|² ≤ 0 (B not resolved): no advice from ∞ or NaN",
        },
    )

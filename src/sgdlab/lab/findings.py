"""Findings: one measured claim of the article, with its confidence interval and verdict.

A :class:`Finding` is the unit a study reports: the article's claim (one sentence), the
quantity measured, the measurement with a confidence interval from the chains, the value
theory predicts (or ``None`` where theory gives only a direction), a tolerance, and a
verdict that follows from those numbers by one of the rules below — never set by hand.

Verdict rules (``rule`` is stored in the finding's ``details``):

* ``band`` — predicted value p with tolerance τ: **agrees** if the whole CI lies inside
  [p − τ, p + τ]; **disagrees** if the CI and the band do not intersect; **inconclusive**
  otherwise (the CI is too wide to tell).
* ``upper_bound`` — a bound B that must hold: **agrees** if ci_high ≤ B (1 + τ);
  **disagrees** if ci_low > B (1 + τ); **inconclusive** otherwise.
* ``positive`` / ``negative`` — a direction only (p = ``None``): **agrees** if the CI lies
  entirely above (below) τ (resp. −τ), **disagrees** if it lies entirely on the other side
  of zero, **inconclusive** otherwise.
* ``inside`` — a measured location (e.g. a crossing point) that the claim places inside a
  range [a, b] (``details['range']``): **agrees** if the CI lies inside, **disagrees** if it
  lies entirely outside, **inconclusive** otherwise (also when nothing crossed).
* ``exact`` — an analytic yes/no (1/0) against the article's implied value: **agrees** if
  equal, **disagrees** if not; **no_claim** when the article implies nothing (p = ``None``):
  the value is reported for completeness and counted apart from the judged findings.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Verdict = Literal["agrees", "disagrees", "inconclusive", "no_claim"]
RULES = ("band", "upper_bound", "positive", "negative", "inside", "exact")


def verdict_band(ci_low: float, ci_high: float, predicted: float, tol: float) -> Verdict:
    """``band`` rule: CI inside p ± τ agrees, CI disjoint from it disagrees."""
    lo, hi = predicted - tol, predicted + tol
    if not (math.isfinite(ci_low) and math.isfinite(ci_high)):
        return "inconclusive"
    if lo <= ci_low and ci_high <= hi:
        return "agrees"
    if ci_high < lo or ci_low > hi:
        return "disagrees"
    return "inconclusive"


def verdict_upper_bound(ci_low: float, ci_high: float, bound: float, tol: float = 0.0) -> Verdict:
    """``upper_bound`` rule: the measured quantity must not exceed ``bound``·(1 + τ)."""
    b = bound * (1.0 + tol)
    if not (math.isfinite(ci_low) and math.isfinite(ci_high)):
        return "inconclusive"
    if ci_high <= b:
        return "agrees"
    if ci_low > b:
        return "disagrees"
    return "inconclusive"


def verdict_sign(ci_low: float, ci_high: float, sign: int, tol: float = 0.0) -> Verdict:
    """``positive`` (sign=+1) / ``negative`` (sign=−1) rule for a direction-only claim."""
    lo, hi = (ci_low, ci_high) if sign > 0 else (-ci_high, -ci_low)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "inconclusive"
    if lo > tol:
        return "agrees"
    if hi < 0:
        return "disagrees"
    return "inconclusive"


def verdict_exact(measured: float, predicted: float | None) -> Verdict:
    """``exact`` rule for analytic yes/no quantities (``no_claim`` where the article implies
    nothing: the quantity is reported, not judged)."""
    if predicted is None:
        return "no_claim"
    return "agrees" if measured == predicted else "disagrees"


@dataclass
class Finding:
    """One row of the lab report.

    Attributes:
        study: the study's registered name.
        claim: the article's statement, one sentence.
        quantity: what was measured (with units / conditions).
        measured: the point estimate.
        ci_low, ci_high: its confidence interval (method in ``details['ci']``).
        predicted: theory's value (``None`` where theory gives only a direction).
        tolerance: the tolerance of the verdict rule.
        verdict: ``agrees`` / ``disagrees`` / ``inconclusive``, from the rule.
        figure: file name of the figure (relative to the report folder).
        details: rule, CI method, theory function, and anything else worth keeping.
    """

    study: str
    claim: str
    quantity: str
    measured: float
    ci_low: float
    ci_high: float
    predicted: float | None
    tolerance: float
    verdict: Verdict
    figure: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("measured", "ci_low", "ci_high", "predicted", "tolerance"):
            v = d[key]
            if v is not None:
                d[key] = float(v) if math.isfinite(float(v)) else None
        d["details"] = json.loads(json.dumps(self.details, default=_jsonable))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Finding:
        d = dict(d)
        for key in ("measured", "ci_low", "ci_high"):
            if d.get(key) is None:
                d[key] = float("nan")
        return cls(**d)


def _jsonable(x: Any) -> Any:
    try:
        import numpy as np

        if isinstance(x, np.generic):
            return x.item()
        if isinstance(x, np.ndarray):
            return x.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(x)


def make_finding(
    study: str,
    claim: str,
    quantity: str,
    measured: float,
    ci: tuple[float, float],
    *,
    predicted: float | None,
    tolerance: float = 0.0,
    rule: str,
    figure: str = "",
    ci_method: str = "",
    theory: str = "",
    **details: Any,
) -> Finding:
    """Build a :class:`Finding`, computing the verdict with ``rule`` (see module docstring)."""
    lo, hi = float(ci[0]), float(ci[1])
    if rule == "band":
        assert predicted is not None
        verdict = verdict_band(lo, hi, predicted, tolerance)
    elif rule == "upper_bound":
        assert predicted is not None
        verdict = verdict_upper_bound(lo, hi, predicted, tolerance)
    elif rule in ("positive", "negative"):
        verdict = verdict_sign(lo, hi, 1 if rule == "positive" else -1, tolerance)
    elif rule == "exact":
        verdict = verdict_exact(float(measured), predicted)
    elif rule == "inside":
        a, b = details["range"]
        if not (math.isfinite(lo) and math.isfinite(hi)):
            verdict = "inconclusive"
        elif a <= lo and hi <= b:
            verdict = "agrees"
        elif hi < a or lo > b:
            verdict = "disagrees"
        else:
            verdict = "inconclusive"
    else:
        raise ValueError(f"unknown verdict rule {rule!r}; rules: {RULES}")
    info = {"rule": rule, "ci": ci_method, "theory": theory, **details}
    return Finding(
        study=study,
        claim=claim,
        quantity=quantity,
        measured=float(measured),
        ci_low=lo,
        ci_high=hi,
        predicted=None if predicted is None else float(predicted),
        tolerance=float(tolerance),
        verdict=verdict,
        figure=figure,
        details=info,
    )

"""Findings: one measured statement, its kind, its confidence interval and its verdict.

A :class:`Finding` is the unit a study reports: the statement (one sentence), the quantity
measured, the measurement with a confidence interval from independent chains, the value
the reference predicts (or ``None`` where there is only a direction), a tolerance with its
derivation, and a verdict that follows from those numbers by one of the rules below —
never set by hand.

**Kinds** (``kind``) — only ``article`` findings count as evidence about the article:

* ``article`` — tests a claim of the article, on a problem where the claim could fail;
* ``engine-check`` — the simulator against the exact model it implements (e.g. additive
  Gaussian noise on a quadratic, where the engine *is* the recursion the theory solves);
* ``analytic`` — a mathematical fact computed, not measured (no interval);
* ``bound`` — a theorem's inequality checked on the measurement; its tightness
  (measured / bound) is recorded, since a loose bound cannot fail.

**Verdict rules** (``details["rule"]``; τ is the finding's tolerance, always derived and
explained in ``details["tolerance_derivation"]``):

* ``contains`` — a point prediction p from an exact reference: **agrees** if the CI meets
  [p − τ, p + τ] (τ = a stated, computed bias of the reference, often 0), **disagrees**
  otherwise. ``details["detectable_80"]`` is the deviation the interval detects with 80%
  power (two-sided 5% test): (z₀.₉₇₅ + z₀.₈) · SE.
* ``band`` — p with a derived tolerance τ (a computed model error): **agrees** if the whole
  CI lies in [p − τ, p + τ]; **disagrees** if the CI misses the band; else **inconclusive**.
* ``upper_bound`` / ``lower_bound`` — the quantity must be ≤ p + τ (≥ p − τ): **agrees** if
  the whole CI satisfies it, **disagrees** if none of it does, else **inconclusive**.
* ``positive`` / ``negative`` — a direction only (p = ``None``): **agrees** if the CI lies
  entirely above τ (below −τ), **disagrees** if entirely on the other side of 0.
* ``inside`` — a location the claim puts inside ``details["range"]``: **agrees** if the CI
  lies inside, **disagrees** if entirely outside, else **inconclusive** (also when the
  location does not exist).
* ``exact`` — an analytic yes/no (1/0) against the article's implied value: **agrees** if
  equal, **disagrees** if not; **no_claim** when the article implies nothing (reported,
  counted apart).
* ``report`` — a measurement the article makes no claim about: **no_claim**.

**Multiplicity.** Each judged finding is a 5%-level test: among m true statements about
0.05·m false "disagrees" are expected, and the chance of at least one is 1 − 0.95^m
(:func:`multiplicity`, stated in the report for each kind).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from scipy import stats as sps

Verdict = Literal["agrees", "disagrees", "inconclusive", "no_claim"]
Kind = Literal["article", "engine-check", "analytic", "bound"]
KINDS: tuple[str, ...] = ("article", "engine-check", "bound", "analytic")
RULES = (
    "contains", "band", "upper_bound", "lower_bound", "positive", "negative", "inside", "exact",
    "report",
)  # fmt: skip
#: the level of every interval and test
LEVEL = 0.95
#: rules whose prediction is a point value the interval can contain
_POINT_RULES = ("contains", "band")


def _finite(*xs: float) -> bool:
    return all(math.isfinite(x) for x in xs)


def verdict_contains(ci_low: float, ci_high: float, predicted: float, bias: float) -> Verdict:
    """``contains`` rule: the CI must meet [p − τ, p + τ]."""
    if not _finite(ci_low, ci_high):
        return "inconclusive"
    return "agrees" if ci_low <= predicted + bias and ci_high >= predicted - bias else "disagrees"


def verdict_band(ci_low: float, ci_high: float, predicted: float, tol: float) -> Verdict:
    """``band`` rule: CI inside p ± τ agrees, CI disjoint from it disagrees."""
    lo, hi = predicted - tol, predicted + tol
    if not _finite(ci_low, ci_high):
        return "inconclusive"
    if lo <= ci_low and ci_high <= hi:
        return "agrees"
    if ci_high < lo or ci_low > hi:
        return "disagrees"
    return "inconclusive"


def verdict_upper_bound(ci_low: float, ci_high: float, bound: float, tol: float = 0.0) -> Verdict:
    """``upper_bound`` rule: the quantity must not exceed ``bound + τ``."""
    b = bound + tol
    if not _finite(ci_low, ci_high):
        return "inconclusive"
    if ci_high <= b:
        return "agrees"
    return "disagrees" if ci_low > b else "inconclusive"


def verdict_sign(ci_low: float, ci_high: float, sign: int, tol: float = 0.0) -> Verdict:
    """``positive`` (sign=+1) / ``negative`` (sign=−1) rule for a direction-only claim."""
    lo, hi = (ci_low, ci_high) if sign > 0 else (-ci_high, -ci_low)
    if not _finite(lo, hi):
        return "inconclusive"
    if lo > tol:
        return "agrees"
    return "disagrees" if hi < 0 else "inconclusive"


def verdict_inside(ci_low: float, ci_high: float, a: float, b: float) -> Verdict:
    """``inside`` rule: the CI must lie in [a, b]."""
    if not _finite(ci_low, ci_high):
        return "inconclusive"
    if a <= ci_low and ci_high <= b:
        return "agrees"
    return "disagrees" if ci_high < a or ci_low > b else "inconclusive"


def verdict_exact(measured: float, predicted: float | None) -> Verdict:
    """``exact`` rule for analytic yes/no quantities (``no_claim`` where the article implies
    nothing: the quantity is reported, not judged)."""
    if predicted is None:
        return "no_claim"
    return "agrees" if measured == predicted else "disagrees"


def detectable_deviation(ci_low: float, ci_high: float, power: float = 0.8) -> float:
    """The deviation from the prediction that a two-sided 5% test on this interval detects
    with probability ``power``: (z₀.₉₇₅ + z_power)·SE, SE = half-width / z₀.₉₇₅."""
    z = float(sps.norm.ppf(0.5 + LEVEL / 2))
    return (z + float(sps.norm.ppf(power))) * (ci_high - ci_low) / (2 * z)


@dataclass
class Finding:
    """One row of the lab report.

    Attributes:
        study: the study's registered name.
        claim: the statement tested, one sentence.
        quantity: what was measured (with units / conditions).
        measured: the point estimate.
        ci_low, ci_high: its 95% confidence interval (method in ``details['ci']``; NaN for an
            ``analytic`` finding).
        predicted: the reference's value (``None`` where there is only a direction).
        tolerance: τ of the verdict rule (derivation in ``details['tolerance_derivation']``).
        verdict: from the rule.
        kind: ``article``, ``engine-check``, ``analytic`` or ``bound`` (module docstring).
        figure: file name of the figure (relative to the report folder).
        details: rule, CI method, reference, derivation, and anything else worth keeping.
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
    kind: Kind
    figure: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def inside_ci(self) -> bool | None:
        """Whether the point prediction lies inside the CI (``None`` without a point
        prediction or an interval)."""
        if self.predicted is None or self.details.get("rule") not in _POINT_RULES:
            return None
        if not _finite(self.ci_low, self.ci_high):
            return None
        return bool(self.ci_low <= self.predicted <= self.ci_high)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("measured", "ci_low", "ci_high", "predicted", "tolerance"):
            v = d[key]
            if v is not None:
                d[key] = float(v) if math.isfinite(float(v)) else None
        d["prediction_inside_ci"] = self.inside_ci
        d["details"] = json.loads(json.dumps(self.details, default=_jsonable))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Finding:
        d = {k: v for k, v in d.items() if k != "prediction_inside_ci"}
        for key in ("measured", "ci_low", "ci_high"):
            if d.get(key) is None:
                d[key] = float("nan")
        d["kind"] = d.get("kind") or "article"  # stores written before kinds existed
        return cls(**d)


def _jsonable(x: Any) -> Any:
    import numpy as np

    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def make_finding(
    study: str,
    claim: str,
    quantity: str,
    measured: float,
    ci: tuple[float, float] | None,
    *,
    kind: Kind,
    predicted: float | None,
    rule: str,
    tolerance: float = 0.0,
    tolerance_derivation: str = "",
    figure: str = "",
    ci_method: str = "",
    theory: str = "",
    **details: Any,
) -> Finding:
    """Build a :class:`Finding`, computing the verdict with ``rule`` (module docstring).

    ``ci=None`` is for ``analytic`` findings (no interval). A nonzero ``tolerance`` needs its
    ``tolerance_derivation``; a ``bound`` finding records its tightness measured / bound.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown finding kind {kind!r}; kinds: {KINDS}")
    if tolerance != 0.0 and not tolerance_derivation:
        raise ValueError(f"{quantity!r}: a tolerance of {tolerance} needs its derivation")
    lo, hi = (float("nan"), float("nan")) if ci is None else (float(ci[0]), float(ci[1]))
    tol = float(tolerance)
    info: dict[str, Any] = {"rule": rule, "ci": ci_method, "theory": theory}
    if rule == "contains":
        assert predicted is not None
        verdict = verdict_contains(lo, hi, predicted, tol)
        if _finite(lo, hi):
            info["detectable_80"] = detectable_deviation(lo, hi)
    elif rule == "band":
        assert predicted is not None
        verdict = verdict_band(lo, hi, predicted, tol)
    elif rule in ("upper_bound", "lower_bound"):
        assert predicted is not None
        if rule == "upper_bound":
            verdict = verdict_upper_bound(lo, hi, predicted, tol)
        else:
            verdict = verdict_upper_bound(-hi, -lo, -predicted, tol)
        if kind == "bound" and predicted != 0:
            info["tightness"] = float(measured) / float(predicted)
    elif rule in ("positive", "negative"):
        verdict = verdict_sign(lo, hi, 1 if rule == "positive" else -1, tol)
    elif rule == "exact":
        verdict = verdict_exact(float(measured), predicted)
    elif rule == "inside":
        a, b = details["range"]
        verdict = verdict_inside(lo, hi, a, b)
    elif rule == "report":
        verdict = "no_claim"
    else:
        raise ValueError(f"unknown verdict rule {rule!r}; rules: {RULES}")
    if tolerance_derivation:
        info["tolerance_derivation"] = tolerance_derivation
    return Finding(
        study=study,
        claim=claim,
        quantity=quantity,
        measured=float(measured),
        ci_low=lo,
        ci_high=hi,
        predicted=None if predicted is None else float(predicted),
        tolerance=tol,
        verdict=verdict,
        kind=kind,
        figure=figure,
        details={**info, **details},
    )


def tally(findings: list[Finding], kind: str) -> dict[str, int]:
    """Verdict counts of the findings of one kind."""
    out = {v: 0 for v in ("agrees", "disagrees", "inconclusive", "no_claim")}
    for f in findings:
        if f.kind == kind:
            out[f.verdict] += 1
    return out


def multiplicity(findings: list[Finding]) -> dict[str, dict[str, float]]:
    """Per kind with interval tests (article, engine-check, bound): the number m of judged
    findings, the expected number of false "disagrees" if every statement held (0.05·m) and
    the family-wise error 1 − 0.95^m (the chance of at least one)."""
    out = {}
    for kind in ("article", "engine-check", "bound"):
        m = sum(1 for f in findings if f.kind == kind and f.verdict != "no_claim")
        out[kind] = {
            "judged": m,
            "expected_false_disagrees": (1 - LEVEL) * m,
            "familywise_error": 1 - LEVEL**m,
        }
    return out

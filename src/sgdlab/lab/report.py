"""The lab report: a Markdown table of findings (claim → measured [CI] → predicted → verdict)."""

from __future__ import annotations

import math
from pathlib import Path

from sgdlab.lab.findings import Finding

_MARK = {
    "agrees": "✅ agrees",
    "disagrees": "❌ disagrees",
    "inconclusive": "❔ inconclusive",
    "no_claim": "➖ no claim",
}


def fmt(x: float | None) -> str:
    """Compact number: 4 significant digits, '—' for None/NaN."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{x:.4g}"


def predicted(f: Finding) -> str:
    """Theory's value as the verdict rule reads it: ± its tolerance, a bound, exact, or none."""
    rule = f.details.get("rule")
    if rule == "upper_bound":
        return f"≤ {fmt(f.predicted)} (bound)"
    if rule == "exact":
        return "— (no claim)" if f.predicted is None else f"{fmt(f.predicted)} (exact)"
    return "— (direction)" if f.predicted is None else f"{fmt(f.predicted)} ± {fmt(f.tolerance)}"


def findings_table(findings: list[Finding]) -> str:
    """The Markdown table of findings."""
    lines = [
        "| study | claim | quantity | measured [95% CI] | predicted ± tol | verdict | figure |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in findings:
        pred = predicted(f)
        meas = f"{fmt(f.measured)} [{fmt(f.ci_low)}, {fmt(f.ci_high)}]"
        fig = f"[{f.figure}]({f.figure})" if f.figure else ""
        claim = f.claim.replace("|", "\\|")
        lines.append(
            f"| {f.study} | {claim} | {f.quantity.replace('|', '/')} | {meas} | {pred} | "
            f"{_MARK.get(f.verdict, f.verdict)} | {fig} |"
        )
    return "\n".join(lines)


def write_report(findings: list[Finding], out: Path, quick: bool = False) -> Path:
    """Write ``report.md`` into ``out`` and return its path."""
    counts = {v: sum(f.verdict == v for f in findings) for v in _MARK}
    mode = "quick" if quick else "full"
    text = [
        "# sgdlab lab report",
        "",
        f"Mode: **{mode}**. {len(findings)} findings: {counts['agrees']} agree, "
        f"{counts['disagrees']} disagree, {counts['inconclusive']} inconclusive"
        + (
            f"; {counts['no_claim']} reported where the article makes no claim."
            if counts["no_claim"]
            else "."
        ),
        "",
        "Confidence intervals come from the independent chains of each run (the method of "
        "each finding is in `findings.json` → `details.ci`): a t-interval of the mean over "
        "chains, or a percentile bootstrap over chains seeded from the `probe` stream.",
        "Verdict rules (`details.rule`): **band** — agrees if the whole CI lies in "
        "predicted ± tol, disagrees if it misses the band, else inconclusive; "
        "**upper_bound** — agrees if the CI's top is below the bound; **positive/negative** — "
        "direction only; **exact** — analytic yes/no against the article's implied value "
        "(no claim where it implies none).",
        "",
        findings_table(findings),
        "",
    ]
    figures = sorted({f.figure for f in findings if f.figure})
    if figures:
        text += ["## Figures", ""] + [f"![{fig}]({fig})" for fig in figures] + [""]
    path = Path(out) / "report.md"
    path.write_text("\n".join(text))
    return path

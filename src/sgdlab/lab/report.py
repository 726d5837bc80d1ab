"""The lab report: Markdown tables of findings, article claims first, tallied by kind.

Each kind (:data:`sgdlab.lab.findings.KINDS`) gets its own part and tally, its findings
grouped by the article's sections (§3.1 benefits, §3.2 price, §4 the minibatch size); the
headline counts only ``article`` findings. Every nonzero tolerance is listed with its
derivation, and the multiplicity of the tests is stated.
"""

from __future__ import annotations

import math
from pathlib import Path

from sgdlab.lab.findings import Finding, multiplicity, tally
from sgdlab.lab.studies import SECTIONS, article_section

_MARK = {
    "agrees": "✅ agrees",
    "disagrees": "❌ disagrees",
    "inconclusive": "❔ inconclusive",
    "no_claim": "➖ no claim",
}
_TITLES = {
    "article": "Article claims (tested where they could fail)",
    "engine-check": "Engine checks (the simulator against the exact model it implements)",
    "bound": "Bounds (a theorem's inequality; tightness = measured / bound)",
    "analytic": "Analytic facts (computed, not measured)",
}


def fmt(x: float | None) -> str:
    """Compact number: 4 significant digits, '—' for None/NaN."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{x:.4g}"


def measured(f: Finding) -> str:
    """``m [lo, hi]``; an analytic finding has no interval (``holds`` / ``fails`` for a
    yes/no quantity)."""
    if f.kind == "analytic":
        if f.details.get("rule") == "exact" and f.measured in (0.0, 1.0):
            return "holds" if f.measured == 1.0 else "fails"
        return fmt(f.measured)
    return f"{fmt(f.measured)} [{fmt(f.ci_low)}, {fmt(f.ci_high)}]"


def predicted(f: Finding) -> str:
    """The reference as the verdict rule reads it: ± its tolerance, a bound, a direction."""
    rule = f.details.get("rule")
    tol = f" + {fmt(f.tolerance)}" if f.tolerance else ""
    if rule == "upper_bound":
        return f"≤ {fmt(f.predicted)}{tol}"
    if rule == "lower_bound":
        return f"≥ {fmt(f.predicted)}{' − ' + fmt(f.tolerance) if f.tolerance else ''}"
    if rule == "exact":
        if f.predicted is None:
            return "— (no claim)"
        yes_no = {1.0: "holds", 0.0: "fails"}
        return yes_no.get(f.predicted, fmt(f.predicted))
    if rule == "report":
        return "— (no claim)"
    if rule == "inside":
        a, b = f.details.get("range", (None, None))
        return f"in [{fmt(a)}, {fmt(b)}]"
    if f.predicted is None:
        return "— (direction)"
    return f"{fmt(f.predicted)} ± {fmt(f.tolerance)}" if f.tolerance else fmt(f.predicted)


def inside(f: Finding) -> str:
    """The "prediction inside CI" column: yes / no / blank."""
    flag = f.inside_ci
    return "" if flag is None else "yes" if flag else "no"


def _tally_line(findings: list[Finding], kind: str) -> str:
    t = tally(findings, kind)
    n = sum(t.values())
    parts = [f"{t['agrees']} agree", f"{t['disagrees']} disagree",
             f"{t['inconclusive']} inconclusive"]  # fmt: skip
    if t["no_claim"]:
        parts.append(f"{t['no_claim']} reported without a claim")
    return f"{n} findings: " + ", ".join(parts)


def findings_table(findings: list[Finding], numbers: dict[int, int]) -> str:
    """The Markdown table of some findings (``numbers``: id(finding) → derivation note)."""
    lines = [
        "| study | quantity | measured [95% CI] | predicted | in CI | verdict | figure |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in findings:
        note = f" [{numbers[id(f)]}]" if id(f) in numbers else ""
        fig = f"[{f.figure}]({f.figure})" if f.figure else ""
        lines.append(
            f"| {f.study} | {f.quantity.replace('|', '/')} | {measured(f)} | "
            f"{predicted(f)}{note} | {inside(f)} | {_MARK.get(f.verdict, f.verdict)} | {fig} |"
        )
    return "\n".join(lines)


def write_report(findings: list[Finding], out: Path, quick: bool = False) -> Path:
    """Write ``report.md`` into ``out`` and return its path."""
    mode = "quick" if quick else "full"
    multi = multiplicity(findings)
    art = multi["article"]
    text = [
        "# sgdlab lab report",
        "",
        f"Mode: **{mode}**. **Article claims: {_tally_line(findings, 'article')}.** "
        "Engine checks, bounds and analytic facts are tallied apart: they test the simulator "
        "or restate mathematics, not the article.",
        "",
        f"Multiplicity: each judged finding is a 5%-level test. With {art['judged']} article "
        f"findings, {art['expected_false_disagrees']:.2f} false \"disagrees\" are expected if "
        f"every claim held, and the chance of at least one is {art['familywise_error']:.0%}; "
        f"for the {multi['engine-check']['judged']} engine checks it is "
        f"{multi['engine-check']['familywise_error']:.0%}.",
        "",
        "Intervals come from independent chains (the method of each finding is in "
        "`findings.json` → `details.ci`). Verdict rules (`details.rule`, see `docs/lab.md`): "
        "**contains** — agrees if the CI meets predicted ± tol (tol: a computed bias of the "
        "reference); **band** — agrees if the whole CI lies in predicted ± tol (tol: a "
        "computed model error), disagrees if it misses it; **upper/lower bound**, "
        "**positive/negative**, **inside**, **exact** (analytic yes/no). Numbered notes give "
        "each tolerance's derivation.",
        "",
    ]
    numbers: dict[int, int] = {}
    notes: list[str] = []
    for f in findings:
        derivation = f.details.get("tolerance_derivation")
        if derivation:
            numbers[id(f)] = len(notes) + 1
            notes.append(f"{len(notes) + 1}. {f.study} — {f.quantity}: tol = "
                         f"{fmt(f.tolerance)}; {derivation}")  # fmt: skip
    section_titles = [t for t, _ in SECTIONS] + ["Other studies"]
    for kind, title in _TITLES.items():
        rows = [f for f in findings if f.kind == kind]
        if not rows:
            continue
        text += [f"## {title}", "", _tally_line(findings, kind) + ".", ""]
        for section in section_titles:
            part = [f for f in rows if article_section(f.study) == section]
            if part:
                text += [f"### {section}", "", findings_table(part, numbers), ""]
    if notes:
        text += ["## Tolerance derivations", "", *notes, ""]
    figures = sorted({f.figure for f in findings if f.figure})
    if figures:
        text += ["## Figures", ""] + [f"![{fig}]({fig})" for fig in figures] + [""]
    path = Path(out) / "report.md"
    path.write_text("\n".join(text))
    return path

"""The lab's HTML page: findings, studies and runs gathered for :mod:`sgdlab.report.html`.

:func:`lab_page` builds the page's data from findings (a session's, or the store's), the
runs each study analysed, and any runs of the store; :func:`write_html` writes
``index.html``. Used by :func:`sgdlab.lab.session.run_studies` (after ``report.md``) and
by ``sgdlab report``. It reads; the only file it writes is the page.

* **Findings** are grouped by the article's section of their study
  (``all_studies()[name].section``), article findings first within a section; each row
  has its claim, measured value with CI, reference (± tolerance), verdict, tolerance
  derivation and a link to its study's figures.
* **Studies**: the study's paper figure (its PNG, inlined), the medians of its runs'
  objective (one curve per run and chain group), and its findings as deviations in
  standard errors (:func:`sgdlab.report.interactive.forest_figure`).
* **Runs**: a dashboard per run (:mod:`sgdlab.lab.page_runs`).
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Iterable
from html import escape
from pathlib import Path
from typing import Any

import torch

from sgdlab._version import __version__
from sgdlab.config import load_config
from sgdlab.engine.result import RunResult
from sgdlab.lab.findings import KINDS, Finding, multiplicity, tally
from sgdlab.lab.page_runs import RunView, displayed, primary_metric, run_view
from sgdlab.lab.report import fmt, inside, measured, predicted
from sgdlab.lab.studies import all_studies
from sgdlab.lab.studies._common import machine
from sgdlab.report.html import generated_at, write_page
from sgdlab.report.interactive import curve_figure, forest_figure
from sgdlab.store import Store

#: the page draws at most this many stored runs besides the session's (newest first)
MAX_STORED_RUNS = 300


def _kind_rank(kind: str) -> int:
    return KINDS.index(kind) if kind in KINDS else len(KINDS)


def ordered(findings: list[Finding]) -> list[Finding]:
    """The findings in the table's order: grouped by study section (in the studies' order),
    article findings first within each section, then by study, then as given."""
    registry = all_studies()
    order = {name: i for i, name in enumerate(registry)}
    sections = {name: cls.section for name, cls in registry.items()}
    section_rank: dict[str, int] = {}
    for name in registry:
        section_rank.setdefault(sections[name] or "other", len(section_rank))
    indexed = list(enumerate(findings))

    def key(item: tuple[int, Finding]) -> tuple[int, int, int, int]:
        i, f = item
        sec = sections.get(f.study) or "other"
        return (section_rank.get(sec, len(section_rank)), _kind_rank(f.kind),
                order.get(f.study, len(order)), i)  # fmt: skip

    return [f for _, f in sorted(indexed, key=key)]


def finding_rows(findings: list[Finding]) -> list[dict[str, Any]]:
    """The findings table's rows (``findings`` in :func:`ordered` order), numbered."""
    sections = {name: cls.section for name, cls in all_studies().items()}
    rows = []
    for n, f in enumerate(findings, 1):
        tol = f"τ = {fmt(f.tolerance)}" if f.tolerance else "τ = 0"
        rows.append({
            "n": n, "study": f.study, "section": sections.get(f.study) or "other", "kind": f.kind,
            "claim": f.claim, "quantity": f.quantity, "measured": measured(f),
            "predicted": predicted(f), "in_ci": inside(f), "verdict": f.verdict,
            "derivation": f.details.get("tolerance_derivation", ""), "tolerance_text": tol,
            "ci_method": f.details.get("ci", ""), "theory": f.details.get("theory", ""),
        })  # fmt: skip
    return rows


def _tallies(findings: list[Finding]) -> list[tuple[str, str]]:
    out = []
    for kind in KINDS:
        t = tally(findings, kind)
        if sum(t.values()):
            text = (f"{t['agrees']} agree, {t['disagrees']} disagree, {t['inconclusive']} "
                    f"inconclusive" + (f", {t['no_claim']} no claim" if t["no_claim"] else ""))
            out.append((kind, text))
    return out


def _notes(findings: list[Finding]) -> list[str]:
    if not findings:
        return []
    m = multiplicity(findings)
    art, eng = m["article"], m["engine-check"]
    return [
        "Only article findings count as evidence about the article; engine checks test the "
        "simulator against the exact model it implements, bounds a theorem's inequality, "
        "analytic facts are computed.",
        f"Multiplicity: each judged finding is a 5%-level test; among {art['judged']} article "
        f"findings {art['expected_false_disagrees']:.2f} false \"disagrees\" are expected if "
        f"every claim held (chance of at least one {art['familywise_error']:.0%}); among "
        f"{eng['judged']} engine checks {eng['expected_false_disagrees']:.2f} "
        f"({eng['familywise_error']:.0%}).",
    ]


def _forest_rows(findings: list[Finding], numbers: dict[int, int]) -> list[dict[str, Any]]:
    rows = []
    for f in findings:
        d = f.to_dict()
        rows.append({
            "label": escape(f"{numbers[id(f)]}. {f.quantity[:48]}")
                     + ("…" if len(f.quantity) > 48 else ""),
            "measured": d["measured"], "ci_low": d["ci_low"], "ci_high": d["ci_high"],
            "predicted": d["predicted"], "tolerance": d["tolerance"],
            "rule": f.details.get("rule", ""), "verdict": f.verdict,
            # plotly reads a few HTML tags in hover text: the finding's own text stays text
            "hover": escape(f"{f.quantity}") + f"<br>{escape(measured(f))} vs "
                     f"{escape(predicted(f))} ({f.kind})",
        })  # fmt: skip
    return rows


def _study_curves(name: str, runs: dict[str, RunResult]) -> dict[str, Any] | None:
    """Medians of the objective of a study's runs (one curve per run and chain group)."""
    lines: list[tuple[str, Any, Any]] = []
    metric_used = None
    for key, res in runs.items():
        metric = primary_metric(res.metrics)
        if metric is None or metric != (metric_used or metric):
            continue
        metric_used = metric
        for label, steps, values in displayed(RunView.of_result(key, res), metric):
            lines.append((f"{key} ({label})" if label else key, steps, values))
    if not lines:
        return None
    return curve_figure(f"{name}: median {metric_used} of each run", str(metric_used), lines,
                        with_band=False)  # fmt: skip


def study_runs(name: str, quick: bool, db: Store) -> dict[str, RunResult]:
    """The stored runs a study analysed (its grid, looked up by config hash, as a session
    does); runs not in the store are left out."""
    cls = all_studies().get(name)
    if cls is None:
        return {}
    out = {}
    for key, cfg in cls().grid(quick).items():
        rid = db.find_complete(load_config(cfg).hash())
        if rid is not None:
            out[key] = db.load_result(rid)
    return out


def header(mode: str, store: Path | None) -> list[tuple[str, str]]:
    """The page header: versions, machine, mode, date and store."""
    meta = [("sgdlab", __version__), ("torch", torch.__version__.split("+")[0]),
            ("python", sys.version.split()[0]), ("machine", machine().split(", 1 torch")[0]),
            ("os", platform.platform(terse=True)), ("mode", mode), ("date", generated_at())]
    if store is not None:
        meta.append(("store", str(store)))
    return meta  # fmt: skip


def lab_page(
    findings: list[Finding],
    *,
    mode: str,
    study_results: dict[str, dict[str, RunResult]],
    runs: Iterable[RunView] = (),
    store_path: Path | None = None,
    figures_dir: Path | None = None,
    title: str = "sgdlab lab report",
) -> dict[str, Any]:
    """The page's data (:mod:`sgdlab.report.html`).

    Args:
        findings: the findings shown.
        mode: ``quick``, ``full`` or ``mixed`` (the header).
        study_results: per study, the runs it analysed (``{key: RunResult}``).
        runs: the runs with a dashboard (advice read from ``store_path``).
        store_path: the store (header; advice of Monitor runs), ``None`` for none.
        figures_dir: where the studies' PNG figures are (the lab's output folder).
    """
    findings = ordered(findings)
    numbers = {id(f): n for n, f in enumerate(findings, 1)}
    figs: dict[str, Any] = {}
    studies = []
    registry = all_studies()
    names = list(dict.fromkeys([*(f.study for f in findings), *study_results]))
    for name in names:
        cls = registry.get(name)
        entry: dict[str, Any] = {"name": name, "section": getattr(cls, "section", ""),
                                 "claim": getattr(cls, "claim", ""), "figs": []}  # fmt: skip
        own = [f for f in findings if f.study == name]
        png = next((f.figure for f in own if f.figure), "")
        if png and figures_dir is not None and (figures_dir / png).is_file():
            entry["png"], entry["png_name"] = (figures_dir / png).read_bytes(), png
        curves = _study_curves(name, study_results.get(name, {}))
        if curves is not None:
            figs[f"study-{name}-curves"] = curves
            entry["figs"].append(f"study-{name}-curves")
        forest = forest_figure(f"{name}: findings against their references",
                               _forest_rows(own, numbers))  # fmt: skip
        if forest is not None:
            figs[f"study-{name}-findings"] = forest
            entry["figs"].append(f"study-{name}-findings")
        studies.append(entry)
    run_entries = {r.run_id: run_view(r, store_path, figs) for r in runs}
    return {
        "title": title,
        "meta": header(mode, store_path),
        "tallies": _tallies(findings),
        "notes": _notes(findings),
        "findings": finding_rows(findings),
        "studies": studies,
        "runs": run_entries,
        "figs": figs,
    }


def stored_runs(
    db: Store, run_ids: list[str] | None = None, skip: Iterable[str] = ()
) -> tuple[list[RunView], int]:
    """Runs of the store for dashboards: ``run_ids`` (any status), or the newest complete
    ones (at most :data:`MAX_STORED_RUNS`), leaving out ``skip``; and how many were left
    out by the cap."""
    skipped = set(skip)
    if run_ids:
        rows = [db.run(r) for r in run_ids]
        left = 0
    else:
        rows = [r for r in db.runs(status="complete") if r["run_id"] not in skipped]
        left = max(0, len(rows) - MAX_STORED_RUNS)
        rows = [db.run(r["run_id"]) for r in rows[:MAX_STORED_RUNS]]
    views = []
    for row in rows:
        metrics = db.metrics(row["run_id"]) if row["status"] == "complete" else {}
        views.append(RunView.of_row(row, metrics))
    return views, left


def write_html(page: dict[str, Any], out: Path) -> Path:
    """Write ``out/index.html``."""
    return write_page(page, Path(out) / "index.html")

"""Running studies: grid → (store cache | executor) → analysis → findings, figures, reports.

:func:`run_studies` collects the grids of the selected studies into one batch of runs and
hands it to :func:`sgdlab.lab.dispatch.dispatch`: every config's hash is looked up in the
store and those runs are loaded from it; the rest go to the executor together, and each
finished run is written to the store (kind ``lab``) by this process — the only writer. Then
each study analyses its runs, and ``findings.json``, the figures, ``report.md`` and the
interactive page ``index.html`` (:mod:`sgdlab.lab.page`) are written into the output folder.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

from sgdlab.engine.result import RunResult
from sgdlab.errors import SgdlabError
from sgdlab.lab.dispatch import Progress, dispatch
from sgdlab.lab.executor import Executor, LocalExecutor
from sgdlab.lab.findings import KINDS, Finding, multiplicity, tally
from sgdlab.lab.page import lab_page, stored_runs, write_html
from sgdlab.lab.page_runs import RunView
from sgdlab.lab.report import write_report
from sgdlab.lab.studies import all_studies
from sgdlab.lab.study import Context
from sgdlab.store import Store, default_store_path, open_store

DEFAULT_OUT = Path("sgdlab-results") / "report"


def _default_out(store: object) -> Path:
    """``report/`` beside the results store (as ``sgdlab show`` puts figures beside it)."""
    if isinstance(store, Store):
        return store.path.parent / "report"
    if isinstance(store, str | Path):
        return Path(store).parent / "report"
    return default_store_path().parent / "report" if store is None else DEFAULT_OUT


@dataclass
class LabOutcome:
    findings: list[Finding]
    out: Path
    report: Path
    findings_json: Path
    figures: list[Path]
    runs_total: int = 0
    runs_reused: int = 0
    seconds: float = 0.0
    #: analysis time of each study (its runs are executed together, before any analysis)
    per_study_seconds: dict[str, float] = field(default_factory=dict)
    #: failed runs (``study/key`` → error); their studies are not analysed
    failures: dict[str, str] = field(default_factory=dict)
    #: the interactive page (``index.html``), ``None`` when not written
    html: Path | None = None
    #: studies left out because one of their runs failed
    skipped: list[str] = field(default_factory=list)


def run_studies(
    names: list[str],
    *,
    quick: bool = False,
    store: Store | str | Path | None = None,
    out: str | Path | None = None,
    executor: Executor | None = None,
    progress: Progress | None = None,
    use_store: bool = True,
    html: bool = True,
) -> LabOutcome:
    """Run the named studies; write findings.json, figures, report.md and index.html into
    ``out``.

    All the studies' runs form one batch (:func:`sgdlab.lab.dispatch.dispatch`): reused from
    the store by config hash or executed together, each finished run stored by this process.
    A study with a failed run is not analysed (``LabOutcome.failures`` / ``skipped``); the
    other studies' runs and findings still land.

    Args:
        names: registered study names (see ``sgdlab lab list``).
        quick: the small settings (all studies in a few minutes on 2 CPU cores).
        store: results store (path or open :class:`Store`; ``None``: the default path).
        out: output folder (default: ``report/`` beside the store, so
            ``./sgdlab-results/report`` for the default store).
        executor: how runs are executed (default :class:`LocalExecutor`).
        progress: optional callback ``(event, label, done, total)``: the events of
            :func:`~sgdlab.lab.dispatch.dispatch` (one count over all runs), then
            ``"analyze"`` per study and ``"page"`` before the HTML page.
        use_store: ``False`` runs everything in memory (no reuse, nothing written).
        html: also write the interactive page ``index.html``.
    """
    start = time.perf_counter()
    registry = all_studies()
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise SgdlabError(f"unknown study {unknown[0]!r}; studies: {', '.join(registry)}")
    out_dir = Path(out) if out is not None else _default_out(store if use_store else None)
    out_dir.mkdir(parents=True, exist_ok=True)
    executor = executor or LocalExecutor()
    studies = {name: registry[name]() for name in names}
    grids = {name: study.grid(quick) for name, study in studies.items()}
    jobs = [(f"{name}/{key}", cfg) for name, grid in grids.items() for key, cfg in grid.items()]
    db = open_store(store) if use_store else None
    owns = db is not None and not isinstance(store, Store)
    store_file = db.path if db is not None else None
    findings: list[Finding] = []
    per_study: dict[str, float] = {}
    analysed: dict[str, dict[str, RunResult]] = {}
    skipped: list[str] = []
    others: list[RunView] = []  # the store's other runs, for the page's dashboards
    mode = "quick" if quick else "full"  # stored with each finding: which settings
    try:
        batch = dispatch(jobs, db, executor, kind="lab", progress=progress)
        for i, (name, study) in enumerate(studies.items()):
            keys = {key: f"{name}/{key}" for key in grids[name]}
            if any(job in batch.failures for job in keys.values()):
                skipped.append(name)
                continue
            t0 = time.perf_counter()
            if progress:
                progress("analyze", name, i, len(studies))
            runs = {key: batch.results[job] for key, job in keys.items()}
            fs = study.analyze(runs, Context(out=out_dir, quick=quick))
            findings.extend(replace(f, details={**f.details, "mode": mode}) for f in fs)
            analysed[name] = runs
            per_study[name] = time.perf_counter() - t0
        if db is not None:
            db.write_findings([f.to_dict() for f in findings], session=uuid.uuid4().hex[:12])
        if html and db is not None and not owns:  # a caller's open store: read it as it is
            others, _ = stored_runs(db, skip=_run_ids(analysed))
    finally:
        if owns and db is not None:
            db.close()
    fj = out_dir / "findings.json"
    fj.write_text(
        json.dumps(
            {
                "quick": quick,
                "studies": names,
                "tally": {kind: tally(findings, kind) for kind in KINDS},
                "multiplicity": multiplicity(findings),
                "failed_runs": batch.failures,
                "findings": [f.to_dict() for f in findings],
            },
            indent=2,
        )
    )
    report = write_report(findings, out_dir, quick=quick)
    page = None
    if html:
        if progress:
            progress("page", "index.html", 0, 1)
        if owns and store_file is not None:  # closed above: read it back read-only
            with Store(store_file, read_only=True) as ro:
                others, _ = stored_runs(ro, skip=_run_ids(analysed))
        views = [RunView.of_result(f"{s}/{k}", r) for s, rs in analysed.items()
                 for k, r in rs.items()]  # fmt: skip
        data = lab_page(findings, mode=mode, study_results=analysed, runs=[*views, *others],
                        store_path=store_file, figures_dir=out_dir)  # fmt: skip
        data["notes"] += [f"run {k} failed: {v}" for k, v in batch.failures.items()]
        page = write_html(data, out_dir)
    figures = sorted({out_dir / f.figure for f in findings if f.figure})
    return LabOutcome(
        findings=findings,
        out=out_dir,
        report=report,
        findings_json=fj,
        figures=figures,
        runs_total=batch.total,
        runs_reused=batch.reused,
        seconds=time.perf_counter() - start,
        per_study_seconds=per_study,
        failures=batch.failures,
        html=page,
        skipped=skipped,
    )


def _run_ids(analysed: dict[str, dict[str, RunResult]]) -> set[str]:
    return {r.run_id for runs in analysed.values() for r in runs.values()}

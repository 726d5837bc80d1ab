"""Running studies: grid → (store cache | executor) → analysis → findings, figures, report.

:func:`run_studies` collects the grids of the selected studies, looks up every config's
hash in the store (:meth:`~sgdlab.store.Store.find_complete`) and loads those runs from it;
the rest go to the executor, and each finished run is written to the store (kind ``lab``)
from this process. Then each study analyses its runs, and ``findings.json``, the figures
and ``report.md`` are written into the output folder.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sgdlab.config import load_config
from sgdlab.engine.result import RunResult
from sgdlab.errors import SgdlabError
from sgdlab.lab.executor import Executor, LocalExecutor
from sgdlab.lab.findings import KINDS, Finding, multiplicity, tally
from sgdlab.lab.report import write_report
from sgdlab.lab.studies import all_studies
from sgdlab.lab.study import Context, Study
from sgdlab.store import Store, default_store_path, open_store

DEFAULT_OUT = Path("sgdlab-results") / "report"


def _default_out(store: object) -> Path:
    """``report/`` beside the results store (as ``sgdlab show`` puts figures beside it)."""
    if isinstance(store, Store):
        return store.path.parent / "report"
    if isinstance(store, str | Path):
        return Path(store).parent / "report"
    return default_store_path().parent / "report" if store is None else DEFAULT_OUT

#: callback(event, study, done, total): event is "start", "run" or "analyze"
Progress = Callable[[str, str, int, int], None]


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
    per_study_seconds: dict[str, float] = field(default_factory=dict)


def resolve_runs(
    study: Study,
    quick: bool,
    db: Store | None,
    executor: Executor,
    progress: Progress | None = None,
) -> tuple[dict[str, RunResult], int]:
    """The runs of ``study``'s grid: reused from ``db`` by config hash, or executed."""
    grid = study.grid(quick)
    runs: dict[str, RunResult] = {}
    todo: list[tuple[str, dict[str, Any]]] = []
    reused = 0
    for key, cfg in grid.items():
        loaded = load_config(cfg)
        # a run without a fixed seed is never a reproduction of this config: never reuse it
        rid = (
            db.find_complete(loaded.hash()) if db is not None and loaded.seed is not None else None
        )
        if rid is not None:
            runs[key] = db.load_result(rid)
            reused += 1
        else:
            todo.append((key, cfg))
    total = len(grid)
    if progress:
        progress("run", study.name, reused, total)
    count = [reused]

    def done(i: int, res: RunResult) -> None:
        if db is not None:
            db.save_result(res, kind="lab", name=f"{study.name}/{todo[i][0]}")
        count[0] += 1
        if progress:
            progress("run", study.name, count[0], total)

    results = executor.map([c for _, c in todo], done)
    for (key, _), res in zip(todo, results, strict=True):
        runs[key] = res
    return runs, reused


def run_studies(
    names: list[str],
    *,
    quick: bool = False,
    store: Store | str | Path | None = None,
    out: str | Path | None = None,
    executor: Executor | None = None,
    progress: Progress | None = None,
    use_store: bool = True,
) -> LabOutcome:
    """Run the named studies; write findings.json, figures and report.md into ``out``.

    Args:
        names: registered study names (see ``sgdlab lab list``).
        quick: the small settings (all studies in a few minutes on 2 CPU cores).
        store: results store (path or open :class:`Store`; ``None``: the default path).
        out: output folder (default: ``report/`` beside the store, so
            ``./sgdlab-results/report`` for the default store).
        executor: how runs are executed (default :class:`LocalExecutor`).
        progress: optional callback ``(event, study, done, total)``.
        use_store: ``False`` runs everything in memory (no reuse, nothing written).
    """
    start = time.perf_counter()
    registry = all_studies()
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise SgdlabError(f"unknown study {unknown[0]!r}; studies: {', '.join(registry)}")
    out_dir = Path(out) if out is not None else _default_out(store if use_store else None)
    out_dir.mkdir(parents=True, exist_ok=True)
    executor = executor or LocalExecutor()
    db = open_store(store) if use_store else None
    owns = db is not None and not isinstance(store, Store)
    findings: list[Finding] = []
    total = reused = 0
    per_study: dict[str, float] = {}
    try:
        for name in names:
            t0 = time.perf_counter()
            study = registry[name]()
            if progress:
                progress("start", name, 0, len(study.grid(quick)))
            runs, n_reused = resolve_runs(study, quick, db, executor, progress)
            total += len(runs)
            reused += n_reused
            if progress:
                progress("analyze", name, 0, 1)
            fs = study.analyze(runs, Context(out=out_dir, quick=quick))
            mode = "quick" if quick else "full"  # stored with each finding: which settings
            findings.extend(replace(f, details={**f.details, "mode": mode}) for f in fs)
            per_study[name] = time.perf_counter() - t0
        session = uuid.uuid4().hex[:12]
        if db is not None:
            db.write_findings([f.to_dict() for f in findings], session=session)
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
                "findings": [f.to_dict() for f in findings],
            },
            indent=2,
        )
    )
    report = write_report(findings, out_dir, quick=quick)
    figures = sorted({out_dir / f.figure for f in findings if f.figure})
    return LabOutcome(
        findings=findings,
        out=out_dir,
        report=report,
        findings_json=fj,
        figures=figures,
        runs_total=total,
        runs_reused=reused,
        seconds=time.perf_counter() - start,
        per_study_seconds=per_study,
    )

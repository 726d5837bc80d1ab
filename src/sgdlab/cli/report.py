"""``sgdlab report``: the interactive HTML page of a store, on demand."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sgdlab.cli._util import guarded, writable_dir
from sgdlab.cli.app import StoreOpt, app, console, store_path

_OUT_HELP = "folder of index.html (default: report/ beside the store)"


@app.command("report")
@guarded
def report_cmd(
    run_ids: Annotated[
        list[str] | None,
        typer.Argument(help="runs to draw a dashboard for (default: every complete run)"),
    ] = None,
    store: StoreOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help=_OUT_HELP)] = None,
) -> None:
    """Write one self-contained, interactive HTML page (index.html): the lab's findings,
    its studies' figures and a dashboard per run. Opens offline; share the one file."""
    from sgdlab.lab.findings import Finding
    from sgdlab.lab.page import lab_page, stored_runs, study_runs, write_html
    from sgdlab.store import Store

    writable_dir(out, "--out")
    db_path = store_path(store)
    out_dir = out if out is not None else db_path.parent / "report"
    with Store(db_path, read_only=True) as db:
        findings = [Finding.from_dict(d) for d in db.findings()]
        modes = {f.study: f.details.get("mode", "full") for f in findings}
        results = {name: study_runs(name, mode == "quick", db) for name, mode in modes.items()}
        views, left = stored_runs(db, run_ids)
    kinds = set(modes.values())
    mode = kinds.pop() if len(kinds) == 1 else "mixed" if kinds else "no lab findings"
    # the studies' PNG figures: in the page's folder, or in the lab's default one
    figures = next(
        (d for d in (out_dir, db_path.parent / "report")
         if any((d / f.figure).is_file() for f in findings if f.figure)), None,
    )  # fmt: skip
    page = lab_page(findings, mode=mode, study_results=results, runs=views,
                    store_path=db_path, figures_dir=figures)  # fmt: skip
    if left:
        page["notes"].append(f"{left} older runs have no dashboard here; give their ids: "
                             "sgdlab report RUN_ID …")  # fmt: skip
    path = write_html(page, out_dir)
    size = path.stat().st_size / 2**20
    console.print(
        f"{len(findings)} findings, {len(page['studies'])} studies, {len(views)} runs "
        f"({size:.1f} MiB, opens offline)"
    )
    console.print(f"page:     {path.resolve()}")

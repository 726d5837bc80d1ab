"""``sgdlab export``: a stored run in another tool's format (TensorBoard event files)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sgdlab.cli._util import guarded, writable_dir
from sgdlab.cli.app import StoreOpt, app, console, store_path


@app.command("export")
@guarded
def export_cmd(
    run_id: Annotated[str, typer.Argument(help="run id (a unique prefix is enough)")],
    tensorboard: Annotated[
        Path,
        typer.Option(
            "--tensorboard",
            help="folder for the TensorBoard event files (the run "
            "goes in DIR/RUN_ID; view with `tensorboard --logdir DIR`)",
        ),
    ],
    store: StoreOpt = None,
    all_chains: Annotated[
        bool,
        typer.Option(
            "--all-chains",
            help="a run of several chains: one TensorBoard run "
            "per chain instead of the median and the 10–90% band",
        ),
    ] = False,
) -> None:
    """Export a run's metrics as TensorBoard scalars (any run; a live one too)."""
    from sgdlab.integrations import require
    from sgdlab.integrations.tensorboard import export_run
    from sgdlab.store import Store

    path = store_path(store)
    Store(path, read_only=True).run(run_id)  # an unknown run fails before a folder is made
    require("torch.utils.tensorboard", "TensorBoard export")  # so does a missing tensorboard
    writable_dir(tensorboard, "--tensorboard")
    summary = export_run(path, run_id, tensorboard, all_chains=all_chains)
    runs = ", ".join(r or "one chain" for r in summary.runs)
    console.print(f"run {summary.run_id}: {len(summary.tags)} metrics, {summary.points} points "
                  f"({runs})", highlight=False)  # fmt: skip
    console.print(f"event files: {summary.path.resolve()}", highlight=False)
    console.print(f"next: tensorboard --logdir {tensorboard}", highlight=False)

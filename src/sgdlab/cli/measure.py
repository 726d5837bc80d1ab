"""``sgdlab sharpness / landscape``: instruments applied to a stored run's final parameters
(the work is done by :mod:`sgdlab.run_measures`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sgdlab.cli._util import guarded, positive, writable_dir
from sgdlab.cli.app import StoreOpt, app, console, store_path
from sgdlab.errors import ConfigError

ChainsOpt = Annotated[
    str | None,
    typer.Option("--chains", help="comma-separated chain indices (default: the first few)"),
]


def _parse_chains(chains: str | None) -> list[int] | None:
    if not chains:
        return None
    try:
        return [int(c) for c in chains.split(",") if c.strip()]
    except ValueError:
        raise ConfigError("--chains", f"expected integers like 0,3,5, got {chains!r}") from None


@app.command("sharpness")
@guarded
def sharpness_cmd(
    run_id: Annotated[str, typer.Argument(help="run id (a unique prefix is enough)")],
    chains: ChainsOpt = None,
    store: StoreOpt = None,
    epsilon: Annotated[float, typer.Option(help="Keskar box size ε")] = 1e-3,
    rho: Annotated[float, typer.Option(help="SAM radius ρ")] = 0.05,
    tol: Annotated[float, typer.Option(help="relative error bound of λ_max")] = 1e-4,
) -> None:
    """Sharpness of F at a run's final parameters: λ_max, tr H, ε-, ρ- and adaptive sharpness."""
    from sgdlab.run_measures import sharpness_of_run

    positive(epsilon, "--epsilon")
    positive(rho, "--rho")
    if not 0 < tol < 1:
        raise ConfigError("--tol", f"must be in (0, 1), got {tol}")
    rows = sharpness_of_run(store_path(store), run_id, _parse_chains(chains),
                            epsilon=epsilon, rho=rho, tol=tol)  # fmt: skip
    table = Table(title=f"sharpness of F at the final parameters of run {run_id}")
    cols = ("chain", "F", "λ_max", "tr H ± SE", "ε-sharpness %", "ρ-sharpness", "ASAM")
    for col in cols:
        table.add_column(col)
    for r in rows:
        table.add_row(
            str(r["chain"]), f"{r['loss']:.5g}", f"{r['lambda_max']:.5g}",
            f"{r['trace']:.4g} ± {r['trace_stderr']:.2g}", f"{r['epsilon_sharpness']:.4g}",
            f"{r['rho_sharpness']:.4g}", f"{r['asam_sharpness']:.4g}",
        )
    console.print(table)
    console.print(f"stored as measurements sharpness/* in {store_path(store)}")


@app.command("landscape")
@guarded
def landscape_cmd(
    run_id: Annotated[str, typer.Argument(help="run id (a unique prefix is enough)")],
    chains: ChainsOpt = None,
    store: StoreOpt = None,
    out: Annotated[Path | None, typer.Option(help="folder for the figures")] = None,
    span: Annotated[float, typer.Option(help="slice half-width, relative to ‖w‖")] = 1.0,
) -> None:
    """Loss-landscape slices of F through a run's final parameters (and between two chains)."""
    from sgdlab.run_measures import landscape_of_run

    positive(span, "--span")
    writable_dir(out, "--out")
    paths = landscape_of_run(store_path(store), run_id, _parse_chains(chains), out, span=span)
    for path in paths:
        if path.suffix == ".png":
            console.print(f"figure: {path.resolve()}", soft_wrap=True, highlight=False)

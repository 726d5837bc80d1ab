"""Curvature and landscape instruments applied to the final parameters of a stored run
(the library side of ``sgdlab sharpness`` and ``sgdlab landscape``).

``sgdlab sharpness RUN_ID`` and ``sgdlab landscape RUN_ID`` rebuild the run's problem from
its stored config and root entropy (so the data are the run's own), evaluate the
instruments of :mod:`sgdlab.measure` on the **full objective F** (the engine's objective:
closed form, or the full-data mean of the per-sample loss, in float64) at each selected
chain's final parameters, add the numbers to the store's ``measurements`` table and draw
the figures next to the store (``figures/``).

Random draws (Lanczos start vectors, Hutchinson probes, landscape directions) come from the
run's ``probe`` stream, chain by chain, so a measurement is reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sgdlab.config import load_config
from sgdlab.errors import ConfigError, StoreError
from sgdlab.measure.curvature import (
    FunctionObjective,
    interpolation_slice,
    line_slice,
    random_direction,
    sharpness,
    surface_slice,
)
from sgdlab.problems import Problem, build_problem
from sgdlab.report.landscape_plots import plot_loss_line, plot_loss_surface
from sgdlab.rng import Streams
from sgdlab.store import Store

SHARPNESS_NAMES = (
    "loss",
    "lambda_max",
    "lambda_max_residual",
    "trace",
    "trace_stderr",
    "epsilon_sharpness",
    "rho_sharpness",
    "asam_sharpness",
)


def run_streams(info: dict[str, Any]) -> Streams:
    """The run's streams, rebuilt from its stored root entropy and stream settings."""
    return load_config(info["config"]).make_streams(info["seed_entropy"])


def rebuild_problem(info: dict[str, Any], instead: str = "sharpness") -> Problem:
    """The run's problem in float64, with the run's own data (``instead``: the function of
    :mod:`sgdlab.measure` to suggest for a Monitor run)."""
    if info.get("kind") == "monitor":
        raise StoreError(
            f"run {info['run_id']} is a Monitor run of a user's model: its parameters are not "
            f"stored; call sgdlab.measure.{instead} on the model instead"
        )
    prob = dict(info["config"]["problem"])
    name = prob.pop("name")
    return build_problem(name, prob, run_streams(info), torch.float64)


def select_chains(
    params: np.ndarray, chains: Sequence[int] | None, default: int, diverged: Sequence[int] = ()
) -> list[int]:
    """Chains to measure: the given ones (checked), else the first ``default`` chains that did
    not diverge (a diverged chain is frozen at its last finite, meaningless, parameters)."""
    K = params.shape[0]
    if chains:
        bad = [k for k in chains if not 0 <= k < K]
        if bad:
            raise ConfigError("--chains", f"chain {bad[0]} does not exist (the run has {K})")
        return list(chains)
    skip = set(diverged)
    picked = [k for k in range(K) if k not in skip and np.isfinite(params[k]).all()][:default]
    if not picked:
        raise StoreError(
            f"all {K} chains of the run diverged: nothing to measure (pick chains with "
            "--chains to measure their last finite parameters anyway)"
        )
    return picked


def _open(store_path: Path) -> Store:
    if not Path(store_path).exists():
        raise StoreError(f"no results store at {store_path}: run something first")
    return Store(store_path)


def _probe_generator(streams: Streams, info: dict[str, Any], k: int) -> torch.Generator:
    """The ``probe`` stream of the run's chain k (its number is ``first_chain + k``)."""
    return streams.generator("probe", int(info["config"].get("first_chain", 0)) + k)


def _objective(problem: Problem) -> FunctionObjective:
    return FunctionObjective.from_batched(problem.objective)


def sharpness_of_run(
    store_path: Path,
    run_id: str,
    chains: Sequence[int] | None = None,
    *,
    epsilon: float = 1e-3,
    rho: float = 0.05,
    tol: float = 1e-4,
) -> list[dict[str, Any]]:
    """λ_max, tr H, ε-, ρ- and adaptive sharpness of F at each chain's final parameters;
    stored as measurements ``sharpness/<name>``. Returns one dict per chain."""
    with _open(store_path) as db:
        info = db.run(run_id)
        problem = rebuild_problem(info)
        params = db.params(info["run_id"])
        diverged = db.diverged(info["run_id"])
        if params.shape[1] != problem.dim:
            raise StoreError(f"stored parameters have d={params.shape[1]}, problem d={problem.dim}")
        streams = run_streams(info)
        fn = _objective(problem)
        out = []
        for k in select_chains(params, chains, 4, diverged):
            w = torch.as_tensor(params[k], dtype=torch.float64)
            res = sharpness(
                fn,
                w=w,
                epsilon=epsilon,
                rho=rho,
                tol=tol,
                generator=_probe_generator(streams, info, k),
            )
            values = res.as_dict()
            details = {
                "epsilon": epsilon,
                "rho": rho,
                "asam_rho": res.asam_rho,
                "tol": tol,
                "n_hvp": res.n_hvp,
                "objective": "F (full)",
            }
            db.add_measurements(
                info["run_id"],
                [(k, f"sharpness/{n}", values[n], details) for n in SHARPNESS_NAMES],
            )
            out.append({"chain": k, **values})
    return out


def _grid_with(grid: np.ndarray, *nodes: float) -> np.ndarray:
    """``grid`` with the exact ``nodes`` added (sorted, no duplicates: grid points within
    rounding of a node, such as 1e-17 for 0, become the node)."""
    grid = grid.copy()
    step = float(np.max(np.abs(grid))) * 1e-9 if grid.size else 0.0
    for node in nodes:
        grid[np.abs(grid - node) <= step] = node
    return np.unique(np.concatenate([grid, np.asarray(nodes, dtype=grid.dtype)]))


def landscape_of_run(
    store_path: Path,
    run_id: str,
    chains: Sequence[int] | None = None,
    out: Path | None = None,
    *,
    span: float = 1.0,
    points: int = 41,
) -> list[Path]:
    """1-D and 2-D slices of F through each chain's final parameters along random unit
    directions (scaled by ``span``·‖w‖ when w ≠ 0, else by ``span``), and the line between
    the first two chains. Figures (PNG and SVG) go to ``out`` (default: ``figures/`` beside
    the store); the rise of F at the ends of the 1-D slice and the interpolation barrier
    max_{α∈[0,1]} F((1−α)w_a + αw_b) − max(F(w_a), F(w_b)) are stored as measurements."""
    folder = out if out is not None else store_path.parent / "figures"
    paths: list[Path] = []
    with _open(store_path) as db:
        info = db.run(run_id)
        rid = info["run_id"]
        problem = rebuild_problem(info, "loss_surface")
        params = db.params(rid)
        streams = run_streams(info)
        fn = problem.objective
        picked = select_chains(params, chains, 2, db.diverged(rid))
        alphas = _grid_with(np.linspace(-1, 1, points), 0.0)  # α = 0 is w itself
        center = int(np.flatnonzero(alphas == 0.0)[0])
        for k in picked:
            w = torch.as_tensor(params[k], dtype=torch.float64)
            gen = _probe_generator(streams, info, k)
            scale = span * (float(w.norm()) if float(w.norm()) > 0 else 1.0)
            d1, d2 = (scale * random_direction(w, gen, normalization="unit") for _ in range(2))
            line = line_slice(fn, w, d1, alphas, vectorized=True, kind="random")
            surf = surface_slice(
                fn,
                w,
                d1,
                d2,
                alphas[:: max(1, points // 21)],
                alphas[:: max(1, points // 21)],
                vectorized=True,
                kind="random",
            )
            stem = folder / f"{rid}-landscape-chain{k}"
            paths += plot_loss_line(
                line,
                f"{stem}-line",
                title=f"run {rid} chain {k}: F along a random direction",
                xlabel=f"α (direction norm {scale:.3g})",
            )
            paths += plot_loss_surface(
                surf, f"{stem}-surface", title=f"run {rid} chain {k}: F on a random plane"
            )
            rise = float((line.losses[0] + line.losses[-1]) / 2 - line.losses[center])
            db.add_measurements(
                rid, [(k, "landscape/line_rise", rise, {"span": span, "direction_norm": scale})]
            )
        if len(picked) >= 2:
            a, b = picked[0], picked[1]
            wa = torch.as_tensor(params[a], dtype=torch.float64)
            wb = torch.as_tensor(params[b], dtype=torch.float64)
            grid = _grid_with(np.linspace(-0.25, 1.25, points), 0.0, 1.0)  # the two ends exactly
            line = interpolation_slice(fn, wa, wb, grid, vectorized=True)
            inside = (line.alphas >= 0) & (line.alphas <= 1)
            ends = max(
                float(line.losses[line.alphas == 0][0]), float(line.losses[line.alphas == 1][0])
            )
            barrier = float(line.losses[inside].max()) - ends
            paths += plot_loss_line(
                line,
                folder / f"{rid}-interpolation-{a}-{b}",
                title=f"run {rid}: F between chains {a} and {b}",
                xlabel="α  ((1−α)·w_a + α·w_b)",
            )
            db.add_measurements(rid, [(a, f"landscape/barrier_to_chain{b}", barrier, None)])
    return paths

"""`sgdlab sharpness` and `sgdlab landscape` on stored runs (closed forms on the quadratic).

Covers: ``sgdlab.run_measures`` and ``sgdlab.cli.measure``.
"""

import numpy as np
from typer.testing import CliRunner

import sgdlab
from sgdlab.cli import app
from sgdlab.store import Store

runner = CliRunner()
EIGS = [3.0, 1.0, 0.5, 0.2]


def stored_quadratic(tmp_path):
    path = tmp_path / "s.duckdb"
    res = sgdlab.run(
        {
            "problem": {"name": "quadratic", "eigenvalues": EIGS, "rotate": True},
            "optimizer": {"name": "sgd", "lr": 0.1},
            "batch": {"size": 4, "sampling": "stream"},
            "chains": 3, "steps": 30, "dtype": "float64",
        },
        store=path,
    )
    return path, res


def test_sharpness_of_run_matches_closed_forms(tmp_path):
    path, res = stored_quadratic(tmp_path)
    out = runner.invoke(app, ["sharpness", res.run_id, "--store", str(path), "--chains", "0,2"])
    assert out.exit_code == 0, out.output
    with Store(path, read_only=True) as db:
        rows = {(m["chain"], m["name"]): m["value"] for m in db.measurements(res.run_id)}
    assert {c for c, _ in rows} == {0, 2}
    for k in (0, 2):
        # F is quadratic: λ_max = max eigenvalue at every point, certified to tol = 1e-4
        assert abs(rows[(k, "sharpness/lambda_max")] - 3.0) <= 1e-4 * 3.0
        # Hutchinson: the exact trace is within 4 standard errors
        se = rows[(k, "sharpness/trace_stderr")]
        assert abs(rows[(k, "sharpness/trace")] - sum(EIGS)) <= 4 * se + 1e-9
        # F at the final parameters equals the stored objective of the last step
        _, obj = res.metric("objective")
        assert np.isclose(rows[(k, "sharpness/loss")], obj[k, -1], rtol=1e-12)


def test_landscape_of_run_writes_figures_and_measurements(tmp_path):
    path, res = stored_quadratic(tmp_path)
    figs = tmp_path / "figs"
    out = runner.invoke(app, ["landscape", res.run_id, "--store", str(path), "--out", str(figs)])
    assert out.exit_code == 0, out.output
    names = sorted(p.name for p in figs.iterdir())
    assert f"{res.run_id}-landscape-chain0-surface.png" in names
    assert f"{res.run_id}-interpolation-0-1.svg" in names
    with Store(path, read_only=True) as db:
        got = {m["name"] for m in db.measurements(res.run_id)}
    assert {"landscape/line_rise", "landscape/barrier_to_chain1"} <= got


def test_bad_chain_and_unknown_run(tmp_path):
    path, res = stored_quadratic(tmp_path)
    out = runner.invoke(app, ["sharpness", res.run_id, "--store", str(path), "--chains", "9"])
    assert out.exit_code == 2 and "--chains" in out.output
    out = runner.invoke(app, ["sharpness", "nope", "--store", str(path)])
    assert out.exit_code == 1 and "no run" in out.output


def test_diverged_chains_are_not_measured_by_default(tmp_path):
    path = tmp_path / "s.duckdb"
    res = sgdlab.run(
        {
            "problem": {"name": "quadratic", "eigenvalues": EIGS},
            "optimizer": {"name": "sgd", "lr": [0.1, 5.0]},
            "batch": {"size": 4, "sampling": "stream"},
            "chains": 4, "steps": 400, "dtype": "float64",
        },
        store=path,
    )
    assert res.diverged.tolist() == [False, False, True, True]
    out = runner.invoke(app, ["sharpness", res.run_id, "--store", str(path)])
    assert out.exit_code == 0, out.output
    with Store(path, read_only=True) as db:
        assert {m["chain"] for m in db.measurements(res.run_id)} == {0, 1}


def test_missing_store_is_not_created(tmp_path):
    path = tmp_path / "none.duckdb"
    out = runner.invoke(app, ["sharpness", "abc", "--store", str(path)])
    assert out.exit_code == 1 and "no results store" in out.output
    assert not path.exists()


def test_interpolation_barrier_uses_the_exact_ends(tmp_path):
    """Two chains settled in the two wells of h(w²−1)², h = 1: F = 0 at both ends and the
    segment crosses w = 0, where F = h. The barrier is exactly h only if F is evaluated at the
    ends themselves (α = 0 and 1), not at the nearest grid points."""
    from sgdlab.run_measures import landscape_of_run

    path = tmp_path / "s.duckdb"
    res = sgdlab.run(
        {
            "problem": {"name": "double_well", "noise_std": 0.0, "start": [0.0],
                        "init_scale": 0.5},
            "optimizer": {"name": "sgd", "lr": 0.05},
            "batch": {"size": 1, "sampling": "stream"},
            "chains": 6, "steps": 400, "dtype": "float64", "seed": 3,
        },
        store=path,
    )  # fmt: skip
    final = res.final_params[:, 0]
    assert np.allclose(final.abs().numpy(), 1.0, atol=1e-12)
    a = int(np.flatnonzero(final.numpy() < 0)[0])
    b = int(np.flatnonzero(final.numpy() > 0)[0])
    # 40 points have no node at α = 0 of their own: the rise must still use F(w) = 0. In 1-D
    # the direction is ±1 (norm |w| = 1): rise = (F(0) + F(−2))/2 − F(−1) = (1 + 9)/2 = 5
    def measured(name: str) -> float:
        with Store(path, read_only=True) as db:
            (value,) = [m["value"] for m in db.measurements(res.run_id)
                        if (m["chain"], m["name"]) == (a, name)]  # fmt: skip
        return value

    landscape_of_run(path, res.run_id, chains=[a], out=tmp_path / "figs", points=40)
    assert abs(measured("landscape/line_rise") - 5.0) <= 1e-12
    landscape_of_run(path, res.run_id, chains=[a, b], out=tmp_path / "figs", points=41)
    assert abs(measured(f"landscape/barrier_to_chain{b}") - 1.0) <= 1e-12

"""Hostile and inconsistent input (issue 16, defects 1, 2 and 9): each case is a one-line
ConfigError naming the field, raised before anything runs or is written — never a traceback,
an allocation failure, a gigabyte-long message or a silently corrected config."""

from __future__ import annotations

import os
import time

import pytest
from typer.testing import CliRunner

from sgdlab.cli import app
from sgdlab.cli._util import MAX_ERROR_CHARS
from sgdlab.config import load_config
from sgdlab.engine.plan import prepare
from sgdlab.errors import ConfigError
from sgdlab.input_limits import MAX_CONFIG_BYTES

runner = CliRunner()
QUAD = {"name": "quadratic", "dim": 2}


def bomb(levels: int) -> str:
    """A YAML alias bomb: 9**levels strings from a file of a few hundred bytes."""
    lines = ["problem: {name: quadratic}", "chains:"]
    lines.append('  - &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]')
    lines += [f"  - &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def refused(source, field: str, *needles: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        prepare(source)
    assert info.value.field == field, (info.value.field, info.value.message)
    assert "\n" not in info.value.message and len(str(info.value)) < MAX_ERROR_CHARS
    for needle in needles:
        assert needle in info.value.message, info.value.message
    return info.value


# ------------------------------------------------------------------ defect 1: unbounded input
def test_alias_bomb_is_refused_quickly_with_a_short_message(tmp_path):
    """Regression: 9^7 = 4.8M expanded strings made a 39 MB error line (9^8: 351 MB and 3-4 GB
    of memory); now the expansion is counted on the node graph without building it."""
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb(7))
    assert path.stat().st_size < 400
    start = time.perf_counter()
    refused(path, "chains", "expands to more than")
    assert time.perf_counter() - start < 5.0
    out = runner.invoke(app, ["run", str(path), "--store", str(tmp_path / "s.duckdb")])
    assert out.exit_code == 2 and len(out.output) < MAX_ERROR_CHARS + 2, out.output[:300]
    assert not (tmp_path / "s.duckdb").exists()


def test_an_alias_used_a_few_times_is_fine(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("problem: {name: quadratic, dim: &d 2}\noptimizer: {name: sgd, lr: 0.1}\n"
                    "batch: {size: *d, sampling: stream}\nchains: *d\nsteps: 3\n")
    assert prepare(path).config.batch.size == 2


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("problem: {name: quadratic}\nchains: &x [*x]\n", "chains"),
        ("problem: &x {name: quadratic, dim: *x}\n", "problem.dim"),
        ("&x {problem: {name: quadratic}, chains: *x}\n", "chains"),
    ],
)
def test_self_referencing_anchor(tmp_path, text, field):
    """Regression: 'Circular reference detected' tracebacks from pydantic."""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    refused(path, field, "refers to a value that contains it")


@pytest.mark.parametrize("nest", ["flow", "block"])
def test_deep_nesting(tmp_path, nest):
    """Regression: 2000 nested lists ended in a RecursionError traceback."""
    path = tmp_path / "c.yaml"
    if nest == "flow":
        path.write_text("problem: {name: quadratic}\nchains: " + "[" * 2000 + "]" * 2000 + "\n")
    else:
        path.write_text("problem: {name: quadratic}\nchains:\n"
                        + "".join("  " * i + "- \n" for i in range(1, 300)))  # fmt: skip
    refused(path, "config", "levels deep")


def test_oversized_file(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("problem: {name: quadratic}\n# " + "x" * MAX_CONFIG_BYTES + "\n")
    refused(path, "config", "larger than 1 MiB")


@pytest.mark.timeout(30)
@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_endless_device_is_not_read_forever():
    """Regression: `sgdlab run /dev/zero` read without end (then a MemoryError traceback)."""
    out = runner.invoke(app, ["run", "/dev/zero"])
    assert out.exit_code == 2 and "larger than 1 MiB" in out.output, out.output


def test_duplicate_keys_are_errors(tmp_path):
    """Regression (defect 9): the last of two equal keys won silently."""
    path = tmp_path / "c.yaml"
    path.write_text("problem: {name: quadratic}\nchains: 3\nchains: 4\n")
    refused(path, "chains", "given twice", "line 3")
    path.write_text("problem: {name: quadratic, dim: 3, dim: 4}\n")
    refused(path, "problem.dim", "given twice")


def test_echoed_values_are_shortened():
    """Regression: errors echoed the whole value (a key or list of any size)."""
    huge_key = "k" * 100_000
    with pytest.raises(ConfigError) as info:
        load_config({"problem": QUAD, huge_key: 1})
    assert len(str(info.value)) < 400 and "kkk" in info.value.message
    with pytest.raises(ConfigError) as info:
        load_config({"problem": QUAD, "chains": list(range(100_000))})
    assert info.value.field == "chains" and len(str(info.value)) < 300


def test_self_referencing_dict_from_the_api():
    cfg: dict = {"problem": {"name": "quadratic"}}
    cfg["chains"] = cfg
    with pytest.raises(ConfigError, match="contains itself") as info:
        load_config(cfg)
    assert info.value.field == "chains"


# ------------------------------------------------------------------ defect 2: huge values
@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"chains": 10**9}, "chains"),
        ({"steps": 10**12}, "steps"),
        ({"batch": {"size": 10**9, "sampling": "stream"}}, "batch.size"),
        ({"first_chain": 10**30}, "first_chain"),
        ({"seed": 2**130}, "seed"),
        ({"streams": {"seeds": {"sampling": 2**200}}}, "streams.seeds"),
    ],
)
def test_integers_beyond_sane_bounds(over, field):
    """Regression: only "> 0" was checked; 1e9 chains ran until memory ran out."""
    with pytest.raises(ConfigError) as info:
        load_config({"problem": QUAD, **over})
    assert info.value.field == field


@pytest.mark.parametrize(
    ("problem", "over", "field"),
    [
        (QUAD, {"chains": 100_000}, "batch.size"),  # every chain's block of random draws
        ({"name": "quadratic", "dim": 10**6}, {}, "problem"),  # the d×d matrices
        ({"name": "mlp", "dataset": "iris", "widths": [10**6]}, {"batch": {"size": 1}},
         "chains"),  # parameters × chains
        (QUAD, {"batch": {"size": 10**6, "sampling": "stream"}}, "batch.size"),
        (QUAD, {"steps": 10**6, "record": {"every": 1}}, "record.every"),
        ({"name": "logistic_regression", "dataset": "synthetic", "n_samples": 10**8}, {},
         "problem"),
    ],
)  # fmt: skip
def test_memory_estimate_refuses_what_cannot_fit(monkeypatch, problem, over, field):
    """Regression: these configs passed validation and failed in allocation (or ran for
    hours); now the estimate, its largest part's field and the limit are in the message,
    before anything runs."""
    monkeypatch.setenv("SGDLAB_MEMORY_LIMIT", "256MiB")
    err = refused({"problem": problem, "chains": 16, "steps": 10, **over}, field,
                  "needs about", "256.0 MiB", "SGDLAB_MEMORY_LIMIT")  # fmt: skip
    assert "GiB" in err.message or "TiB" in err.message or "PiB" in err.message


def test_memory_limit_variable_is_checked(monkeypatch):
    monkeypatch.setenv("SGDLAB_MEMORY_LIMIT", "lots")
    refused({"problem": QUAD}, "SGDLAB_MEMORY_LIMIT", "8GiB")


def test_memory_estimate_of_a_commit_matches_a_measurement():
    """The records part (8 + 48 bytes per value) against the measured peak of a commit of
    2048 chains × 2001 steps × 6 metrics: 1.38 GB of RSS, ~0.3 GB of it the interpreter."""
    plan = prepare({"problem": QUAD, "batch": {"size": 2, "sampling": "stream"},
                    "chains": 2048, "steps": 2000, "record": {"every": 1}})  # fmt: skip
    assert plan.memory is not None
    assert 1.0e9 < plan.memory.total < 1.6e9


@pytest.mark.parametrize(
    ("device", "field", "needle"),
    [
        ("mps", "device", "mps"),
        ("xla", "device", "not supported"),
        ("gpu", "device", "unknown device"),
        ("cuda:99", "device", "cuda"),
    ],
)
def test_devices_that_cannot_run(device, field, needle):
    """Regression: `device: mps` (and any type torch knows but this build lacks) gave a
    traceback when the problem was moved."""
    refused({"problem": QUAD, "device": device}, field, needle)


# ------------------------------------------------------------------ defect 9: inconsistent
def test_dim_disagreeing_with_eigenvalues():
    """Regression: `dim: 4` with 2 eigenvalues ran a 2-dim problem and stored dim 4."""
    refused({"problem": {"name": "quadratic", "dim": 4, "eigenvalues": [1.0, 2.0]}},
            "problem", "dim (4)", "2 eigenvalues")  # fmt: skip
    plan = prepare({"problem": {"name": "quadratic", "eigenvalues": [1.0, 2.0]}, "steps": 2})
    assert plan.problem.dim == 2
    # a stored config carries the default dim beside the eigenvalues: it still loads
    again = prepare(plan.config.canonical())
    assert again.problem.dim == 2


def test_subsample_larger_than_the_dataset():
    """Regression: a subsample larger than the dataset was ignored."""
    refused({"problem": {"name": "logistic_regression", "dataset": "iris", "subsample": 1000}},
            "problem.subsample", "150 samples")  # fmt: skip


def test_noise_recording_needs_two_samples_per_batch():
    """Regression: record.noise with batch size 1 recorded nothing, and `sgdlab advise` then
    asked the user to turn record.noise on."""
    refused({"problem": QUAD, "batch": {"size": 1, "sampling": "stream"},
             "record": {"noise": True}}, "record.noise", "batch.size ≥ 2")  # fmt: skip


@pytest.mark.parametrize(
    ("path", "needle"),
    [("/dev/zero", "not a regular file"), ("/", "folder"), (__file__, "not a readable .npz")],
)
def test_data_files_that_are_not_data(path, needle):
    """Found by the fuzz suite: npz paths naming a folder, a device or a text file gave
    IsADirectoryError / pickle ValueError tracebacks, and an IDX path to /dev/zero was read
    without end."""
    refused({"problem": {"name": "logistic_regression", "dataset": "npz", "path": path}},
            "problem.path", needle)  # fmt: skip

"""The Monitor never breaks training (issue 14, items 2, 7, 9 and the ``sinks=`` interface):
a failing measurement or sink warns once, is recorded with the run and is switched off while
the rest goes on; misplaced ``zero_grad()`` and accumulation are detected; a NaN noise scale
comes with its reason and a lower bound."""

from __future__ import annotations

import itertools
import math
import warnings

import pytest
import torch
from torch import nn

import sgdlab
from sgdlab.store import Store


def data(n=512, signal=1.0):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(n, 6, generator=g)
    y = signal * x[:, :2].sum(1, keepdim=True) + torch.randn(n, 1, generator=g)
    return x, y


def loop(mon, model, opt, steps=12, b=16, signal=1.0, zero_grad_after=False, micro=1):
    x, y = data(signal=signal)
    g = torch.Generator().manual_seed(4)
    loss_fn = nn.MSELoss()
    for _ in range(steps):
        for _ in range(micro):
            idx = torch.randint(0, len(x), (b,), generator=g)
            loss = loss_fn(model(x[idx]), y[idx]) / micro
            if not zero_grad_after and micro == 1:
                opt.zero_grad()
            loss.backward()
            if micro > 1:  # a Monitor called once per micro-batch: misuse, detected
                mon.step(x[idx], y[idx], loss)
        opt.step()
        if zero_grad_after or micro > 1:
            opt.zero_grad()
        if micro == 1:
            mon.step(x[idx], y[idx], loss)


def make(seed=0):
    torch.manual_seed(seed)  # test-side: initial weights
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 1))
    return model, torch.optim.SGD(model.parameters(), lr=0.05)


def test_a_failing_measurement_is_warned_once_recorded_and_switched_off(tmp_path):
    def broken_loss(out, y):
        raise RuntimeError("boom: this loss cannot be measured")

    model, opt = make()
    store = tmp_path / "s.duckdb"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with sgdlab.Monitor(model, broken_loss, opt, store=store, every=1, noise_every=2) as mon:
            loop(mon, model, opt)
    noise_warnings = [w for w in caught if "measurement 'noise' failed" in str(w.message)]
    assert len(noise_warnings) == 1 and "boom" in str(noise_warnings[0].message)
    assert noise_warnings[0].filename == __file__  # attributed to the user's loop
    assert mon.t == 12 and len(mon.metrics["loss"][0]) == 12  # the rest went on
    assert "trace_cov" not in mon.metrics
    s = Store(store)
    (run,) = s.runs()
    assert run["status"] == "complete"
    events = {m["name"]: m for m in s.measurements(run["run_id"])}
    assert events["monitor.off/noise"]["value"] == 0
    assert "boom" in events["monitor.off/noise"]["details"]["message"]
    assert len(s.metric(run["run_id"], "grad_norm")[0]) == 12


def test_sinks_get_every_row_and_a_raising_sink_is_dropped():
    rows, bad_calls = [], []

    def good(step, scalars):
        rows.append((step, scalars))

    def bad(step, scalars):
        bad_calls.append(step)
        raise OSError("disk full")

    model, opt = make()
    with pytest.warns(RuntimeWarning, match="sink .* dropped .*disk full"):
        with sgdlab.Monitor(model, nn.MSELoss(), opt, every=2, noise_every=4,
                            sinks=[bad, good]) as mon:  # fmt: skip
            loop(mon, model, opt)
    assert bad_calls == [0]
    assert [s for s, _ in rows] == list(range(0, 12, 2))
    for name, (steps, values) in mon.metrics.items():
        got = {s: repr(r[name]) for s, r in rows if name in r}  # repr: NaN equals NaN
        assert got == {s: repr(v) for s, v in zip(steps.tolist(), values[0].tolist(), strict=True)}
    with pytest.raises(ValueError, match="sinks must be callables"):
        sgdlab.Monitor(model, nn.MSELoss(), opt, sinks=[42])


def test_zero_grad_after_step_still_records_the_steps_gradient():
    model, opt = make()
    seen = []
    hook = opt.register_step_pre_hook(  # the test's own reading of the gradient the step used
        lambda o, a, k: seen.append(
            math.sqrt(sum(float(p.grad.double().pow(2).sum()) for p in model.parameters()))
        )
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no warning: nothing is wrong
        with sgdlab.Monitor(model, nn.MSELoss(), opt, every=1, noise_every=0) as mon:
            loop(mon, model, opt, zero_grad_after=True)
    hook.remove()
    assert mon.metrics["grad_norm"][1][0].tolist() == pytest.approx(seen, rel=1e-12)
    assert min(seen) > 0


def test_monitor_called_just_before_the_optimizer_step_records_that_steps_gradient():
    """HF's ``on_pre_optimizer_step`` order: backward, ``mon.step``, ``optimizer.step()``,
    ``zero_grad()`` — the gradient is the one in ``.grad`` (not the previous step's)."""
    model, opt = make()
    x, y = data()
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with sgdlab.Monitor(model, nn.MSELoss(), opt, every=1, noise_every=0) as mon:
            for t in range(5):
                loss = nn.functional.mse_loss(model(x[16 * t : 16 * t + 16]),
                                              y[16 * t : 16 * t + 16])  # fmt: skip
                loss.backward()
                seen.append(math.sqrt(sum(float(p.grad.double().pow(2).sum())
                                          for p in model.parameters())))  # fmt: skip
                mon.step(x[16 * t : 16 * t + 16], y[16 * t : 16 * t + 16], loss)
                opt.step()
                opt.zero_grad()
    assert mon.metrics["grad_norm"][1][0].tolist() == pytest.approx(seen, rel=1e-12)
    assert len(set(seen)) == 5


def test_without_optimizer_a_zeroed_gradient_is_reported():
    model, opt = make()
    with pytest.warns(RuntimeWarning, match="zero_grad"):
        with sgdlab.Monitor(model, nn.MSELoss(), None, every=1, noise_every=0) as mon:
            loop(mon, model, opt, zero_grad_after=True)
    assert "grad_norm_missing" in {e.name for e in mon.events}


def test_monitor_called_per_micro_batch_is_reported_and_batch_declared():
    model, opt = make()
    with pytest.warns(RuntimeWarning, match="without an optimizer.step"):
        with sgdlab.Monitor(model, nn.MSELoss(), opt, every=1, noise_every=0) as mon:
            loop(mon, model, opt, steps=3, micro=2)
    assert "no_optimizer_step" in {e.name for e in mon.events}
    model, opt = make()
    with sgdlab.Monitor(model, nn.MSELoss(), opt, every=1, noise_every=0,
                        accumulation_steps=4) as mon:  # fmt: skip
        loop(mon, model, opt, steps=2)
        x, y = data()
        mon.step(x[:16], y[:16], None, batch_size=100)
    assert mon.metrics["batch_size"][1][0].tolist() == [64, 64, 100]


def test_nan_noise_scale_comes_with_its_reason_and_a_lower_bound(tmp_path):
    """No signal (targets independent of the inputs, weights at zero: ∇F = 0 up to the data's
    sampling), so the two-batch |G|² estimate is ≤ 0 at some steps: noise_scale is NaN there,
    the reason is recorded with the run, and from the third measurement the lower bound is
    finite and positive."""
    torch.manual_seed(0)
    model = nn.Linear(6, 1)
    nn.init.zeros_(model.weight)
    nn.init.zeros_(model.bias)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    store = tmp_path / "s.duckdb"
    with pytest.warns(RuntimeWarning, match="noise scale exceeds what this batch can resolve"):
        with sgdlab.Monitor(model, nn.MSELoss(), opt, store=store, every=1, noise_every=1,
                            ema_beta=0.5) as mon:  # fmt: skip
            loop(mon, model, opt, steps=12, signal=0.0)
    scale = mon.metrics["noise_scale"][1][0]
    lower = mon.metrics["noise_scale_lower"][1][0]
    nan_steps = [i for i, v in enumerate(scale) if math.isnan(v)]
    assert nan_steps
    assert all(math.isfinite(lower[i]) and lower[i] > 0 for i in nan_steps if i >= 2)
    s = Store(store)
    (run,) = s.runs()
    events = {m["name"]: m for m in s.measurements(run["run_id"])}
    assert "signal is below the noise" in events["monitor.note/noise_scale_nan"]["details"][
        "message"
    ]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "fastest"}, "method must be one of"),
        ({"noise_mode": "both"}, "noise_mode must be"),
        ({"accumulation_steps": 0}, "accumulation_steps must be"),
        ({"chunk_size": 0}, "chunk_size must be"),
        ({"ema_beta": 1.0}, "ema_beta must be"),
    ],
)
def test_bad_arguments_are_one_line_errors(kwargs, match):
    model, opt = make()
    with pytest.raises(ValueError, match=match):
        sgdlab.Monitor(model, nn.MSELoss(), opt, **kwargs)


def test_default_noise_cadence_keeps_to_its_time_budget():
    """``noise_every="auto"``: step 0, then ≥ 100 steps apart and only once the loop has run
    for the last measurement's cost / NOISE_BUDGET — an expensive measurement is spaced
    further. Each loss call of the Monitor's pass sleeps 5 ms, so a measurement costs ≥ 5 ms
    and the next waits ≥ 5 ms / 0.02 = 0.25 s of loop; the first (with the first-use check's
    extra calls) costs several calls, and 100 steps of ≥ 5 ms are too few to pay for it."""
    import time

    from sgdlab.monitor.options import AUTO_NOISE_EVERY, NOISE_BUDGET

    def slow_loss(out, y):
        time.sleep(0.005)
        return nn.functional.mse_loss(out, y)

    model, opt = make()
    x, y = data()
    with sgdlab.Monitor(model, slow_loss, opt, every=50) as mon:
        start = time.perf_counter()
        for t in range(500):
            xb, yb = x[(16 * t) % 496 :][:16], y[(16 * t) % 496 :][:16]
            loss = nn.functional.mse_loss(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            time.sleep(0.005)
            mon.step(xb, yb, loss)
        elapsed = time.perf_counter() - start
    steps = mon.metrics["trace_cov"][0].tolist()
    assert steps[0] == 0 and len(steps) >= 2
    gaps = [b - a for a, b in itertools.pairwise(steps)]
    assert min(gaps) >= AUTO_NOISE_EVERY and max(gaps) > AUTO_NOISE_EVERY
    assert len(steps) - 1 <= NOISE_BUDGET * elapsed / 0.005
    with pytest.raises(ValueError, match="noise_every must be 'auto' or an integer"):
        sgdlab.Monitor(model, nn.MSELoss(), opt, noise_every="often")


def test_chunked_extra_pass_gives_the_same_statistics():
    """``chunk_size`` bounds the memory of the extra pass; for a plain mean the statistics do
    not depend on it (float64: equal to rounding, rel 1e-12)."""
    results = []
    for chunk in (None, 5):
        model, opt = make()
        model.double()
        x, y = data()
        with sgdlab.Monitor(model, nn.MSELoss(), opt, every=1, noise_every=1,
                            chunk_size=chunk) as mon:  # fmt: skip
            for t in range(3):
                xb, yb = x[16 * t : 16 * t + 16].double(), y[16 * t : 16 * t + 16].double()
                loss = nn.functional.mse_loss(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                mon.step(xb, yb, loss)
        results.append(mon.metrics)
    for name in ("trace_cov", "grad_norm_sq", "trace_cov_se"):
        assert results[1][name][1][0].tolist() == pytest.approx(
            results[0][name][1][0].tolist(), rel=1e-12
        )

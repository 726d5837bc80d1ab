"""sgdlab.Monitor: records, stores, and never changes the training trajectory."""

import numpy as np
import pytest
import torch
from torch import nn

import sgdlab
from sgdlab.store import Store


def make_model(seed=0):
    torch.manual_seed(seed)  # test-side only: identical initial weights for both runs
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))


def data(n=256):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 8, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return x, y


def train(monitor_kwargs=None, steps=40, momentum=0.9):
    model = make_model()
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=momentum)
    x, y = data()
    g = torch.Generator().manual_seed(2)
    torch.manual_seed(123)  # dropout masks come from the global RNG in the user's loop
    mon = (
        sgdlab.Monitor(model, loss_fn, opt, **monitor_kwargs)
        if monitor_kwargs is not None
        else None
    )
    if mon is not None:
        mon.__enter__()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (32,), generator=g)
        loss = loss_fn(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if mon is not None:
            mon.step(x[idx], y[idx], loss)
    if mon is not None:
        mon.__exit__(None, None, None)
    return model, mon


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_monitor_does_not_change_trajectory(mode):
    plain, _ = train(None)
    watched, mon = train({"every": 1, "noise_every": 3, "noise_mode": mode})
    for p, q in zip(plain.parameters(), watched.parameters(), strict=True):
        assert torch.equal(p, q)
    assert "trace_cov" in mon.metrics and len(mon.metrics["trace_cov"][0]) == 14


def test_monitor_records_and_stores(tmp_path):
    path = tmp_path / "m.duckdb"
    _, mon = train({"store": path, "every": 5, "noise_every": 10, "name": "mlp"})
    with Store(path, read_only=True) as db:
        info = db.run(mon.run_id)
        assert info["status"] == "complete" and info["kind"] == "monitor"
        assert info["steps"] == 40
        steps, loss = db.metric(mon.run_id, "loss")
        assert steps.tolist() == list(range(0, 40, 5)) and loss.shape == (1, 8)
        _, lr = db.metric(mon.run_id, "lr")
        assert np.allclose(lr, 0.05)
        for name in ("trace_cov", "b_simple", "noise_scale", "temperature", "mean_gsnr"):
            _, v = db.metric(mon.run_id, name)
            assert v.shape == (1, 4) and np.isfinite(v).all(), name


def test_monitor_grad_norm_is_the_steps_gradient():
    model = make_model()
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = data(64)
    with sgdlab.Monitor(model, loss_fn, opt, noise_every=0) as mon:
        model.eval()
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        expected = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in model.parameters()))
        opt.step()
        mon.step(x, y, loss)
    assert mon.summary()["grad_norm"] == pytest.approx(float(expected), rel=1e-12)


def test_failed_loop_is_stored_as_failed(tmp_path):
    path = tmp_path / "m.duckdb"
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = data(32)
    with (
        pytest.raises(RuntimeError),
        sgdlab.Monitor(model, nn.CrossEntropyLoss(), opt, store=path, every=1) as mon,
    ):
        mon.step(x, y, 1.0)
        raise RuntimeError("user bug")
    with Store(path, read_only=True) as db:
        info = db.run(mon.run_id)
        assert info["status"] == "failed" and "user bug" in info["error"]
        assert db.metric(mon.run_id, "loss")[1].shape == (1, 1)


def test_bad_cadence():
    with pytest.raises(ValueError, match="every"):
        sgdlab.Monitor(make_model(), nn.CrossEntropyLoss(), every=0)


def test_example_script_runs(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "examples" / "monitor_mlp.py"
    store = tmp_path / "m.duckdb"
    proc = subprocess.run([sys.executable, str(script), "--store", str(store), "--epochs", "1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "B_simple" in proc.stdout
    with Store(store, read_only=True) as db:
        (row,) = db.runs()
        assert row["status"] == "complete" and row["kind"] == "monitor"


def test_full_batch_with_population_gives_the_exact_noise_scale_and_takes_lists():
    """The whole dataset as the batch, ``population=N``: |ḡ|² = |∇F|² exactly, so the recorded
    B_simple must equal tr Σ / |∇F|² of the dataset (1/N covariance) and the temperature has
    no minibatch noise at all (b = N without replacement). Inputs may come as a list."""
    model = make_model().double().eval()
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = data(64)
    x = x.double()
    grads = [
        torch.cat([g.reshape(-1) for g in torch.autograd.grad(
            loss_fn(model(x[i : i + 1]), y[i : i + 1]), list(model.parameters()))])
        for i in range(len(x))
    ]  # fmt: skip
    G = torch.stack(grads)
    mean = G.mean(0)
    trace_sigma = float(((G - mean) ** 2).sum(1).mean())  # 1/N: the dataset's own covariance
    exact = trace_sigma / float(mean @ mean)
    with sgdlab.Monitor(model, loss_fn, opt, every=1, noise_every=1, population=len(x)) as mon:
        loss = loss_fn(model([x][0]), y)
        opt.zero_grad()
        loss.backward()
        mon.step([x], y, loss)  # a list of inputs, as a loader may give
    got = mon.summary()
    assert got["b_simple"] == pytest.approx(exact, rel=1e-9)
    assert got["noise_scale"] == pytest.approx(exact, rel=1e-9)  # b = N: |ḡ|² is exact
    assert got["temperature"] == pytest.approx(0.0, abs=1e-15)

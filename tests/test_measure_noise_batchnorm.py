"""gradient_noise on a train-mode BatchNorm model measures the function being trained.

Covers: ``sgdlab.measure.noise.stats`` (``mode="auto"``, the BatchNorm warning) and
``sgdlab.measure.noise._microbatch`` (micro-batch estimator, buffers restored), against a
hand-written reference in float64.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn

from sgdlab.measure import gradient_noise

F64 = torch.float64


def bn_cnn() -> nn.Module:
    torch.manual_seed(0)  # test-side initialisation only
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3)
    ).double()


def data(n: int = 20):
    g = torch.Generator().manual_seed(2)
    return torch.randn(n, 1, 6, 6, generator=g, dtype=F64), torch.randint(0, 3, (n,), generator=g)


def reference(model: nn.Module, x, y, k: int):
    """Micro-batch gradients computed by hand on a copy, in train mode."""
    net = copy.deepcopy(model).train()
    m = x.shape[0] // k
    hs, losses = [], []
    for j in range(k):
        loss = nn.functional.cross_entropy(net(x[j * m : (j + 1) * m]), y[j * m : (j + 1) * m])
        gs = torch.autograd.grad(loss, list(net.parameters()))
        hs.append(torch.cat([g.reshape(-1) for g in gs]))
        losses.append(float(loss.detach()))
    h = torch.stack(hs)
    return h, m, sum(losses) / k


def test_train_mode_batchnorm_warns_once_and_uses_micro_batches() -> None:
    model = bn_cnn().train()
    x, y = data()
    running = model[1].running_mean.clone(), model[1].running_var.clone()
    tracked = int(model[1].num_batches_tracked)
    with pytest.warns(RuntimeWarning, match="batch statistics") as rec:
        st = gradient_noise(model, nn.CrossEntropyLoss(), x, y, micro_batches=4)
    assert len([w for w in rec if "batch statistics" in str(w.message)]) == 1
    h, m, loss = reference(model, x, y, 4)
    assert st.micro_batch == m == 5 and st.n == 20
    assert set(st.method.values()) == {"microbatch"} and st.mode == "train"
    want_trace = m * float(h.var(0).sum())  # tr Σ̂ = m · tr Cov(h)
    assert abs(st.trace_cov - want_trace) <= 1e-12 * want_trace
    want_g2 = float(h.mean(0).pow(2).sum())
    assert abs(st.grad_norm_sq - want_g2) <= 1e-12 * want_g2
    assert abs(st.loss - loss) <= 1e-12 * loss
    assert abs(st.mean_variance - float(h.var(0).sum()) / 4) <= 1e-12 * st.mean_variance
    # nothing changed: running statistics, the counter, the modes
    assert torch.equal(model[1].running_mean, running[0])
    assert torch.equal(model[1].running_var, running[1])
    assert int(model[1].num_batches_tracked) == tracked and model.training


def test_the_function_measured_is_the_one_being_trained() -> None:
    """Train mode (batch statistics) and eval mode (running statistics) are different
    functions: the default measures the first; mode='eval' the second, per sample, exactly."""
    model = bn_cnn().train()
    x, y = data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        trained = gradient_noise(model, nn.CrossEntropyLoss(), x, y, micro_batches=4)
    ev = gradient_noise(model, nn.CrossEntropyLoss(), x, y, mode="eval")
    assert ev.micro_batch == 1 and ev.method["1.weight"] == "batchnorm"
    net = copy.deepcopy(model).eval()
    want = float(nn.functional.cross_entropy(net(x), y).detach())
    assert abs(ev.loss - want) <= 1e-12 * want
    assert abs(trained.loss - ev.loss) > 1e-3 * ev.loss  # not the same function


def test_too_few_samples_per_micro_batch_is_a_clear_error() -> None:
    model = bn_cnn().train()
    x, y = data(6)
    with pytest.raises(ValueError, match="at least 2 samples per micro-batch"):
        gradient_noise(model, nn.CrossEntropyLoss(), x, y, micro_batches=4)
    with pytest.raises(ValueError, match="micro_batches must be an integer"):
        gradient_noise(model, nn.CrossEntropyLoss(), x, y, micro_batches=1)

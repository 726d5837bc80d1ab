"""First-use validation of the per-sample fast path: layouts one batch cannot reveal.

Covers: per_sample_validate (``sgdlab.measure.noise._validate``) through
``per_sample_stats``.
"""

from __future__ import annotations

import torch
from torch import nn

import sgdlab.measure.noise._validate as V
from sgdlab.measure.noise.per_sample import per_sample_grads, per_sample_stats, stats_from_grads

F64 = torch.float64


class SequenceFirst(nn.Module):
    """Input ``[B, T, I]`` transposed to ``[T, B, I]`` before its Linear: dim 0 of the layer is
    time, not the sample."""

    def __init__(self, dim: int = 4) -> None:
        super().__init__()
        self.lin = nn.Linear(dim, 5)
        self.head = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.lin(x.transpose(0, 1)))  # [T, B, 5]
        return self.head(h.mean(0))


class Flattened(nn.Module):
    """Samples and positions merged into dim 0 before the Linear (``[B·T, I]``)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, I = x.shape
        return self.lin(x.reshape(B * T, I)).reshape(B, T, 3).mean(1)


def seq_data(n: int, t: int):
    g = torch.Generator().manual_seed(4)
    return torch.randn(n, t, 4, generator=g, dtype=F64), torch.randint(0, 3, (n,), generator=g)


def assert_matches_loop(model, loss_fn, x, y) -> None:
    fast = per_sample_stats(model, loss_fn, x, y)
    ref = stats_from_grads(per_sample_grads(model, loss_fn, x, y))
    for k in fast.norm_sq:
        torch.testing.assert_close(fast.norm_sq[k], ref.norm_sq[k], rtol=1e-6, atol=1e-12)
        torch.testing.assert_close(fast.sq_sum[k], ref.sq_sum[k], rtol=1e-6, atol=1e-12)


def test_time_major_layer_with_as_many_steps_as_samples_goes_to_the_fallback() -> None:
    """T = B = 6: every shape looks batch-first, yet the layer's dim 0 is time."""
    torch.manual_seed(0)  # test-side initialisation only
    model = SequenceFirst().double()
    x, y = seq_data(6, 6)
    assert_matches_loop(model, nn.CrossEntropyLoss(), x, y)
    method = per_sample_stats(model, nn.CrossEntropyLoss(), x, y).method
    assert method["lin.weight"] == "vmap" and method["head.weight"] == "linear"


def test_samples_merged_with_positions_go_to_the_fallback() -> None:
    torch.manual_seed(0)  # test-side initialisation only
    model = Flattened().double()
    x, y = seq_data(5, 3)
    assert_matches_loop(model, nn.CrossEntropyLoss(), x, y)
    assert per_sample_stats(model, nn.CrossEntropyLoss(), x, y).method["lin.weight"] == "vmap"


def test_validation_runs_once_and_leaves_no_trace(monkeypatch) -> None:
    """Cached per (model, loss, signature); RNG state, modes and ``.grad`` untouched."""
    calls = []
    real = V._validate
    monkeypatch.setattr(V, "_validate", lambda *a, **k: calls.append(1) or real(*a, **k))
    torch.manual_seed(0)  # test-side initialisation only
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 6), Jitter(0.0), nn.Linear(6, 3))
    model = model.double()  # Jitter draws from the global RNG (without effect at scale 0)
    model[2].eval()  # a submodule in a mode of its own: restored as it was
    loss_fn = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(6)
    x, y = torch.randn(10, 8, generator=g, dtype=F64), torch.randint(0, 3, (10,), generator=g)
    state = torch.get_rng_state()
    per_sample_stats(model, loss_fn, x, y)  # the check, then the measurement
    after_check = torch.get_rng_state()
    assert len(calls) == 1
    assert model.training and not model[2].training and model[1].training
    assert all(p.grad is None for p in model.parameters())
    torch.set_rng_state(state)
    per_sample_stats(model, loss_fn, x, y)  # same signature: cached, the measurement only
    assert len(calls) == 1
    assert torch.equal(torch.get_rng_state(), after_check)  # the check's draws were forked
    per_sample_stats(model, loss_fn, x * 2, y)  # same signature: cached
    assert len(calls) == 1
    per_sample_stats(model, loss_fn, x.reshape(10, 2, 4), y)  # new signature
    assert len(calls) == 2


class Jitter(nn.Module):
    """Adds scale·N(0, 1) noise from the global RNG in every mode (a custom stochastic layer)."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.scale * torch.randn(x.shape, dtype=x.dtype)


def test_a_model_with_noise_of_its_own_is_not_refused() -> None:
    """Its gradients differ from pass to pass: the check compares layouts only."""
    torch.manual_seed(0)  # test-side initialisation only
    model = nn.Sequential(nn.Linear(4, 6), Jitter(0.3), nn.Tanh(), nn.Linear(6, 3)).double()
    x, y = seq_data(8, 1)
    st = per_sample_stats(model, nn.CrossEntropyLoss(), x[:, 0], y)
    assert set(st.method.values()) == {"linear"}


class TrainOnlyHead(nn.Module):
    """Returns ``(logits, aux)`` in train mode only; ``aux`` is time-major with T = B."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(4, 3)
        self.aux = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor):
        logits = self.body(x.mean(1))
        if not self.training:
            return logits
        return logits, self.aux(x.transpose(0, 1)).mean(0)


def test_checked_in_the_callers_mode() -> None:
    """Train-only outputs and branches are seen by the check (it does not switch to eval)."""
    torch.manual_seed(0)  # test-side initialisation only
    model = TrainOnlyHead().double()

    def loss_fn(out, t):
        logits, aux = out
        return nn.functional.cross_entropy(logits, t) + nn.functional.cross_entropy(aux, t)

    x, y = seq_data(4, 4)
    assert_matches_loop(model, loss_fn, x, y)
    assert per_sample_stats(model, loss_fn, x, y).method["aux.weight"] == "vmap"


def test_shared_inputs_and_slotted_bound_method_losses() -> None:
    """An input without a batch dim (shared by all samples) is passed whole; a bound method
    of an object that cannot be weakly referenced is held strongly."""
    from dataclasses import dataclass

    @dataclass(slots=True)
    class Criterion:
        weight: float = 1.0

        def loss(self, out, t):
            return self.weight * nn.functional.cross_entropy(out, t)

    class WithShared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            return self.lin(x @ w)

    torch.manual_seed(0)  # test-side initialisation only
    model = WithShared().double()
    x, y = seq_data(6, 1)
    w = torch.eye(4, dtype=F64) * 2.0
    fast = per_sample_stats(model, Criterion().loss, (x[:, 0], w), y)
    assert fast.method["lin.weight"] == "linear"
    want = torch.stack([
        torch.autograd.grad(Criterion().loss(model(x[i : i + 1, 0], w), y[i : i + 1]),
                            model.lin.weight)[0].pow(2).sum()
        for i in range(6)
    ])  # fmt: skip
    torch.testing.assert_close(fast.norm_sq["lin.weight"], want)


def test_cache_does_not_keep_a_model_alive_and_knows_bound_methods(monkeypatch) -> None:
    """A loss closure that captures its model (an L2 penalty) must not pin the model in the
    cache; a bound-method loss is one loss, though each access makes a new method object."""
    import gc
    import weakref

    calls = []
    real = V._validate
    monkeypatch.setattr(V, "_validate", lambda *a, **k: calls.append(1) or real(*a, **k))
    g = torch.Generator().manual_seed(7)
    x, y = torch.randn(6, 4, generator=g, dtype=F64), torch.randint(0, 3, (6,), generator=g)

    def measure_once() -> weakref.ref:
        torch.manual_seed(0)  # test-side initialisation only
        model = nn.Sequential(nn.Linear(4, 3)).double()

        def penalized(out, t):
            return nn.functional.cross_entropy(out, t) + 1e-3 * model[0].weight.pow(2).sum()

        per_sample_stats(model, penalized, x, y)
        return weakref.ref(model)

    alive = measure_once()
    gc.collect()
    assert alive() is None

    class Trainer:
        def __init__(self) -> None:
            self.net = nn.Sequential(nn.Linear(4, 3)).double()

        def loss(self, out, t):
            return nn.functional.cross_entropy(out, t)

    trainer = Trainer()
    for _ in range(3):
        per_sample_stats(trainer.net, trainer.loss, x, y)
    assert len(calls) == 2  # once for the closure's model, once for the trainer

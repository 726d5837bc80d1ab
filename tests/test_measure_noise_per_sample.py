"""Per-sample fast path and vmap fallback against a loop of single-sample backward passes.

Covers: ``sgdlab.measure.noise.per_sample`` and its private helpers per_sample_layers and
per_sample_vmap.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sgdlab.measure.noise.per_sample import per_sample_grads, per_sample_stats, stats_from_grads

FIELDS = ("grad_sum", "sq_sum", "norm_sq", "dot")


class Scale(nn.Module):
    """A custom parametric module (no fast path)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x * self.scale)


class SeqNet(nn.Module):
    """Embedding with repeated and padding indices, a Linear called twice, a Conv1d."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(6, 4, padding_idx=0)
        self.lin = nn.Linear(4, 3)
        self.conv = nn.Conv1d(4, 3, 3, padding=1, stride=2)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        e = self.emb(idx)
        h = self.lin(e) + self.lin(torch.sin(e))
        c = self.conv(e.transpose(1, 2))
        return h.mean(1) + c.mean(-1)


class TiedOutside(nn.Module):
    """A Linear whose weight is also used outside its forward (must fall back, stay exact)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(5, 5)
        self.b = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.a(x))
        return self.b(h + torch.nn.functional.linear(h, self.a.weight))


class SharedFlat(nn.Module):
    """A Linear applied twice to ``[B, in]`` inputs: its calls become positions."""

    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.Linear(5, 5)
        self.out = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.shared(x)) + self.shared(torch.sin(x)))


def mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(5, 8), nn.ReLU(inplace=True), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 3)
    )


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1, stride=2),
        nn.ReLU(),
        nn.Conv2d(3, 4, 2, dilation=1),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 3),
    )


def mixed() -> nn.Module:
    return nn.Sequential(nn.Linear(5, 7), nn.LayerNorm(7), Scale(7), nn.Linear(7, 3))


def data(kind: str, n: int = 11):
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 3, (n,), generator=g)
    if kind == "cnn":
        return torch.randn(n, 2, 7, 7, generator=g, dtype=torch.float64), y
    if kind == "seq":
        return torch.randint(0, 6, (n, 5), generator=g), y
    return torch.randn(n, 5, generator=g, dtype=torch.float64), y


CASES = {
    "mlp": mlp,
    "cnn": cnn,
    "mixed": mixed,
    "seq": SeqNet,
    "tied": TiedOutside,
    "shared": SharedFlat,
}


#: float64 agreement of the fast path (and vmap) with the per-sample loop: both sum the same
#: O(n·d) products in different orders, so they differ by a few units of ε ≈ 2.2e-16 times the
#: number of terms (≤ ~1e3 here): 1e-12 relative; measured worst case 6e-14.
RTOL64, ATOL64 = 1e-12, 1e-15


def build(name: str) -> nn.Module:
    torch.manual_seed(0)  # test-side initialisation only
    return CASES[name]().double()


def assert_match(fast, ref) -> None:
    assert fast.n == ref.n
    for field in FIELDS:
        a, b = getattr(fast, field), getattr(ref, field)
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=RTOL64, atol=ATOL64, msg=f"{field}[{k}]")


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("train", [False, True])
def test_fast_path_matches_brute_force(name: str, train: bool) -> None:
    model = build(name).train(train)
    x, y = data("cnn" if name == "cnn" else "seq" if name == "seq" else "vec")
    loss_fn = nn.CrossEntropyLoss()
    fast = per_sample_stats(model, loss_fn, x, y, reference="mean")
    ref = stats_from_grads(per_sample_grads(model, loss_fn, x, y), reference="mean")
    assert_match(fast, ref)
    assert model.training is train


def test_methods_chosen_per_layer() -> None:
    x, y = data("vec")
    m = per_sample_stats(build("mixed"), nn.CrossEntropyLoss(), x, y).method
    assert m == {
        "0.weight": "linear",
        "0.bias": "linear",
        "1.weight": "layernorm",
        "1.bias": "layernorm",
        "2.scale": "vmap",
        "3.weight": "linear",
        "3.bias": "linear",
    }
    s = per_sample_stats(build("seq"), nn.CrossEntropyLoss(), *data("seq")).method
    assert s["emb.weight"] == "embedding" and s["conv.weight"] == "conv"
    t = per_sample_stats(build("tied"), nn.CrossEntropyLoss(), x, y).method
    assert t["a.weight"] == "vmap" and t["b.weight"] == "linear"
    u = per_sample_stats(build("shared"), nn.CrossEntropyLoss(), x, y).method
    assert set(u.values()) == {"linear"}


def test_vmap_reference_and_chunks_match_loop() -> None:
    model = build("mixed")
    x, y = data("vec")
    loss_fn = nn.CrossEntropyLoss()
    loop = per_sample_grads(model, loss_fn, x, y, method="loop")
    vm = per_sample_grads(model, loss_fn, x, y, method="vmap", chunk_size=4)
    for k in loop:
        torch.testing.assert_close(vm[k], loop[k], rtol=RTOL64, atol=ATOL64)
    fast = per_sample_stats(model, loss_fn, x, y, reference="mean", chunk_size=3)
    assert_match(fast, stats_from_grads(loop, reference="mean"))


def test_frozen_parameters_no_bias_and_explicit_reference() -> None:
    model = nn.Sequential(nn.Linear(5, 6, bias=False), nn.Tanh(), nn.Linear(6, 3)).double()
    model[2].weight.requires_grad_(False)
    x, y = data("vec")
    loss_fn = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(3)
    ref = {
        "0.weight": torch.randn(6, 5, generator=g, dtype=torch.float64),
        "2.bias": torch.randn(3, generator=g, dtype=torch.float64),
    }
    fast = per_sample_stats(model, loss_fn, x, y, reference=ref)
    assert set(fast.grad_sum) == {"0.weight", "2.bias"}
    assert_match(fast, stats_from_grads(per_sample_grads(model, loss_fn, x, y), reference=ref))


def test_grad_untouched_or_accumulated_like_backward() -> None:
    model = build("mixed")
    x, y = data("vec")
    loss_fn = nn.CrossEntropyLoss()
    per_sample_stats(model, loss_fn, x, y)
    assert all(p.grad is None for p in model.parameters())
    assert not any(m._forward_hooks for m in model.modules())
    per_sample_stats(model, loss_fn, x, y, backward=True)
    got = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    loss_fn(model(x), y).backward()
    for a, b in zip(got, [p.grad for p in model.parameters()], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-14)


class WithUnused(nn.Module):
    """A parameter outside the loss's graph (an unused head)."""

    def __init__(self) -> None:
        super().__init__()
        self.used = nn.Linear(5, 3)
        self.unused = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.used(x)


@pytest.mark.parametrize("method", ["auto", "loop", "vmap"])
def test_backward_leaves_unused_parameters_without_grad(method: str) -> None:
    """As ``loss.backward()``: an optimizer skips parameters whose ``.grad`` is None (AdamW
    would otherwise decay and move them)."""
    torch.manual_seed(0)  # test-side initialisation only
    model = WithUnused().double()
    x, y = data("vec")
    st = per_sample_stats(model, nn.CrossEntropyLoss(), x, y, backward=True, method=method)
    assert model.unused.weight.grad is None and model.unused.bias.grad is None
    assert model.used.weight.grad is not None
    assert float(st.sq_sum["unused.weight"].abs().sum()) == 0.0


def test_reference_methods_with_backward_draw_only_what_their_passes_draw() -> None:
    """Finding the parameters outside the graph costs a pass whose dropout draws are forked."""
    torch.manual_seed(0)  # test-side initialisation only
    model = nn.Sequential(nn.Linear(5, 6), nn.Dropout(0.3), nn.Linear(6, 3)).double()
    x, y = data("vec")
    states = []
    for backward in (False, True):
        torch.manual_seed(11)
        per_sample_stats(model, nn.CrossEntropyLoss(), x, y, method="loop", backward=backward)
        states.append(torch.get_rng_state())
    assert torch.equal(*states)


class KeywordCall(nn.Module):
    """A Linear called with its input by keyword: the hook sees no positional input."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(5, 4)
        self.b = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.tanh(self.a(input=x)))


def test_module_called_by_keyword_falls_back_and_stays_exact() -> None:
    torch.manual_seed(0)  # test-side initialisation only
    model = KeywordCall().double()
    x, y = data("vec")
    loss_fn = nn.CrossEntropyLoss()
    fast = per_sample_stats(model, loss_fn, x, y, reference="mean")
    assert fast.method["a.weight"] == "vmap" and fast.method["b.weight"] == "linear"
    ref = stats_from_grads(per_sample_grads(model, loss_fn, x, y), reference="mean")
    assert_match(fast, ref)


def test_vmap_method_honours_chunk_size(monkeypatch) -> None:
    import sgdlab.measure.noise._fallback as fb

    sizes: list[int] = []
    real = fb._vmap_grads

    def spy(model, x, cots, names, per_sample):
        sizes.append(x[0].shape[0])
        return real(model, x, cots, names, per_sample)

    monkeypatch.setattr(fb, "_vmap_grads", spy)
    x, y = data("vec")  # 11 samples
    per_sample_stats(build("mlp"), nn.CrossEntropyLoss(), x, y, method="vmap", chunk_size=4)
    assert sizes == [4, 4, 3]


def test_batchnorm_train_mode_refused_eval_mode_exact() -> None:
    model = nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.Linear(6, 3)).double()
    x, y = data("vec")
    with pytest.raises(ValueError, match="BatchNorm"):
        per_sample_stats(model, nn.CrossEntropyLoss(), x, y)
    model.eval()
    fast = per_sample_stats(model, nn.CrossEntropyLoss(), x, y, reference="mean")
    ref = per_sample_grads(model, nn.CrossEntropyLoss(), x, y)
    assert_match(fast, stats_from_grads(ref, reference="mean"))


def test_merge_equals_one_pass() -> None:
    model = build("mlp")
    x, y = data("vec", n=12)
    loss_fn = nn.CrossEntropyLoss()
    g = {k: v / 12 for k, v in per_sample_stats(model, loss_fn, x, y).grad_sum.items()}
    parts = [
        per_sample_stats(model, loss_fn, x[s:e], y[s:e], reference=g) for s, e in ((0, 5), (5, 12))
    ]
    assert_match(parts[0].merge(parts[1]), per_sample_stats(model, loss_fn, x, y, reference=g))


class TwoInputs(nn.Module):
    """Tuple inputs, an unused layer, Conv1d with padding 'valid' (fast) and 'same' (vmap)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.unused = nn.Linear(3, 4), nn.Linear(2, 4), nn.Linear(2, 2)
        self.c1 = nn.Conv1d(2, 3, 3, padding="valid")
        self.c2 = nn.Conv1d(2, 3, 3, padding="same")

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h = self.a(x) + self.b(z)
        zz = z.unsqueeze(-1).expand(-1, -1, 5)
        return (h**2).mean(-1) + self.c1(zz).mean((1, 2)) + self.c2(zz).mean((1, 2))


def test_tuple_inputs_no_targets_unused_and_padding_modes() -> None:
    torch.manual_seed(0)
    model = TwoInputs().double()
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(7, 3, generator=gen, dtype=torch.float64)
    z = torch.randn(7, 2, generator=gen, dtype=torch.float64)
    loss_fn = lambda out: out.mean()  # noqa: E731  (targets=None: loss_fn(model(*inputs)))
    fast = per_sample_stats(model, loss_fn, (x, z), None, reference="mean")
    ref = stats_from_grads(per_sample_grads(model, loss_fn, (x, z), None), reference="mean")
    assert_match(fast, ref)
    m = fast.method
    assert m["c1.weight"] == "conv" and m["c2.weight"] == "vmap" and m["unused.bias"] == "unused"


def test_loss_reading_model_parameters_is_differentiated_per_sample():
    """A loss with an L2 penalty on the model's own weights (a closure over the model): the
    fallback must differentiate the penalty per sample too, so the statistics match the loop."""
    from sgdlab.measure import gradient_noise, per_sample_grads

    torch.manual_seed(0)  # test-side only
    model = nn.Linear(4, 3).double()

    def penalized(out, y):
        return nn.functional.cross_entropy(out, y) + 0.05 * (model.weight**2).sum()

    x = torch.randn(12, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (12,))
    loop = per_sample_grads(model, penalized, x, y, method="loop")
    flat = torch.cat([g.reshape(12, -1) for g in loop.values()], dim=1)
    stats = gradient_noise(model, penalized, x, y)
    assert abs(stats.trace_cov - float(flat.var(0).sum())) < 1e-9 * float(flat.var(0).sum())
    assert abs(stats.grad_norm_sq - float(flat.mean(0).pow(2).sum())) < 1e-9 * stats.grad_norm_sq


def test_layers_of_different_dtypes_are_checked_separately() -> None:
    """A float64 layer feeding a float32 one: the checks cannot share one reduction (different
    dtypes and tolerances), each layer still takes the fast path and matches the loop."""

    class Mixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(5, 6).double()
            self.b = nn.Linear(6, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(torch.tanh(self.a(x)).float())

    torch.manual_seed(0)  # test-side initialisation only
    model = Mixed()
    x, y = data("vec")
    loss_fn = nn.CrossEntropyLoss()
    fast = per_sample_stats(model, loss_fn, x, y)
    assert set(fast.method.values()) == {"linear"}
    ref = stats_from_grads(per_sample_grads(model, loss_fn, x, y))
    for k in fast.sq_sum:  # float32 layer: float32 rounding
        torch.testing.assert_close(fast.sq_sum[k], ref.sq_sum[k], rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(fast.norm_sq[k], ref.norm_sq[k], rtol=1e-5, atol=1e-7)

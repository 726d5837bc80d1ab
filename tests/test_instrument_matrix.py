"""The instrument on the models people train × the loops they write (issue 14).

Each cell trains a tiny model of one family with one loop pattern twice — without and with a
``Monitor`` (every step recorded, noise measured at every step) — and asserts:

* training went on (every step ran) and the trajectory is bit-identical to the plain run;
* ``grad_norm`` is the norm of the gradient the optimizer step used (computed by the loop
  itself just before ``optimizer.step()``), also when ``zero_grad()`` follows the step;
* ``batch_size`` is the effective batch (accumulation: 2 × the micro-batch);
* the noise numbers equal a reference computed afterwards at the parameters the Monitor saw
  (snapshotted by a sink): tr Σ̂ from a Python loop of single-sample backward passes, or, for
  BatchNorm in train mode, the micro-batch two-batch formulas written out plainly here; the
  temperature from its formula with the effective batch;
* or, where the instrument cannot measure, a clear warning and the measurement off, with the
  rest recorded.

Precision: the models run in float64 (the autocast cells in float32, which autocast casts to
bfloat16 in the user's forward; the Monitor measures outside autocast in float32). The fast
path and the reference differ only by rounding: in float64 each per-coordinate variance
(Σ g² − n ḡ²)/(n − 1) carries a relative error ≲ (n + log d)·ε·(1 + GSNR) ≈ 20·2.2e-16·10 at
these initial parameters, so rel 1e-9 leaves a wide margin yet catches any wrong formula
(a wrong normalization is ≥ 1/n = 12%). In float32, ε = 1.2e-7 gives ≈ 2e-5: rel 1e-4.
"""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch
from torch import nn

import sgdlab

B, STEPS, LR, MOMENTUM = 8, 3, 0.05, 0.9


# --------------------------------------------------------------------------- families
class Recurrent(nn.Module):
    def __init__(self, cell: type[nn.Module]) -> None:
        super().__init__()
        self.rnn = cell(4, 6, batch_first=True)
        self.head = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0][:, -1])


class Encoder(nn.Module):
    def __init__(self, causal: bool = False, vocab: int = 11) -> None:
        super().__init__()
        self.causal = causal
        self.emb = nn.Embedding(vocab, 16)
        layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(16, vocab if causal else 3)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.emb(tokens)
        if self.causal:
            mask = nn.Transformer.generate_square_subsequent_mask(tokens.shape[1])
            return self.head(self.enc(h, mask=mask.to(h.dtype), is_causal=True))
        return self.head(self.enc(h).mean(1))


def _cnn(norm: nn.Module) -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3), norm, nn.ReLU(), nn.Flatten(), nn.Linear(64, 3))


def token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Token-level cross-entropy, mean over the non-padded tokens of the batch."""
    return nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)


FAMILIES = {
    "mlp": lambda: nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3)),
    "bn_cnn": lambda: _cnn(nn.BatchNorm2d(4)),
    "gn_cnn": lambda: _cnn(nn.GroupNorm(2, 4)),
    "transformer": lambda: Encoder(),
    "gpt_pad": lambda: Encoder(causal=True),
    "lstm": lambda: Recurrent(nn.LSTM),
    "gru": lambda: Recurrent(nn.GRU),
}


def build(family: str, dtype: torch.dtype) -> nn.Module:
    torch.manual_seed(0)  # test-side: identical initial weights for both runs
    return FAMILIES[family]().to(dtype)


def batch(family: str, t: int, n: int, dtype: torch.dtype):
    g = torch.Generator().manual_seed(100 + t)
    if family == "mlp":
        return torch.randn(n, 6, generator=g, dtype=dtype), torch.randint(0, 3, (n,), generator=g)
    if family in ("bn_cnn", "gn_cnn"):
        x = torch.randn(n, 1, 6, 6, generator=g, dtype=dtype)
        return x, torch.randint(0, 3, (n,), generator=g)
    if family in ("lstm", "gru"):
        x = torch.randn(n, 5, 4, generator=g, dtype=dtype)
        return x, torch.randint(0, 3, (n,), generator=g)
    tokens = torch.randint(0, 11, (n, 6), generator=g)
    if family == "transformer":
        return tokens, torch.randint(0, 3, (n,), generator=g)
    targets = torch.roll(tokens, -1, 1)
    targets[:, -1] = -100
    targets[n - 2 :, 3:] = -100  # padding first appears in the last samples (issue 14, item 4)
    return tokens, targets


def loss_of(family: str):
    return token_loss if family == "gpt_pad" else nn.CrossEntropyLoss()


class DictCall(nn.Module):
    """An HF-style model: ``model(**batch)`` → ``{"loss", "logits"}`` (labels in the batch)."""

    def __init__(self, inner: nn.Module, loss_fn) -> None:
        super().__init__()
        self.inner, self.loss_fn = inner, loss_fn

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.inner(inputs)
        return {"loss": self.loss_fn(logits, labels), "logits": logits}


# --------------------------------------------------------------------------- the loops
def train(family: str, pattern: str, monitored: bool):
    """Run the loop; returns (model, monitor, per-step grad norms the loop saw, snapshots)."""
    dtype = torch.float32 if pattern == "autocast" else torch.float64
    inner = build(family, dtype)
    loss_fn = loss_of(family)
    model: nn.Module = DictCall(inner, loss_fn) if pattern == "dict" else inner
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    snaps: dict[int, tuple] = {}
    current: list = [None]

    def sink(step: int, scalars: dict[str, float]) -> None:
        if "trace_cov" in scalars or "noise_scale" in scalars:
            snaps[step] = (copy.deepcopy(inner.state_dict()), current[0], dict(scalars))

    k = 2 if pattern == "accumulation" else 1
    kwargs = {"accumulation_steps": k} if k > 1 else {}
    if pattern == "dict":  # HF style: the Monitor's loss from the logits and the labels
        mon_loss = lambda out, labels: loss_fn(out["logits"], labels)  # noqa: E731
    else:
        mon_loss = loss_fn
    mon = (
        sgdlab.Monitor(model, mon_loss, opt, every=1, noise_every=1, sinks=[sink], **kwargs)
        if monitored
        else None
    )
    norms = []
    if mon is not None:
        mon.start()
    for t in range(STEPS):
        for j in range(k):
            x, y = batch(family, k * t + j, B, dtype)
            if pattern == "autocast":
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    loss = loss_fn(model(x), y)
            elif pattern == "dict":
                loss = model(inputs=x, labels=y)["loss"]
            else:
                loss = loss_fn(model(x), y)
            if pattern == "plain":
                opt.zero_grad()
            (loss / k).backward()
        norms.append(math.sqrt(sum(float(p.grad.double().pow(2).sum())
                                   for p in model.parameters() if p.grad is not None)))  # fmt: skip
        opt.step()
        if pattern != "plain":
            opt.zero_grad()
        current[0] = (x, y)
        if mon is not None:
            step_inputs = {"inputs": x, "labels": y} if pattern == "dict" else x
            step_targets = y
            if pattern == "autocast":
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    mon.step(step_inputs, step_targets, loss)
            else:
                mon.step(step_inputs, step_targets, loss)
    if mon is not None:
        mon.close()
    return model, mon, norms, snaps


# --------------------------------------------------------------------------- references
def per_sample_reference(model, loss_fn, x, y, token_level: bool = False) -> float:
    """tr Σ̂ from a loop of single-sample backward passes (eval mode, unbiased 1/(n − 1)).

    A token-level loss with padding is the mean over the batch's N non-padded tokens, so
    sample i's gradient under the loss's own normalization is n/N · ∇(its token sum) =
    (n N_i / N) · ∇(its own token mean): the g_i whose mean is the batch gradient."""
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    n = x.shape[0]
    tokens = (y != -100).sum(1).double() if token_level else None
    gs = []
    for i in range(n):
        loss = loss_fn(model(x[i : i + 1]), y[i : i + 1])
        g = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)]).double()
        if tokens is not None:
            g = g * (n * tokens[i] / tokens.sum())
        gs.append(g)
    G = torch.stack(gs)
    return float((G - G.mean(0)).pow(2).sum() / (len(gs) - 1))


def micro_batch_reference(model, loss_fn, x, y, k: int = 4) -> tuple[float, float]:
    """(tr Σ, |G|²) two-batch estimates from k micro-batches in train mode, written out."""
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    m = x.shape[0] // k
    gs = []
    for j in range(k):
        loss = loss_fn(model(x[j * m : (j + 1) * m]), y[j * m : (j + 1) * m])
        gs.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)]).double())
    small = sum(float(g @ g) for g in gs) / k
    mean = sum(gs) / k
    big = float(mean @ mean)
    trace = (small - big) / (1 / m - 1 / (k * m))
    g2 = (k * m * big - m * small) / (k * m - m)
    return trace, g2


# --------------------------------------------------------------------------- the matrix
PATTERNS = ["plain", "zero_grad_after", "accumulation", "autocast", "dict"]

#: cells where the per-sample machinery cannot measure (the Monitor warns, turns the noise
#: measurement off, and records the rest); every other cell must give numbers
CANNOT_MEASURE: dict[tuple[str, str], str] = {}

SLOW_FAMILIES = {"gpt_pad", "lstm", "gru"}


#: families whose per-sample statistics need 14-measure's RNN and padding support (added
#: to the matrix once it is on main)
PENDING: set[str] = set()


def cells():
    for family in (f for f in FAMILIES if f not in PENDING):
        for pattern in PATTERNS:
            marks = [pytest.mark.slow] if family in SLOW_FAMILIES and pattern != "plain" else []
            yield pytest.param(family, pattern, id=f"{family}-{pattern}", marks=marks)


@pytest.mark.parametrize(("family", "pattern"), list(cells()))
def test_cell(family: str, pattern: str) -> None:
    plain, _, plain_norms, _ = train(family, pattern, monitored=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        watched, mon, norms, snaps = train(family, pattern, monitored=True)
    messages = [str(w.message) for w in caught]
    # training went on, and the Monitor did not change it
    assert mon.t == STEPS
    for p, q in zip(plain.parameters(), watched.parameters(), strict=True):
        assert torch.equal(p, q)
    assert norms == plain_norms
    # the free metrics: the gradient the step used, the effective batch
    steps, gn = mon.metrics["grad_norm"]
    assert list(steps) == list(range(STEPS))
    torch.testing.assert_close(
        torch.tensor(gn[0], dtype=torch.float64),
        torch.tensor(norms, dtype=torch.float64),
        rtol=1e-12,
        atol=0,
    )
    k = 2 if pattern == "accumulation" else 1
    assert set(mon.metrics["batch_size"][1][0]) == {k * B}
    if (family, pattern) in CANNOT_MEASURE:
        assert "noise" in mon.guard.off
        assert any(CANNOT_MEASURE[(family, pattern)] in m for m in messages), messages
        return
    assert "noise" not in mon.guard.off, mon.guard.off
    assert len(snaps) == STEPS
    rtol = 1e-4 if pattern == "autocast" else 1e-9
    loss_fn = loss_of(family)
    for step, (state, (x, y), scalars) in snaps.items():
        ref_model = build(family, next(iter(state.values())).dtype)
        ref_model.load_state_dict(state)
        if family == "bn_cnn":
            trace, _ = micro_batch_reference(ref_model, loss_fn, x, y)
            assert any("BatchNorm in train mode" in m for m in messages)
        else:
            trace = per_sample_reference(ref_model, loss_fn, x, y, family == "gpt_pad")
        assert scalars["trace_cov"] == pytest.approx(trace, rel=rtol), step
        d = sum(p.numel() for p in ref_model.parameters())
        expected_t = LR / (1 - MOMENTUM) * scalars["trace_cov"] / d / (2 * k * B)
        assert scalars["temperature"] == pytest.approx(expected_t, rel=1e-12)
        assert "noise_scale_lower" in scalars


@pytest.mark.slow
@pytest.mark.parametrize("family", ["mlp", "bn_cnn"])
def test_compiled_model_measured_with_clean_names(family: str) -> None:
    """``torch.compile``: the measurement runs on the module underneath (fast path, the
    user's parameter names) and the trajectory is the compiled model's own."""
    torch._dynamo.reset()
    model = build(family, torch.float32)
    compiled = torch.compile(model, backend="aot_eager")
    loss_fn = loss_of(family)
    opt = torch.optim.SGD(compiled.parameters(), lr=LR)
    with sgdlab.Monitor(compiled, loss_fn, opt, every=1, noise_every=1) as mon:
        for t in range(STEPS):
            x, y = batch(family, t, B, torch.float32)
            loss = loss_fn(compiled(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(x, y, loss)
    assert not mon.guard.off
    assert mon.module is model
    if family == "mlp":
        assert set(mon.last_noise.method) == {n for n, _ in model.named_parameters()}
        assert "vmap" not in set(mon.last_noise.method.values())
    assert "_orig_mod" not in mon.config()["model"]

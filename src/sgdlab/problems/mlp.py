"""Multilayer perceptron classifier, vectorised over chains, with optional dropout.

Layers sizes p → h_1 → … → h_L → C (``widths`` = [h_1, …, h_L]). Layer l has weights
A_l ``[in, out]`` and bias b_l ``[out]``; the flat parameter vector is the concatenation,
layer by layer, of A_l (row-major) then b_l. For K chains each layer is one batched
product ``torch.baddbmm(b_l, h, A_l)`` with ``h [K, b, in]`` and ``A_l [K, in, out]`` (the first
layer is one plain matmul when every chain sees the same batch, as in the full objective):

    h_0 = x,   h_l = drop_l(act(h_{l−1} A_l + b_l)),   logits = h_L A_{L+1} + b_{L+1}
    f(w; x, y) = −log softmax(logits)_y          (``reduction="mean"`` over a batch)

Dropout (probability q) is *inverted* dropout driven by the ``dropout`` stream:
:meth:`MLP.step_noise` asks the engine for uniforms u ``[K, b, h_l]`` under key
``dropout_l{l}`` (l = 1..L; ``dropout_l0`` ``[K, b, p]`` on the inputs with
``input_dropout`` q₀, so ``widths: []`` is logistic regression with dropout), and unit j of
sample i is kept when u ≥ q and then scaled by 1/(1−q), so E[drop(h)] = h. Without ``noise``
(or without a layer's key: the stream is off) the network is deterministic; F, ∇F, ∇²F and Σ
are those of the deterministic net. Dynamic label noise and augmentation are applied to the
batch first (:meth:`ClassifierProblem.noisy_batch`).

Initialisation by default matches PyTorch's ``nn.Linear`` (Kaiming-uniform with a = √5):
weights and biases ~ s·U(−1/√in, 1/√in) with ``init_scale`` s = 1; ``init_distribution:
normal`` draws s·N(0, 1/(3·in)) instead (the same variance). Drawn per layer (weight as
``[out, in]``, then the bias) from the chain's ``init`` generator; with the ``init`` source
off the same draws come from a generator seeded with 0 (a fixed point shared by every chain;
the same as passing ``torch.Generator().manual_seed(0)``).

No closed forms: ∇F, ∇²F and Σ(w) are exact autograd computations over the full dataset
(:mod:`sgdlab.problems.autodiff`); F* and w* are unknown.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field, field_validator
from torch import Tensor
from torch.nn.utils import skip_init

from sgdlab.problems import autodiff
from sgdlab.problems.classifier import ClassifierProblem, _cross_entropy, batched_affine
from sgdlab.problems.datasets import DataParams
from sgdlab.problems.registry import register
from sgdlab.rng import Streams


class MLPParams(DataParams):
    widths: list[int] = Field([32], description="hidden layer sizes, e.g. [64, 32]; [] = linear")
    activation: Literal["relu", "tanh"] = Field("relu", description="hidden nonlinearity")
    dropout: float = Field(
        0.0, ge=0, lt=1, description="dropout probability after each hidden layer"
    )
    input_dropout: float = Field(0.0, ge=0, lt=1, description="dropout probability on the inputs")
    init_scale: float = Field(
        1.0, gt=0, description="initial weights and biases scaled by this factor"
    )
    init_distribution: Literal["uniform", "normal"] = Field(
        "uniform", description="uniform: U(±1/√in) (PyTorch's default); normal: the same "
        "variance, Gaussian"
    )

    @field_validator("widths")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(h <= 0 for h in v):
            raise ValueError("hidden widths must be positive")
        return v


@register
class MLP(ClassifierProblem):
    name = "mlp"
    Params = MLPParams
    summary = "MLP classifier (relu/tanh, dropout via the dropout stream), baddbmm over chains"

    def __init__(self, params: MLPParams, streams: Streams, dtype: torch.dtype) -> None:
        super().__init__(params, streams, dtype)
        self._load(params, streams, dtype)
        self.sizes = [self.n_features, *params.widths, self.n_classes]
        self.layers: list[tuple[int, int, int]] = []  # (offset, in, out)
        offset = 0
        for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:], strict=True):
            self.layers.append((offset, fan_in, fan_out))
            offset += fan_in * fan_out + fan_out
        self.dim = offset
        self.dropout = float(params.dropout)
        self.input_dropout = float(params.input_dropout)
        self._finish()

    # ---------------------------------------------------------------- model
    def unflatten(self, W: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Per-layer ``(A [K, in, out], b [K, 1, out])`` views of ``W [K, d]``."""
        K = W.shape[0]
        out = []
        for offset, fan_in, fan_out in self.layers:
            end = offset + fan_in * fan_out
            A = W[:, offset:end].reshape(K, fan_in, fan_out)
            b = W[:, end : end + fan_out].reshape(K, 1, fan_out)
            out.append((A, b))
        return out

    def step_noise(self, batch_size: int) -> dict[str, tuple[str, tuple[int, ...], str]]:
        out = super().step_noise(batch_size)
        if self.input_dropout > 0:
            out["dropout_l0"] = ("dropout", (batch_size, self.n_features), "uniform")
        if self.dropout > 0:
            for i, h in enumerate(self.params.widths, start=1):
                out[f"dropout_l{i}"] = ("dropout", (batch_size, h), "uniform")
        return out

    def logits(self, W: Tensor, x: Tensor, noise: dict[str, Tensor] | None = None) -> Tensor:
        act = torch.relu if self.params.activation == "relu" else torch.tanh
        layers = self.unflatten(W)
        h = _drop(x, noise, "dropout_l0", self.input_dropout)
        for i, (A, b) in enumerate(layers[:-1], start=1):
            h = act(batched_affine(b, h, A) if i == 1 else torch.baddbmm(b, h, A))
            h = _drop(h, noise, f"dropout_l{i}", self.dropout)
        A, b = layers[-1]
        return batched_affine(b, h, A) if len(layers) == 1 else torch.baddbmm(b, h, A)

    def per_sample_loss(
        self, W: Tensor, x: Tensor, y: Tensor, noise: dict[str, Tensor] | None = None
    ) -> Tensor:
        x, y = self.noisy_batch(x, y, noise)
        return _cross_entropy(self.logits(W, x, noise), y)

    def init_params(self, generator: torch.Generator | None) -> Tensor:
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        parts = []
        scale = self.params.init_scale
        normal = self.params.init_distribution == "normal"
        for _, fan_in, fan_out in self.layers:
            bound = scale / math.sqrt(fan_in)
            if normal:  # N(0, bound²/3): the variance of U(−bound, bound)
                Wt = torch.randn(fan_out, fan_in, generator=generator, dtype=torch.float64)
                b = torch.randn(fan_out, generator=generator, dtype=torch.float64)
                parts += [(Wt * bound / math.sqrt(3)).T.reshape(-1), b * bound / math.sqrt(3)]
                continue
            Wt = torch.rand(fan_out, fan_in, generator=generator, dtype=torch.float64)
            b = torch.rand(fan_out, generator=generator, dtype=torch.float64)
            parts += [((2 * Wt - 1) * bound).T.reshape(-1), (2 * b - 1) * bound]
        return torch.cat(parts).to(self.dtype)

    # ------------------------------------------------- exact autograd forms
    def grad_F(self, W: Tensor) -> Tensor:
        return autodiff.grad_F(self, W)

    def hessian(self, w: Tensor) -> Tensor:
        return autodiff.hessian(self, w)

    def grad_cov(self, w: Tensor) -> Tensor:
        return autodiff.grad_cov(self, w)

    # ---------------------------------------------------------------- module
    def to_module(self, w: Tensor) -> tuple[torch.nn.Module, object]:
        """``nn.Sequential`` of ``nn.Linear`` (+ activation, ``nn.Dropout``) and
        ``nn.CrossEntropyLoss()``; call ``.eval()`` for the deterministic net."""
        mods: list[torch.nn.Module] = []
        if self.input_dropout > 0:
            mods.append(torch.nn.Dropout(self.input_dropout))
        layers = self.unflatten(w.detach().unsqueeze(0))
        for i, (A, b) in enumerate(layers):
            lin = skip_init(torch.nn.Linear, A.shape[1], A.shape[2], dtype=w.dtype, device=w.device)
            with torch.no_grad():
                lin.weight.copy_(A[0].T)
                lin.bias.copy_(b[0, 0])
            mods.append(lin)
            if i < len(layers) - 1:
                mods.append(
                    torch.nn.ReLU() if self.params.activation == "relu" else torch.nn.Tanh()
                )
                if self.dropout > 0:
                    mods.append(torch.nn.Dropout(self.dropout))
        return torch.nn.Sequential(*mods), torch.nn.CrossEntropyLoss()


def _drop(h: Tensor, noise: dict[str, Tensor] | None, key: str, q: float) -> Tensor:
    """Inverted dropout of ``h`` with this step's uniforms ``noise[key]`` (unit kept when
    u ≥ q, scaled by 1/(1 − q)); ``h`` itself without the draws."""
    u = None if noise is None else noise.get(key)
    if u is None or q == 0:
        return h
    keep = (u.to(h.device) >= q).to(h.dtype)
    return h * keep / (1.0 - q)

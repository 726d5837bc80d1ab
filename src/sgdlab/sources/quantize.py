"""Source ``quantize``: stochastic rounding of the gradient (the article's "approximate gradient
computations").

With ``quantize: {mode: stochastic, bits: k}`` each step draws u ~ U[0, 1) per chain and
coordinate, ``[d]``, and the update rounds every gradient coordinate to one of the two
neighbouring levels of its chain's k-bit grid — up with probability equal to its distance
from the lower level in units of Δ (unbiased; variance Δ²p(1−p) ≤ Δ²/4 per coordinate,
:func:`sgdlab.optim.quantization.quantize`). Off: u = ½, i.e. round to the nearest level
(ties down) — the biased, deterministic counterpart. The deterministic modes (``nearest``,
``bfloat16``, ``float16``) draw nothing.
"""

from __future__ import annotations

from sgdlab.sources.base import Place, RunSetup, Source, StepDraw
from sgdlab.sources.registry import register


@register
class Quantize(Source):
    stream = "quantize"
    place = Place.UPDATE
    step_place = Place.UPDATE
    summary = "stochastic rounding of each gradient coordinate to its k-bit grid: up w.p. p"
    off = "round to the nearest level (deterministic, biased)"

    def applies(self, run: RunSetup) -> bool:
        return bool(getattr(run.rule, "quantize_draws", False))

    def draws(self, run: RunSetup) -> dict[str, StepDraw]:
        return {"quantize": ((run.problem.dim,), "uniform")}

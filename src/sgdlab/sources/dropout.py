"""Source ``dropout``: inverted dropout masks inside a network, a fresh mask per sample, step
and chain.

A problem with dropout declares, in ``step_noise``, the uniforms u ``[b, width]`` it needs for
each dropout layer (stream ``dropout``); unit j of sample i is kept when u ≥ q and scaled by
1/(1 − q), so E[drop(h)] = h. All of a step's layers are drawn from one block of the chain's
``dropout`` generator (layer after layer), so two layers never share a mask. Off: the
deterministic network (no unit dropped, no rescaling).
"""

from __future__ import annotations

from sgdlab.sources.base import Place, RunSetup, Source, StepDraw, problem_draws
from sgdlab.sources.registry import register


@register
class Dropout(Source):
    stream = "dropout"
    place = Place.LOSS
    summary = "dropout masks: unit kept when u ≥ q, u ~ U[0,1) per sample, unit and step"
    off = "the deterministic network (no dropout)"
    step_place = Place.LOSS

    def draws(self, run: RunSetup) -> dict[str, StepDraw]:
        return problem_draws(run, self.stream)

    def applies(self, run: RunSetup) -> bool:
        return bool(self.draws(run))

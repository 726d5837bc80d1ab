"""Source ``inject``: Gaussian noise injected into the update (SGLD).

For a rule whose chain contains :func:`sgdlab.optim.transforms.add_noise`, each step draws
ξ ~ N(0, I_d) per chain and the update adds √(2 η_t T) ξ (the Euler–Maruyama step of
dw = −∇F dt + √(2T) dW). Off: no injected noise (the rule is then plain SGD).
"""

from __future__ import annotations

from sgdlab.sources.base import Place, RunSetup, Source, StepDraw
from sgdlab.sources.registry import register


@register
class Inject(Source):
    stream = "inject"
    place = Place.UPDATE
    summary = "Langevin noise √(2η_t T)·ξ, ξ ~ N(0, I), added to the update"
    off = "no injected noise"
    step_place = Place.UPDATE

    def applies(self, run: RunSetup) -> bool:
        return bool(run.rule.needs_noise)

    def draws(self, run: RunSetup) -> dict[str, StepDraw]:
        return {"inject": ((run.problem.dim,), "normal")}

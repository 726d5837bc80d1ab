"""Sources acting on the problem's data, drawn once when the problem is built.

* ``data`` — the data themselves: a synthetic classification set, the N noise draws of a
  finite quadratic, the design of a linear regression, random rotations, subsample and
  hold-out splits. It defines the problem, so it cannot be turned off (re-seed it with
  ``streams.seeds.data`` for another dataset of the same law).
* ``label_noise`` — label noise on any classification dataset: each label is replaced, with
  probability q (``problem.label_noise``), by a class drawn uniformly (so it changes with
  probability q(1 − 1/C)). *Static* (``label_noise_mode: static``, place ``data``): once,
  when the data are built. *Dynamic* (``dynamic``): afresh every time a sample is drawn,
  from per-step uniforms ``label_flip``, ``label_class`` ``[b]`` handed to the loss (its
  step place is ``loss``). Off: the clean labels. Formulas:
  :mod:`sgdlab.problems.data_noise`.
"""

from __future__ import annotations

from sgdlab.sources.base import Place, RunSetup, Source, StepDraw, problem_draws
from sgdlab.sources.registry import register


@register
class Data(Source):
    stream = "data"
    place = Place.DATA
    summary = "the problem's data (synthetic sets, finite noise samples, splits)"

    def applies(self, run: RunSetup) -> bool:
        return True


@register
class LabelNoise(Source):
    stream = "label_noise"
    place = Place.DATA
    summary = ("label flips: y ← uniform class with probability q, once per sample (static) "
               "or at every draw (dynamic)")
    off = "the clean labels"
    step_place = Place.LOSS

    def applies(self, run: RunSetup) -> bool:
        return run.problem.static_label_noise or bool(self.draws(run))

    def draws(self, run: RunSetup) -> dict[str, StepDraw]:
        return problem_draws(run, self.stream)

"""Sources acting on the problem's data, drawn once when the problem is built.

* ``data`` — the data themselves: a synthetic classification set, the N noise draws of a
  finite quadratic, the design of a linear regression, random rotations, subsample and
  hold-out splits. It defines the problem, so it cannot be turned off (re-seed it with
  ``streams.seeds.data`` for another dataset of the same law).
* ``label_noise`` — static label noise on a synthetic classification set: each label is
  replaced, with probability q (``problem.label_noise``), by a class drawn uniformly
  (so it stays correct with probability 1 − q + q/C). Off: the clean labels.
"""

from __future__ import annotations

from sgdlab.sources.base import Place, RunSetup, Source
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
    summary = "static label flips: y ← uniform class with probability q, once per sample"
    off = "the clean labels"

    def applies(self, run: RunSetup) -> bool:
        return run.problem.static_label_noise

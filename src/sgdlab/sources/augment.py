"""Source ``augment``: data augmentation of every drawn sample, per chain and step.

For a classification problem with ``augment_shift`` s, ``augment_flip`` or
``augment_noise`` σ, each step draws per chain and sample: uniforms ``augment_shift`` ``[b, 2]``
(a shift (dy, dx), each uniform on {−s, …, s}, blank padding), ``augment_flip`` ``[b]`` (a
horizontal flip with probability ½) and normals ``augment_noise`` ``[b, p]`` (pixel noise
σ·z, raw pixel units); the problem applies them to the batch before the loss
(:mod:`sgdlab.problems.data_noise`). Off: the clean images.
"""

from __future__ import annotations

from sgdlab.sources.base import Place, RunSetup, Source, StepDraw, problem_draws
from sgdlab.sources.registry import register


@register
class Augment(Source):
    stream = "augment"
    place = Place.LOSS
    step_place = Place.LOSS
    summary = ("data augmentation per drawn sample: shift (dy, dx) ~ U{−s..s}², flip w.p. ½, "
               "pixel noise σ·N(0, 1)")
    off = "the clean images (no augmentation)"

    def applies(self, run: RunSetup) -> bool:
        return bool(self.draws(run))

    def draws(self, run: RunSetup) -> dict[str, StepDraw]:
        return problem_draws(run, self.stream)

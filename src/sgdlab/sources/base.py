"""The noise-source protocol: a source of randomness bound to its named stream.

Every random draw of a run belongs to one :class:`Source`. A source is bound to one named
stream of :class:`sgdlab.rng.Streams` (``streams.seeds`` re-seeds it, ``streams.off`` turns
it off, each without changing any other source's draws) and acts at one :class:`Place`:

============ ============================================================================
place        what the source changes
============ ============================================================================
``data``     the problem's data, drawn once when the problem is built (synthetic data,
             noise samples of a finite quadratic, subsample/hold-out splits, static label
             flips)
``init``     where the chains start
``sampling`` which samples each step draws (the minibatch)
``loss``     what the loss sees at a step: the network (dropout masks) or the batch
             (augmentation, dynamic label noise)
``update``   what the update sees: the gradient (quantization) or injected noise (SGLD)
============ ============================================================================

A data-place source may also draw per step (``label_noise`` in its dynamic mode): its
:attr:`Source.step_place` says where those draws go.

Per-step sources (``loss``, ``update``) declare their draws with :meth:`Source.draws`
(``{key: (shape, kind)}`` per chain and step); the engine draws them from the source's
stream, chain by chain (:mod:`sgdlab.sources.draws`), and hands them over:
``loss`` draws to the problem's ``per_sample_loss(..., noise=draws)``, ``update`` draws to
the update rule. A turned-off source draws nothing and its place behaves deterministically
(:attr:`Source.off`).

How to add a source: one new module in ``sources/`` with a :func:`register` ed subclass
(stream, place, what off means, when it applies, its draws); the stream's id is reserved in
:data:`sgdlab.rng.STREAM_IDS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:  # annotations only: sources sit above problems and optim
    from sgdlab.optim.base import UpdateRule
    from sgdlab.problems.base import Problem

__all__ = ["Place", "RunSetup", "Source", "StepDraw", "problem_draws"]


class Place(StrEnum):
    """Where a source acts (see the module docstring)."""

    DATA = "data"
    INIT = "init"
    SAMPLING = "sampling"
    LOSS = "loss"
    UPDATE = "update"


#: one per-step draw of a source, per chain: ``(shape, kind)``, kind ``uniform`` or ``normal``
StepDraw = tuple[tuple[int, ...], str]


@dataclass(frozen=True)
class RunSetup:
    """What decides which sources a run draws: its problem, update rule and sampling.

    Attributes:
        problem: the built problem.
        rule: the update rule.
        sampling: the sampling mode after ``auto`` is resolved.
        batch_size: samples per step.
    """

    problem: Problem
    rule: UpdateRule
    sampling: str
    batch_size: int

    def describe(self) -> str:
        return (
            f"problem {self.problem.name!r} with optimizer {self.rule.name!r} and "
            f"{self.sampling!r} sampling"
        )


class Source:
    """A source of randomness bound to one named stream (see the module docstring).

    Subclasses set the class attributes and implement :meth:`applies` (and :meth:`draws` for
    per-step sources).
    """

    #: the named stream (``rng.STREAM_IDS``), also the name used in ``streams.off/seeds``
    stream: ClassVar[str]
    place: ClassVar[Place]
    #: one line: what is random, with its formula
    summary: ClassVar[str]
    #: what turning the source off does; ``""``: it cannot be turned off (re-seed it instead)
    off: ClassVar[str] = ""

    #: where the source's per-step draws go (``loss`` or ``update``); ``None``: it has none
    step_place: ClassVar[Place | None] = None

    def applies(self, run: RunSetup) -> bool:
        """Whether this run draws from the source at all."""
        raise NotImplementedError

    def draws(self, run: RunSetup) -> dict[str, StepDraw]:
        """Per-step draws ``{key: (shape, kind)}`` per chain (for :attr:`step_place`)."""
        return {}


def problem_draws(run: RunSetup, stream: str) -> dict[str, StepDraw]:
    """The per-step draws the run's problem declares (``Problem.step_noise``) from ``stream``."""
    return {
        key: (shape, kind)
        for key, (name, shape, kind) in run.problem.step_noise(run.batch_size).items()
        if name == stream
    }

"""The engine: K chains of a config in one set of tensor ops.

:func:`~sgdlab.engine.plan.prepare` builds and checks a :class:`~sgdlab.engine.plan.Plan`
(problem, optimizer, bound sources); :func:`~sgdlab.engine.loop.execute` runs its loop;
:class:`~sgdlab.engine.recorder.Recorder` and the probes record metrics;
:class:`~sgdlab.engine.result.RunResult` is what a run returns.
"""

from sgdlab.engine.loop import Loop, execute
from sgdlab.engine.plan import Plan, prepare
from sgdlab.engine.recorder import Recorder
from sgdlab.engine.result import RunResult

__all__ = ["Loop", "Plan", "Recorder", "RunResult", "execute", "prepare"]

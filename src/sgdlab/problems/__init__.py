"""Built-in problems F(w) = E_ξ[f(w; ξ)]; see :mod:`sgdlab.problems.base` for the protocol."""

from sgdlab.problems import quadratic  # noqa: F401  (registers)
from sgdlab.problems.base import Problem, ProblemParams
from sgdlab.problems.registry import PROBLEMS, build_problem, problem_class, register

__all__ = ["PROBLEMS", "Problem", "ProblemParams", "build_problem", "problem_class", "register"]

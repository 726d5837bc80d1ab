"""Built-in problems F(w) = E_ξ[f(w; ξ)]; see :mod:`sgdlab.problems.base` for the protocol."""

from sgdlab.problems import (  # noqa: F401  (registers the built-in problems)
    landscapes,
    linear_regression,
    logistic,
    mlp,
    quadratic,
)
from sgdlab.problems.base import Problem, ProblemParams
from sgdlab.problems.registry import PROBLEMS, build_problem, problem_class, register

__all__ = ["PROBLEMS", "Problem", "ProblemParams", "build_problem", "problem_class", "register"]

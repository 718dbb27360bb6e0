"""Problem kinds: the first arrow of the chain (a ``problem`` section -> a Problem with A, b, kappa, x0), one
module each, registered where they are defined in PROBLEM_KINDS (base.py holds the Problem type, the SPD check
and the registry).

    base.py                 Problem, validate_spd, ProblemKind, PROBLEM_KINDS, problem_config, build_problem
    sources.py              array sources (.npy, inline, random specs), random_matrix, load_array, vector_and_x0
    linear.py               kind ``linear`` (default): an SPD matrix and a vector
    factored.py             kind ``factored``: A = J^T H J + damping I from its factors (FactoredProblem)
    posterior.py            kinds ``gaussian_posterior``, ``logistic_posterior`` (Bayesian regression)
    data.py                 X / y sources of the posterior kinds (random with a seed, scikit-learn data sets)
    posterior_reference.py  exact and Laplace posteriors, the emcee reference sampler

    section = problem_config({"matrix": [[2, 1], [1, 2]], "vector": [1, 0]})   # validated by its kind's model
    problem = build_problem(section, base_dir)

A new kind registers with ``PROBLEM_KINDS.register(name, ProblemKind(ConfigModel, build))`` (tests/ does).
"""

from .base import (DEFAULT_KIND, MAX_CONDITION, PROBLEM_KINDS, SYMMETRY_RTOL, Problem, ProblemKind, build_problem,
                   problem_config, validate_spd)
from .factored import FactoredProblem, FactoredProblemConfig, validate_factors
from .linear import ProblemConfig
from .posterior import GaussianPosteriorProblem, LogisticPosteriorProblem, PosteriorData
from .sources import RandomMatrix, RandomVector, load_array, random_matrix, vector_and_x0

__all__ = ["DEFAULT_KIND", "MAX_CONDITION", "SYMMETRY_RTOL", "FactoredProblem", "FactoredProblemConfig", "GaussianPosteriorProblem",
           "LogisticPosteriorProblem", "PROBLEM_KINDS", "PosteriorData", "Problem", "ProblemConfig", "ProblemKind",
           "RandomMatrix", "RandomVector", "build_problem", "factored", "linear", "load_array", "posterior",
           "problem_config", "random_matrix", "validate_factors", "validate_spd", "vector_and_x0"]

"""The registry of evaluations: each one is a function of an :class:`~clbench.evaluate.context.EvaluationRun`.

An evaluation is registered by name with :func:`register_evaluation` and declares what it needs of
the model beyond ``features`` (``requires``: ``factors``, ``slices``, ``stages``, which a method's
model lists in its ``capabilities``). It returns ``{"metrics": {name: value}, "tables": {name: rows}}``
(either part may be left out). An experiment's ``evaluations:`` names which run; the runner calls
them in turn, and skips, saying so, an evaluation whose requirement the run's model does not meet
(an experiment may mix methods). :func:`check_evaluations` refuses, before any job runs, a name
that is not registered or a requirement that none of the experiment's methods meets.

This module imports no torch; the built-in evaluations are in :mod:`clbench.evaluate.suite`, and
``from clbench.evaluate import EVALUATIONS`` gives the registry with them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Callable

from clbench.errors import ConfigError
from clbench.objectives import method_capabilities

__all__ = ["EVALUATIONS", "Evaluation", "check_evaluations", "register_evaluation"]


@dataclass(frozen=True)
class Evaluation:
    name: str
    fn: Callable[[Any], dict]
    requires: frozenset[str]
    doc: str


EVALUATIONS: dict[str, Evaluation] = {}


def register_evaluation(name: str, *, requires: Iterable[str] = (), doc: str | None = None):
    """Decorator: register ``fn(run) -> {"metrics": ..., "tables": ...}`` as evaluation ``name``.

    ``requires``: model capabilities it needs (``factors``, ``slices``, ``stages``); ``doc``: one
    line (default: the first line of the function's docstring).
    """

    def register(fn: Callable[[Any], dict]) -> Callable[[Any], dict]:
        if name in EVALUATIONS and EVALUATIONS[name].fn is not fn:
            raise ValueError(f"evaluation {name!r} is already registered")
        line = doc or (fn.__doc__ or "").strip().split("\n")[0]
        EVALUATIONS[name] = Evaluation(name, fn, frozenset(requires), line)
        return fn

    return register


def check_evaluations(names: Iterable[str], methods: Mapping[str, dict], where: str) -> None:
    """Refuse evaluation ``names`` of an experiment whose methods are ``methods`` ({name: spec}).

    ``where`` is the experiment's ``evaluations`` key (``experiments.x.evaluations``); raises
    :class:`~clbench.errors.ConfigError` for an unknown name or a requirement no method meets.
    """
    names = list(names)
    for i, name in enumerate(names):
        if name not in EVALUATIONS:
            raise ConfigError(f"{where}[{i}]", f"unknown evaluation {name!r}; known: {', '.join(sorted(EVALUATIONS))}")
    offered = {m: method_capabilities(spec) for m, spec in methods.items()}
    for i, name in enumerate(names):
        needs = EVALUATIONS[name].requires
        if needs and not any(needs <= caps for caps in offered.values()):
            raise ConfigError(
                f"{where}[{i}]",
                f"evaluation {name} needs a model with {', '.join(sorted(needs))}; none of the methods "
                f"{', '.join(methods) or '(none)'} has one",
            )

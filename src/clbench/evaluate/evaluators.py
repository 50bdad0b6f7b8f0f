"""Which function evaluates a trained run: one per data domain, looked up by its objective's domain.

The counterpart of :mod:`clbench.train.trainers` for ``clbench evaluate run``: image models are
evaluated by :func:`clbench.evaluate.runner.evaluate_run`; a domain whose models load and embed
differently registers its own evaluator by reference. Every evaluator takes the arguments of
:func:`~clbench.evaluate.runner.evaluate_run` (``health=``: the config's health thresholds) and returns
``{"metrics": ..., "tables": ..., "health": ...}`` (the run's health, :mod:`clbench.health`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from clbench.objectives import OBJECTIVES, register_by_domain, resolve_ref

# domain -> "module:function"
EVALUATORS: dict[str, str] = {
    "image": "clbench.evaluate.runner:evaluate_run",
    # the graph models load through the method families like image models; graph_svc embeds the graphs itself
    "graph": "clbench.evaluate.runner:evaluate_run",
    "text": "clbench.evaluate.sentence_runner:evaluate_sentence_run",
}


def register_evaluator(domain: str, ref: str) -> None:
    """Evaluate runs of ``domain`` with the function ``ref`` (``"module:function"``)."""
    register_by_domain(EVALUATORS, domain, ref, "evaluator")


def model_domain(model_path: str | Path) -> str:
    """The domain of a ``model.pt``'s objective (its spec is read; the weights are memory-mapped, not loaded)."""
    import torch

    blob = torch.load(model_path, map_location="cpu", weights_only=True, mmap=True)
    objective = blob["spec"]["objective"]
    return OBJECTIVES[objective].domain if objective in OBJECTIVES else "image"  # mcl_concat: image stages


def evaluator_for(model_path: str | Path) -> Callable:
    """The evaluation function of the run whose model is ``model_path``."""
    domain = model_domain(model_path)
    if domain not in EVALUATORS:
        raise ValueError(f"{model_path} is a {domain!r} model, which no evaluator handles; "
                         f"registered: {sorted(EVALUATORS)}")
    return resolve_ref(EVALUATORS[domain])

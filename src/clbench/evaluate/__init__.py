"""Evaluations of frozen representations: probes, kNN, disentanglement, OOD and corruption robustness.

``EVALUATIONS`` is the registry of named evaluations (the built-ins of :mod:`clbench.evaluate.suite`
and any added with ``register_evaluation``); :mod:`clbench.evaluate.runner` runs an experiment's.
Heavy dependencies are imported lazily so report jobs stay light.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "EVALUATIONS": "clbench.evaluate.suite",
    "Evaluation": "clbench.evaluate.suite",
    "register_evaluation": "clbench.evaluate.suite",
    "check_evaluations": "clbench.evaluate.suite",
    "EvaluationRun": "clbench.evaluate.context",
    "fit_probe": "clbench.evaluate.linear_probe",
    "embed": "clbench.evaluate.embed",
    "weighted_knn": "clbench.evaluate.knn",
    "knn_predict": "clbench.evaluate.knn",
    "gmig": "clbench.evaluate.disentanglement",
    "gmig_details": "clbench.evaluate.disentanglement",
    "mig": "clbench.evaluate.disentanglement",
    "mig_details": "clbench.evaluate.disentanglement",
    "knn_mutual_information": "clbench.evaluate.disentanglement",
    "relative_accuracy": "clbench.evaluate.ood",
    "relative_to_baseline": "clbench.evaluate.ood",
    "ood_k_curve": "clbench.evaluate.ood",
    "mean_corruption_accuracy": "clbench.evaluate.robustness",
    "mce": "clbench.evaluate.robustness",
    "robustness_summary": "clbench.evaluate.robustness",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'clbench.evaluate' has no attribute {name!r}")

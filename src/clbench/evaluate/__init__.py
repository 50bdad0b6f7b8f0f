"""Evaluations of frozen representations: probes, kNN, disentanglement, OOD and corruption robustness.

Heavy dependencies are imported lazily so report jobs stay light.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "fit_probe": "clbench.evaluate.linear_probe",
    "embed": "clbench.evaluate.embed",
    "weighted_knn": "clbench.evaluate.knn",
    "gmig": "clbench.evaluate.disentanglement",
    "mig": "clbench.evaluate.disentanglement",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'clbench.evaluate' has no attribute {name!r}")

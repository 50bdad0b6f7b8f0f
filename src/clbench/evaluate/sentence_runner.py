"""The evaluate job of a sentence encoder (domain ``text``; :mod:`clbench.evaluate.evaluators` picks it).

It loads the trained :class:`~clbench.models.sentence.SentenceEncoder` and the dataset's test split and
runs the experiment's evaluations that need a sentence model (``requires`` ``sentences``, e.g. ``sts``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from clbench.data import dataset_dir

log = logging.getLogger(__name__)


@dataclass
class SentenceRun:
    """A trained sentence encoder under evaluation: what the sentence evaluations read."""

    model: Any
    test: Mapping[str, np.ndarray]
    meta: Mapping[str, Any]
    settings: Mapping[str, Any]
    seed: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset(getattr(self.model, "capabilities", ()))


def evaluate_sentence_run(model_path, data_dir, spec: dict, *, seed: int = 0, device: torch.device | str = "cpu",
                          metrics_csv: str | Path | None = None, probe_out: str | Path | None = None,
                          health: dict | None = None) -> dict:
    """Every evaluation of ``spec`` on a trained sentence encoder: ``{"metrics": ..., "tables": ...}``.

    The same call as :func:`clbench.evaluate.runner.evaluate_run`; only evaluations that need a
    sentence model (``requires`` ``sentences``) apply, and there is no probe to save. Its ``health`` is
    the training health its run.json recorded.
    """
    from clbench.evaluate.suite import EVALUATIONS
    from clbench.models.sentence import load_sentence_model

    if probe_out:
        raise ValueError("a sentence encoder has no linear probe to save")
    names = list(spec.get("evaluations") or ["sts"])
    wrong = [n for n in names if n not in EVALUATIONS or "sentences" not in EVALUATIONS[n].requires]
    if wrong:
        sentence_ones = sorted(n for n, e in EVALUATIONS.items() if "sentences" in e.requires)
        raise ValueError(f"evaluations {wrong} do not apply to a sentence encoder; these do: {sentence_ones}")
    device = torch.device(device)
    run = SentenceRun(load_sentence_model(model_path, device), dataset_dir.load(data_dir, "test"),
                      dataset_dir.load_meta(data_dir), spec, seed=seed, device=device)
    t0 = time.time()
    result: dict = {"metrics": {}, "tables": {}}
    for name in names:
        part = EVALUATIONS[name].fn(run)
        result["metrics"].update(part.get("metrics", {}))
        result["tables"].update(part.get("tables", {}))
    from clbench.evaluate.health_checks import recorded_only

    result["health"] = recorded_only(model_path, health)
    log.info("evaluated %s in %.1f s: %s", model_path, time.time() - t0, result["metrics"])
    return result

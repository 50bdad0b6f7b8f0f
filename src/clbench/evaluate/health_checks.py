"""The evaluation side of run health (:mod:`clbench.health`), on a run's frozen model.

:func:`evaluation_health` measures what the checks need on (up to ``VALIDATION_SAMPLES`` of) the
validation images: the spread and effective rank of their features; a VAE's reconstruction error
against predicting the training mean image; and the probe of the trained label ``y`` on them
against chance (the linear probe an evaluation fitted; else a linear probe fitted on the training
features an evaluation embedded; else nothing is fitted and the check is skipped). It combines these
checks with the training-side health the run's ``run.json`` recorded (read, never recomputed:
evaluation imports no training code).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from clbench import health
from clbench.data import dataset_dir
from clbench.io import read_json

log = logging.getLogger(__name__)

VALIDATION_SAMPLES = 2000  # validation images the checks embed (a random subset, seeded by the run's seed)
MEAN_IMAGE_SAMPLES = 5000  # training images the mean image is averaged over


def recorded_health(model_path: str | Path) -> dict | None:
    """The training-side health in the ``run.json`` beside ``model_path``, or None when it records none."""
    path = Path(model_path).parent / "run.json"
    if not path.exists():
        return None
    return read_json(path).get("health")


def training_checks(model_path: str | Path) -> tuple[list[dict], list[dict] | None]:
    """The checks (and, for an MCL run, the per-stage healths) of the run's recorded training health."""
    recorded = recorded_health(model_path)
    if recorded is None:
        return [health.check("training", health.SKIPPED, "the run's run.json records no training health")], None
    return list(recorded["checks"]), recorded.get("stages")


def validation_sample(data_dir, seed: int) -> tuple[dict, str]:
    """Up to :data:`VALIDATION_SAMPLES` validation images and labels (the test split when there is no
    validation split), and the split's name."""
    split, name = dataset_dir.load(data_dir, "val"), "validation"
    if len(split["y"]) == 0:
        split, name = dataset_dir.load(data_dir, "test"), "test (the dataset has no validation split)"
    idx = np.sort(np.random.default_rng(seed).permutation(len(split["y"]))[:VALIDATION_SAMPLES])
    return {"x": np.asarray(split["x"][idx]), "y": np.asarray(split["y"])[idx]}, name


def probe_accuracy(run, feats: torch.Tensor, labels: np.ndarray) -> tuple[float | None, str]:
    """Top-1 of y on ``feats``: the fitted linear probe's, else that of a linear probe fitted here (the configured
    probe settings) on the cached training features; (None, why) when neither is there. A linear probe, not a
    k-NN: a k-NN with the evaluation's k (200 of 2,000 training images at tiny scale) sits near chance on
    features a linear probe reads well, and would call such a run untrained."""
    if run.fitted_linear_probe is not None:
        probs = run.fitted_linear_probe(feats)
        return float((probs.argmax(1) == labels).mean()), "linear probe"
    train = run.cached_features("train")
    if train is not None:
        res = run.probe(train, run.train["y"], feats, labels, kind="linear")
        return float(res["top1"]), "linear probe"
    return None, "probe"


def reconstruction_errors(run, x: np.ndarray) -> tuple[float | None, float | None]:
    """A VAE's mean squared error per pixel on ``x`` and that of the training mean image (None, None
    for a model that does not reconstruct)."""
    if not hasattr(run.model, "reconstruct"):
        return None, None
    x_float = torch.as_tensor(x).float() / 255.0
    recon = run.embed(x, fn=lambda m, xb: m.reconstruct(xb))
    error = float((recon - x_float).pow(2).mean())
    rng = np.random.default_rng(run.seed)
    idx = np.sort(rng.permutation(len(run.train["y"]))[:MEAN_IMAGE_SAMPLES])
    mean_image = torch.as_tensor(np.asarray(run.train["x"][idx])).float().div(255.0).mean(0)
    return error, float((x_float - mean_image).pow(2).mean())


def evaluation_checks(run, data_dir, given: Mapping[str, Any]) -> list[dict]:
    """The evaluation-side checks of an image (or graph) model under evaluation."""
    s = health.settings(given)
    if "graphs" in run.capabilities:
        why = "a graph model: its evaluation embeds graphs, not images"
        return [health.check(name, health.SKIPPED, why) for name in
                ("embedding_spread", "effective_rank", "reconstruction", "probe_above_chance")]
    val, split = validation_sample(data_dir, run.seed)
    feats = run.embed(val["x"])
    checks = [health.check_spread(feats.numpy(), s["spread_floor"]),
              health.check_effective_rank(feats.numpy(), s["rank_floor"]),
              health.check_reconstruction(*reconstruction_errors(run, val["x"]), s["reconstruction_ratio"])]
    if len(np.unique(run.train["y"])) < 2:
        checks.append(health.check("probe_above_chance", health.SKIPPED, "the dataset has no label to probe"))
    else:
        accuracy, probe = probe_accuracy(run, feats, val["y"]) if not s.get("ood") else (None, "probe")
        checks.append(health.check_probe_above_chance(accuracy, health.majority_rate(val["y"]), s["chance_margin"],
                                                      probe=probe, split=split, ood=bool(s.get("ood"))))
    return checks


def evaluation_health(run, data_dir, model_path, given: Mapping[str, Any] | None = None) -> dict:
    """The run's whole health: its recorded training checks, then the evaluation checks of ``run``."""
    checks, stages = training_checks(model_path)
    result = health.combine([*checks, *evaluation_checks(run, data_dir, given or {})], stages=stages)
    health.log_health(result, log)
    return result


def recorded_only(model_path, given: Mapping[str, Any] | None = None) -> dict:
    """The health of a run whose evaluation measures no feature checks (sentence encoders): its training checks."""
    checks, stages = training_checks(model_path)
    result = health.combine(checks, stages=stages)
    health.log_health(result, log)
    return result

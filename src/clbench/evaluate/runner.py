"""Every evaluation of one trained run, in one job (start-up dominates at tiny scale).

Which evaluations run is the experiment's ``evaluations:`` config: names of the evaluation registry
(:mod:`clbench.evaluate.registry`; the built-ins and their metric names are in
:mod:`clbench.evaluate.suite`). :func:`evaluate_run` calls each in turn on one
:class:`~clbench.evaluate.context.EvaluationRun` and merges their metrics and tables. Besides, it
reports ``epochs_to_target``: the first epoch whose k-NN validation accuracy reached
``convergence_target`` (from the run's ``metrics.csv``; inf when never reached).

At paper scale the corruption grid fans out (``corruptions.granularity: cell``): the run's job fits
the probes and saves the linear one (``probe_out``), one job per (corruption, severity) scores it on
that corrupted test split (:func:`evaluate_corruption_cell`), and :mod:`clbench.evaluate.cells`
merges the rows back, so the run's evaluation has the same format either way.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import torch

from clbench.data import dataset_dir
from clbench.evaluate.cells import corruption_row
from clbench.evaluate.context import EvaluationRun
from clbench.evaluate.embed import embed
from clbench.evaluate.health_checks import evaluation_health
from clbench.evaluate.linear_probe import FittedProbe
from clbench.evaluate.suite import EVALUATIONS
from clbench.models.checkpoint import load_model

log = logging.getLogger(__name__)

DEFAULTS = {"evaluations": ["linear_probe", "knn"],
            "probe": {"epochs": 100, "lr": 0.01, "weight_decay": 1e-4, "batch_size": 0, "kind": "linear",
                      "protocol": "features", "augment": "simclr", "num_workers": 0},
            "mlp_probe": {},
            "knn": {"k": 200, "temperature": 0.1}, "corruptions": {"names": "all", "severities": [1, 2, 3, 4, 5],
                                                                   "n_test": 500, "granularity": "grid"},
            "convergence_target": 0.5, "y_factor": "y"}


def evaluation_settings(spec: dict) -> dict:
    """The evaluation config ``spec`` over :data:`DEFAULTS` (one level deep for probe, mlp_probe, knn,
    corruptions)."""
    cfg = {**DEFAULTS, **spec}
    for key in ("probe", "mlp_probe", "knn", "corruptions"):
        cfg[key] = {**DEFAULTS[key], **spec.get(key, {})}
    return cfg


def evaluate_run(model_path, data_dir, spec: dict, *, seed: int = 0, device: torch.device | str = "cpu",
                 metrics_csv: str | Path | None = None, probe_out: str | Path | None = None,
                 health: dict | None = None) -> dict:
    """Every evaluation of ``spec`` on the run's frozen model: ``{"metrics": {...}, "tables": {...}, "health": {...}}``.

    ``probe_out``: where to save the fitted linear probe (for the per-cell corruption jobs). ``health``: the
    config's ``health:`` thresholds and the experiment's ``ood`` (:mod:`clbench.evaluate.health_checks`).
    """
    cfg = evaluation_settings(spec)
    unknown = [name for name in cfg["evaluations"] if name not in EVALUATIONS]
    if unknown:
        raise ValueError(f"unknown evaluations {unknown}; known: {', '.join(sorted(EVALUATIONS))}")
    device = torch.device(device)
    run = EvaluationRun(load_model(model_path, device), dataset_dir.load(data_dir, "train"),
                        dataset_dir.load(data_dir, "test"), cfg, seed=seed, device=device)
    t0 = time.time()
    result: dict = {"metrics": {}, "tables": {}}
    validation: dict = {}
    for name in cfg["evaluations"]:
        evaluation = EVALUATIONS[name]
        missing = evaluation.requires - run.capabilities
        if missing:
            log.info("%s: skipped, the model has no %s", name, ", ".join(sorted(missing)))
            continue
        part = evaluation.fn(run)
        result["metrics"].update(part.get("metrics", {}))
        result["tables"].update(part.get("tables", {}))
        validation.update(part.get("validation", {}))  # an evaluation's own validation scores (graph_svc's)
    if probe_out is not None:
        if run.fitted_linear_probe is None:
            raise ValueError("saving the probe needs one: add linear_probe or corruptions to the evaluations")
        run.fitted_linear_probe.save(probe_out)
    if metrics_csv is not None and Path(metrics_csv).exists():
        result["metrics"]["epochs_to_target"] = epochs_to_target(metrics_csv, cfg["convergence_target"])
    result["health"] = evaluation_health(run, data_dir, model_path, health)
    if "graphs" not in run.capabilities:
        validation.update(validation_scores(run, data_dir, metrics_csv))
    if validation:
        result["validation"] = validation
    log.info("evaluated %s in %.1f s: %s", model_path, time.time() - t0, result["metrics"])
    return result


def validation_scores(run, data_dir, metrics_csv=None) -> dict:
    """The scores a sweep selects on (:mod:`clbench.sweeps`), on the validation split alone, kept apart from
    the test metrics: ``val_top1`` (the fitted linear probe's top-1, else a weighted k-NN's on the training
    features) and ``val_knn_top1`` (the training monitor's last k-NN top-1, from ``metrics.csv``)."""
    from clbench.evaluate.health_checks import validation_sample
    from clbench.evaluate.knn import weighted_knn

    val, split = validation_sample(data_dir, run.seed)
    feats = run.embed(val["x"])
    if run.fitted_linear_probe is not None:
        accuracy, probe = float((run.fitted_linear_probe(feats).argmax(1) == val["y"]).mean()), "linear probe"
    else:
        accuracy = float(weighted_knn(run.features("train"), torch.as_tensor(run.train["y"]), feats,
                                      torch.as_tensor(val["y"]), **run.settings["knn"])["top1"])
        probe = "k-NN probe"
    scores = {"split": split, "probe": probe, "val_top1": accuracy, "val_knn_top1": None}
    if metrics_csv is not None and Path(metrics_csv).exists():
        import pandas as pd

        monitor = pd.read_csv(metrics_csv)
        if "val_knn_top1" in monitor and monitor["val_knn_top1"].notna().any():
            scores["val_knn_top1"] = float(monitor["val_knn_top1"].dropna().iloc[-1])
    return scores


def evaluate_corruption_cell(model_path, probe_path, corrupted_dir, *, device: torch.device | str = "cpu") -> dict:
    """One corruption cell: the run's clean-trained probe (``probe.pt``) on the frozen features of one
    corrupted test split (a directory written by ``clbench data corrupt``); returns its table row."""
    device = torch.device(device)
    model, predict = load_model(model_path, device), FittedProbe.load(probe_path, device)
    info = dataset_dir.load_meta(corrupted_dir)["corruption"]
    split = dataset_dir.load(corrupted_dir, "test")
    row = corruption_row(info["name"], info["severity"], predict(embed(model, split["x"], device)), split["y"])
    log.info("%s severity %d: top-1 %.4f on %d images", info["name"], info["severity"], row["top1"], len(split["y"]))
    return row


def epochs_to_target(metrics_csv, target: float) -> float:
    import pandas as pd

    df = pd.read_csv(metrics_csv)
    if "val_knn_top1" not in df:
        return math.inf
    hit = df[df["val_knn_top1"] >= target]
    return float(hit["epoch"].iloc[0]) if len(hit) else math.inf

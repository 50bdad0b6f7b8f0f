"""Every evaluation of one trained run, in one job (start-up dominates at tiny scale).

At paper scale the corruption grid fans out (``corruptions.granularity: cell``): the run's job fits
the probes and saves the linear one (``probe_out``), one job per (corruption, severity) scores it on
that corrupted test split (:func:`evaluate_corruption_cell`), and :mod:`clbench.evaluate.cells`
merges the rows back, so the run's evaluation has the same format either way.

Which evaluations run is the experiment's ``evaluations:`` config; each writes flat metrics
(``{name: value}``) and, for grids, long tables. Metric names:

- ``linear_top1``, ``linear_auroc``, ``linear_aupr``: logistic probe of ``y`` on the frozen features
  (``mlp_*`` for CLEAR's MLP probe); on an OOD split the test split is the unseen-combination one.
- ``knn_top1``: weighted k-NN (k=200, t=0.1) of ``y``.
- ``probe_{factor}_top1``: logistic probe of each dataset factor (e.g. ``style``) from the features.
- ``gmig`` (CLEAR-VAE models): gMIG of (mu_c, mu_s) w.r.t. ``y``; ``mig``: MIG of (mu_c, mu_s) over ``y``
  and every factor; ``probe_style_latent_{y|factor}``, ``probe_content_latent_{factor}``.
- ``probe_{r|r0|r1}_{factor}`` (sub-embedding models): probes on the representation r and the
  projection slices r0, r1 for ``y`` (named by the dataset's ``y_factor``) and every factor;
  ``probe_gap_{factor}`` = |C(r0) - C(r1)| (the poster's R3).
- table ``stage_probes`` (MCL models): per stage and attribute, the probe top-1 of that stage's features.
- table ``corruptions``: per corruption and severity, the clean-trained probe's accuracy on corrupted
  test images; ``mean_corruption_top1`` (with ``granularity: cell`` both come from the per-cell jobs).
- ``epochs_to_target``: first epoch whose k-NN validation accuracy reaches ``convergence_target``
  (from the run's ``metrics.csv``; inf when never reached).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import torch

from clbench.data import dataset_dir
from clbench.evaluate.cells import corruption_row, with_corruption_rows
from clbench.evaluate.embed import embed
from clbench.evaluate.linear_probe import FittedProbe, fit_probe

log = logging.getLogger(__name__)

DEFAULTS = {"evaluations": ["linear_probe", "knn"], "probe": {"epochs": 100, "lr": 0.01, "weight_decay": 1e-4,
                                                               "batch_size": 0, "kind": "linear"},
            "knn": {"k": 200, "temperature": 0.1}, "corruptions": {"names": "all", "severities": [1, 2, 3, 4, 5],
                                                                   "n_test": 500, "granularity": "grid"},
            "convergence_target": 0.5, "y_factor": "y"}


def _probe(ftr, ytr, fte, yte, cfg, seed, device, **kw):
    return fit_probe(ftr, torch.as_tensor(ytr), fte, torch.as_tensor(yte), kind=kw.pop("kind", cfg["kind"]),
                     epochs=cfg["epochs"], lr=cfg["lr"], weight_decay=cfg["weight_decay"],
                     batch_size=cfg["batch_size"], seed=seed, device=device, **kw)


def factor_names(split: dict) -> list[str]:
    return sorted(k.removeprefix("factor_") for k in split if k.startswith("factor_"))


def evaluate_run(model_path, data_dir, spec: dict, *, seed: int = 0, device: torch.device | str = "cpu",
                 metrics_csv: str | Path | None = None, probe_out: str | Path | None = None) -> dict:
    """Every evaluation of ``spec`` on the run's frozen model: ``{"metrics": {...}, "tables": {...}}``.

    ``probe_out``: where to save the fitted linear probe (for the per-cell corruption jobs).
    """
    from clbench.models.checkpoint import load_model

    cfg = {**DEFAULTS, **spec}
    for key in ("probe", "knn", "corruptions"):
        cfg[key] = {**DEFAULTS[key], **spec.get(key, {})}
    wanted = set(cfg["evaluations"])
    device = torch.device(device)
    model = load_model(model_path, device)
    train, test = dataset_dir.load(data_dir, "train"), dataset_dir.load(data_dir, "test")
    t0 = time.time()
    ftr, fte = embed(model, train["x"], device), embed(model, test["x"], device)
    metrics: dict[str, float] = {}
    tables: dict[str, list[dict]] = {}
    predict = None

    if "linear_probe" in wanted or "corruptions" in wanted:
        res, predict = _probe(ftr, train["y"], fte, test["y"], cfg["probe"], seed, device, return_predictor=True)
        metrics.update({f"linear_{k}": v for k, v in res.items() if k in ("top1", "auroc", "aupr")})
    if probe_out is not None:
        if predict is None:
            raise ValueError("saving the probe needs one: add linear_probe or corruptions to the evaluations")
        predict.save(probe_out)
    if "mlp_probe" in wanted:
        res = _probe(ftr, train["y"], fte, test["y"], cfg["probe"], seed, device, kind="mlp")
        metrics.update({f"mlp_{k}": v for k, v in res.items() if k in ("top1", "auroc", "aupr")})
    if "knn" in wanted:
        from clbench.evaluate.knn import weighted_knn

        res = weighted_knn(ftr, torch.as_tensor(train["y"]), fte, torch.as_tensor(test["y"]), **cfg["knn"])
        metrics["knn_top1"] = float(res["top1"])
    if "factor_probes" in wanted:
        for f in factor_names(train):
            res = _probe(ftr, train[f"factor_{f}"], fte, test[f"factor_{f}"], cfg["probe"], seed, device)
            metrics[f"probe_{f}_top1"] = res["top1"]
    if "gmig" in wanted and hasattr(model, "factors"):
        metrics.update(_disentanglement(model, train, test, cfg, seed, device))
    if "slice_probes" in wanted and hasattr(model, "slices"):
        metrics.update(_slice_probes(model, train, test, ftr, fte, cfg, seed, device))
    if "stage_probes" in wanted and hasattr(model, "stage_features"):
        tables["stage_probes"] = _stage_probes(model, train, test, cfg, seed, device)
    if metrics_csv is not None and Path(metrics_csv).exists():
        metrics["epochs_to_target"] = epochs_to_target(metrics_csv, cfg["convergence_target"])
    result = {"metrics": metrics, "tables": tables}
    if "corruptions" in wanted and cfg["corruptions"]["granularity"] == "grid":
        result = with_corruption_rows(result, _corruptions(model, test, predict, cfg["corruptions"], seed, device))
    log.info("evaluated %s in %.1f s: %s", model_path, time.time() - t0, result["metrics"])
    return result


def evaluate_corruption_cell(model_path, probe_path, corrupted_dir, *, device: torch.device | str = "cpu") -> dict:
    """One corruption cell: the run's clean-trained probe (``probe.pt``) on the frozen features of one
    corrupted test split (a directory written by ``clbench data corrupt``); returns its table row."""
    from clbench.models.checkpoint import load_model

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


def _latents(model, x, device):
    return embed(model, x, device, fn=lambda m, xb: m.factors(xb))


def _disentanglement(model, train, test, cfg, seed, device) -> dict:
    from clbench.evaluate.disentanglement import gmig

    from clbench.evaluate.disentanglement import mig

    zc, zs = _latents(model, test["x"], device)
    out = {"gmig": float(gmig(zc.numpy(), zs.numpy(), test["y"], random_state=seed))}
    # Standard MIG of the whole latent (z_c, z_s) over every known factor (y and the dataset's factors).
    factors = np.stack([test["y"], *[test[f"factor_{f}"] for f in factor_names(test)]], axis=1)
    out["mig"] = float(mig(torch.cat([zc, zs], 1).numpy(), factors))
    # How much of y (and of each factor) the style latent still carries: CLEAR wants y gone from z_s.
    zc_tr, zs_tr = _latents(model, train["x"], device)
    out["probe_style_latent_y_top1"] = _probe(zs_tr, train["y"], zs, test["y"], cfg["probe"], seed, device)["top1"]
    for f in factor_names(train):
        out[f"probe_style_latent_{f}_top1"] = _probe(zs_tr, train[f"factor_{f}"], zs, test[f"factor_{f}"],
                                                     cfg["probe"], seed, device)["top1"]
        out[f"probe_content_latent_{f}_top1"] = _probe(zc_tr, train[f"factor_{f}"], zc, test[f"factor_{f}"],
                                                       cfg["probe"], seed, device)["top1"]
    return out


def _slice_features(model, x, device):
    return embed(model, x, device, fn=lambda m, xb: m.slices(xb))


def _slice_probes(model, train, test, ftr, fte, cfg, seed, device) -> dict:
    str_, ste = _slice_features(model, train["x"], device), _slice_features(model, test["x"], device)
    reps = {"r": (ftr, fte), **{f"r{k}": (a, b) for k, (a, b) in enumerate(zip(str_, ste))}}
    targets = {cfg["y_factor"]: "y", **{f: f"factor_{f}" for f in factor_names(train) if f != cfg["y_factor"]}}
    out = {}
    for rep, (a, b) in reps.items():
        for name, key in targets.items():
            out[f"probe_{rep}_{name}"] = _probe(a, train[key], b, test[key], cfg["probe"], seed, device)["top1"]
    if "r0" in reps and "r1" in reps:
        for name in targets:  # the poster's R3: how differently the two slices encode a factor
            out[f"probe_gap_{name}"] = abs(out[f"probe_r0_{name}"] - out[f"probe_r1_{name}"])
    return out


def _stage_probes(model, train, test, cfg, seed, device) -> list[dict]:
    rows = []
    targets = {"y": "y", **{f: f"factor_{f}" for f in factor_names(train)}}
    for stage in range(len(model.stages)):
        feats = [embed(model, x, device, fn=lambda m, xb: m.stage_features(xb, stage)) for x in (train["x"], test["x"])]
        for name, key in targets.items():
            if name == "y" and cfg["y_factor"] in targets:
                continue
            top1 = _probe(feats[0], train[key], feats[1], test[key], cfg["probe"], seed, device)["top1"]
            rows.append({"stage": stage, "attribute": name, "top1": top1})
    return rows


def _corruptions(model, test, predict, cfg, seed, device) -> list[dict]:
    from clbench.data.corruptions import CORRUPTIONS, corrupt

    names = CORRUPTIONS if cfg["names"] == "all" else cfg["names"]
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.permutation(len(test["y"]))[: cfg["n_test"]])
    x, y = test["x"][idx], test["y"][idx]
    rows = []
    for name in names:
        for severity in cfg["severities"]:
            xc = corrupt(x, name, severity, seed)
            rows.append(corruption_row(name, severity, predict(embed(model, xc, device)), y))
    return rows

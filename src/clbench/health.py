"""Run health: did a run train? Pure checks over numbers and metrics rows (numpy only, no torch).

Every finished run records ``health`` in its ``run.json`` (the training-side checks) and in its
``evaluation.json`` (those plus the evaluation-side checks)::

    {"status": "ok" | "warn" | "failed",
     "checks": [{"name", "status": "ok" | "warn" | "failed" | "skipped", "value", "threshold", "detail"}],
     "reasons": ["one sentence per warn / failed check", ...]}

An MCL run's health also holds ``"stages"``: one training-side health per stage.

The checks (thresholds are the config's ``health:`` settings, :data:`DEFAULTS`):

training side (the per-epoch metrics rows; the mean loss of each epoch)
    ``loss_finite``        every epoch's loss is finite (failed otherwise)
    ``loss_divergence``    no epoch's loss rises above the best loss before it by more than
                           ``divergence_factor`` x the run's loss scale: the larger of |best so far|
                           and the median absolute deviation of the earlier epochs' losses (robust to
                           losses that fall by orders of magnitude, as a VAE's, and to negative ones,
                           as MI bounds); failed
    ``loss_moves``         first and last epoch's losses differ by at least ``min_loss_change`` of
                           their size; warn otherwise (a loss that does not move trained nothing)
    ``loss_collapse``      objectives that declare the loss of constant embeddings
                           (:attr:`clbench.objectives.Objective.constant_loss`, e.g. ln(2B - 1) for
                           two-view InfoNCE): the last epoch's loss lies below it by more than
                           ``collapse_margin`` x max(|that loss|, 1); failed otherwise (collapse)
    ``mi_penalties``       MI estimators and penalties (metrics ending in ``_penalty``) stay finite
                           and within +-``mi_bound`` nats in every epoch; failed
evaluation side
    ``embedding_spread``   the mean squared distance of the L2-normalised features to their mean
                           (0: every input embedded alike) is at least ``spread_floor``; failed
    ``effective_rank``     exp(entropy of the normalised singular values) of the centred,
                           L2-normalised features is at least ``rank_floor``; warn (dimensional collapse)
    ``reconstruction``     a VAE's reconstruction error on validation images is at most
                           ``reconstruction_ratio`` x the error of predicting the training mean image; failed
    ``probe_above_chance`` the probe of the trained label scores, on validation data, at least
                           ``chance_margin`` above chance (the majority-class rate); in-distribution
                           experiments only (skipped for ``ood: true`` ones and without a label); failed

A check that does not apply is ``skipped`` and never changes the status. :func:`stop_if_diverged`
is the training loops' per-epoch guard: it raises :class:`TrainingDiverged` when an epoch's loss
is non-finite or diverges (``stop_early: false`` only logs the divergence).
"""

from __future__ import annotations

import logging
import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

__all__ = [
    "DEFAULTS",
    "OK",
    "WARN",
    "FAILED",
    "SKIPPED",
    "TrainingDiverged",
    "check",
    "check_collapse",
    "check_divergence",
    "check_effective_rank",
    "check_loss_finite",
    "check_loss_moves",
    "check_mi_penalties",
    "check_probe_above_chance",
    "check_reconstruction",
    "check_spread",
    "combine",
    "divergence_ratios",
    "effective_rank",
    "embedding_spread",
    "log_health",
    "majority_rate",
    "settings",
    "stage_health",
    "stop_if_diverged",
    "training_health",
    "training_health_of",
]

log = logging.getLogger(__name__)

OK, WARN, FAILED, SKIPPED = "ok", "warn", "failed", "skipped"

# the config's health: block (workflow/schemas/config.schema.yaml documents each)
DEFAULTS: dict[str, Any] = {
    "stop_early": True,
    "divergence_factor": 5.0,
    "min_loss_change": 0.01,
    "collapse_margin": 0.01,
    "mi_bound": 100.0,
    "spread_floor": 1e-3,
    "rank_floor": 2.0,
    "reconstruction_ratio": 0.9,
    "chance_margin": 0.05,
}

_SCALE_FLOOR = 1e-6  # the loss scale when the best loss and its spread are both 0


class TrainingDiverged(FloatingPointError):
    """A run's loss went non-finite or diverged: training stopped early."""


def settings(given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """:data:`DEFAULTS` with ``given`` on top (unknown keys, e.g. an experiment's ``ood``, kept)."""
    return {**DEFAULTS, **(given or {})}


def check(name: str, status: str, detail: str, value: float | None = None, threshold: float | None = None) -> dict:
    """One check as the contract's dict (non-finite numbers become null, JSON has no NaN)."""
    def num(x):
        return float(x) if x is not None and math.isfinite(float(x)) else None

    return {"name": name, "status": status, "value": num(value), "threshold": num(threshold), "detail": detail}


def combine(checks: Iterable[Mapping[str, Any]], stages: Sequence[Mapping[str, Any]] | None = None) -> dict:
    """The health of a run from its checks: failed if any failed, else warn if any warned, else ok;
    ``reasons`` are the details of the warn / failed checks. ``stages``: an MCL run's per-stage healths."""
    checks = [dict(c) for c in checks]
    statuses = {c["status"] for c in checks}
    status = FAILED if FAILED in statuses else WARN if WARN in statuses else OK
    out = {"status": status, "checks": checks,
           "reasons": [c["detail"] for c in checks if c["status"] in (WARN, FAILED)]}
    if stages is not None:
        out["stages"] = [dict(s) for s in stages]
    return out


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _losses(rows: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    """The values of ``key`` over the rows that have it (CSV rows hold strings)."""
    return np.array([float(r[key]) for r in rows if r.get(key) not in (None, "")], dtype=float)


# ---- training side ---------------------------------------------------------------------------------


def check_loss_finite(losses: Sequence[float]) -> dict:
    v = np.asarray(losses, dtype=float)
    if len(v) == 0:
        return check("loss_finite", SKIPPED, "no training epoch logged a loss")
    bad = np.flatnonzero(~np.isfinite(v))
    if len(bad):
        return check("loss_finite", FAILED, f"the loss is not finite from epoch {bad[0] + 1} ({v[bad[0]]})",
                     value=float(len(bad)))
    return check("loss_finite", OK, f"every epoch's loss is finite (last {_fmt(v[-1])})", value=0.0)


def divergence_ratios(losses: Sequence[float]) -> np.ndarray:
    """Per epoch from the second: (loss - best earlier loss) / scale, with scale the larger of |best
    earlier loss| and the median absolute deviation of the earlier losses (at least 1e-6)."""
    v = np.asarray(losses, dtype=float)
    out = np.full(len(v), -np.inf)
    for e in range(1, len(v)):
        before = v[:e][np.isfinite(v[:e])]
        if len(before) == 0 or not np.isfinite(v[e]):
            continue
        best = before.min()
        mad = float(np.median(np.abs(before - np.median(before))))
        scale = max(abs(best), mad, _SCALE_FLOOR)
        out[e] = (v[e] - best) / scale
    return out


def check_divergence(losses: Sequence[float], factor: float) -> dict:
    v = np.asarray(losses, dtype=float)
    if len(v) < 2:
        return check("loss_divergence", SKIPPED, "fewer than two epochs: nothing to compare", threshold=factor)
    ratios = divergence_ratios(v)
    worst = int(np.argmax(ratios))
    if ratios[worst] > factor:
        best = np.nanmin(v[:worst])
        return check("loss_divergence", FAILED,
                     f"the loss diverges: {_fmt(v[worst])} at epoch {worst + 1}, {_fmt(ratios[worst])} loss scales "
                     f"above the best earlier loss {_fmt(best)} (limit health.divergence_factor = {factor:g})",
                     value=float(ratios[worst]), threshold=factor)
    return check("loss_divergence", OK,
                 f"no epoch rises more than {factor:g} loss scales above the best before it "
                 f"(largest rise {_fmt(max(ratios[worst], 0.0))})", value=float(ratios[worst]), threshold=factor)


def check_loss_moves(losses: Sequence[float], min_change: float) -> dict:
    v = np.asarray(losses, dtype=float)
    if len(v) < 2 or not np.all(np.isfinite(v[[0, -1]])):
        return check("loss_moves", SKIPPED, "fewer than two finite epochs: no change to measure", threshold=min_change)
    change = abs(v[-1] - v[0]) / max(abs(v[0]), abs(v[-1]), _SCALE_FLOOR)
    if change < min_change:
        return check("loss_moves", WARN,
                     f"the loss barely moves: {_fmt(v[0])} at epoch 1, {_fmt(v[-1])} at epoch {len(v)} "
                     f"({change:.2%} < health.min_loss_change = {min_change:g})", value=change, threshold=min_change)
    return check("loss_moves", OK, f"the loss moves from {_fmt(v[0])} to {_fmt(v[-1])} ({change:.1%})",
                 value=change, threshold=min_change)


def check_collapse(final_loss: float | None, constant_loss: float | None, formula: str, margin: float, *,
                   term: str = "loss") -> dict:
    """``final_loss`` (of ``term``) against ``constant_loss``, the loss of constant embeddings (``formula``
    says how it comes about, e.g. ``ln(2B - 1) = ln(255)``)."""
    if constant_loss is None:
        return check("loss_collapse", SKIPPED, "the objective declares no loss of constant embeddings")
    if final_loss is None or not math.isfinite(final_loss):
        return check("loss_collapse", SKIPPED, "no finite final loss", threshold=constant_loss)
    limit = constant_loss - margin * max(abs(constant_loss), 1.0)
    if final_loss >= limit:
        return check("loss_collapse", FAILED,
                     f"{_the(term)} ends at {final_loss:.4g}, within {margin:.0%} of {formula} = {constant_loss:.4g}, "
                     f"the loss of constant embeddings (collapse; health.collapse_margin = {margin:g})",
                     value=final_loss, threshold=limit)
    return check("loss_collapse", OK,
                 f"{_the(term)} ends at {final_loss:.4g}, below {formula} = {constant_loss:.4g} (constant "
                 f"embeddings) by more than {margin:.0%}", value=final_loss, threshold=limit)


def _the(term: str) -> str:
    return "the loss" if term == "loss" else f"the {term} loss"


def penalty_columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The metrics that are MI estimates or penalties (``*_penalty``)."""
    names: list[str] = []
    for r in rows:
        names += [k for k in r if k.endswith("_penalty") and k not in names]
    return names


def check_mi_penalties(rows: Sequence[Mapping[str, Any]], bound: float) -> dict:
    names = penalty_columns(rows)
    if not names:
        return check("mi_penalties", SKIPPED, "no MI estimator or penalty in this objective", threshold=bound)
    worst_name, worst = names[0], 0.0
    for name in names:
        v = _losses(rows, name)
        if len(v) and not np.all(np.isfinite(v)):
            e = int(np.flatnonzero(~np.isfinite(v))[0])
            return check("mi_penalties", FAILED, f"the MI penalty {name} is not finite at epoch {e + 1} ({v[e]})",
                         value=None, threshold=bound)
        if len(v) and np.max(np.abs(v)) > abs(worst):
            worst_name, worst = name, float(v[np.argmax(np.abs(v))])
    if abs(worst) > bound:
        return check("mi_penalties", FAILED,
                     f"the MI penalty {worst_name} reaches {worst:.4g}, beyond +-{bound:g} nats "
                     f"(health.mi_bound): its estimator diverged", value=worst, threshold=bound)
    return check("mi_penalties", OK, f"MI penalties ({', '.join(names)}) stay finite within +-{bound:g} "
                                     f"(largest {worst:.4g})", value=worst, threshold=bound)


def training_health(rows: Sequence[Mapping[str, Any]], given: Mapping[str, Any] | None = None, *,
                    constant_loss: float | None = None, formula: str = "", loss_key: str = "loss") -> dict:
    """The training-side health of a run from its metrics rows (one per epoch or evaluation step)."""
    s = settings(given)
    losses = _losses(rows, loss_key)
    final = float(losses[-1]) if len(losses) else None
    return combine([
        check_loss_finite(losses),
        check_divergence(losses, s["divergence_factor"]),
        check_loss_moves(losses, s["min_loss_change"]),
        check_collapse(final, constant_loss, formula, s["collapse_margin"]),
        check_mi_penalties(rows, s["mi_bound"]),
    ])


def training_health_of(spec: Mapping[str, Any], rows: Sequence[Mapping[str, Any]],
                        given: Mapping[str, Any] | None = None, *, batch_size: int) -> dict:
    """:func:`training_health` of a run of method ``spec``: the collapse check reads the objective's own
    term (the metric named after its loss function, else ``loss``) against the loss of constant
    embeddings the objective declares (:class:`clbench.objectives.ConstantLoss`) at ``batch_size``."""
    from clbench.objectives import OBJECTIVES, resolved_params

    objective = OBJECTIVES.get(spec.get("objective"))
    constant, formula, key = None, "", "loss"
    if objective is not None and objective.constant_loss is not None:
        constant, formula = objective.constant_loss.at(batch_size, int(spec.get("views", 1)), resolved_params(dict(spec)))
        term = (objective.loss or "").rpartition(":")[2]
        key = term if term and any(term in r for r in rows) else "loss"
    health = training_health(rows, given, constant_loss=constant, formula=formula)
    if key != "loss":  # the collapse check on the objective's term, without a regulariser's share
        final = _losses(rows, key)
        i = next(i for i, c in enumerate(health["checks"]) if c["name"] == "loss_collapse")
        health["checks"][i] = check_collapse(float(final[-1]) if len(final) else None, constant,
                                             formula, settings(given)["collapse_margin"], term=key)
        health = combine(health["checks"])
    return health


def stage_health(stages: Sequence[Mapping[str, Any] | None]) -> dict:
    """An MCL run's training health: every stage's checks, named and described by their stage."""
    checks = []
    for i, h in enumerate(stages):
        if h is None:
            checks.append(check(f"stage{i}.health", SKIPPED, f"stage {i}: its run.json records no health"))
            continue
        checks += [{**c, "name": f"stage{i}.{c['name']}", "detail": f"stage {i}: {c['detail']}"} for c in h["checks"]]
    return combine(checks, stages=[h or combine([]) for h in stages])


def stop_if_diverged(losses: Sequence[float], given: Mapping[str, Any] | None = None, *, at: str | None = None,
                     logger: logging.Logger | None = None) -> None:
    """The per-epoch guard: raise :class:`TrainingDiverged` when the last loss of ``losses`` (one per epoch,
    or per evaluation step) is non-finite or rises more than ``divergence_factor`` loss scales above the
    best before it (with ``stop_early: false`` a divergence is only logged). ``at`` names the point for
    the message (default ``epoch <len(losses)>``)."""
    s = settings(given)
    logger = logger or log
    v = np.asarray(losses, dtype=float)
    if len(v) == 0:
        return
    at = at or f"epoch {len(v)}"
    if not np.isfinite(v[-1]):
        msg = f"training stopped at {at}: the loss is {v[-1]} (not finite)"
        logger.error(msg)
        raise TrainingDiverged(msg)
    ratio = divergence_ratios(v)[-1]
    if ratio > s["divergence_factor"]:
        best = np.nanmin(v[:-1])
        msg = (f"the loss {v[-1]:.4g} at {at} is {ratio:.4g} loss scales above the best earlier loss {best:.4g}, "
               f"beyond health.divergence_factor = {s['divergence_factor']:g} (divergence)")
        if not s["stop_early"]:
            logger.warning("%s; health.stop_early is false: training goes on", msg)
            return
        msg = f"training stopped at {at}: {msg}"
        logger.error(msg)
        raise TrainingDiverged(msg)


# ---- evaluation side -------------------------------------------------------------------------------


def _normalised(features) -> np.ndarray:
    f = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)


def embedding_spread(features) -> float:
    """Mean squared distance of the L2-normalised features to their mean: 1 - |mean|^2, in [0, 1]
    (0: every input embedded alike)."""
    f = _normalised(features)
    return float(np.mean(np.sum((f - f.mean(0)) ** 2, axis=1)))


def effective_rank(features) -> float:
    """exp(entropy of the singular values, normalised to sum 1) of the centred L2-normalised features
    (Roy & Vetterli): 1 when they vary along one direction, the dimension when along all alike."""
    f = _normalised(features)
    s = np.linalg.svd(f - f.mean(0), compute_uv=False)
    if s.sum() <= 0:
        return 0.0
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def check_spread(features, floor: float) -> dict:
    if features is None or len(features) < 2:
        return check("embedding_spread", SKIPPED, "no embedded features to measure", threshold=floor)
    spread = embedding_spread(features)
    if spread < floor:
        return check("embedding_spread", FAILED,
                     f"the embeddings collapse: their spread (mean squared distance of the normalised features to "
                     f"their mean) is {spread:.3g} < health.spread_floor = {floor:g}", value=spread, threshold=floor)
    return check("embedding_spread", OK, f"the normalised features spread {spread:.3g} around their mean",
                 value=spread, threshold=floor)


def check_effective_rank(features, floor: float) -> dict:
    if features is None or len(features) < 2:
        return check("effective_rank", SKIPPED, "no embedded features to measure", threshold=floor)
    rank = effective_rank(features)
    if rank < floor:
        return check("effective_rank", WARN,
                     f"the embeddings use few directions: effective rank {rank:.3g} < health.rank_floor = {floor:g}",
                     value=rank, threshold=floor)
    return check("effective_rank", OK, f"effective rank of the features {rank:.3g}", value=rank, threshold=floor)


def check_reconstruction(recon_error: float | None, mean_image_error: float | None, max_ratio: float) -> dict:
    """A VAE's reconstruction error against the error of predicting the training mean image (same images)."""
    if recon_error is None or mean_image_error is None:
        return check("reconstruction", SKIPPED, "not a VAE", threshold=max_ratio)
    if not math.isfinite(recon_error) or mean_image_error <= 0:
        return check("reconstruction", FAILED, f"reconstruction error {recon_error} against the mean image's "
                                               f"{mean_image_error}", threshold=max_ratio)
    ratio = recon_error / mean_image_error
    if ratio > max_ratio:
        return check("reconstruction", FAILED,
                     f"the VAE reconstructs no better than the mean image: its error is {ratio:.0%} of the mean "
                     f"image's ({recon_error:.4g} vs {mean_image_error:.4g} per pixel; limit "
                     f"health.reconstruction_ratio = {max_ratio:g})", value=ratio, threshold=max_ratio)
    return check("reconstruction", OK, f"reconstruction error {ratio:.0%} of the mean image's "
                                       f"({recon_error:.4g} vs {mean_image_error:.4g} per pixel)",
                 value=ratio, threshold=max_ratio)


def majority_rate(labels) -> float:
    """The accuracy of always predicting the most frequent label: chance for a probe."""
    y = np.asarray(labels)
    if len(y) == 0:
        return math.nan
    return float(np.unique(y, return_counts=True)[1].max() / len(y))


def check_probe_above_chance(accuracy: float | None, chance: float | None, margin: float, *, probe: str = "probe",
                             split: str = "validation", ood: bool = False) -> dict:
    if ood:
        return check("probe_above_chance", SKIPPED, "an OOD experiment: its accuracy is not expected in distribution",
                     threshold=margin)
    if accuracy is None or chance is None or not math.isfinite(chance):
        return check("probe_above_chance", SKIPPED, f"no {probe} of a trained label to score", threshold=margin)
    limit = chance + margin
    if not accuracy >= limit:
        return check("probe_above_chance", FAILED,
                     f"the {probe} is at chance on {split} data: top-1 {accuracy:.1%} vs chance {chance:.1%} "
                     f"(needs health.chance_margin = {margin:g} above)", value=accuracy, threshold=limit)
    return check("probe_above_chance", OK, f"the {probe} scores {accuracy:.1%} on {split} data, chance {chance:.1%}",
                 value=accuracy, threshold=limit)


def log_health(health: Mapping[str, Any], logger: logging.Logger | None = None) -> None:
    """One log line for the run's health, a warning with its reasons unless it is ok."""
    logger = logger or log
    if health["status"] == OK:
        logger.info("health: ok")
    else:
        logger.warning("health: %s: %s", health["status"], "; ".join(health["reasons"]))

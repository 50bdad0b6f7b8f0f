"""Hyper-parameter sweeps with model selection on validation data, in DomainBed's practice.

A sweep (``sweeps.<name>`` in the config) searches the settings a paper leaves unsaid: each trial is the method
with sampled settings (every combination of listed values with ``grid: true``, else ``trials`` random draws
from lists, uniform or log-uniform ranges, by ``sampling_seed``) over the sweep's ``fixed`` settings (shared by
every trial, not searched: e.g. more epochs than the method's), trained with each of the sweep's seeds.
:func:`expand` makes the trials ordinary work before any job runs: each trial is a method ``<sweep>-t<i>``
(the method's settings with the trial's), and the sweep an experiment of the same name (the swept
experiment's dataset and evaluations, the sweep's seeds), so its runs are
``results/runs/<sweep>/<sweep>-t<i>/seed<s>`` and train, evaluate, resume and go to SLURM like any other.
Every trial's settings are checked against the schema and the objective's bounds at the sweep's key.

The selection (:func:`select`, ``clbench sweep select``) reads each run's validation scores and health only
(:func:`validation_view`: ``evaluation.json``'s ``validation`` and ``health`` blocks, never its test
``metrics``), drops the trials with a failed run (counted, with the reason), and picks the best trial's mean
by the stated rule. Only then are the selected trial's test numbers read, for ``selection.json``. The rule's
metric is one the swept experiment's evaluations write (:func:`validation_metrics`): an image experiment's
``val_top1`` / ``val_knn_top1`` (:func:`clbench.evaluate.runner.validation_scores`), a graph experiment's
``val_svc_top1`` (:mod:`clbench.evaluate.graph_svc`: the inner cross-validation on the training folds).
Snakemake imports this module while it parses the workflow: no torch, no numpy.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import random
import re
import statistics
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from clbench.errors import ConfigError

IMAGE_VALIDATION_METRICS = ("val_top1", "val_knn_top1")
GRAPH_VALIDATION_METRICS = ("val_svc_top1",)
VALIDATION_METRICS = IMAGE_VALIDATION_METRICS + GRAPH_VALIDATION_METRICS
GRAPH_EVALUATION = "graph_svc"  # clbench.config.graph.GRAPH_EVALUATIONS: a graph experiment's evaluation
VALIDATION_SPLIT = "val"
TRIALS_COLUMNS = ["trial", "settings", "val_mean", "val_std", "seeds", "health", "excluded", "selected"]
_RUN = re.compile(r"/(?P<trial>[^/]+)/seed(?P<seed>\d+)/evaluation\.json$")


def validation_metrics(experiment: Mapping) -> tuple[str, ...]:
    """The validation scores the experiment's evaluations write, the default selection metric first."""
    if GRAPH_EVALUATION in experiment.get("evaluations", ()):
        return GRAPH_VALIDATION_METRICS
    return IMAGE_VALIDATION_METRICS


def trial_name(sweep: str, index: int) -> str:
    return f"{sweep}-t{index}"


def describe_distribution(distribution: Any) -> str:
    """A setting's distribution in words: ``{0.05, 0.1, 0.5}``, ``uniform [0, 1]``, ``log-uniform [1e-4, 1e-2]``."""
    if isinstance(distribution, list):
        return "{" + ", ".join(str(v) for v in distribution) + "}"
    (kind, (lo, hi)), = distribution.items()
    return f"{kind.replace('_', '-')} [{lo:g}, {hi:g}]"


def _draw(distribution: Any, rng: random.Random) -> Any:
    if isinstance(distribution, list):
        return distribution[rng.randrange(len(distribution))]
    (kind, (lo, hi)), = distribution.items()
    value = rng.uniform(lo, hi) if kind == "uniform" else math.exp(rng.uniform(math.log(lo), math.log(hi)))
    return float(f"{value:.4g}")  # readable settings; a draw is a draw


def sample_trials(sweep: Mapping, where: str) -> list[dict[str, Any]]:
    """Each trial's settings (dotted key -> value), in trial order; the same for the same sweep."""
    settings = sweep["settings"]
    for key, distribution in settings.items():
        if isinstance(distribution, dict):
            (kind, (lo, hi)), = distribution.items()
            if lo >= hi:
                raise ConfigError(f"{where}.settings.{key}.{kind}", f"[lo, hi] with lo < hi; got [{lo}, {hi}]")
    if sweep.get("grid"):
        if "trials" in sweep:
            raise ConfigError(f"{where}.trials", "a grid runs every combination of the listed values; drop trials "
                                                 "or grid: true")
        ranges = [k for k, d in settings.items() if not isinstance(d, list)]
        if ranges:
            raise ConfigError(f"{where}.settings.{ranges[0]}", "a grid needs a list of values; a range is sampled "
                                                               "(set trials instead of grid: true)")
        keys = list(settings)
        return [dict(zip(keys, values)) for values in itertools.product(*(settings[k] for k in keys))]
    if "trials" not in sweep:
        raise ConfigError(f"{where}.trials", "required: the number of random trials (or grid: true)")
    rng = random.Random(sweep.get("sampling_seed", 0))
    return [{key: _draw(settings[key], rng) for key in settings} for _ in range(sweep["trials"])]


def nested(dotted: Mapping[str, Any]) -> dict:
    """``{"loss.temperature": 0.2}`` as ``{"loss": {"temperature": 0.2}}``."""
    out: dict = {}
    for key, value in dotted.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def check_rule(select: Mapping, where: str, metrics: tuple[str, ...] = VALIDATION_METRICS,
               scored_by: str = "an evaluation") -> None:
    """The selection rule reads validation data: a test split or metric, or a score ``metrics`` does not hold
    (those ``scored_by`` writes), is refused at its key."""
    if select.get("split", VALIDATION_SPLIT) != VALIDATION_SPLIT:
        raise ConfigError(f"{where}.select.split", f"{select['split']!r}: a sweep selects on validation data only "
                                                   f"(split: {VALIDATION_SPLIT}); selecting on test reports a number "
                                                   f"tuned on the test set")
    if select.get("metric", metrics[0]) not in metrics:
        raise ConfigError(f"{where}.select.metric", f"{select['metric']!r}: the selection reads a validation score "
                                                    f"that {scored_by} writes, one of {list(metrics)}")
    if select.get("direction", "max") not in ("max", "min"):
        raise ConfigError(f"{where}.select.direction", f"{select['direction']!r}; valid: ['max', 'min']")


def expand(cfg: dict, schema: Mapping) -> dict:
    """Add, in place, each sweep's trials (methods ``<sweep>-t<i>``) and its experiment (named as the sweep);
    refuse a sweep whose trials would not train, naming its key. A sweep of an experiment or method that a
    selection (``experiments=[...]``) left out is left out with it."""
    from clbench.workflow import check_method_settings, deep_merge, method_spec, validate_method

    for name, sweep in list(cfg.get("sweeps", {}).items()):
        where = f"sweeps.{name}"
        exp = cfg["experiments"].get(sweep["experiment"])
        if exp is None or sweep["method"] not in exp["methods"]:
            if "selection" in cfg:
                del cfg["sweeps"][name]
                continue
            if exp is None:
                raise ConfigError(f"{where}.experiment", f"unknown experiment {sweep['experiment']!r}; defined: "
                                                         f"{sorted(cfg['experiments'])}")
            raise ConfigError(f"{where}.method", f"{sweep['method']!r} is not one of experiment "
                                                 f"{sweep['experiment']}'s methods {exp['methods']}")
        if name in cfg["experiments"] or any(trial_name(name, 0) == m for m in cfg["methods"]):
            raise ConfigError(where, "a sweep's name names its experiment and trials; it is an experiment's name "
                                     "already (rename the sweep)")
        check_rule(sweep.get("select", {}), where, validation_metrics(exp),
                   f"experiment {sweep['experiment']}'s evaluations ({', '.join(exp.get('evaluations', []))})")
        fixed = sweep.get("fixed", {})
        if swept := sorted(set(fixed) & set(sweep["settings"])):
            raise ConfigError(f"{where}.fixed.{swept[0]}", "also in settings: a setting is either fixed for every "
                                                           "trial or searched")
        base = deep_merge(method_spec(cfg, sweep["experiment"], sweep["method"]), nested(fixed))
        if fixed:
            validate_method(base, schema, f"{where}.fixed")
            check_method_settings(base, f"{where}.fixed")
        trials = []
        for i, settings in enumerate(sample_trials(sweep, where)):
            spec = deep_merge(base, nested(settings))
            trial_where = f"{where}.settings (trial {i}: {settings})"
            validate_method(spec, schema, trial_where)
            check_method_settings(spec, trial_where)
            cfg["methods"][trial_name(name, i)] = spec
            trials.append(trial_name(name, i))
        derived = {k: v for k, v in exp.items() if k not in ("method_overrides", "baseline", "methods", "seeds")}
        cfg["experiments"][name] = {**derived, "methods": trials, "seeds": list(sweep["seeds"])}
    return cfg


def sweep_experiments(cfg: Mapping) -> list[str]:
    """The experiments that are sweeps' trials (named as their sweeps)."""
    return [name for name in cfg.get("sweeps", {}) if name in cfg["experiments"]]


def reported(cfg: Mapping) -> dict:
    """``cfg`` without the sweeps' trial experiments: what the tables, figures and claims read (a sweep enters
    them through its selection alone)."""
    trials = set(sweep_experiments(cfg))
    return {**cfg, "experiments": {k: v for k, v in cfg["experiments"].items() if k not in trials}}


def trial_evaluations(cfg: Mapping, sweep: str) -> list[str]:
    from clbench.workflow import run_dir

    exp = cfg["experiments"][sweep]
    return [f"{run_dir(cfg, sweep, t, s)}/evaluation.json" for t in exp["methods"] for s in exp["seeds"]]


def selections(cfg: Mapping) -> list[str]:
    return [f"{cfg['results_dir']}/sweeps/{name}/selection.json" for name in sweep_experiments(cfg)]


def selection_spec(cfg: Mapping, sweep: str) -> dict:
    """What ``clbench sweep select`` needs of the config: the rule and each trial's settings."""
    spec = cfg["sweeps"][sweep]
    trials = sample_trials(spec, f"sweeps.{sweep}")
    metric = validation_metrics(cfg["experiments"][spec["experiment"]])[0]
    return {"sweep": sweep, "experiment": spec["experiment"], "method": spec["method"],
            "select": {"metric": metric, "split": VALIDATION_SPLIT, "direction": "max", **spec.get("select", {})},
            "distributions": {k: describe_distribution(d) for k, d in spec["settings"].items()},
            "fixed": dict(spec.get("fixed", {})),
            "trials": {trial_name(sweep, i): s for i, s in enumerate(trials)}, "seeds": list(spec["seeds"])}


# --------------------------------------------------------------------------------------------------
# selection


def validation_view(evaluation: Mapping) -> dict:
    """What the selection may read of one run's ``evaluation.json``: its validation scores and its health."""
    return {"validation": dict(evaluation.get("validation") or {}), "health": dict(evaluation.get("health") or {})}


def _exclusion(view: Mapping, metric: str) -> str | None:
    """Why a run cannot count towards its trial (None when it can)."""
    health = view["health"]
    if health.get("status") == "failed":
        return "failed health: " + "; ".join(health.get("reasons") or ["(no reason recorded)"])
    validation = view["validation"]
    if validation.get("split", "validation") != "validation":
        return f"no validation split (its score is on {validation['split']})"
    if validation.get(metric) is None:
        return f"no validation {metric}"
    return None


def select(runs: Mapping[str, Mapping[int, Mapping]], rule: Mapping) -> dict:
    """The selection: ``runs`` (trial -> seed -> :func:`validation_view`) by ``rule`` (metric, split, direction).

    A trial with a run that failed health (or has no validation score) is excluded, with the reason; the best
    of the others by the mean over its seeds is selected (None when every trial is excluded: the sweep then
    reports no method, and says why). Returns ``{"selected", "trials": {trial: row}, "excluded"}``; raises
    ValueError when the rule is not a validation rule.
    """
    check = {"split": rule.get("split", VALIDATION_SPLIT), "metric": rule.get("metric", VALIDATION_METRICS[0]),
             "direction": rule.get("direction", "max")}
    try:
        check_rule(check, "select")
    except ConfigError as error:
        raise ValueError(str(error)) from None
    metric, sign = check["metric"], 1 if check["direction"] == "max" else -1
    rows: dict[str, dict] = {}
    for trial, seeds in runs.items():
        reasons = [f"seed {s}: {why}" for s, v in sorted(seeds.items()) if (why := _exclusion(v, metric))]
        scores = [float(v["validation"][metric]) for v in seeds.values() if v["validation"].get(metric) is not None]
        statuses = {v["health"].get("status", "not recorded") for v in seeds.values()}
        rows[trial] = {"val_mean": statistics.fmean(scores) if scores else None,
                       "val_std": statistics.stdev(scores) if len(scores) > 1 else 0.0 if scores else None,
                       "seeds": sorted(seeds), "health": "failed" if "failed" in statuses else
                       "warn" if "warn" in statuses else "ok" if statuses == {"ok"} else "/".join(sorted(statuses)),
                       "excluded": "; ".join(reasons), "selected": False}
    eligible = [t for t, r in rows.items() if not r["excluded"]]
    best = max(eligible, key=lambda t: (sign * rows[t]["val_mean"], -list(rows).index(t))) if eligible else None
    if best is not None:
        rows[best]["selected"] = True
    return {"selected": best, "rule": check, "trials": rows, "excluded": [t for t in rows if rows[t]["excluded"]]}


def run_of(path: str | Path) -> tuple[str, int]:
    """(trial, seed) of a trial's ``.../<trial>/seed<s>/evaluation.json``."""
    match = _RUN.search(Path(path).as_posix())
    if not match:
        raise ValueError(f"{path}: not a run's evaluation.json (.../<trial>/seed<s>/evaluation.json)")
    return match["trial"], int(match["seed"])


def test_summary(evaluations: Iterable[Mapping]) -> dict:
    """Each test metric's mean, standard deviation and count over the selected trial's seeds."""
    values: dict[str, list[float]] = {}
    for evaluation in evaluations:
        for key, value in evaluation.get("metrics", {}).items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                values.setdefault(key, []).append(float(value))
    return {k: {"mean": statistics.fmean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0, "n": len(v)}
            for k, v in values.items()}


def trials_csv(spec: Mapping, result: Mapping) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=TRIALS_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for trial, row in result["trials"].items():
        settings = "; ".join(f"{k}={v}" for k, v in spec["trials"].get(trial, {}).items())
        writer.writerow({**row, "trial": trial, "settings": settings, "seeds": " ".join(map(str, row["seeds"]))})
    return out.getvalue()


def select_sweep(spec: Mapping, evaluation_paths: Iterable[str | Path], out_dir: str | Path) -> dict:
    """``clbench sweep select``: the selection of ``spec`` (:func:`selection_spec`) on these runs' validation
    scores, then the selected trial's test numbers; writes ``selection.json`` and ``trials.csv`` in ``out_dir``."""
    from clbench.io import read_json, write_json, write_text

    paths: dict[str, dict[int, Path]] = {}
    for path in evaluation_paths:
        trial, seed = run_of(path)
        paths.setdefault(trial, {})[seed] = Path(path)
    views = {t: {s: validation_view(read_json(p)) for s, p in seeds.items()} for t, seeds in paths.items()}
    result = select(views, spec["select"])
    chosen = paths.get(result["selected"], {})  # the test numbers are read only now, of the selected trial alone
    test = test_summary(read_json(chosen[s]) for s in sorted(chosen))
    out = {**{k: spec[k] for k in ("sweep", "experiment", "method", "distributions", "seeds")}, **result,
           "n_trials": len(result["trials"]), "n_excluded": len(result["excluded"]),
           "settings": spec["trials"].get(result["selected"], {}), "fixed": dict(spec.get("fixed", {})), "test": test}
    write_json(Path(out_dir) / "selection.json", out)
    write_text(Path(out_dir) / "trials.csv", trials_csv(spec, result))
    return out


def selected_runs(selection_paths: Iterable[str | Path], runs_root: str | Path) -> dict[str, tuple[str, str]]:
    """The evaluation files of each sweep's selected trial -> (the swept experiment, the sweep's name): how the
    tables and claims report a sweep (its other trials stay out of them)."""
    from clbench.io import read_json

    out = {}
    for path in selection_paths:
        sel = read_json(path)
        if sel["selected"] is None:  # every trial excluded
            continue
        for seed in sel["trials"][sel["selected"]]["seeds"]:
            run = Path(runs_root) / sel["sweep"] / sel["selected"] / f"seed{seed}" / "evaluation.json"
            out[str(run)] = (sel["experiment"], sel["sweep"])
    return out


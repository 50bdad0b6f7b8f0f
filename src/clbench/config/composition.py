"""How the workflow's configuration is composed from its files, and which experiments a run selects.

Layers, in order: the workflow's default (``config.yaml``, the Snakefile's ``configfile:``), each
``--configfile``, then ``--config``. A layer is merged over the ones before it key by key, unless it
states ``compose: replace``: then it starts afresh, so a scale's config (``configs/paper.yaml``) runs
exactly what it states plus the schema's defaults and the layers after it (e.g. a cluster overlay),
and nothing of the tiny default leaks in. ``configs/smoke.yaml`` is an overlay (the default's experiments
at smaller sizes).

Selection, in Snakemake's ``--config`` convention: ``papers=[varcon]`` keeps the experiments of those
papers; a list under ``experiments`` or ``methods`` (``experiments=[varcon_cifar100]``,
``methods=[varcon,supcon]``) keeps those experiments or those methods of each experiment, where a mapping
there still sets values. The kept names are checked against the composed configuration, and what was
left out is recorded under ``selection`` for the report.

:func:`resolve` also tells where each value came from (a file, ``--config`` or the schema's default):
``clbench config show``. Snakemake imports this module while it parses the workflow: no torch.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from clbench.config.args import load_value
from clbench.errors import ConfigError

COMPOSE_KEY = "compose"
COMPOSE_MODES = ("overlay", "replace")
SELECTION_KEYS = ("papers", "experiments", "methods")
SCHEMA_DEFAULT = "schema default"
COMMAND_LINE = "--config"


def load_layer(path: str | Path) -> dict:
    """One config file (YAML or JSON) as a layer, read strictly (:func:`clbench.config.files.load_config_file`:
    a missing file, bad YAML, a list or a key given twice refused naming the file); an empty file is an empty layer."""
    from clbench.config.files import load_config_file

    return load_config_file(path)


def parse_config_args(args: Iterable[str] | None) -> dict:
    """``--config KEY=VALUE ...`` as one layer, each VALUE read as YAML as a config file would read it."""
    layer: dict = {}
    for arg in args or ():
        key, sep, value = str(arg).partition("=")
        if not sep:
            raise ConfigError(key or "(--config)", "a --config entry is KEY=VALUE")
        try:
            layer[key] = load_value(value) if value != "" else None
        except yaml.YAMLError:
            layer[key] = value
    return layer


def _forget(origins: dict[str, str], key: str) -> None:
    for name in [k for k in origins if k == key or k.startswith(key + ".")]:
        del origins[name]


def _merge(base: dict, layer: Mapping, origins: dict[str, str], label: str, prefix: str = "") -> None:
    for key, value in layer.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value, origins, label, dotted)
            continue
        _forget(origins, dotted)
        base[key] = copy.deepcopy(value)
        for leaf in _leaves(value, dotted):
            origins[leaf] = label


def _leaves(value: Any, prefix: str) -> Iterable[str]:
    if isinstance(value, dict) and value:
        for key, sub in value.items():
            yield from _leaves(sub, f"{prefix}.{key}")
    else:
        yield prefix


def _selects(layer: Mapping) -> bool:
    """Whether a layer selects: ``papers``, or a list under ``experiments`` or ``methods``."""
    return "papers" in layer or any(isinstance(layer.get(k), list) for k in SELECTION_KEYS)


def compose(layers: Sequence[tuple[str, Mapping]]) -> tuple[dict, dict, dict[str, str]]:
    """(config, selection, origins) of ``layers`` ((label, mapping) in order).

    ``selection``: the latest ``papers`` and list-valued ``experiments`` / ``methods`` of any layer.
    ``origins``: each leaf's dotted key -> the label of the layer that set it.
    """
    cfg: dict = {}
    origins: dict[str, str] = {}
    selection: dict[str, list] = {}
    for label, layer in layers:
        layer = dict(layer)
        mode = layer.pop(COMPOSE_KEY, "overlay")
        if mode not in COMPOSE_MODES:
            raise ConfigError(COMPOSE_KEY, f"{mode!r} in {label}; valid: {list(COMPOSE_MODES)} (replace: this file "
                                           f"starts afresh instead of overlaying the files before it)")
        if mode == "replace":
            cfg, origins = {}, {}
        for key in SELECTION_KEYS:
            if (key == "papers" and key in layer) or isinstance(layer.get(key), list):
                names = layer.pop(key)
                if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
                    raise ConfigError(key, f"a list of names, e.g. {key}=[a,b]; got {names!r}")
                selection[key] = names
        _merge(cfg, layer, origins, label)
    return cfg, {k: v for k, v in selection.items() if v is not None}, origins


def _papers_of(exp: Mapping) -> list[str]:
    paper = exp.get("paper", "baseline")
    return list(paper) if isinstance(paper, list) else [paper]


def _evaluations_for(cfg: Mapping, exp: dict) -> dict:
    """``exp`` without the evaluations that none of its (selected) methods can take, e.g. MCL's stage
    probes once only SimCLR is selected."""
    if "evaluations" not in exp:
        return exp
    from clbench.evaluate.suite import EVALUATIONS  # registers the evaluations; imports no torch
    from clbench.objectives import method_capabilities
    from clbench.config.schema import deep_merge

    offered = [method_capabilities(deep_merge(cfg["methods"][m], exp.get("method_overrides", {}).get(m, {})))
               for m in exp["methods"] if m in cfg.get("methods", {})]
    usable = [e for e in exp["evaluations"] if e not in EVALUATIONS or any(EVALUATIONS[e].requires <= c for c in offered)]
    return dict(exp, evaluations=usable)


def select(cfg: dict, selection: Mapping[str, list]) -> dict:
    """Keep, in place, the selected experiments (and of each, the selected methods); record what was
    left out per paper under ``cfg["selection"]``. Unknown names are refused at their key, with the valid ones.

    A method selection also drops an experiment's ``baseline`` when it is not selected (the relative
    accuracy is then absent), the overrides of the methods left out and the evaluations none of the
    selected methods can take; an experiment left with no method is left out.
    """
    if not selection:
        return cfg
    experiments: dict = cfg.get("experiments") or {}
    valid = {
        "papers": sorted({p for exp in experiments.values() for p in _papers_of(exp)}),
        "experiments": sorted(experiments),
        "methods": sorted({m for exp in experiments.values() for m in exp.get("methods", [])}),
    }
    for key, names in selection.items():
        unknown = [n for n in names if n not in valid[key]]
        if unknown or not names:
            what = f"unknown {key[:-1]} {unknown[0]!r}" if unknown else "an empty selection"
            raise ConfigError(key, f"{what}; valid {key} in this configuration: {valid[key]}")
    papers, names, methods = (selection.get(k) for k in SELECTION_KEYS)
    kept: dict = {}
    left_out: dict[str, dict] = {}
    for name, exp in experiments.items():
        chosen = ((papers is None or set(_papers_of(exp)) & set(papers)) and (names is None or name in names))
        keep = [m for m in exp.get("methods", []) if methods is None or m in methods] if chosen else []
        dropped = [m for m in exp.get("methods", []) if m not in keep]
        for paper in _papers_of(exp):
            record = left_out.setdefault(paper, {"experiments": [], "methods": {}})
            if not keep:
                record["experiments"].append(name)
            elif dropped:
                record["methods"][name] = dropped
        if keep:
            exp = dict(exp, methods=keep)
            if exp.get("baseline") not in (None, *keep):
                del exp["baseline"]
            if "method_overrides" in exp:
                exp["method_overrides"] = {m: o for m, o in exp["method_overrides"].items() if m in keep}
            if dropped:
                exp = _evaluations_for(cfg, exp)
            kept[name] = exp
    if not kept:
        given = ", ".join(f"{k}={v}" for k, v in selection.items())
        raise ConfigError(list(selection)[-1], f"the selection {given} leaves no experiment to run")
    cfg["experiments"] = kept
    cfg["selection"] = {
        **{k: list(v) for k, v in selection.items()},
        "not_selected": {p: r for p, r in left_out.items() if r["experiments"] or r["methods"]},
    }
    return cfg


def config_layers(defaults: Iterable[str | Path] = (), configfiles: Iterable[str | Path] = (),
                  config_args: Iterable[str] | None = ()) -> list[tuple[str, dict]]:
    """The layers of a Snakemake invocation: the workflow's own config files (those that exist), each
    ``--configfile``, then ``--config``."""
    layers = [(str(path), load_layer(path)) for path in defaults if Path(path).exists()]
    layers += [(str(path), load_layer(path)) for path in configfiles]
    args = parse_config_args(config_args)
    if args:
        layers.append((COMMAND_LINE, args))
    return layers


def resolve(layers: Sequence[tuple[str, Mapping]], schema: Mapping | None = None) -> tuple[dict, dict[str, str]]:
    """The configuration a run uses and where each value came from: the layers composed, the selection
    applied, then (with ``schema``) validated and the schema's defaults filled in."""
    cfg, selection, origins = compose(layers)
    select(cfg, selection)
    if selection:
        origins["selection"] = next(label for label, layer in reversed(layers) if _selects(layer))
    if schema is not None:
        from clbench.config.schema import validate

        validate(cfg, schema)
        for leaf in _leaves(cfg, ""):
            leaf = leaf.lstrip(".")
            if not any(leaf == k or leaf.startswith(k + ".") for k in origins):
                origins[leaf] = SCHEMA_DEFAULT
    return cfg, origins


def _leaf_values(value: Any, prefix: str) -> Iterable[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        for key, sub in value.items():
            yield from _leaf_values(sub, f"{prefix}.{key}")
    else:
        yield prefix, value


def describe(cfg: Mapping, origins: Mapping[str, str]) -> str:
    """Each value of the resolved configuration on its own line, ``key: value  # origin``, in config order."""
    lines = []
    for leaf, value in _leaf_values(cfg, ""):  # values by path: a sweep's settings are keys with dots
        leaf = leaf.lstrip(".")
        origin = origins.get(leaf) or next((o for k, o in origins.items() if leaf.startswith(k + ".")), "?")
        value = json.dumps(value, sort_keys=True)
        lines.append(f"{leaf}: {value}  # {origin}")
    return "\n".join(lines)

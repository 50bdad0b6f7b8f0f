"""The configuration a ``snakemake`` invocation resolves, checked as the workflow's planning checks it
(``workflow/rules/common.smk``): ``clbench config show``, ``clbench plan`` and ``clbench run`` read it."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from clbench import sweeps
from clbench.config import composition
from clbench.ops import plan
from clbench.workflow import check_config, load_schema

__all__ = ["resolve_invocation"]


def resolve_invocation(configfiles: Iterable[str | Path] = (), config_args: Iterable[str] | None = (),
                       workdir: str | Path = ".") -> tuple[dict, dict[str, str]]:
    """What ``snakemake --configfile ... --config ...`` run in ``workdir`` (the repository) resolves, checked
    as the workflow checks it: the configuration and each value's origin."""
    workdir = Path(workdir)
    schema = load_schema(workdir / "workflow" / "schemas" / "config.schema.yaml")
    layers = composition.config_layers([workdir / "config.yaml"], configfiles, config_args)
    cfg, origins = composition.resolve(layers, schema)
    sweeps.expand(cfg, schema)  # each sweep's trials: methods of an experiment named as the sweep
    for name in sweeps.sweep_experiments(cfg):
        for key in [f"experiments.{name}", *(f"methods.{t}" for t in cfg["experiments"][name]["methods"])]:
            origins[key] = f"sweeps.{name}"
    check_config(cfg, schema)
    plan.check_sweep_budgets(cfg)
    return cfg, origins

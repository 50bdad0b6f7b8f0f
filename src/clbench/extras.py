"""The optional parts of the install (``pip install clbench[<extra>]``) and which configurations need them.

The default run needs none of them. A configuration that does (a sentence experiment, a WILDS or TU dataset,
the TensorBoard logger) is refused when the workflow is planned, naming the extra to install
(:func:`missing_for_config`); a job started without it stops with the same advice (:func:`require`).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping

# extra -> the modules it installs (as imported), as pyproject.toml's [project.optional-dependencies]
EXTRAS: dict[str, tuple[str, ...]] = {
    "sentences": ("transformers",),
    "wilds": ("wilds",),
    "graphs": ("torch_geometric",),
    "tensorboard": ("tensorboard",),
}

# dataset generator (clbench.data.build) -> the extra it reads its data with
GENERATOR_EXTRAS = {"camelyon17": "wilds", "sentences": "sentences", "tu": "graphs"}


class MissingExtra(ImportError):
    """A part of the install this job needs is missing."""


def installed(extra: str) -> bool:
    return all(_findable(module) for module in EXTRAS[extra])


def _findable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or half-removed install
        return False


def advice(extra: str, why: str) -> str:
    modules = ", ".join(EXTRAS[extra])
    return (f"{why} needs {modules}, which is not installed: install the extra with "
            f"`pip install -e '.[{extra}]'` (or `pip install {' '.join(EXTRAS[extra])}`)")


def require(extra: str, why: str) -> None:
    """Stop with the install advice when ``extra`` is missing; ``why`` names what needs it."""
    if not installed(extra):
        raise MissingExtra(advice(extra, why))


def needed_extras(cfg: Mapping) -> dict[str, str]:
    """extra -> the config key that needs it, for the experiments ``cfg`` runs."""
    from clbench.objectives import OBJECTIVES

    needed: dict[str, str] = {}
    if cfg.get("logger", "none") == "tensorboard":
        needed["tensorboard"] = "logger"
    for name, experiment in (cfg.get("experiments") or {}).items():
        for method in experiment.get("methods", []):
            objective = OBJECTIVES.get(((cfg.get("methods") or {}).get(method) or {}).get("objective"))
            if objective is not None and objective.domain == "text":
                needed.setdefault("sentences", f"experiments.{name}.methods ({method})")
        dataset = ((cfg.get("datasets") or {}).get(experiment.get("dataset")) or {})
        if dataset.get("generator") in GENERATOR_EXTRAS:
            needed.setdefault(GENERATOR_EXTRAS[dataset["generator"]], f"datasets.{experiment.get('dataset')}")
    return needed


def missing_for_config(cfg: Mapping) -> list[str]:
    """One sentence per extra the configuration needs and the install lacks."""
    return [advice(extra, key) for extra, key in needed_extras(cfg).items() if not installed(extra)]


def check_installed(cfg: Mapping) -> None:
    """Refuse, before any job, a configuration that needs an extra the install lacks: one line per extra."""
    from clbench.errors import ConfigError

    if missing := missing_for_config(cfg):
        raise ConfigError("\n".join(missing))

"""Configuration checks of the graph experiments (GraphCL / ADNCE on graphs), before any job runs.

What the schema cannot say: a graph objective (domain ``graph``) trains only on a graph dataset
(generators :data:`GRAPH_GENERATORS`) and an image objective never does; a graph experiment's
evaluations are the graph ones (:data:`GRAPH_EVALUATIONS`: they embed graphs, the others embed
images); the ``graph:`` settings belong to graph objectives, their image-only counterparts
(``augment``, ``crop_size``, ``vae`` ...) do not; every ``graph.eval_epochs`` entry is an epoch the
run reaches. Each refusal names the dotted key (:class:`clbench.errors.ConfigError`). Imports no torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from clbench.errors import ConfigError
from clbench.objectives import OBJECTIVES

__all__ = ["GRAPH_EVALUATIONS", "GRAPH_GENERATORS", "check_graph_settings", "is_graph_dataset", "is_graph_method"]

GRAPH_GENERATORS = ("graph_classes", "tu")
GRAPH_EVALUATIONS = ("graph_svc",)
# method keys that shape image training only (a graph method would silently ignore them), with the
# value the schema fills in when a method leaves them out (None: the schema fills in nothing)
IMAGE_ONLY_KEYS = {"augment": "none", "paired_views": False, "crop_size": None, "classifier": None, "vae": None,
                   "mcl": None, "projection_hidden_dim": None, "projection_batch_norm": None}


def is_graph_dataset(spec: Mapping) -> bool:
    return spec.get("generator") in GRAPH_GENERATORS


def is_graph_method(spec: Mapping) -> bool:
    objective = OBJECTIVES.get(spec.get("objective"))
    return objective is not None and objective.domain == "graph"


def check_graph_method(spec: Mapping, where: str) -> None:
    """One method's (merged) settings: ``graph:`` only with a graph objective, no image-only keys with one."""
    if not is_graph_method(spec):
        if spec.get("graph"):
            raise ConfigError(f"{where}.graph", f"objective {spec.get('objective')} does not train on graphs; "
                                                f"graph settings go with graph_info_nce or graph_adnce")
        return
    for key, unset in IMAGE_ONLY_KEYS.items():
        if key in spec and spec[key] != unset:
            raise ConfigError(f"{where}.{key}", f"objective {spec['objective']} trains a GIN on graphs; {key} is an "
                                                f"image setting it would ignore (graph augmentations: graph.augment)")
    if spec.get("gpus", 1) > 1:
        raise ConfigError(f"{where}.gpus", f"the graph trainer runs on one device; got gpus: {spec['gpus']}")
    epochs = spec.get("epochs", 10)
    for i, epoch in enumerate((spec.get("graph") or {}).get("eval_epochs", [])):
        if epoch > epochs:
            raise ConfigError(f"{where}.graph.eval_epochs[{i}]",
                              f"epoch {epoch} is never reached: the method trains {epochs} epochs")


def check_graph_settings(cfg: Mapping, method_spec: Callable[[Mapping, str, str], dict]) -> None:
    """Every method and experiment of ``cfg`` (after schema defaults), graph and image alike;
    ``method_spec(cfg, experiment, method)`` gives a method's settings in an experiment (overrides merged)."""
    for name, spec in cfg["methods"].items():
        check_graph_method(spec, f"methods.{name}")
    for name, exp in cfg["experiments"].items():
        graph_data = is_graph_dataset(cfg["datasets"][exp["dataset"]])
        for method in exp["methods"]:
            spec = method_spec(cfg, name, method)
            if method in (exp.get("method_overrides") or {}):
                check_graph_method(spec, f"experiments.{name}.method_overrides.{method}")
            if is_graph_method(spec) != graph_data:
                kind = "a graph" if graph_data else "an image"
                trains = "graphs" if is_graph_method(spec) else "images"
                raise ConfigError(
                    f"experiments.{name}.methods",
                    f"method {method} (objective {spec['objective']}) trains on {trains}, but dataset "
                    f"{exp['dataset']} is {kind} dataset",
                )
        for i, evaluation in enumerate(exp["evaluations"]):
            if (evaluation in GRAPH_EVALUATIONS) != graph_data:
                raise ConfigError(
                    f"experiments.{name}.evaluations[{i}]",
                    f"{evaluation} evaluates {'graph' if evaluation in GRAPH_EVALUATIONS else 'image'} models; dataset "
                    f"{exp['dataset']} holds {'graphs' if graph_data else 'images'}"
                    + (f" (graph evaluations: {', '.join(GRAPH_EVALUATIONS)})" if graph_data else ""),
                )

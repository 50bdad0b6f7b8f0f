"""The jobs a configuration plans and their paths: the experiment matrix, MCL's stages, corruption cells,
what each build job needs of its dataset, and the final outputs.

Snakemake imports this module while it parses the workflow (``workflow/rules/common.smk``), so it
stays light: no torch, no numpy at import. Every function is a pure function of the config dict
(after :func:`validate` filled in the schema's defaults); the ``.smk`` files only pass it
``config`` and the wildcards. The checks of a configuration are :mod:`clbench.config` (re-exported here for
the ``.smk`` files); a refused configuration raises :class:`clbench.errors.ConfigError`, whose message starts
with the dotted key.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from clbench.config.checks import GRAPH_SVC_FOLDS
# the schema, the settings a method resolves to and the checks of their values, which the .smk files and the
# tests read as wf.<name>
from clbench.config.schema import (  # noqa: F401
    deep_merge, experiment_evaluation, load_schema, method_spec, validate, validate_method,
)
from clbench.config.settings import (  # noqa: F401
    CORRUPTION_NAMES, check_config, check_dataset_roots, check_method_settings, used_datasets,
)
from clbench.errors import ConfigError



def is_mcl(cfg: Mapping, method: str) -> bool:
    """Whether the method trains in MCL stages (pretrain_stage / cluster_stage / combine_stages)."""
    return "mcl" in cfg["methods"][method]


def as_json(obj: Any) -> str:
    """A config slice as a canonical JSON string: a rule's params, so changing it re-runs only that rule."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def name_regex(names: Iterable[str]) -> str:
    """A wildcard constraint matching exactly these names (never matches when empty)."""
    return "|".join(re.escape(n) for n in sorted(names)) or "(?!)"


# --------------------------------------------------------------------------------------------------
# the experiment matrix and its paths


def experiment_runs(cfg: Mapping) -> Iterator[tuple[str, str, int]]:
    """(experiment, method, seed) for every run in the config."""
    for name, exp in cfg["experiments"].items():
        for method in exp["methods"]:
            for seed in exp["seeds"]:
                yield name, method, seed


def shared_seeds(cfg: Mapping) -> list[int]:
    """The seeds one job trains (and one evaluates) in turn with ``seeds_per_job: all``: the seed list most
    experiments share (the first experiment's among equals); [] with ``seeds_per_job: one``."""
    if cfg["seeds_per_job"] != "all" or not cfg["experiments"]:
        return []
    lists = [tuple(exp["seeds"]) for exp in cfg["experiments"].values()]
    return list(max(dict.fromkeys(lists), key=lists.count))


def grouped_experiments(cfg: Mapping) -> list[str]:
    """The experiments whose methods train all their seeds in one job: those with the shared seed list. The
    others (another seed list, or ``seeds_per_job: one``) have a job per seed."""
    seeds = shared_seeds(cfg)
    return [name for name, exp in cfg["experiments"].items() if seeds and list(exp["seeds"]) == seeds]


def per_seed(cfg: Mapping, path: str) -> list[str]:
    """``path`` (a rule's pattern with a ``{seed}`` wildcard) for each shared seed: the outputs of a job
    that runs every seed of a method (``seeds_per_job: all``); its other wildcards stay."""
    return [path.replace("{seed}", str(seed)) for seed in shared_seeds(cfg)]


def seeds_arg(cfg: Mapping) -> str:
    """The shared seeds as the ``--seed`` argument of a job that runs them all (``0,1,2``)."""
    return ",".join(str(seed) for seed in shared_seeds(cfg))


def run_dir(cfg: Mapping, experiment: str, method: str, seed: int | str) -> str:
    return f"{cfg['results_dir']}/runs/{experiment}/{method}/seed{seed}"


def checkpoint_dir(cfg: Mapping, experiment: str, method: str, seed: int | str, stage: int | str | None = None) -> str:
    """Where a pretraining job keeps its epoch checkpoints: outside its declared outputs, which
    Snakemake deletes before a job runs, so that a re-run job finds them and resumes."""
    path = f"{cfg['results_dir']}/checkpoints/{experiment}/{method}/seed{seed}"
    return path if stage is None else f"{path}/stage{stage}"


def dataset_dir(cfg: Mapping, dataset: str) -> str:
    return f"{cfg['results_dir']}/data/{dataset}"


def dataset_meta(cfg: Mapping, experiment: str) -> str:
    """The meta.json of the dataset an experiment reads."""
    return f"{dataset_dir(cfg, cfg['experiments'][experiment]['dataset'])}/meta.json"


def pretrain_spec(cfg: Mapping, experiment: str, method: str) -> str:
    """A pretrain job's ``--spec``: the method's merged settings as canonical JSON."""
    return as_json(method_spec(cfg, experiment, method))


def stage_spec(cfg: Mapping, experiment: str, method: str, seed: int | str = 0, stage: int | str = 0) -> str:
    """Every MCL stage trains the method's own spec (a fresh model); the stage index only changes batches.

    Unless the ``mcl:`` block says otherwise: ``first_stage: initial`` makes stage 0 the starting
    model itself (0 epochs: CLIP's vanilla weights), ``init: previous`` starts each later stage from
    the previous stage's model (``init_from``), ``order: round_robin`` visits the clusters in turn
    (``cluster_order``, read by ``clbench train --clusters``), ``labels: previous`` draws the batches from
    the previous stage's clusters alone (``stage_labels``). At the defaults the spec is the method's.
    """
    spec = method_spec(cfg, experiment, method)
    mcl = spec.pop("mcl")
    stage = int(stage)
    if stage == 0 and mcl.get("first_stage", "train") == "initial":
        spec["epochs"] = 0
    if stage > 0 and mcl.get("init", "fresh") == "previous":
        spec["init_from"] = f"{run_dir(cfg, experiment, method, seed)}/stage{stage - 1}/model.pt"
    if stage > 0 and mcl.get("order", "shuffled") != "shuffled":
        spec["cluster_order"] = mcl["order"]
    if stage > 0 and mcl.get("labels", "joint") != "joint":
        spec["stage_labels"] = mcl["labels"]
    return as_json(spec)


def mcl_clusters(cfg: Mapping, experiment: str, method: str) -> int:
    """K-means clusters after each MCL stage."""
    return method_spec(cfg, experiment, method)["mcl"]["clusters"]


def previous_stage_clusters(cfg: Mapping, experiment: str, method: str, seed: int | str, stage: int | str) -> list[str]:
    run = run_dir(cfg, experiment, method, seed)
    return [f"{run}/stage{s}/clusters.npy" for s in range(int(stage))]


def previous_stage_clusters_of_seeds(cfg: Mapping, experiment: str, method: str, stage: int | str) -> list[str]:
    """Every shared seed's previous-stage clusters: the inputs of a stage job that trains all seeds."""
    return [path for seed in shared_seeds(cfg) for path in previous_stage_clusters(cfg, experiment, method, seed, stage)]


def mcl_stage_models_of_seeds(cfg: Mapping, experiment: str, method: str) -> list[str]:
    """Every shared seed's stage models: the inputs of a combine job for all seeds."""
    return [path for seed in shared_seeds(cfg) for path in mcl_stage_models(cfg, experiment, method, seed)]


def stage_templates(cfg: Mapping, experiment: str, method: str, stage: int | str | None = None,
                    name: str = "") -> str:
    """Space-separated per-seed templates (``{seed}`` kept) of the stages before ``stage`` (all stages when
    None): their directories, or the file ``name`` in each."""
    n = int(stage) if stage is not None else method_spec(cfg, experiment, method)["mcl"]["stages"]
    run = run_dir(cfg, experiment, method, "{seed}")
    return " ".join(f"{run}/stage{s}" + (f"/{name}" if name else "") for s in range(n))


def mcl_stage_models(cfg: Mapping, experiment: str, method: str, seed: int | str) -> list[str]:
    run = run_dir(cfg, experiment, method, seed)
    return [f"{run}/stage{s}/model.pt" for s in range(method_spec(cfg, experiment, method)["mcl"]["stages"])]


def method_gpus(cfg: Mapping, experiment: str, method: str, stage: int | str | None = None) -> int:
    """GPUs of one pretraining job: the method's ``gpus``, else ``gpus_per_train_job``; at most one for an
    MCL stage 0 that is the starting model itself (``mcl.first_stage: initial``: nothing to train)."""
    spec = method_spec(cfg, experiment, method)
    n = spec.get("gpus", cfg["gpus_per_train_job"])
    if stage is not None and int(stage) == 0 and spec.get("mcl", {}).get("first_stage", "train") == "initial":
        return min(n, 1)
    return n


def train_command(cfg: Mapping, experiment: str, method: str, stage: int | str | None = None) -> str:
    """``clbench``, or torchrun starting one ``clbench`` process per GPU (data-parallel, one node)."""
    n = method_gpus(cfg, experiment, method, stage)
    return f"torchrun --standalone --nproc_per_node={n} -m clbench.cli" if n > 1 else "clbench"


def corruption_cells(cfg: Mapping, experiment: str) -> list[tuple[str, int]]:
    """(corruption, severity) of every cell this experiment evaluates as its own job, in table order.

    Empty unless the experiment evaluates corruptions at cell granularity (at grid granularity its
    evaluate job scores the whole grid in memory).
    """
    corruptions = cfg["evaluation"]["corruptions"]
    if "corruptions" not in cfg["experiments"][experiment]["evaluations"] or corruptions["granularity"] != "cell":
        return []
    names = CORRUPTION_NAMES if corruptions["names"] == "all" else corruptions["names"]
    return [(name, severity) for name in names for severity in corruptions["severities"]]


def evaluation_spec(cfg: Mapping, experiment: str) -> str:
    """The evaluation settings this experiment's evaluate job uses, plus its list of evaluations.

    Only the slice the job reads: the corruption settings only where it scores the grid itself, so
    e.g. adding a severity at cell granularity re-runs the new cells, not the run's probes. The
    experiment's own ``evaluation:`` settings (e.g. its linear-evaluation protocol) are merged in
    (:func:`experiment_evaluation`).
    """
    exp = cfg["experiments"][experiment]
    spec = {k: v for k, v in experiment_evaluation(cfg, experiment).items() if k != "corruptions"}
    if corruption_cells(cfg, experiment):
        spec["corruptions"] = {"granularity": "cell"}
    elif "corruptions" in exp["evaluations"]:
        spec["corruptions"] = {k: cfg["evaluation"]["corruptions"][k] for k in ("names", "severities", "n_test")}
    return as_json({**spec, "evaluations": exp["evaluations"], "y_factor": exp["y_factor"]})


def health_spec(cfg: Mapping, experiment: str) -> str:
    """The ``--health`` of an experiment's train and evaluate jobs: the ``health:`` thresholds and whether the
    experiment is OOD (its accuracy is not held to chance on in-distribution data)."""
    return as_json({**cfg["health"], "ood": bool(cfg["experiments"][experiment].get("ood", False))})


def corrupted_dir(cfg: Mapping, dataset: str, corruption: str, severity: int | str) -> str:
    return f"{dataset_dir(cfg, dataset)}/corrupted/{corruption}/s{severity}"


def corrupted_meta(cfg: Mapping, experiment: str, corruption: str, severity: int | str) -> str:
    """The corrupted test split one evaluate_corruption job reads."""
    return f"{corrupted_dir(cfg, cfg['experiments'][experiment]['dataset'], corruption, severity)}/meta.json"


def corruption_cell_results(cfg: Mapping, experiment: str, method: str, seed: int | str) -> list[str]:
    """Every cell's result of one run, in table order (what merge_evaluation puts together)."""
    run = run_dir(cfg, experiment, method, seed)
    return [f"{run}/corruptions/{name}/s{severity}.json" for name, severity in corruption_cells(cfg, experiment)]


def official_corruption_root(cfg: Mapping, dataset: str) -> str:
    """The official corrupted test set's folder for this dataset, when configured ('' otherwise).

    Only the matching root is a param, so setting cifar100c_root does not re-run CIFAR-10's cells.
    """
    spec = cfg["datasets"][dataset]
    if spec["generator"] != "torchvision" or spec.get("name") not in ("cifar10", "cifar100"):
        return ""
    return cfg["evaluation"]["corruptions"][f"{spec['name']}c_root"] or ""


def all_evaluations(cfg: Mapping) -> list[str]:
    return [f"{run_dir(cfg, *run)}/evaluation.json" for run in experiment_runs(cfg)]


def all_metrics(cfg: Mapping) -> list[str]:
    return [f"{run_dir(cfg, *run)}/metrics.csv" for run in experiment_runs(cfg)]


def all_dataset_previews(cfg: Mapping) -> list[str]:
    """Each used dataset's samples and, where some method or probe augments it, its augmented views."""
    samples = [f"{dataset_dir(cfg, d)}/samples.png" for d in used_datasets(cfg)]
    return samples + [f"{dataset_dir(cfg, d)}/augmented_views.png" for d in used_datasets(cfg) if dataset_recipes(cfg, d)]


# clbench.data.augment.RECIPES without "none", repeated so that planning imports no torch (a test keeps them in sync)
AUGMENT_RECIPES = ("crop_flip", "digits", "simclr", "supcon")


def dataset_recipes(cfg: Mapping, dataset: str) -> list[str]:
    """The augmentation recipes training or an augmented probe applies to ``dataset``, sorted."""
    recipes = set()
    for name, exp in cfg["experiments"].items():
        if exp["dataset"] != dataset:
            continue
        recipes |= {method_spec(cfg, name, method).get("augment", "none") for method in exp["methods"]}
        probe = experiment_evaluation(cfg, name)["probe"]
        if probe.get("protocol", "features") == "augmented":
            recipes.add(probe.get("augment", "simclr"))
    return sorted(recipes & set(AUGMENT_RECIPES))


def final_outputs(cfg: Mapping) -> list[str]:
    results = cfg["results_dir"]
    selections = [f"{results}/sweeps/{name}/selection.json" for name in cfg.get("sweeps", {})]
    return [f"{results}/tables/summary.csv", f"{results}/figures/training_curves.png", f"{results}/report/index.html",
            *selections]


def used_dataset_dirs(cfg: Mapping) -> list[str]:
    """Every dataset directory this configuration reads: each experiment's dataset and, at cell
    granularity, its corrupted test splits."""
    dirs = set()
    for name, exp in cfg["experiments"].items():
        dirs.add(dataset_dir(cfg, exp["dataset"]))
        dirs |= {corrupted_dir(cfg, exp["dataset"], c, s) for c, s in corruption_cells(cfg, name)}
    return sorted(dirs)


def dataset_needs(cfg: Mapping, dataset: str) -> dict | None:
    """What the experiments reading ``dataset`` need of data the plan cannot see
    (:func:`clbench.data.build.unmet_need`): graph_svc's stratified folds need as many graphs in every class."""
    for name, exp in sorted(cfg["experiments"].items()):
        if exp["dataset"] == dataset and "graph_svc" in exp["evaluations"]:
            return {"min_class_size": GRAPH_SVC_FOLDS, "by": f"graph_svc's {GRAPH_SVC_FOLDS} stratified folds "
                                                             f"(experiment {name})",
                    "key": f"experiments.{name}.evaluations"}
    return None


def build_spec(cfg: Mapping, dataset: str) -> dict:
    """The build job's spec: the dataset's config entry and, where its experiments need something of the
    data, ``needs`` (so a dataset nothing asks more of keeps the params, and the outputs, it had)."""
    needs = dataset_needs(cfg, dataset)
    return {**cfg["datasets"][dataset], **({"needs": needs} if needs else {})}


def check_built_datasets(cfg: Mapping) -> None:
    """Refuse, before any job, an existing dataset directory that does not meet what its experiments need
    (a TU dataset built before graph_svc was asked of it): its meta.json says, without reading the arrays."""
    from clbench.data.build import unmet_need

    for dataset in used_datasets(cfg):
        needs, meta_path = dataset_needs(cfg, dataset), os.path.join(dataset_dir(cfg, dataset), "meta.json")
        if needs and os.path.isfile(meta_path):
            with open(meta_path, encoding="utf-8") as f:
                problem = unmet_need(json.load(f), needs)
            if problem:
                raise ConfigError(needs["key"], f"dataset {dataset} ({meta_path}): {problem}")


# --------------------------------------------------------------------------------------------------
# existing dataset directories


def verify_datasets(paths: Iterable[str | os.PathLike]) -> None:
    """Refuse, before any job runs, a dataset directory that holds a truncated or unreadable file.

    Snakemake trusts an existing output by its timestamp, so without this every job reading such a
    file would fail on its own, deep in its log. Only directories that exist are checked: meta.json
    parses, and each split's arrays match their checksums, read only for a file that changed since
    its last check (:func:`clbench.data.dataset_dir.verify`). Raises
    :class:`clbench.data.dataset_dir.DatasetError` saying which file to delete.
    """
    existing = [p for p in paths if os.path.isdir(p)]
    if not existing:
        return
    from clbench.data.dataset_dir import record_verified, verify  # numpy: imported only when a dataset exists

    # every directory checked before any is recorded as verified: a refused run writes nothing
    record_verified([file for path in existing for file in verify(path, record=False)])

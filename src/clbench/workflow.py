"""The workflow's configuration logic: cross-reference checks, the jobs a configuration plans and their paths.

Snakemake imports this module while it parses the workflow (``workflow/rules/common.smk``), so it
stays light: no torch, no numpy at import. Every function is a pure function of the config dict
(after :func:`validate` filled in the schema's defaults); the ``.smk`` files only pass it
``config`` and the wildcards. A refused configuration raises :class:`clbench.errors.ConfigError`,
whose message starts with the dotted key.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from clbench.data.build import check_spec, effective, reads_key
from clbench.errors import ConfigError
from clbench.config.graph import check_graph_settings
from clbench.config.checks import GRAPH_SVC_FOLDS, check_inputs
# the schema and the settings a method resolves to, read by the .smk files as wf.<name>
from clbench.config.schema import (  # noqa: F401
    load_schema, validate, validate_subschema, validate_method, deep_merge, method_spec, experiment_evaluation,
)
from clbench.objectives import OBJECTIVES, check_method

# clbench.data.corruptions.CORRUPTIONS, repeated so that planning the workflow does not import SciPy
# (a test keeps the two in sync)
CORRUPTION_NAMES = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)


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


def used_datasets(cfg: Mapping) -> list[str]:
    """The datasets some experiment reads (the others are never built)."""
    return sorted({exp["dataset"] for exp in cfg["experiments"].values()})


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
# checks: what the schema cannot express, refused before any job runs


def check_config(cfg: Mapping, schema: Mapping) -> list[str]:
    """Cross-references and values the schema cannot express. Raises :class:`ConfigError` on the
    first refused setting; returns warnings (settings a dry run accepts but a real run needs)."""
    warnings: list[str] = []
    check_experiment_references(cfg)
    for name, spec in cfg["methods"].items():
        check_method_settings(spec, f"methods.{name}")
    for name, exp in cfg["experiments"].items():
        check_method_overrides(cfg, schema, name, exp)
    for name, spec in cfg["datasets"].items():
        check_spec(spec, f"datasets.{name}")
    warnings += check_dataset_roots(cfg)
    check_corruption_settings(cfg["evaluation"]["corruptions"])
    check_evaluation_settings(cfg["evaluation"], "evaluation")
    for name, exp in cfg["experiments"].items():
        if "evaluation" in exp:
            check_experiment_evaluation(cfg, schema, name)
    check_mcl_batches(cfg)
    check_graph_settings(cfg, method_spec)  # graph methods, datasets and evaluations
    for name in cfg["experiments"]:
        check_experiment(cfg, name)
    check_sentence_experiments(cfg)
    check_inputs(cfg, method_spec)  # combinations that would fail in a job or mean something else (clbench.config.checks)
    return warnings


def check_experiment_references(cfg: Mapping) -> None:
    """Every experiment names a defined dataset and defined methods."""
    for name, exp in cfg["experiments"].items():
        if exp["dataset"] not in cfg["datasets"]:
            raise ConfigError(
                f"experiments.{name}.dataset",
                f"unknown dataset {exp['dataset']!r}; defined datasets: {sorted(cfg['datasets'])}",
            )
        for method in exp["methods"]:
            if method not in cfg["methods"]:
                raise ConfigError(
                    f"experiments.{name}.methods",
                    f"unknown method {method!r}; defined methods: {sorted(cfg['methods'])}",
                )


def check_method_overrides(cfg: Mapping, schema: Mapping, name: str, exp: Mapping) -> None:
    """An experiment's ``method_overrides``: for its own methods, and valid method settings once merged."""
    for method in exp.get("method_overrides", {}):
        where = f"experiments.{name}.method_overrides.{method}"
        if method not in exp["methods"]:
            raise ConfigError(where, f"{method!r} is not one of this experiment's methods {exp['methods']}")
        merged = method_spec(cfg, name, method)
        if ("mcl" in merged) != ("mcl" in cfg["methods"][method]):
            raise ConfigError(where, "an override cannot make a method multistage (mcl) or single-stage")
        validate_method(merged, schema, where)
        check_method_settings(merged, where)


def check_experiment_evaluation(cfg: Mapping, schema: Mapping, name: str) -> None:
    """An experiment's own ``evaluation`` settings: valid probe and kNN settings once merged over the top level."""
    merged = experiment_evaluation(cfg, name)
    where = f"experiments.{name}.evaluation"
    for block, definition in (("probe", "probe_settings"), ("mlp_probe", "mlp_probe_settings"),
                              ("knn", "knn_settings")):
        validate_subschema(merged.get(block, {}), schema, definition, f"{where}.{block}")
    check_evaluation_settings(merged, where)


def check_evaluation_settings(evaluation: Mapping, where: str) -> None:
    """Probe settings that only mean something together (``where``: ``evaluation`` or an experiment's).

    The MLP probe's settings are checked as they apply: ``mlp_probe``'s over the probe's."""
    mlp = {**evaluation["probe"], **{k: v for k, v in evaluation.get("mlp_probe", {}).items() if v is not None}}
    for block, probe in (("probe", evaluation["probe"]), ("mlp_probe", mlp)):
        _check_probe_settings(probe, f"{where}.{block}")
    probe = evaluation["probe"]
    if probe.get("crop_size") is not None and probe.get("augment", "simclr") not in ("simclr", "supcon", "crop_flip"):
        raise ConfigError(f"{where}.probe.crop_size", f"only augment simclr, supcon or crop_flip crops; augment is "
                                                      f"{probe.get('augment')}")
    if probe.get("protocol", "features") != "augmented":
        for key in ("augment", "num_workers", "crop_size"):
            if key in probe:
                raise ConfigError(f"{where}.probe.{key}", f"only protocol augmented reads {key}; protocol is "
                                                          f"{probe.get('protocol', 'features')}")


def _check_probe_settings(probe: Mapping, where: str) -> None:
    if "momentum" in probe and probe.get("optimizer", "adam") != "sgd":
        raise ConfigError(f"{where}.momentum", f"only optimizer sgd has a momentum; optimizer is "
                                               f"{probe.get('optimizer', 'adam')}")
    for key in ("milestones", "gamma"):
        if key in probe and probe.get("schedule", "constant") != "step":
            raise ConfigError(f"{where}.{key}", f"only schedule step reads {key}; schedule is "
                                                f"{probe.get('schedule', 'constant')}")
    if probe.get("schedule") == "step":
        late = [m for m in probe.get("milestones", []) if m >= probe["epochs"]]
        if not probe.get("milestones") or late:
            raise ConfigError(f"{where}.milestones",
                              f"schedule step needs milestones, epochs below the probe's {probe['epochs']} epochs; got "
                              f"{probe.get('milestones', [])}")


# the families whose model has a projector (clbench.models.heads.method_projection_head)
PROJECTOR_FAMILIES = ("contrastive", "sub_embedding")


def check_method_settings(spec: Mapping, where: str) -> None:
    """One method's settings (``where`` is its key): its objective's parameters, bounds and relations
    (:func:`clbench.objectives.check_method`), and combinations that would train something else than meant."""
    check_method(spec, where)
    objective = OBJECTIVES[spec["objective"]]
    for key in ("projection_hidden_dim", "projection_batch_norm"):
        if key in spec and objective.family not in PROJECTOR_FAMILIES:
            raise ConfigError(f"{where}.{key}",
                              f"objective {objective.name} (family {objective.family}) has no projector")
    if "crop_size" in spec and spec.get("augment", "none") not in ("simclr", "supcon", "crop_flip"):
        raise ConfigError(f"{where}.crop_size", f"only augment simclr, supcon or crop_flip crops; augment is "
                                                f"{spec.get('augment', 'none')}")
    if "lr_floor" in spec and spec.get("schedule", "cosine") != "cosine":
        raise ConfigError(f"{where}.lr_floor", f"only schedule cosine decays to a floor; schedule is {spec['schedule']}")
    if "warmup_start_lr" in spec and not spec.get("warmup_epochs", 0):
        raise ConfigError(f"{where}.warmup_start_lr", "needs warmup_epochs > 0 (there is no warm-up to start)")
    optimizer = spec.get("optimizer", {})
    if "nesterov" in optimizer and optimizer.get("name", "adam") != "sgd":
        raise ConfigError(f"{where}.optimizer.nesterov", f"only optimizer sgd has Nesterov momentum; optimizer is "
                                                         f"{optimizer.get('name', 'adam')}")
    if "mcl" in spec and objective.family == "classifier":
        raise ConfigError(
            f"{where}.mcl",
            f"MCL draws each stage's batches from one cluster to shape the in-batch negatives; objective "
            f"{objective.name} has none (use a contrastive objective, e.g. info_nce)",
        )
    if spec.get("mcl", {}).get("init", "fresh") == "previous" and objective.domain != "image_text":
        raise ConfigError(f"{where}.mcl.init", f"only image-caption (clip) methods start a stage from the previous "
                                               f"stage's model; objective {objective.name} trains each stage afresh")
    views = spec.get("views", 1)
    if not objective.uses_labels and views == 2 and spec.get("augment", "none") == "none" and not spec.get("paired_views"):
        raise ConfigError(
            f"{where}.augment",
            f"objective {objective.name} contrasts two views of each sample, which are identical with augment: none "
            f"(set an augmentation, e.g. simclr, or paired_views: true on a dataset with pairs)",
        )


def check_dataset_roots(cfg: Mapping) -> list[str]:
    """A used dataset's ``root`` must exist; an ImageFolder dataset without one is planned with a warning."""
    warnings = []
    used = set(used_datasets(cfg))
    for name, spec in cfg["datasets"].items():
        root = spec.get("root")
        if name not in used:
            continue
        if spec["generator"] == "imagefolder" and not root:
            # a dry run of the paper config must plan without data; a real run stops at this build job
            warnings.append(
                f"datasets.{name}: generator imagefolder needs root: (an ImageFolder copy of ImageNet, which cannot "
                f"be downloaded automatically); set it, e.g. --config 'datasets={{{name}: {{root: /data/imagenet}}}}', "
                f"or its build_dataset job will stop with the expected layout"
            )
        if root and not os.path.exists(root):
            raise ConfigError(
                f"datasets.{name}.root",
                f"{root!r} does not exist; point it at an existing copy in the library's layout, or remove root "
                f"and set download: true to fetch the data into {cfg['resources_dir']}/",
            )
    return warnings


def check_corruption_settings(corruptions: Mapping) -> None:
    """Corruption names and official-set folders, which otherwise fail only inside a corruption job."""
    unknown = [] if corruptions["names"] == "all" else sorted(set(corruptions["names"]) - set(CORRUPTION_NAMES))
    if unknown:
        raise ConfigError("evaluation.corruptions.names", f"unknown corruptions {unknown}; known: {list(CORRUPTION_NAMES)}")
    for key in ("cifar10c_root", "cifar100c_root"):
        if corruptions[key] and not os.path.isdir(corruptions[key]):
            raise ConfigError(
                f"evaluation.corruptions.{key}",
                f"{corruptions[key]!r} is not a directory; point it at the extracted official set, or set it "
                f"to null to generate the corruptions",
            )


def check_mcl_batches(cfg: Mapping) -> None:
    """MCL's last stage draws every batch from one joint cluster: the training set must fill them."""
    for name, exp in cfg["experiments"].items():
        n_train = cfg["datasets"][exp["dataset"]].get("n_train")
        for method in exp["methods"]:
            spec = method_spec(cfg, name, method)
            if "mcl" not in spec or not n_train:
                continue
            previous = spec["mcl"].get("labels", "joint") == "previous"
            joint = spec["mcl"]["clusters"] ** (1 if previous else spec["mcl"]["stages"] - 1)
            if joint * spec["batch_size"] > n_train:
                raise ConfigError(
                    f"methods.{method}.mcl",
                    f"the last stage draws batches of {spec['batch_size']} from "
                    f"{'clusters' if previous else 'clusters**(stages-1)'} = {joint} clusters, more than datasets.{exp['dataset']}.n_train = {n_train} (experiments.{name}) "
                    f"can fill; lower clusters or stages",
                )


# Evaluations that read one kind of model: what they read, and whether a method's (merged) spec trains it
def check_experiment(cfg: Mapping, name: str) -> None:
    """An experiment's evaluations fit its methods, its baseline is one of them, its k is its split's."""
    exp = cfg["experiments"][name]
    specs = {method: method_spec(cfg, name, method) for method in exp["methods"]}
    # the evaluations declare what they need of a model; the registry imports no torch
    from clbench.evaluate.suite import check_evaluations

    check_evaluations(exp["evaluations"], specs, f"experiments.{name}.evaluations")
    if "baseline" in exp and exp["baseline"] not in exp["methods"]:
        raise ConfigError(
            f"experiments.{name}.baseline",
            f"{exp['baseline']!r} is not one of this experiment's methods {exp['methods']}; the others' accuracy "
            f"is divided by the baseline's",
        )
    if "k" in exp:
        dataset = cfg["datasets"][exp["dataset"]]
        if not reads_key(dataset, "k"):
            raise ConfigError(
                f"experiments.{name}.k",
                f"its dataset {exp['dataset']} (generator {dataset['generator']}) has no k; k labels the split of an "
                f"OOD-k dataset",
            )
        k = effective(dataset)["k"]
        if exp["k"] != k:
            raise ConfigError(
                f"experiments.{name}.k",
                f"{exp['k']} disagrees with the split it reads: datasets.{exp['dataset']}.k = {k}",
            )


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


# --------------------------------------------------------------------------------------------------
# sentence embeddings (objectives of the sentence family)


def check_sentence_settings(spec: Mapping, where: str) -> None:
    """A ``sentence:`` block only on a sentence method; a sentence method is a single-stage one."""
    objective = OBJECTIVES[spec["objective"]]
    if "sentence" in spec and objective.family != "sentence":
        raise ConfigError(f"{where}.sentence", f"objective {objective.name} (family {objective.family}) reads no "
                                               f"sentence settings; the sentence family's objectives do")
    if objective.family == "sentence" and "mcl" in spec:
        raise ConfigError(f"{where}.mcl",
                          f"objective {objective.name} trains on sentences; MCL's stages cluster images")
    if objective.family == "sentence" and spec.get("gpus", 1) > 1:
        raise ConfigError(f"{where}.gpus", f"objective {objective.name} trains on one GPU (clbench.train.sentence "
                                           f"is not data-parallel), got {spec['gpus']}")


def check_sentence_experiments(cfg: Mapping) -> None:
    """Every method's settings block, and sentence methods on sentence datasets (and only there)."""
    for name, spec in cfg["methods"].items():
        check_sentence_settings(spec, f"methods.{name}")
    for name, exp in cfg["experiments"].items():
        text_data = cfg["datasets"][exp["dataset"]]["generator"] == "sentences"
        for method in exp["methods"]:
            spec = method_spec(cfg, name, method)
            check_sentence_settings(spec, f"experiments.{name}.method_overrides.{method}")
            if (OBJECTIVES[spec["objective"]].domain == "text") != text_data:
                raise ConfigError(
                    f"experiments.{name}.methods",
                    f"method {method} ({OBJECTIVES[spec['objective']].domain} objective {spec['objective']}) cannot "
                    f"train on dataset {exp['dataset']} (generator {cfg['datasets'][exp['dataset']]['generator']}); "
                    f"the sentence objectives train on a sentences dataset, the others on images",
                )

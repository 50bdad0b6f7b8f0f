"""What the schema cannot express about each setting: cross-references (an experiment's methods, dataset and
evaluations exist), each method's, evaluation's and corruption's values, dataset roots, MCL's batches and the
sentence family's settings, refused before any job runs (:func:`check_config`). The combinations that would
fail in a job or mean something else are :mod:`clbench.config.checks`. No torch, no numpy: Snakemake imports
this while it parses the workflow.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from clbench.config.checks import check_inputs
from clbench.config.graph import check_graph_settings
from clbench.config.schema import experiment_evaluation, method_spec, validate_method, validate_subschema
from clbench.data.build import check_spec, effective, reads_key
from clbench.errors import ConfigError
from clbench.objectives import OBJECTIVES, check_method

__all__ = [
    "check_config",
    "check_corruption_settings",
    "check_dataset_roots",
    "check_evaluation_settings",
    "check_experiment",
    "check_experiment_evaluation",
    "check_experiment_references",
    "check_mcl_batches",
    "check_method_overrides",
    "check_method_settings",
    "check_sentence_experiments",
    "check_sentence_settings",
    "used_datasets",
]


# clbench.data.corruptions.CORRUPTIONS, repeated so that planning the workflow does not import SciPy
# (a test keeps the two in sync)
CORRUPTION_NAMES = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)


def used_datasets(cfg: Mapping) -> list[str]:
    """The datasets some experiment reads (the others are never built)."""
    return sorted({exp["dataset"] for exp in cfg["experiments"].values()})


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

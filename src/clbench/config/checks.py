"""Settings that are each valid but together would train or score something other than meant, refused
before any job runs (:func:`check_inputs`, called by :func:`clbench.config.settings.check_config`).

Without these a job either fails after compute was spent on it (an unknown open_clip model, a VAE too deep
for the images, paired views without pairs, a graph class smaller than the cross-validation folds, a
paper-scale dataset with nothing to read) or reports a number whose name says something else (a batch
larger than the training set, a warm-up longer than training, ``ood`` on a split that holds nothing out,
a probe on labels that are not classes, a severity counted twice). What the data themselves decide (e.g.
a TU dataset's class sizes) only the build job can check; it says what to put where.

Each refusal is a :class:`clbench.errors.ConfigError` at the dotted key, saying what would be valid.
Imports no torch: open_clip's architecture names and tower settings are read from its installed files.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from clbench.data.build import GENERATORS, effective
from clbench.errors import ConfigError
from clbench.objectives import OBJECTIVES

__all__ = ["DATASET_KINDS", "EVALUATION_DATA", "check_inputs", "open_clip_names", "open_clip_tower_keys"]


# --------------------------------------------------------------------------------------------------
# what a dataset offers, by generator: (kind, holds_out, has_factors, has_pairs); each a function of the
# dataset's effective values. holds_out / has_factors / has_pairs: True, False, or None (the plan cannot
# tell: accepted). A test keeps every registered generator here.

_Fact = Callable[[Mapping[str, Any]], "bool | None"]


def _const(value: bool | None) -> _Fact:
    return lambda values: value


DATASET_KINDS: dict[str, tuple[str, _Fact, _Fact, _Fact]] = {
    # kind: images with class labels, graphs, sentences, image-caption pairs (test: a pair benchmark), vectors
    "styled_mnist": ("images", lambda v: v.get("recipe") == "ood", _const(True), _const(False)),
    "mnist_on_stl": ("images", _const(None), _const(True), lambda v: bool(v.get("pairs", True))),  # default: pairs
    "trifeature": ("images", _const(True), _const(True), _const(False)),  # a share of the triplets held out
    "torchvision": ("images", lambda v: v.get("recipe") == "ood_k",
                    lambda v: {"cifar100": True, "celeba": True, "mnist": False, "cifar10": False}.get(v.get("name")),
                    _const(False)),
    "pacs": ("images", _const(True), _const(True), _const(False)),  # ood_k and lodo both hold domains out
    "camelyon17": ("images", _const(None), _const(True), _const(False)),
    "imagefolder": ("images", _const(False), _const(False), _const(False)),
    "gaussian_mixture": ("vectors", _const(None), _const(True), _const(False)),
    "graph_classes": ("graphs", _const(False), _const(False), _const(False)),
    "tu": ("graphs", _const(False), _const(False), _const(False)),
    "sentences": ("sentences", _const(False), _const(None), _const(None)),
    "trifeature_captions": ("captions", _const(False), _const(None), _const(False)),
    "cc12m_mmvp": ("captions", _const(False), _const(False), _const(False)),
}

# what each evaluation reads of the dataset: the kinds whose labels it can score (None: any)
_IMAGE_EVALUATIONS = ("linear_probe", "mlp_probe", "own_head", "knn", "factor_probes", "gmig", "slice_probes", "stage_probes",
                      "corruptions")
EVALUATION_DATA: dict[str, tuple[str, ...] | None] = {
    **{name: ("images", "vectors") for name in _IMAGE_EVALUATIONS},
    "corruptions": ("images",),
    "graph_svc": ("graphs",),
    "sts": ("sentences",),
    "mmvp_pairs": ("captions",),
}
_SCORES = {"images": "class labels of images", "vectors": "class labels", "graphs": "graph classes",
           "sentences": "STS gold scores of sentence pairs", "captions": "MMVP-style image pairs with statements"}

# clbench.models.clear_vae.ARCHITECTURES (conv layers, kernel), repeated so that planning imports no torch
VAE_ARCHITECTURES = {"conv3": (3, 3), "conv5": (5, 4)}
# clbench.models.sentence.SETTINGS["model"], the sentence model of a method that names none
SENTENCE_MODEL = "bert-base-uncased"
# clbench.evaluate.graph_svc: the outer cross-validation folds
GRAPH_SVC_FOLDS = 10
# where a generator that reads external data looks without root: resources_dir/<folder> (imagefolder has its
# own warning in clbench.config.settings.check_dataset_roots)
_RESOURCE_FOLDER: dict[str, Callable[[Mapping], str | None]] = {
    "torchvision": lambda v: v.get("name"), "pacs": lambda v: "pacs", "camelyon17": lambda v: "camelyon17",
    "sentences": lambda v: "sentences", "tu": lambda v: "tu",
}


def _kind(dataset: Mapping) -> tuple[str, _Fact, _Fact, _Fact] | None:
    return DATASET_KINDS.get(dataset.get("generator"))


def _image_size(dataset: Mapping) -> int | None:
    generator = GENERATORS.get(dataset.get("generator"))
    if generator is None:
        return None
    size = effective(dataset).get("image_size")
    declared = generator.keys.get("image_size", {})
    size = size if size is not None else declared.get("const", declared.get("default"))
    return size if isinstance(size, int) else None


def _train_size(dataset: Mapping) -> int | None:
    """How many samples the training split holds, where the spec says (else None)."""
    values = effective(dataset)
    n = values.get("n_graphs") if dataset.get("generator") == "graph_classes" else values.get("n_train")
    return n if isinstance(n, int) else None


# --------------------------------------------------------------------------------------------------
# open_clip, read from its files (no import: it imports torch)


@functools.lru_cache(maxsize=1)
def _open_clip_dir() -> Path | None:
    spec = importlib.util.find_spec("open_clip")
    return Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None


@functools.lru_cache(maxsize=1)
def open_clip_names() -> frozenset[str] | None:
    """open_clip's architecture names (its model_configs/*.json); None where open_clip is not installed."""
    folder = _open_clip_dir()
    if folder is None or not (folder / "model_configs").is_dir():
        return None
    return frozenset(p.stem for p in (folder / "model_configs").glob("*.json"))


@functools.lru_cache(maxsize=1)
def open_clip_tower_keys() -> dict[str, frozenset[str]] | None:
    """The keys an open_clip model config may hold: ``""`` its top level, ``vision_cfg`` and ``text_cfg`` its
    towers' (the fields of CLIPVisionCfg / CLIPTextCfg and CLIP's arguments, read from open_clip/model.py)."""
    folder = _open_clip_dir()
    if folder is None or not (folder / "model.py").is_file():
        return None
    tree = ast.parse((folder / "model.py").read_text(encoding="utf-8"))
    keys: dict[str, frozenset[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name in ("CLIPVisionCfg", "CLIPTextCfg"):
            fields = {b.target.id for b in node.body if isinstance(b, ast.AnnAssign) and isinstance(b.target, ast.Name)}
            keys["vision_cfg" if node.name == "CLIPVisionCfg" else "text_cfg"] = frozenset(fields)
        if isinstance(node, ast.ClassDef) and node.name == "CLIP":
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    args = item.args.args + item.args.kwonlyargs
                    # model configs also name the text tower's class (custom_text) and CoCa's decoder
                    keys[""] = frozenset({a.arg for a in args} - {"self"} | {"custom_text", "multimodal_cfg"})
    return keys if {"", "vision_cfg", "text_cfg"} <= set(keys) else None


# --------------------------------------------------------------------------------------------------
# the checks


def _method_key(cfg: Mapping, experiment: str, method: str, key: str) -> str:
    """Where a (merged) method setting comes from: the experiment's override, else the method."""
    overrides = cfg["experiments"][experiment].get("method_overrides", {}).get(method, {})
    first = key.split(".")[0]
    return f"experiments.{experiment}.method_overrides.{method}.{key}" if first in overrides else f"methods.{method}.{key}"


def check_paths(cfg: Mapping) -> None:
    """results_dir / resources_dir: a non-empty path (an empty one plans outputs at the filesystem root)."""
    for key in ("results_dir", "resources_dir"):
        value = cfg.get(key)
        if isinstance(value, str) and (not value.strip() or value.strip() != value):
            raise ConfigError(key, f"must be a directory path without leading or trailing spaces, got {value!r} "
                                   f"(e.g. {key}: {'results' if key == 'results_dir' else 'resources'})")


_SLURM_NAME = re.compile(r"^[A-Za-z0-9_.:+@-]+$")


def check_slurm(cfg: Mapping) -> None:
    """SLURM names are passed to sbatch as one word each: no spaces, nothing empty."""
    for key in ("account", "partition", "gpu_partition"):
        value = (cfg.get("slurm") or {}).get(key)
        if value is not None and not _SLURM_NAME.match(value):
            raise ConfigError(f"slurm.{key}", f"{value!r} is not a SLURM name (letters, digits, and _ . : + @ -, "
                                              f"no spaces); null leaves it to SLURM's default")


def check_corruption_lists(cfg: Mapping) -> None:
    """A severity or corruption listed twice would count twice in the mean over the grid."""
    corruptions = cfg["evaluation"]["corruptions"]
    for key in ("severities", "names"):
        values = corruptions[key]
        if isinstance(values, list):
            repeated = sorted({v for v in values if values.count(v) > 1}, key=str)
            if repeated:
                raise ConfigError(f"evaluation.corruptions.{key}", f"{repeated} listed twice; each would count "
                                                                   f"twice in the mean over the grid: list each once")


def check_method_blocks(spec: Mapping, where: str) -> None:
    """The ``clip:`` block goes with a clip objective, which needs it; its model and crop scale are valid."""
    objective = OBJECTIVES[spec["objective"]]
    image_text = objective.domain == "image_text"
    if "clip" in spec and not image_text:
        raise ConfigError(f"{where}.clip", f"objective {objective.name} (family {objective.family}) reads no clip "
                                           f"settings; the image-caption objective clip does")
    if not image_text:
        return
    clip = spec.get("clip")
    if not clip:
        raise ConfigError(f"{where}.clip", f"objective {objective.name} needs a clip: block naming its open_clip "
                                           f"model, e.g. clip: {{model: ViT-B-32, pretrained: openai}}")
    model, config = clip.get("model"), clip.get("config")
    names = open_clip_names()
    if config is None and names is not None and not str(model).startswith("hf-hub:") and model not in names:
        close = sorted(n for n in names if n.lower().startswith(str(model).lower()[:4]))[:8]
        raise ConfigError(f"{where}.clip.model", f"{model!r} is not an open_clip architecture (open_clip.list_models()"
                                                 f"); e.g. {close or sorted(names)[:8]}, or give clip.config to "
                                                 f"register it")
    keys = open_clip_tower_keys()
    if isinstance(config, Mapping) and keys is not None:
        for block, inside in (("", config), ("vision_cfg", config.get("vision_cfg")), ("text_cfg", config.get("text_cfg"))):
            if not isinstance(inside, Mapping):
                continue
            unknown = sorted(set(inside) - keys[block])
            if unknown:
                at = f"{where}.clip.config{'.' + block if block else ''}.{unknown[0]}"
                raise ConfigError(at, f"open_clip's {'model config' if not block else block} has no {unknown[0]}; "
                                      f"valid keys: {sorted(keys[block])}")
    scale = clip.get("crop_scale")
    if isinstance(scale, list) and len(scale) == 2 and scale[0] > scale[1]:
        raise ConfigError(f"{where}.clip.crop_scale",
                          f"{scale} is reversed: [smallest, largest] share of the image area, e.g. [{scale[1]}, "
                          f"{scale[0]}]")


def check_sentence_model(spec: Mapping, where: str) -> None:
    """A named sentence model has a name (an empty one fails at the training job's load)."""
    sentence = spec.get("sentence") or {}
    if "model" in sentence and not str(sentence["model"]).strip():
        raise ConfigError(f"{where}.sentence.model", "empty; name a Hugging Face model (bert-base-uncased, "
                                                     "roberta-base) or a local folder in its layout")


def check_training_length(spec: Mapping, where: Callable[[str], str]) -> None:
    """The warm-up ends before training does (else the learning rate never reaches its peak nor decays)."""
    warmup, epochs = spec.get("warmup_epochs", 0), spec.get("epochs", 10)
    if warmup and warmup >= epochs:
        raise ConfigError(where("warmup_epochs"), f"{warmup} warm-up epochs of {epochs} epochs: the learning rate "
                                                  f"would never finish its warm-up nor start its schedule; use fewer "
                                                  f"than {epochs}")


def check_experiment_data(cfg: Mapping, name: str, method_spec: Callable[[Mapping, str, str], dict]) -> None:
    """An experiment's methods and evaluations against what its dataset holds; ``method_spec(cfg, experiment,
    method)`` gives a method's settings in an experiment (overrides merged)."""
    exp = cfg["experiments"][name]
    dataset_name = exp["dataset"]
    dataset = cfg["datasets"][dataset_name]
    kind = _kind(dataset)
    values = effective(dataset) if dataset.get("generator") in GENERATORS else dict(dataset)
    about = f"datasets.{dataset_name} (generator {dataset.get('generator')})"
    if kind is not None:
        data_kind, holds_out, has_factors, has_pairs = kind
        for i, evaluation in enumerate(exp["evaluations"]):
            kinds = EVALUATION_DATA.get(evaluation)
            if kinds is not None and data_kind not in kinds:
                valid = sorted(e for e, k in EVALUATION_DATA.items() if k is None or data_kind in k)
                raise ConfigError(f"experiments.{name}.evaluations[{i}]",
                                  f"{evaluation} scores {_SCORES[kinds[0]]}; {about} holds "
                                  f"{_SCORES[data_kind]}: its evaluations are {valid}")
            if evaluation in ("factor_probes", "gmig") and has_factors(values) is False:
                raise ConfigError(f"experiments.{name}.evaluations[{i}]",
                                  f"{evaluation} probes the dataset's factors; {about} has none (it would report "
                                  f"no metric): evaluate it with linear_probe, or use a dataset with factors")
        if exp.get("ood") and holds_out(values) is False:
            raise ConfigError(f"experiments.{name}.ood", f"{about} holds nothing out of training (an IID split); its "
                                                         f"accuracy is not OOD accuracy: remove ood, or use an OOD "
                                                         f"split (e.g. styled_mnist recipe ood, pacs, celeba ood_k)")
        for method in exp["methods"]:
            spec = method_spec(cfg, name, method)
            where = functools.partial(_method_key, cfg, name, method)
            if spec.get("paired_views") and has_pairs(values) is False:
                raise ConfigError(where("paired_views"), f"{about} has no paired second view (x2) for experiment "
                                                         f"{name}; set paired_views: false, or use a dataset with "
                                                         f"pairs (mnist_on_stl with pairs: true)")
            objective = OBJECTIVES[spec["objective"]]
            if objective.domain == "image_text" and data_kind != "captions":
                raise ConfigError(f"experiments.{name}.methods",
                                  f"method {method} (objective {objective.name}) trains on captioned images; {about} "
                                  f"has no captions (use trifeature_captions or cc12m_mmvp)")
    if dataset.get("generator") == "graph_classes" and "graph_svc" in exp["evaluations"]:
        classes = values.get("classes") or []
        if classes and values.get("n_graphs", 0) // len(classes) < GRAPH_SVC_FOLDS:
            inside = "options." if "n_graphs" in (dataset.get("options") or {}) else ""
            raise ConfigError(f"datasets.{dataset_name}.{inside}n_graphs",
                              f"{values['n_graphs']} graphs in {len(classes)} classes leave "
                              f"{values['n_graphs'] // len(classes)} in a class, fewer than graph_svc's "
                              f"{GRAPH_SVC_FOLDS} stratified folds; use at least {GRAPH_SVC_FOLDS * len(classes)}")
    for method in exp["methods"]:
        spec = method_spec(cfg, name, method)
        where = functools.partial(_method_key, cfg, name, method)
        n_train, batch = _train_size(dataset), spec.get("batch_size")
        if n_train is not None and isinstance(batch, int) and batch > n_train and "mcl" not in spec:
            raise ConfigError(where("batch_size"),
                              f"{batch} is larger than the {n_train} training samples of {about} (experiment {name}): "
                              f"every step would be one batch of the whole set; use at most {n_train}")
        vae = spec.get("vae") or {}
        size = _image_size(dataset)
        if OBJECTIVES[spec["objective"]].family == "clear_vae":
            architecture = vae.get("architecture", "conv3")
            if size is not None and architecture in VAE_ARCHITECTURES:
                n, kernel = VAE_ARCHITECTURES[architecture]
                smallest = size
                for _ in range(n):
                    smallest = (smallest + 2 - kernel) // 2 + 1
                if smallest < 1:
                    raise ConfigError(where("vae.architecture"),
                                      f"{architecture} halves the image {n} times, too often for the {size} px images "
                                      f"of {about}; use conv3 (28 px) or a dataset of at least 32 px")
        model = (spec.get("sentence") or {}).get("model", SENTENCE_MODEL)
        if (OBJECTIVES[spec["objective"]].family == "sentence" and dataset.get("generator") == "sentences" and model
                and not os.path.isdir(str(model))):
            fetched = effective(dataset).get("models") or []
            if model not in fetched:
                raise ConfigError(f"datasets.{dataset_name}.models",
                                  f"{model!r} (methods.{method}.sentence.model) is not fetched by the build job, so "
                                  f"the training job would download it (offline on a cluster node: it fails); "
                                  f"add it: models: {sorted({*fetched, model})}")


def check_dataset_sources(cfg: Mapping, used: list[str]) -> None:
    """A used dataset that reads external data has a root, download: true, or a copy in resources_dir."""
    for name in used:
        spec = cfg["datasets"][name]
        folder = _RESOURCE_FOLDER.get(spec.get("generator"))
        if folder is None or spec.get("root") or spec.get("download"):
            continue
        where = folder(effective(spec))
        if where and not os.path.exists(os.path.join(cfg["resources_dir"], where)):
            raise ConfigError(f"datasets.{name}.download",
                              f"neither root nor download: true, and {cfg['resources_dir']}/{where} holds no copy, so "
                              f"its build job would stop; set download: true, or root: to an existing copy")


def check_inputs(cfg: Mapping, method_spec: Callable[[Mapping, str, str], dict]) -> None:
    """Every check of this module over a validated config (schema defaults filled in); ``method_spec`` as for
    :func:`check_experiment_data` (:func:`clbench.config.schema.method_spec`)."""
    check_paths(cfg)
    check_slurm(cfg)
    check_corruption_lists(cfg)
    for name, spec in cfg["methods"].items():
        check_method_blocks(spec, f"methods.{name}")
        check_sentence_model(spec, f"methods.{name}")
        check_training_length(spec, lambda key, name=name: f"methods.{name}.{key}")
    for name, exp in cfg["experiments"].items():
        for method in exp["methods"]:
            spec = method_spec(cfg, name, method)
            check_training_length(spec, functools.partial(_method_key, cfg, name, method))
            if exp.get("method_overrides", {}).get(method):  # the merged settings, where an override changes them
                where = f"experiments.{name}.method_overrides.{method}"
                check_method_blocks(spec, where)
                check_sentence_model(spec, where)
        check_experiment_data(cfg, name, method_spec)
    check_dataset_sources(cfg, sorted({exp["dataset"] for exp in cfg["experiments"].values()}))

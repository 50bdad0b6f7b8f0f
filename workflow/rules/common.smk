import json
import os
import sys

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import validate

try:
    import clbench
except ImportError:  # snakemake from an environment without clbench (e.g. --sdm conda): use this checkout
    sys.path.insert(0, os.path.join(workflow.basedir, "src"))
from clbench.cluster import rule_resources  # every submitted rule's SLURM resources, from config["slurm"]
from clbench.config_args import retype


# nested --config values arrive as strings: read them as a config file would be read
retype(config, workflow.config_settings.config_args)
validate(config, schema="../schemas/config.schema.yaml", set_default=True)


RESULTS = config["results_dir"]
# clbench.data.corruptions.CORRUPTIONS, repeated here so parsing the workflow does not import SciPy
CORRUPTION_NAMES = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)


def deep_merge(base, override):
    """``base`` with ``override``'s keys replaced, nested mappings merged key by key."""
    out = dict(base)
    for key, value in override.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def method_spec(experiment, method, cfg=None):
    """A method's settings in one experiment: ``methods.<method>`` with the experiment's
    ``method_overrides.<method>`` merged in (e.g. ImageNet's ResNet stem, epochs and GPUs)."""
    cfg = cfg or config
    overrides = cfg["experiments"][experiment].get("method_overrides", {}).get(method, {})
    return deep_merge(cfg["methods"][method], overrides)


SCHEMA_PATH = os.path.join(workflow.current_basedir, "..", "schemas", "config.schema.yaml")


def check_method_overrides(cfg, name, exp):
    """An experiment's ``method_overrides``: for its own methods, and valid method settings once merged."""
    import jsonschema
    import yaml

    with open(SCHEMA_PATH) as f:
        schema = yaml.safe_load(f)
    method_schema = {"$defs": schema["$defs"], "$ref": "#/$defs/method"}
    for method in exp.get("method_overrides", {}):
        where = f"experiments.{name}.method_overrides.{method}"
        if method not in exp["methods"]:
            raise ValueError(f"{where}: {method!r} is not one of this experiment's methods {exp['methods']}")
        merged = method_spec(name, method, cfg)
        if ("mcl" in merged) != ("mcl" in cfg["methods"][method]):
            raise ValueError(f"{where}: an override cannot make a method multistage (mcl) or single-stage")
        try:
            jsonschema.validate(merged, method_schema)
        except jsonschema.ValidationError as e:
            key = "".join(f".{p}" for p in e.absolute_path)
            raise ValueError(f"{where}{key}: {e.message}") from None


def check_config(cfg):
    """Cross-references the schema cannot express; fail before any job runs."""
    for name, exp in cfg["experiments"].items():
        if exp["dataset"] not in cfg["datasets"]:
            raise ValueError(
                f"experiments.{name}.dataset: unknown dataset {exp['dataset']!r}; "
                f"defined datasets: {sorted(cfg['datasets'])}"
            )
        for method in exp["methods"]:
            if method not in cfg["methods"]:
                raise ValueError(
                    f"experiments.{name}.methods: unknown method {method!r}; "
                    f"defined methods: {sorted(cfg['methods'])}"
                )
        check_method_overrides(cfg, name, exp)


    for name, spec in cfg["datasets"].items():
        root = spec.get("root")
        used = any(exp["dataset"] == name for exp in cfg["experiments"].values())
        if used and spec["generator"] == "imagefolder" and not root:
            # a dry run of the paper config must plan without data; a real run stops at this build job
            logger.warning(
                f"datasets.{name}: generator imagefolder needs root: (an ImageFolder copy of ImageNet, which cannot "
                f"be downloaded automatically); set it, e.g. --config 'datasets={{{name}: {{root: /data/imagenet}}}}', "
                f"or its build_dataset job will stop with the expected layout"
            )
        if used and root and not os.path.exists(root):
            raise ValueError(
                f"datasets.{name}.root: {root!r} does not exist; point it at an existing copy in the library's "
                f"layout, or remove root and set download: true to fetch the data into {cfg['resources_dir']}/"
            )
    check_corruption_settings(cfg["evaluation"]["corruptions"])
    for name, exp in cfg["experiments"].items():
        n_train = cfg["datasets"][exp["dataset"]].get("n_train")
        for method in exp["methods"]:
            spec = method_spec(name, method, cfg)
            if "mcl" not in spec or not n_train:
                continue
            joint = spec["mcl"]["clusters"] ** (spec["mcl"]["stages"] - 1)
            if joint * spec["batch_size"] > n_train:
                raise ValueError(
                    f"methods.{method}.mcl: the last stage draws batches of {spec['batch_size']} from "
                    f"clusters**(stages-1) = {joint} joint clusters, more than the {n_train} training samples of "
                    f"experiments.{name} can fill; lower clusters or stages"
                )


def check_corruption_settings(corruptions):
    """Corruption names and official-set folders, which otherwise fail only inside a corruption job."""
    unknown = [] if corruptions["names"] == "all" else sorted(set(corruptions["names"]) - set(CORRUPTION_NAMES))
    if unknown:
        raise ValueError(f"evaluation.corruptions.names: unknown corruptions {unknown}; known: {list(CORRUPTION_NAMES)}")
    for key in ("cifar10c_root", "cifar100c_root"):
        if corruptions[key] and not os.path.isdir(corruptions[key]):
            raise ValueError(
                f"evaluation.corruptions.{key}: {corruptions[key]!r} is not a directory; point it at the extracted "
                f"official set, or set it to null to generate the corruptions"
            )


check_config(config)


wildcard_constraints:
    experiment=r"[A-Za-z0-9_\-]+",
    method=r"[A-Za-z0-9_\-]+",
    dataset=r"[A-Za-z0-9_\-]+",
    seed=r"\d+",


def is_mcl(method):
    return "mcl" in config["methods"][method]


def name_regex(names):
    """A wildcard constraint matching exactly these names (never matches when empty)."""
    import re

    return "|".join(re.escape(n) for n in sorted(names)) or "(?!)"


SINGLE_STAGE_METHODS = name_regex(m for m in config["methods"] if not is_mcl(m))
MCL_METHODS = name_regex(m for m in config["methods"] if is_mcl(m))


def method_gpus(wildcards):
    """GPUs of one pretraining job: the method's ``gpus``, else ``gpus_per_train_job``."""
    return method_spec(wildcards.experiment, wildcards.method).get("gpus", config["gpus_per_train_job"])


def train_command(wildcards):
    """``clbench``, or torchrun starting one ``clbench`` process per GPU (data-parallel, one node)."""
    n = method_gpus(wildcards)
    return f"torchrun --standalone --nproc_per_node={n} -m clbench.cli" if n > 1 else "clbench"


def stage_spec(wildcards):
    """Every MCL stage trains the method's own spec (a fresh model); the stage index only changes batches."""
    spec = method_spec(wildcards.experiment, wildcards.method)
    spec.pop("mcl")
    return as_json(spec)


def previous_stage_clusters(wildcards):
    run = run_dir(wildcards.experiment, wildcards.method, wildcards.seed)
    return [f"{run}/stage{s}/clusters.npy" for s in range(int(wildcards.stage))]


def mcl_stage_dirs(wildcards):
    run = run_dir(wildcards.experiment, wildcards.method, wildcards.seed)
    stages = method_spec(wildcards.experiment, wildcards.method)["mcl"]["stages"]
    return [f"{run}/stage{s}/model.pt" for s in range(stages)]


def as_json(obj):
    """A config slice as a canonical JSON string: a rule's params, so changing it re-runs only that rule."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def experiment_runs():
    """(experiment, method, seed) for every run in the config."""
    for name, exp in config["experiments"].items():
        for method in exp["methods"]:
            for seed in exp["seeds"]:
                yield name, method, seed


def run_dir(experiment, method, seed):
    return f"{RESULTS}/runs/{experiment}/{method}/seed{seed}"


def dataset_dir(dataset):
    return f"{RESULTS}/data/{dataset}"


def dataset_of(wildcards):
    return config["experiments"][wildcards.experiment]["dataset"]


def dataset_meta(wildcards):
    return f"{dataset_dir(dataset_of(wildcards))}/meta.json"


def evaluation_spec(wildcards):
    """The evaluation settings this experiment's evaluate job uses, plus its list of evaluations.

    Only the slice the job reads: the corruption settings only where it scores the grid itself, so
    e.g. adding a severity at cell granularity re-runs the new cells, not the run's probes.
    """
    exp = config["experiments"][wildcards.experiment]
    spec = {k: v for k, v in config["evaluation"].items() if k != "corruptions"}
    if corruption_cells(wildcards.experiment):
        spec["corruptions"] = {"granularity": "cell"}
    elif "corruptions" in exp["evaluations"]:
        spec["corruptions"] = {k: config["evaluation"]["corruptions"][k] for k in ("names", "severities", "n_test")}
    return as_json({**spec, "evaluations": exp["evaluations"], "y_factor": exp["y_factor"]})


def corruption_cells(experiment):
    """(corruption, severity) of every cell this experiment evaluates as its own job, in table order.

    Empty unless the experiment evaluates corruptions at cell granularity (at grid granularity its
    evaluate job scores the whole grid in memory).
    """
    cfg = config["evaluation"]["corruptions"]
    if "corruptions" not in config["experiments"][experiment]["evaluations"] or cfg["granularity"] != "cell":
        return []
    names = CORRUPTION_NAMES if cfg["names"] == "all" else cfg["names"]
    return [(name, severity) for name in names for severity in cfg["severities"]]


# Experiments whose evaluation.json is merged from per-cell corruption jobs, and the others
# (one evaluate job writes it): disjoint wildcard constraints keep the two routes unambiguous.
CELL_EXPERIMENTS = name_regex(e for e in config["experiments"] if corruption_cells(e))
WHOLE_EXPERIMENTS = name_regex(e for e in config["experiments"] if not corruption_cells(e))


def corrupted_dir(dataset, corruption, severity):
    return f"{dataset_dir(dataset)}/corrupted/{corruption}/s{severity}"


def corrupted_meta(wildcards):
    """The corrupted test split one evaluate_corruption job reads."""
    return f"{corrupted_dir(dataset_of(wildcards), wildcards.corruption, wildcards.severity)}/meta.json"


def corruption_cell_results(wildcards):
    """Every cell's result of one run, in table order (what merge_evaluation puts together)."""
    run = run_dir(wildcards.experiment, wildcards.method, wildcards.seed)
    return [f"{run}/corruptions/{name}/s{severity}.json" for name, severity in corruption_cells(wildcards.experiment)]


def official_corruption_root(wildcards):
    """The official corrupted test set's folder for this dataset, when configured ('' otherwise).

    Only the matching root is a param, so setting cifar100c_root does not re-run CIFAR-10's cells.
    """
    spec = config["datasets"][wildcards.dataset]
    if spec["generator"] != "torchvision" or spec.get("name") not in ("cifar10", "cifar100"):
        return ""
    return config["evaluation"]["corruptions"][f"{spec['name']}c_root"] or ""


def all_evaluations(wildcards=None):
    return [f"{run_dir(*run)}/evaluation.json" for run in experiment_runs()]


def all_metrics(wildcards=None):
    return [f"{run_dir(*run)}/metrics.csv" for run in experiment_runs()]


def all_dataset_previews(wildcards=None):
    used = sorted({exp["dataset"] for exp in config["experiments"].values()})
    return [f"{dataset_dir(d)}/samples.png" for d in used]


def clear_figure_run():
    """The first CLEAR-VAE run of a CLEAR experiment (seed = its first), whose latents the CLEAR figures show."""
    for name, exp in config["experiments"].items():
        papers = [exp["paper"]] if isinstance(exp["paper"], str) else exp["paper"]
        if "clear" not in papers:
            continue
        for method in exp["methods"]:
            spec = method_spec(name, method)
            if spec["objective"] == "clear_vae" and spec.get("vae", {}).get("style", "ps_snn") == "ps_snn":
                return name, method, exp["seeds"][0]
    return None


def convergence_metrics(wildcards=None):
    """metrics.csv of every run of the VarCon experiments (the convergence figure)."""
    return [f"{run_dir(*run)}/metrics.csv" for run in experiment_runs()
            if "varcon" in ([config["experiments"][run[0]]["paper"]] if isinstance(config["experiments"][run[0]]["paper"], str)
                            else config["experiments"][run[0]]["paper"])]


TABLE_FIGURES = ["clear_ood", "clear_ood_k", "mcl_stage_probes", "varcon_corruptions", "varcon_convergence"]
CLEAR_FIGURES = ["clear_swap", "clear_interpolation", "clear_tsne"]


def paper_figures(wildcards=None):
    """The papers' figures this configuration draws."""
    figs = [f"{RESULTS}/figures/{f}.png" for f in TABLE_FIGURES + ["clear_mi_simulation"]]
    if clear_figure_run() is not None:
        figs += [f"{RESULTS}/figures/{f}.png" for f in CLEAR_FIGURES]
    return figs


def final_outputs():
    return [
        f"{RESULTS}/tables/summary.csv",
        f"{RESULTS}/figures/training_curves.png",
        f"{RESULTS}/report/index.html",
    ]


def used_dataset_dirs():
    """Every dataset directory this configuration reads: each experiment's dataset and, at cell
    granularity, its corrupted test splits."""
    dirs = set()
    for name, exp in config["experiments"].items():
        dirs.add(dataset_dir(exp["dataset"]))
        dirs |= {corrupted_dir(exp["dataset"], c, s) for c, s in corruption_cells(name)}
    return sorted(dirs)


def verify_existing_datasets():
    """Refuse to start, before any job runs, when a dataset directory holds a truncated or unreadable file.

    Snakemake trusts an existing output by its timestamp, so without this every job reading such a
    file would fail on its own, deep in its log. Cheap: only directories that exist are checked, by
    parsing meta.json and reading each split's zip directory (no arrays). Skipped inside cluster jobs:
    the submitting snakemake has already checked, and each job's start-up should stay light.
    """
    if workflow.remote_exec:
        return
    from clbench.data.dataset_dir import DatasetError, verify
    for path in used_dataset_dirs():
        if os.path.isdir(path):
            try:
                verify(path)
            except DatasetError as e:
                raise WorkflowError(f"{e}\nNo job was started.") from None


verify_existing_datasets()


# Report rules (report.smk): figure formats, the papers' tables, VarCon runs

FIGURE_FORMATS = config["report"]["figure_formats"]
FIGURE_FORMATS_ARG = ",".join(FIGURE_FORMATS)  # the figure commands' --formats


def figure_pngs(names):
    """The figures' PNGs: the HTML report embeds them, `snakemake --report` shows them."""
    return [report(f"{RESULTS}/figures/{name}.png", caption=f"../report/{name}.rst", category="Figures") for name in names]


def figure_copies(names):
    """The same figures in report.figure_formats' other formats (PDF for papers), written by the same job."""
    return [f"{RESULTS}/figures/{name}.{fmt}" for name in names for fmt in FIGURE_FORMATS if fmt != "png"]


def config_papers():
    """The papers with an experiment in the config: one table per paper (clbench.report.paper_tables)."""
    return sorted({p for exp in config["experiments"].values()
                   for p in ([exp["paper"]] if isinstance(exp["paper"], str) else exp["paper"])})


def varcon_runs(wildcards=None):
    """Run directories of the methods of objective varcon: their metrics.csv log the adaptive temperature t2."""
    return [run_dir(*run) for run in experiment_runs() if method_spec(run[0], run[1])["objective"] == "varcon"]

import json
import os

from snakemake.utils import validate


validate(config, schema="../schemas/config.schema.yaml", set_default=True)


RESULTS = config["results_dir"]


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


    for name, spec in cfg["datasets"].items():
        root = spec.get("root")
        used = any(exp["dataset"] == name for exp in cfg["experiments"].values())
        if used and root and not os.path.exists(root):
            raise ValueError(
                f"datasets.{name}.root: {root!r} does not exist; point it at an existing copy in the library's "
                f"layout, or remove root and set download: true to fetch the data into {cfg['resources_dir']}/"
            )
    for name, exp in cfg["experiments"].items():
        n_train = cfg["datasets"][exp["dataset"]].get("n_train")
        for method in exp["methods"]:
            spec = cfg["methods"][method]
            if "mcl" not in spec or not n_train:
                continue
            joint = spec["mcl"]["clusters"] ** (spec["mcl"]["stages"] - 1)
            if joint * spec["batch_size"] > n_train:
                raise ValueError(
                    f"methods.{method}.mcl: the last stage draws batches of {spec['batch_size']} from "
                    f"clusters**(stages-1) = {joint} joint clusters, more than the {n_train} training samples of "
                    f"experiments.{name} can fill; lower clusters or stages"
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


def stage_spec(wildcards):
    """Every MCL stage trains the method's own spec (a fresh model); the stage index only changes batches."""
    spec = dict(config["methods"][wildcards.method])
    spec.pop("mcl")
    return as_json(spec)


def previous_stage_clusters(wildcards):
    run = run_dir(wildcards.experiment, wildcards.method, wildcards.seed)
    return [f"{run}/stage{s}/clusters.npy" for s in range(int(wildcards.stage))]


def mcl_stage_dirs(wildcards):
    run = run_dir(wildcards.experiment, wildcards.method, wildcards.seed)
    return [f"{run}/stage{s}/model.pt" for s in range(config["methods"][wildcards.method]["mcl"]["stages"])]


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
    """The evaluation settings plus this experiment's list of evaluations."""
    exp = config["experiments"][wildcards.experiment]
    return as_json({**config["evaluation"], "evaluations": exp["evaluations"], "y_factor": exp["y_factor"]})


CORRUPTION_NAMES = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)


def corrupted_inputs(wildcards):
    """cell granularity: the corrupted test splits (one job each) this experiment's evaluation reads."""
    exp = config["experiments"][wildcards.experiment]
    cfg = config["evaluation"]["corruptions"]
    if "corruptions" not in exp["evaluations"] or cfg["granularity"] != "cell":
        return []
    names = CORRUPTION_NAMES if cfg["names"] == "all" else cfg["names"]
    root = f"{dataset_dir(exp['dataset'])}/corrupted"
    return [f"{root}/{name}/s{severity}/meta.json" for name in names for severity in cfg["severities"]]


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
            spec = config["methods"][method]
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

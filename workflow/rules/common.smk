# Thin glue over clbench.workflow, which holds the configuration logic (validation, merging,
# cross-reference checks, paths) as plain functions of the config, unit-tested without Snakemake.
import os
import sys
from functools import partial
from inspect import signature

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

try:
    import clbench.workflow as wf
except ImportError:  # snakemake from an environment without clbench (e.g. --sdm conda): use this checkout
    sys.path.insert(0, os.path.join(workflow.basedir, "src"))
    import clbench.workflow as wf


# Bad settings are refused here, before any job runs, naming the key (clbench.errors.ConfigError).
SCHEMA = wf.load_schema(os.path.join(workflow.current_basedir, "..", "schemas", "config.schema.yaml"))
wf.validate(config, SCHEMA)
for warning in wf.check_config(config, SCHEMA):
    logger.warning(warning)  # e.g. ImageNet's root: a dry run plans without it


RESULTS = config["results_dir"]


wildcard_constraints:
    experiment=r"[A-Za-z0-9_\-]+",
    method=r"[A-Za-z0-9_\-]+",
    dataset=r"[A-Za-z0-9_\-]+",
    seed=r"\d+",


def from_wildcards(function):
    """An input or params function: ``function(config, <its wildcards by name>)``."""
    names = [n for n in signature(function).parameters if n != "cfg"]
    return lambda wildcards: function(config, **{n: getattr(wildcards, n) for n in names if n in wildcards.keys()})


# The paths and names the rules (and report.smk) share
as_json = wf.as_json
run_dir = partial(wf.run_dir, config)
dataset_dir = partial(wf.dataset_dir, config)
method_spec = partial(wf.method_spec, config)
experiment_runs = partial(wf.experiment_runs, config)
final_outputs = partial(wf.final_outputs, config)
all_evaluations = lambda wildcards: wf.all_evaluations(config)
all_metrics = lambda wildcards: wf.all_metrics(config)
all_dataset_previews = lambda wildcards: wf.all_dataset_previews(config)
method_gpus = from_wildcards(wf.method_gpus)  # a pretraining job's gpu resource

SINGLE_STAGE_METHODS = wf.name_regex(m for m in config["methods"] if not wf.is_mcl(config, m))
MCL_METHODS = wf.name_regex(m for m in config["methods"] if wf.is_mcl(config, m))
# Experiments whose evaluation.json is merged from per-cell corruption jobs, and the others
# (one evaluate job writes it): disjoint wildcard constraints keep the two routes unambiguous.
CELL_EXPERIMENTS = wf.name_regex(e for e in config["experiments"] if wf.corruption_cells(config, e))
WHOLE_EXPERIMENTS = wf.name_regex(e for e in config["experiments"] if not wf.corruption_cells(config, e))


# Refuse to start when an existing dataset directory holds a truncated or unreadable file. Skipped
# inside cluster jobs: the submitting snakemake has already checked, and each job's start-up stays light.
if not workflow.remote_exec:
    from clbench.data.dataset_dir import DatasetError

    try:
        wf.verify_datasets(wf.used_dataset_dirs(config))
    except DatasetError as e:
        raise WorkflowError(f"{e}\nNo job was started.") from None


# Report rules (report.smk): figure formats, the papers' tables, VarCon runs


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

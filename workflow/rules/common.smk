# Thin glue over clbench.workflow, which holds the configuration logic (validation, merging,
# cross-reference checks, paths) as plain functions of the config, unit-tested without Snakemake.
import os
import sys
from functools import partial
from inspect import signature

from snakemake.logging import logger

try:
    import clbench.workflow as wf
except ImportError:  # snakemake from an environment without clbench (e.g. --sdm conda): use this checkout
    sys.path.insert(0, os.path.join(workflow.basedir, "src"))
    import clbench.workflow as wf
from clbench import sweeps
from clbench.config import composition
from clbench.ops import cluster, cost, plan
from clbench.errors import refusals
import clbench.ops.rule_code as rule_code  # each rule's params.code: the hash of the package code its job runs


# Bad settings are refused here, before any job runs, naming the key (clbench.errors.ConfigError), in one
# line without a traceback (refusals).
with refusals():
    # The configuration is composed again from its layers (clbench.config.composition): each file read strictly
    # (a key given twice is refused, 1e-3 is a number), a file stating `compose: replace` (configs/paper.yaml) starts
    # afresh instead of overlaying the default, --config values are read as a config file's YAML, and
    # papers=[...] / experiments=[...] / methods=[...] select what runs. A cluster job gets the same files and
    # --config arguments, so it composes the same configuration.
    _cli_files = {os.path.abspath(f) for f in workflow.config_settings.configfiles}
    _layers = composition.config_layers(
        [] if workflow.config_settings.replace_workflow_config
        else [f for f in workflow.configfiles if os.path.abspath(f) not in _cli_files],
        workflow.config_settings.configfiles,
        workflow.config_settings.config_args,
    )
    _composed, _ = composition.resolve(_layers)
    config.clear()
    config.update(_composed)
    SCHEMA = wf.load_schema(os.path.join(workflow.current_basedir, "..", "schemas", "config.schema.yaml"))
    wf.validate(config, SCHEMA)
    sweeps.expand(config, SCHEMA)  # each sweep's trials: ordinary methods of an experiment named as the sweep
    for warning in wf.check_config(config, SCHEMA):
        logger.warning(warning)  # e.g. ImageNet's root: a dry run plans without it
    plan.check_sweep_budgets(config)  # a sweep expected to cost more GPU-hours than its stated budget
# A part of the install the configuration needs (transformers for sentences, wilds, ...): refused here, naming the extra
from clbench.extras import check_installed

with refusals():
    check_installed(config)
# The training jobs' logger (`clbench train` reads it): it changes no result, so it is no param and
# switching it re-runs nothing. Every job's snakemake (also on a cluster node) sets it from its config.
os.environ.update(CLBENCH_LOGGER=config["logger"])


RESULTS = config["results_dir"]
# each submitted rule's SLURM resources, from config["slurm"]; time limits from each job's expected time
rule_resources = partial(cluster.rule_resources, runtime_minutes=partial(cost.runtime_minutes, config))


wildcard_constraints:
    experiment=r"[A-Za-z0-9_\-]+",
    method=r"[A-Za-z0-9_\-]+",
    dataset=r"[A-Za-z0-9_\-]+",
    seed=r"\d+",


def from_wildcards(function):
    """An input or params function: ``function(config, <its wildcards by name>)``."""
    names = [n for n in signature(function).parameters if n != "cfg"]
    return lambda wildcards: function(config, **{n: getattr(wildcards, n) for n in names if n in wildcards.keys()})


# The names several rule files share
as_json = wf.as_json
final_outputs = partial(wf.final_outputs, config)
# the tables, figures and claims read the sweeps' trials through their selections alone
REPORTED = sweeps.reported(config)
all_evaluations = lambda wildcards: wf.all_evaluations(REPORTED)
all_metrics = lambda wildcards: wf.all_metrics(REPORTED)
all_dataset_previews = lambda wildcards: wf.all_dataset_previews(config)
method_gpus = from_wildcards(wf.method_gpus)  # a pretraining job's gpu resource

SINGLE_STAGE_METHODS = wf.name_regex(m for m in config["methods"] if not wf.is_mcl(config, m))
# seeds_per_job all: the experiments with the shared seed list train (pretrain_seeds) and evaluate
# (evaluate_seeds) all seeds of a method in one job; the others have a job per seed (pretrain, evaluate)
GROUPED = wf.grouped_experiments(config)
GROUPED_EXPERIMENTS = wf.name_regex(GROUPED)
SEED_EXPERIMENTS = wf.name_regex(e for e in config["experiments"] if e not in GROUPED)
per_seed = partial(wf.per_seed, config)
MCL_METHODS = wf.name_regex(m for m in config["methods"] if wf.is_mcl(config, m))
# Experiments whose evaluation.json is merged from per-cell corruption jobs, and the others
# (one evaluate job writes it): disjoint wildcard constraints keep the two routes unambiguous.
CELL_EXPERIMENTS = wf.name_regex(e for e in config["experiments"] if wf.corruption_cells(config, e))
WHOLE_EXPERIMENTS = wf.name_regex(e for e in config["experiments"] if not wf.corruption_cells(config, e))
WHOLE_SEED_EXPERIMENTS = wf.name_regex(e for e in config["experiments"]
                                       if not wf.corruption_cells(config, e) and e not in GROUPED)
WHOLE_GROUPED_EXPERIMENTS = wf.name_regex(e for e in GROUPED if not wf.corruption_cells(config, e))


# Refuse to start when an existing dataset directory holds a truncated, unreadable or damaged file, or less
# than its experiments need. Skipped inside cluster jobs: the submitting snakemake has already checked, and
# each job's start-up stays light.
if not workflow.remote_exec:
    with refusals():
        wf.verify_datasets(wf.used_dataset_dirs(config))
        wf.check_built_datasets(config)  # e.g. a TU dataset built before graph_svc asked 10 graphs a class of it


# The papers' tables, analyses and figures (report.smk, analyse.smk): clbench.papers.targets
from clbench.papers.targets import ReportTargets

with refusals():  # an unknown paper: one line, like every refusal
    REPORT = ReportTargets(REPORTED)

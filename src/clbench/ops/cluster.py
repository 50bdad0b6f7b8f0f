"""What each workflow job asks a SLURM cluster for, from the config's ``slurm`` block and scale.

The rules' ``resources:`` come from :func:`rule_resources`; the SLURM executor plugin turns them into
sbatch options: ``slurm_partition`` (``-p``), ``slurm_account`` (``-A``), ``gpu`` (``--gpus``),
``cpus_per_gpu`` / ``cpus_per_task``, ``mem_mb`` (``--mem``), ``runtime`` (``-t``, minutes) and
``nodes`` (``--nodes``). So the cluster adapts through the config (an overlay or ``--config``) and the
shipped profile is never edited. A local run ignores them all except ``gpu``, which only counts when
the user limits it (``--resources gpu=N``).

Rules:
- the partition and account the ``slurm:`` block leaves unset are not set by the rules, so Snakemake's
  ``--default-resources slurm_account=... slurm_partition=...`` (command line or a global profile) fills them;
- a job asks for a GPU only when it will use one: never with ``device: cpu``; pretraining takes the
  method's GPU count (its ``gpus``, else ``gpus_per_train_job``), clustering and evaluation one GPU
  when the config trains on GPUs; data preparation and the analyses none;
- GPU jobs go to ``slurm.gpu_partition`` (default ``slurm.partition``) with ``cpus_per_gpu``, the
  others to ``slurm.partition`` with ``cpus_per_task``; the CPUs are the job's threads (the command's
  ``--threads``) unless the scale's sizes or ``slurm.resources`` say otherwise;
- every job asks for one node: the multi-GPU pretraining is ``torchrun --standalone`` (one node), and
  no other job spans nodes;
- memory follows ``scale`` (:data:`SIZES`); the runtime follows each job's expected time
  (:func:`clbench.ops.cost.runtime_minutes`: measured or published throughput x a safety factor), else the
  scale's size; both can be set per rule in ``slurm.resources``. The runtime is multiplied by the
  attempt, so a job retried after a timeout gets more time.

Snakemake imports this module while it parses the workflow: no torch, nothing heavy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

# How a rule's jobs use GPUs: "method" = the method's GPU count (data-parallel pretraining), "one" = a
# single GPU when the config trains on GPUs. Rules not listed never use a GPU.
GPU_USE = {
    "pretrain": "method",
    "pretrain_stage": "method",
    "cluster_stage": "one",
    "evaluate": "one",
    "evaluate_clean": "one",
    "evaluate_corruption": "one",
}

# The rules submitted to SLURM (the others are localrules: cheap aggregation on the submitting host).
SUBMITTED_RULES = (
    "build_dataset", "show_dataset", "preview_augmentation", "corrupt_split", "pretrain", "pretrain_stage", "cluster_stage",
    "evaluate", "evaluate_clean", "evaluate_corruption", "analyse",
)

# Per scale and rule: mem_mb (MB), runtime (minutes per attempt) and, where a job's threads do not say
# how many CPUs it keeps busy, cpus. "default" covers the rules not listed.
_SMALL = {
    # tiny and smoke: a few hundred to a few thousand 32 px images; every job stays under 1 GB and
    # finishes in seconds to minutes on one CPU
    "pretrain": {"mem_mb": 4000, "runtime": 30},
    "pretrain_stage": {"mem_mb": 4000, "runtime": 30},
    "cluster_stage": {"mem_mb": 4000, "runtime": 15},
    "evaluate": {"mem_mb": 4000, "runtime": 30},
    "evaluate_clean": {"mem_mb": 4000, "runtime": 30},
    "evaluate_corruption": {"mem_mb": 4000, "runtime": 10},
    "default": {"mem_mb": 2000, "runtime": 15},
}
SIZES = {
    "tiny": _SMALL,
    "smoke": _SMALL,
    "paper": {
        # ResNet-18/50 on CIFAR, STL-10, CelebA, Camelyon17 and ImageNet
        "pretrain": {"mem_mb": 64000, "runtime": 720},
        "pretrain_stage": {"mem_mb": 64000, "runtime": 720},
        "cluster_stage": {"mem_mb": 64000, "runtime": 60},
        "evaluate": {"mem_mb": 64000, "runtime": 120},
        "evaluate_clean": {"mem_mb": 64000, "runtime": 120},
        # per cell (one test split's features and the saved probe); a group of cells adds them up
        "evaluate_corruption": {"mem_mb": 32000, "runtime": 5},
        # downloads and decodes a dataset (decoding uses several threads)
        "build_dataset": {"mem_mb": 32000, "runtime": 240, "cpus": 4},
        "corrupt_split": {"mem_mb": 16000, "runtime": 60, "cpus": 2},
        "show_dataset": {"mem_mb": 8000, "runtime": 30},
        "default": {"mem_mb": 8000, "runtime": 60},
    },
}

# The resources every submitted rule sets (rule_resources gives one callable per key).
RESOURCE_KEYS = (
    "slurm_partition", "slurm_account", "gpu", "cpus_per_gpu", "cpus_per_task", "nodes", "mem_mb", "runtime",
)


def job_gpus(cfg: Mapping, rule: str, method_gpus: int = 0) -> int:
    """GPUs one job of ``rule`` asks for. ``method_gpus``: the pretrained method's GPU count (its
    ``gpus``, else ``gpus_per_train_job``), used by the pretraining rules."""
    use = GPU_USE.get(rule)
    if use is None or cfg["device"] == "cpu":
        return 0
    n = method_gpus if use == "method" else min(1, cfg["gpus_per_train_job"])
    # device: cuda runs on a GPU whatever the counts say, so it must get one
    return max(n, 1) if cfg["device"] == "cuda" else n


def job_size(cfg: Mapping, rule: str) -> dict:
    """mem_mb, runtime (minutes per attempt) and, where set, cpus of one job of ``rule``: the scale's
    sizes with the config's ``slurm.resources.<rule>`` over them."""
    sizes = SIZES[cfg["scale"]]
    overrides = cfg["slurm"]["resources"].get(rule, {})
    return {**sizes["default"], **sizes.get(rule, {}), **overrides}


def job_resources(cfg: Mapping, rule: str, threads: int = 1, attempt: int = 1, method_gpus: int = 0) -> dict:
    """Every SLURM resource of one job of ``rule`` (:data:`RESOURCE_KEYS`).

    Unset partition and account are empty strings: the plugin then takes the cluster's default
    partition and submits without ``-A``. The unused one of ``cpus_per_gpu`` / ``cpus_per_task`` is 0,
    which the plugin skips.
    """
    slurm = cfg["slurm"]
    gpus = job_gpus(cfg, rule, method_gpus)
    size = job_size(cfg, rule)
    cpus = size.get("cpus") or threads
    partition = (slurm["gpu_partition"] or slurm["partition"]) if gpus else slurm["partition"]
    return {
        "slurm_partition": partition or "",
        "slurm_account": slurm["account"] or "",
        "gpu": gpus,
        "cpus_per_gpu": cpus if gpus else 0,
        "cpus_per_task": 0 if gpus else cpus,
        "nodes": 1,
        "mem_mb": size["mem_mb"],
        "runtime": size["runtime"] * attempt,
    }


def max_method_gpus(cfg: Mapping) -> int:
    """The most GPUs any configured pretraining job asks for (a method's ``gpus``, its experiment's
    override, else ``gpus_per_train_job``)."""
    counts = [cfg["gpus_per_train_job"]]
    counts += [spec["gpus"] for spec in cfg["methods"].values() if "gpus" in spec]
    counts += [o["gpus"] for exp in cfg["experiments"].values() for o in exp.get("method_overrides", {}).values()
               if "gpus" in o]
    return max(counts)


def left_to_default_resources(cfg: Mapping, rule: str) -> set[str]:
    """The SLURM resources a rule leaves to Snakemake's default resources (``--default-resources
    slurm_account=... slurm_partition=...``, on the command line or in a global profile), because the
    ``slurm:`` block does not set them: a rule's own resources would override the defaults.

    The account when ``slurm.account`` is unset; the partition when neither ``slurm.partition`` nor
    (for a rule whose jobs may use a GPU) ``slurm.gpu_partition`` is set. With only ``gpu_partition``
    set, a rule whose jobs may use a GPU keeps its partition resource, and its jobs without a GPU get
    the cluster's default partition.
    """
    slurm = cfg["slurm"]
    unset = set()
    if not slurm["account"]:
        unset.add("slurm_account")
    may_use_gpu = job_gpus(cfg, rule, max_method_gpus(cfg)) > 0
    if not slurm["partition"] and not (slurm["gpu_partition"] and may_use_gpu):
        unset.add("slurm_partition")
    return unset


def rule_resources(cfg: Mapping, rule: str, method_gpus: Callable | None = None,
                   runtime_minutes: Callable | None = None) -> dict[str, Callable]:
    """A rule's ``resources:`` (``**rule_resources(config, "evaluate")``): one callable per key, which
    Snakemake calls per job with its wildcards, threads and attempt. ``method_gpus(wildcards)`` gives
    a pretraining job's GPU count. The keys the ``slurm:`` block leaves unset are left out
    (:func:`left_to_default_resources`), so that Snakemake's default resources fill them.

    ``runtime_minutes(rule, wildcards)``: a job's time limit from its expected time
    (:func:`clbench.ops.cost.runtime_minutes`), or None for the scale's size; a runtime the config's
    ``slurm.resources.<rule>`` sets wins over it. Multiplied by the attempt, as the sizes are."""
    if rule not in SUBMITTED_RULES:
        raise ValueError(f"{rule!r} is not a submitted rule; known: {list(SUBMITTED_RULES)}")

    def resource(key):
        def value(wildcards, threads, attempt):
            if key == "runtime" and runtime_minutes is not None and "runtime" not in cfg["slurm"]["resources"].get(rule, {}):
                names = dict(wildcards.items()) if hasattr(wildcards, "items") else dict(vars(wildcards))
                minutes = runtime_minutes(rule, names)
                if minutes is not None:
                    cap = cfg["slurm"].get("max_runtime")
                    return min(minutes * attempt, cap) if cap else minutes * attempt
            n = method_gpus(wildcards) if method_gpus is not None else 0
            return job_resources(cfg, rule, threads, attempt, n)[key]

        return value

    unset = left_to_default_resources(cfg, rule)
    return {key: resource(key) for key in RESOURCE_KEYS if key not in unset}

"""``clbench plan``: what a configuration will run and cost, before anything runs.

Per experiment and in total: jobs (as Snakemake plans them, from :mod:`clbench.workflow`'s targets,
without building the DAG), expected GPU-hours and CPU-hours (:mod:`clbench.ops.cost`), the SLURM time limit
each rule's jobs ask for, the downloads and the disk the results take. ``tests/test_plan.py`` checks
the job counts against a dry run's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from clbench import sweeps
from clbench import workflow as wf
from clbench.errors import ConfigError
from clbench.ops import cost
from clbench.ops.cluster import SUBMITTED_RULES, job_gpus, job_size

DATASETS_ROW = "(datasets)"
REPORT_ROW = "(report)"
# bytes per parameter of a run's files: model.pt, and the epoch checkpoint (model, optimiser state, RNG)
MODEL_BYTES_PER_PARAM = 4
CHECKPOINT_BYTES_PER_PARAM = 12
# parameters of the models not built by benchmarks/throughput.py (published sizes)
PARAMS = {"sentence-": 125e6, "clip-ViT-L-14@224": 428e6, "clip-": 5e6, "gin-": 1e5}


@dataclass
class Job:
    row: str            # the experiment, or DATASETS_ROW / REPORT_ROW
    rule: str           # the Snakemake rule
    wildcards: dict = field(default_factory=dict)

    @property
    def resource_rule(self) -> str:
        """The rule name the job's resources are sized by (a grouped job is sized as its per-seed rule)."""
        return self.rule.removesuffix("_seeds")

    @property
    def submitted(self) -> bool:
        return self.resource_rule in SUBMITTED_RULES


def experiment_jobs(cfg: Mapping, experiment: str) -> list[Job]:
    exp = cfg["experiments"][experiment]
    grouped = experiment in wf.grouped_experiments(cfg)
    cells = wf.corruption_cells(cfg, experiment)
    jobs = []
    for method in exp["methods"]:
        base = {"experiment": experiment, "method": method}
        per_seed = [{}] if grouped else [{"seed": seed} for seed in exp["seeds"]]
        suffix = "_seeds" if grouped else ""
        for seed in per_seed:
            if wf.is_mcl(cfg, method):
                stages = wf.method_spec(cfg, experiment, method)["mcl"]["stages"]
                jobs += [Job(experiment, f"pretrain_stage{suffix}", {**base, **seed, "stage": s}) for s in range(stages)]
                jobs += [Job(experiment, f"cluster_stage{suffix}", {**base, **seed, "stage": s})
                         for s in range(stages - 1)]
                jobs.append(Job(experiment, f"combine_stages{suffix}", {**base, **seed}))
            else:
                jobs.append(Job(experiment, f"pretrain{suffix}", {**base, **seed}))
        if cells:
            for seed in exp["seeds"]:
                run = {**base, "seed": seed}
                jobs.append(Job(experiment, "evaluate_clean", run))
                jobs += [Job(experiment, "evaluate_corruption", {**run, "corruption": c, "severity": s}) for c, s in cells]
                jobs.append(Job(experiment, "merge_evaluation", run))
        else:
            jobs += [Job(experiment, f"evaluate{suffix}", {**base, **seed}) for seed in per_seed]
    return jobs


def dataset_jobs(cfg: Mapping) -> list[Job]:
    jobs = []
    for dataset in wf.used_datasets(cfg):
        jobs += [Job(DATASETS_ROW, "build_dataset", {"dataset": dataset}), Job(DATASETS_ROW, "show_dataset", {"dataset": dataset})]
        if wf.dataset_recipes(cfg, dataset):
            jobs.append(Job(DATASETS_ROW, "preview_augmentation", {"dataset": dataset}))
    cells = {(exp["dataset"], c, s) for name, exp in cfg["experiments"].items() for c, s in wf.corruption_cells(cfg, name)}
    jobs += [Job(DATASETS_ROW, "corrupt_split", {"dataset": d, "corruption": c, "severity": s}) for d, c, s in sorted(cells)]
    return jobs


def report_jobs(cfg: Mapping) -> list[Job]:
    from clbench.papers.targets import ReportTargets

    reported_cfg = sweeps.reported(cfg)  # the sweeps' trials enter the report through their selections
    report = ReportTargets(reported_cfg)
    jobs = [Job(REPORT_ROW, "analyse", {"analysis": a}) for a in report.analyses]
    jobs += [Job(REPORT_ROW, "paper_figure", {"figure": f}) for f in report.figures]
    jobs += [Job(REPORT_ROW, "protocol_card", {"experiment": e}) for e in reported_cfg["experiments"]]
    jobs += [Job(sweep, "select_sweep", {"sweep": sweep}) for sweep in sweeps.sweep_experiments(cfg)]
    jobs += [Job(REPORT_ROW, rule) for rule in ("collect_results", "plot_training_curves", "html_report", "all")]
    return jobs


def planned_jobs(cfg: Mapping) -> list[Job]:
    """Every job a run of ``cfg`` plans from scratch, as Snakemake names them."""
    jobs = dataset_jobs(cfg)
    for experiment in cfg["experiments"]:
        jobs += experiment_jobs(cfg, experiment)
    return jobs + report_jobs(cfg)


def _job_cost(cfg: Mapping, job: Job, safety_factor: float | None) -> dict:
    """Expected hours, GPUs and the SLURM time limit of one job."""
    rule = job.resource_rule
    seconds = cost.job_seconds(cfg, rule, job.wildcards) if job.submitted else None
    size = job_size(cfg, rule) if job.submitted else {}
    limit = cost.runtime_minutes(cfg, rule, job.wildcards, safety_factor) if job.submitted else None
    if job.submitted and limit is None:
        limit = size["runtime"]
    if limit is not None and cfg["slurm"].get("max_runtime"):
        limit = min(limit, cfg["slurm"]["max_runtime"])
    gpus = 0
    if job.submitted:
        method_gpus = (wf.method_gpus(cfg, job.wildcards["experiment"], job.wildcards["method"],
                                      job.wildcards.get("stage")) if "method" in job.wildcards else 0)
        gpus = job_gpus(cfg, rule, method_gpus)
    cpus = size.get("cpus") or (cfg["train_threads"] if rule in ("pretrain", "pretrain_stage", "cluster_stage",
                                                                   "evaluate", "evaluate_clean", "evaluate_corruption")
                                else 1)
    hours = (seconds or 0) / 3600
    return {"gpu_h": hours * gpus, "cpu_h": 0.0 if gpus else hours * cpus, "limit": limit, "expected_h": hours}


def _params(key: str) -> float:
    entry = cost.load_table()["workloads"].get(key, {})
    if "params" in entry:
        return entry["params"]
    return next((v for prefix, v in PARAMS.items() if key.startswith(prefix)), 1e7)


def dataset_disk(cfg: Mapping, dataset: str) -> float:
    """Bytes of a dataset directory: every split's images as uint8 (a path index for ImageFolder paths storage)."""
    spec = cfg["datasets"][dataset]
    facts = cost.dataset_facts(spec)
    if spec["generator"] == "imagefolder" and (spec.get("options") or {}).get("storage", "paths") == "paths":
        return 1e8
    if not facts["image_size"]:
        return 2 * cost.download_bytes(facts["archives"]) or 1e8
    per_image = facts["channels"] * facts["image_size"] ** 2
    return (facts["n_train"] + facts["n_val"] + facts["n_test"]) * per_image


def corrupted_disk(cfg: Mapping, dataset: str, cells: int) -> float:
    facts = cost.dataset_facts(cfg["datasets"][dataset])
    return cells * facts["n_test"] * facts["channels"] * facts["image_size"] ** 2


def run_disk(cfg: Mapping, experiment: str) -> float:
    """Bytes of an experiment's runs: each run's model and its last checkpoint (each MCL stage's too)."""
    exp = cfg["experiments"][experiment]
    total = 0.0
    for method in exp["methods"]:
        params = _params(cost.workload(cfg, experiment, method).key)
        stages = wf.method_spec(cfg, experiment, method)["mcl"]["stages"] + 1 if wf.is_mcl(cfg, method) else 1
        total += len(exp["seeds"]) * stages * params * (MODEL_BYTES_PER_PARAM + CHECKPOINT_BYTES_PER_PARAM)
    return total


@dataclass
class Row:
    jobs: int = 0
    submitted: int = 0
    gpu_h: float = 0.0
    cpu_h: float = 0.0
    download: float = 0.0
    disk: float = 0.0
    limits: dict = field(default_factory=lambda: defaultdict(list))  # rule -> [(expected h, limit min)]


def plan(cfg: Mapping, safety_factor: float | None = None) -> dict[str, Row]:
    """Per experiment (and the datasets' and report's jobs): jobs, hours, SLURM limits, downloads, disk."""
    rows: dict[str, Row] = defaultdict(Row)
    for job in planned_jobs(cfg):
        row = rows[job.row]
        row.jobs += 1
        if not job.submitted:
            continue
        row.submitted += 1
        c = _job_cost(cfg, job, safety_factor)
        row.gpu_h += c["gpu_h"]
        row.cpu_h += c["cpu_h"]
        row.limits[job.rule].append((c["expected_h"], c["limit"]))
    seen_archives: set = set()
    for experiment, exp in cfg["experiments"].items():
        archives = set(cost.dataset_facts(cfg["datasets"][exp["dataset"]])["archives"]) - seen_archives
        seen_archives |= archives
        rows[experiment].download = cost.download_bytes(archives)
        rows[experiment].disk = run_disk(cfg, experiment)
    cells: dict[str, set] = defaultdict(set)
    for name, exp in cfg["experiments"].items():
        cells[exp["dataset"]] |= set(wf.corruption_cells(cfg, name))
    rows[DATASETS_ROW].disk = sum(dataset_disk(cfg, d) + corrupted_disk(cfg, d, len(cells[d])) for d in wf.used_datasets(cfg))
    order = [DATASETS_ROW, *cfg["experiments"], REPORT_ROW]
    return {name: rows[name] for name in order if name in rows}


def _size(n: float) -> str:
    return "0" if n <= 0 else f"{n / 1e9:,.1f} GB" if n >= 1e8 else f"{n / 1e6:,.0f} MB"


def _hours(h: float) -> str:
    return "0" if h <= 0 else f"{h:,.1f}" if h >= 0.1 else "<0.1"


def _minutes(m: int) -> str:
    return f"{m // 60}:{m % 60:02d}"


def plan_text(cfg: Mapping, safety_factor: float | None = None) -> str:
    rows = plan(cfg, safety_factor)
    table = cost.load_table()
    factor = safety_factor or cfg["slurm"].get("time_factor") or cost.SAFETY_FACTOR
    total = Row()
    for r in rows.values():
        total.jobs += r.jobs
        total.submitted += r.submitted
        total.gpu_h += r.gpu_h
        total.cpu_h += r.cpu_h
        total.download += r.download
        total.disk += r.disk
    gpu, cpu = table["gpu"], table["cpu"]
    lines = [
        f"scale {cfg['scale']}, device {cfg['device']}, {len(cfg['experiments'])} experiments: {total.jobs:,} jobs "
        f"({total.submitted:,} submitted to a cluster, {total.jobs - total.submitted:,} local)",
        f"GPU figures: {gpu['device']}, " + ("measured" if gpu.get("measured") else
                                             f"NOT MEASURED: {gpu['source'].split('not measured: ', 1)[-1]}"),
        f"CPU figures: measured on {cpu['device']} ({table['date']}, {table['generated_by']}), per core-second",
        f"SLURM time limit per job = expected time x {factor:g} (slurm.time_factor; at least "
        f"{cost.MIN_RUNTIME_MINUTES} min); "
        f"CPU-hours count the jobs without a GPU (cores x hours)",
        "",
        f"{'experiment':<26} {'jobs':>6} {'GPU-h':>9} {'CPU-h':>8} {'download':>10} {'results':>10}",
    ]
    for name, r in rows.items():
        lines.append(f"{name:<26} {r.jobs:>6,} {_hours(r.gpu_h):>9} {_hours(r.cpu_h):>8} {_size(r.download):>10} "
                     f"{_size(r.disk):>10}")
    lines.append(f"{'total':<26} {total.jobs:>6,} {_hours(total.gpu_h):>9} {_hours(total.cpu_h):>8} "
                 f"{_size(total.download):>10} {_size(total.disk):>10}")
    lines += ["", "SLURM time per job (expected -> -t limit, h:mm), per experiment and rule:"]
    for name, r in rows.items():
        parts = []
        for rule, values in r.limits.items():
            expected = max(v[0] for v in values)
            limits = sorted({v[1] for v in values})
            limit = _minutes(limits[0]) if len(limits) == 1 else f"{_minutes(limits[0])}-{_minutes(limits[-1])}"
            parts.append(f"{rule} x{len(values)}: {_minutes(round(expected * 60))} -> {limit}")
        if parts:
            lines.append(f"  {name}: " + "; ".join(parts))
    swept = sweep_lines(cfg)
    return "\n".join(lines + (["", "Sweeps (their jobs are in the rows above):", *swept] if swept else []))


# --------------------------------------------------------------------------------------------------
# sweeps (clbench.sweeps): what each costs, against its budget


def sweep_costs(cfg: Mapping) -> dict[str, dict]:
    """Per sweep: trials, seeds per trial, runs and the expected GPU- and CPU-hours of its jobs
    (:func:`clbench.ops.plan.plan`'s row of the sweep's experiment)."""
    rows = plan(cfg)
    out = {}
    for name in sweeps.sweep_experiments(cfg):
        exp, row = cfg["experiments"][name], rows[name]
        out[name] = {"trials": len(exp["methods"]), "seeds": len(exp["seeds"]),
                     "runs": len(exp["methods"]) * len(exp["seeds"]), "gpu_h": row.gpu_h, "cpu_h": row.cpu_h,
                     "budget_gpu_hours": cfg["sweeps"][name].get("budget_gpu_hours")}
    return out


def check_sweep_budgets(cfg: Mapping) -> None:
    """A sweep whose trials are expected to cost more GPU-hours than its ``budget_gpu_hours`` is refused."""
    if not any("budget_gpu_hours" in s for s in cfg.get("sweeps", {}).values()):
        return
    for name, c in sweep_costs(cfg).items():
        if c["budget_gpu_hours"] is not None and c["gpu_h"] > c["budget_gpu_hours"]:
            raise ConfigError(f"sweeps.{name}.budget_gpu_hours",
                              f"its {c['trials']} trials x {c['seeds']} seeds are expected to take {c['gpu_h']:.1f} "
                              f"GPU-hours, over the budget {c['budget_gpu_hours']:g}; lower trials or seeds, or raise "
                              f"the budget")


def sweep_lines(cfg: Mapping) -> list[str]:
    """``clbench plan``'s lines on the sweeps."""
    lines = []
    for name, c in sweep_costs(cfg).items():
        budget = f" (budget {c['budget_gpu_hours']:g} GPU-h)" if c["budget_gpu_hours"] is not None else ""
        lines.append(f"sweep {name}: {c['trials']} trials x {c['seeds']} seeds = {c['runs']} runs, "
                     f"{c['gpu_h']:.1f} GPU-h, {c['cpu_h']:.1f} CPU-h{budget}")
    return lines

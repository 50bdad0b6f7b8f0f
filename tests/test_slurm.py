"""SLURM resources from the config (clbench.ops.cluster), nested --config values, and what the paper config's
jobs would ask SLURM for: the executor plugin's own sbatch options, built from a dry run's resources."""

import copy
import re
import subprocess
from types import SimpleNamespace

import pytest
import yaml
from snakemake.utils import validate

from clbench.ops import cluster
from clbench.config import composition
from clbench.config.args import retype
from conftest import REPO, job_counts, snakemake_exe

SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")
PROFILE = REPO / "workflow" / "profiles" / "slurm"
GPU_RULES = {"pretrain", "pretrain_stage", "cluster_stage", "evaluate", "evaluate_clean", "evaluate_corruption"}


def load_config(*overlays, extra=None) -> dict:
    layers = composition.config_layers([REPO / "config.yaml"], [REPO / path for path in overlays])
    cfg, _ = composition.resolve(layers + [("extra", extra or {})])
    validate(cfg, SCHEMA, set_default=True)
    return cfg


# ---------------------------------------------------------------------------------------------- resources


def test_slurm_block_defaults_leave_partition_and_account_to_the_cluster():
    cfg = load_config()
    assert cfg["slurm"] == {"account": None, "partition": None, "gpu_partition": None, "resources": {},
                            "time_factor": 2.0, "max_runtime": None}
    res = cluster.job_resources(cfg, "pretrain", threads=1)
    assert res["slurm_partition"] == "" and res["slurm_account"] == ""  # the plugin: default partition, no -A


def test_cpu_only_config_asks_for_no_gpu_anywhere():
    cfg = load_config("configs/paper.yaml", extra={"device": "cpu"})
    for rule in cluster.SUBMITTED_RULES:
        res = cluster.job_resources(cfg, rule, threads=8, method_gpus=8)
        assert res["gpu"] == 0 and res["cpus_per_gpu"] == 0 and res["cpus_per_task"] >= 1, rule


def test_tiny_and_smoke_ask_for_no_gpu_and_little_memory():
    for overlays in [(), ("configs/smoke.yaml",)]:
        cfg = load_config(*overlays)
        for rule in cluster.SUBMITTED_RULES:
            res = cluster.job_resources(cfg, rule, threads=cfg["train_threads"], method_gpus=cfg["gpus_per_train_job"])
            assert res["gpu"] == 0, rule
            assert 1 <= res["cpus_per_task"] <= 2 and res["mem_mb"] <= 4000 and res["runtime"] <= 30, (rule, res)


def test_paper_scale_gpu_rules_get_their_gpus_on_the_gpu_partition():
    cfg = load_config("configs/paper.yaml", extra={"slurm": {"partition": "cpu", "gpu_partition": "gpu"}})
    pretrain = cluster.job_resources(cfg, "pretrain", threads=8, method_gpus=8)
    assert (pretrain["gpu"], pretrain["slurm_partition"], pretrain["cpus_per_gpu"], pretrain["nodes"]) == (8, "gpu", 8, 1)
    assert pretrain["cpus_per_task"] == 0 and pretrain["mem_mb"] == 64000 and pretrain["runtime"] == 720
    for rule in ("cluster_stage", "evaluate", "evaluate_clean", "evaluate_corruption"):
        res = cluster.job_resources(cfg, rule, threads=8, method_gpus=8)  # one GPU, whatever the method trained on
        assert (res["gpu"], res["slurm_partition"], res["cpus_per_gpu"]) == (1, "gpu", 8), rule
    for rule in set(cluster.SUBMITTED_RULES) - GPU_RULES:
        res = cluster.job_resources(cfg, rule, threads=1, method_gpus=1)
        assert (res["gpu"], res["slurm_partition"], res["cpus_per_gpu"]) == (0, "cpu", 0), rule
    assert cluster.job_resources(cfg, "build_dataset")["cpus_per_task"] == 4


def test_gpu_partition_defaults_to_partition_and_account_reaches_every_job():
    cfg = load_config("configs/paper.yaml", extra={"slurm": {"partition": "shared", "account": "mylab"}})
    for rule in cluster.SUBMITTED_RULES:
        res = cluster.job_resources(cfg, rule, threads=8, method_gpus=1)
        assert res["slurm_partition"] == "shared" and res["slurm_account"] == "mylab", rule


def test_gpu_counts_follow_device_and_gpus_per_train_job():
    auto_no_gpus = load_config("configs/paper.yaml", extra={"gpus_per_train_job": 0})
    assert cluster.job_resources(auto_no_gpus, "evaluate")["gpu"] == 0  # device auto, no GPU asked: runs on CPU
    assert cluster.job_resources(auto_no_gpus, "pretrain", method_gpus=0)["gpu"] == 0
    cuda = load_config(extra={"device": "cuda"})  # device cuda always uses a GPU, so it always asks for one
    assert cluster.job_resources(cuda, "pretrain", method_gpus=0)["gpu"] == 1
    assert cluster.job_resources(cuda, "evaluate")["gpu"] == 1
    assert cluster.job_resources(cuda, "build_dataset")["gpu"] == 0


def test_sizes_are_overridable_per_rule_and_runtime_grows_with_the_attempt():
    cfg = load_config("configs/paper.yaml", extra={"slurm": {"resources": {"pretrain": {"mem_mb": 128000, "runtime": 2880, "cpus": 16}}}})
    res = cluster.job_resources(cfg, "pretrain", threads=8, attempt=2, method_gpus=1)
    assert (res["mem_mb"], res["runtime"], res["cpus_per_gpu"]) == (128000, 5760, 16)
    assert cluster.job_resources(cfg, "evaluate", threads=8, attempt=3)["runtime"] == 360  # 120 per attempt


def test_schema_refuses_unknown_slurm_settings():
    for bad, key in [({"partiton": "cpu"}, "partiton"), ({"resources": {"pretrian": {"mem_mb": 1}}}, "pretrian"),
                     ({"resources": {"pretrain": {"mem_gb": 1}}}, "mem_gb"), ({"resources": {"pretrain": {"runtime": 0}}}, "0")]:
        with pytest.raises(Exception, match=key):
            load_config(extra={"slurm": bad})


def test_schema_rules_match_the_submitted_rules():
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    names = schema["properties"]["slurm"]["properties"]["resources"]["propertyNames"]["enum"]
    assert set(names) == set(cluster.SUBMITTED_RULES)
    for sizes in cluster.SIZES.values():
        assert set(sizes) - {"default"} <= set(cluster.SUBMITTED_RULES)
    with pytest.raises(ValueError, match="html_report"):
        cluster.rule_resources({}, "html_report")


def test_rule_resources_are_per_job_callables():
    cfg = load_config("configs/paper.yaml", extra={"slurm": {"gpu_partition": "gpu"}})
    resources = cluster.rule_resources(cfg, "pretrain", method_gpus=lambda wildcards: int(wildcards.n))
    assert set(resources) == set(cluster.RESOURCE_KEYS) - {"slurm_account"}  # left to --default-resources
    job = dict(wildcards=SimpleNamespace(n="4"), threads=8, attempt=2)
    assert resources["gpu"](**job) == 4 and resources["runtime"](**job) == 1440
    assert resources["slurm_partition"](**job) == "gpu" and resources["nodes"](**job) == 1


# ------------------------------------------------------------------------------------------- --config


def test_nested_command_line_numbers_are_typed_as_in_a_config_file():
    cfg = {"methods": {"varcon": {"optimizer": {"lr": "0.001"}, "epochs": "3", "compile": "false"}}, "train_threads": 2}
    args = ["methods={varcon: {optimizer: {lr: 0.001}, epochs: 3, compile: false}}", "train_threads=2"]
    retype(cfg, args)
    assert cfg == {"methods": {"varcon": {"optimizer": {"lr": 0.001}, "epochs": 3, "compile": False}}, "train_threads": 2}
    cfg = {"methods": {"varcon": {"optimizer": {"lr": "1e-3"}, "loss": {"name": "1e-3"}}}}
    retype(cfg, ["methods={varcon: {optimizer: {lr: 1e-3}, loss: {name: '1e-3'}}}"])
    assert cfg["methods"]["varcon"]["optimizer"]["lr"] == 0.001  # a number, as anyone means it
    assert cfg["methods"]["varcon"]["loss"]["name"] == "1e-3"  # quoted: stays text


def dry_run(tmp_path, *args, configs=("config.yaml", "configs/smoke.yaml")):
    cmd = [snakemake_exe(), "-n", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", *[str(REPO / c) for c in configs], *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_numeric_config_override_on_the_command_line_works(tmp_path):
    proc = dry_run(tmp_path, "--config", "methods={varcon: {optimizer: {lr: 0.001}}}", "-p",
                   "results/runs/varcon_digits/varcon/seed0/model.pt")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert '"lr":0.001' in proc.stdout  # the pretraining spec holds a number, as from an overlay file


def test_wrong_typed_config_override_is_refused_naming_the_key(tmp_path):
    proc = dry_run(tmp_path, "--config", "methods={varcon: {optimizer: {lr: fast}}}")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "'fast' is not of type 'number'" in out and "lr" in out
    assert "rule pretrain:" not in out  # refused before any job is planned


# ------------------------------------------------------------------------------------- the paper plan


class _Resources(dict):
    """A job's resources as the plugin reads them: ``.get(name)`` and ``.name``."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def workflow_localrules() -> set[str]:
    """The rules the workflow runs on the submitting host (its ``localrules:`` lists)."""
    names = set()
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        for block in re.findall(r"^localrules:\n((?:[ \t]+\w+,?\n)+)", smk.read_text(), re.M):
            names |= set(re.findall(r"\w+", block))
    return names


def planned_jobs(stdout: str) -> list[dict]:
    """Every job of a dry run's listing: rule, wildcards, threads and resources (numbers as int)."""
    jobs, job = [], None
    for line in stdout.splitlines():
        if m := re.match(r"^\s*(?:local)?rule (\w+):$", line):
            job = {"rule": m.group(1), "threads": 1, "resources": {}, "wildcards": ""}
            jobs.append(job)
        elif job and (m := re.match(r"^\s*(wildcards|threads|resources): (.*)$", line)):
            key, value = m.groups()
            if key == "threads":
                job["threads"] = int(value)
            elif key == "wildcards":
                job["wildcards"] = value
            else:
                for item in value.split(", "):
                    name, _, v = item.partition("=")
                    job["resources"][name] = int(v) if v.isdigit() else v
    return jobs


def sbatch_options(job: dict) -> str:
    """The sbatch options the SLURM executor plugin builds for one planned job (its own code)."""
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    res = _Resources(job["resources"])
    fake = SimpleNamespace(name=job["rule"], threads=job["threads"], resources=res, is_group=lambda: False)
    params = {"run_uuid": "plan", "slurm_logfile": "log", "comment_str": f"rule_{job['rule']}",
              "account": f" -A {res['slurm_account']}" if res.get("slurm_account") else "",
              "partition": f" -p {res['slurm_partition']}" if res.get("slurm_partition") else "", "workdir": ""}
    return get_submit_command(fake, params) + set_gres_string(fake)


@pytest.fixture(scope="module")
def paper_plan(tmp_path_factory):
    proc = dry_run(tmp_path_factory.mktemp("plan"), "--workflow-profile", str(PROFILE), "--config",
                   "slurm={partition: cpu, gpu_partition: gpu, account: mylab}",
                   configs=("config.yaml", "configs/paper.yaml"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def test_paper_plan_gpu_rules_ask_for_gpus_on_the_gpu_partition_and_cpu_rules_for_none(paper_plan):
    jobs = planned_jobs(paper_plan.stdout)
    counts = job_counts(paper_plan.stdout)
    assert len(jobs) == sum(counts.values()) > 1000
    local = workflow_localrules() | {"all"}
    assert {"collect_results", "html_report", "merge_evaluation", "combine_stages"} <= local
    seen = set()
    for job in jobs:
        if job["rule"] in local:
            continue
        seen.add(job["rule"])
        call = sbatch_options(job)
        assert " -A mylab" in call and " --nodes=1" in call, call
        if job["rule"] in GPU_RULES:
            assert re.search(r" --gpus=[1-9]\d*\b", call) and " -p gpu" in call, call
            assert "--cpus-per-gpu=8" in call and "--cpus-per-task" not in call, call
        else:
            assert "--gpus" not in call and "--gres" not in call and " -p cpu" in call, call
            assert re.search(r"--cpus-per-task=\d", call) and "--cpus-per-gpu" not in call, call
        assert re.search(r" --mem \d+", call) and re.search(r" -t \d+", call), call
    assert seen == set(cluster.SUBMITTED_RULES)  # every submitted rule takes its resources from the config


def test_paper_plan_imagenet_pretraining_asks_for_8_gpus_on_one_node(paper_plan):
    cfg = yaml.safe_load((REPO / "configs" / "paper.yaml").read_text())
    imagenet = [name for name, exp in cfg["experiments"].items()
                if exp.get("method_overrides", {}).get("varcon", {}).get("gpus") == 8]
    assert imagenet
    calls = [sbatch_options(job) for job in planned_jobs(paper_plan.stdout)
             if job["rule"] == "pretrain" and job["wildcards"].startswith(tuple(f"experiment={e}," for e in imagenet))]
    assert len(calls) == sum(len(cfg["experiments"][e]["seeds"]) * len(cfg["experiments"][e]["methods"]) for e in imagenet)
    for call in calls:
        assert " --gpus=8" in call and " --nodes=1" in call and " -p gpu" in call and "--cpus-per-gpu=8" in call, call


def test_slurm_profile_names_no_cluster_and_checks_status_with_squeue():
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    # partitions, account and sizes are config settings: nothing cluster-specific in the profile
    assert not {"default-resources", "set-resources", "set-threads"} & set(profile)
    assert profile["slurm-status-command"] == "squeue"  # works without accounting (no slurmdbd)
    assert profile["slurm-keep-successful-logs"] is True and profile["slurm-logdir"] == "results/logs/slurm"


# ------------------------------------------------------------------------ Snakemake's default resources


@pytest.mark.parametrize("configs", [("config.yaml",), ("config.yaml", "configs/paper.yaml")])
def test_default_resources_reach_every_submitted_job_when_the_slurm_block_is_unset(tmp_path, configs):
    extra = ("--config", "papers=[varcon]") if len(configs) > 1 else ()
    proc = dry_run(tmp_path, "--workflow-profile", str(PROFILE), "--default-resources", "slurm_account=mylab",
                   "slurm_partition=debug", *extra, configs=configs)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    local = workflow_localrules() | {"all"}
    submitted = [job for job in planned_jobs(proc.stdout) if job["rule"] not in local]
    assert len(submitted) > 20
    for job in submitted:
        call = sbatch_options(job)
        assert " -A mylab" in call and " -p debug" in call, (job, call)


def test_the_slurm_block_wins_over_default_resources_and_gpu_jobs_keep_the_gpu_partition(tmp_path):
    proc = dry_run(tmp_path, "--workflow-profile", str(PROFILE), "--default-resources", "slurm_account=mylab",
                   "slurm_partition=debug", "--config", "papers=[varcon]",
                   "slurm={account: lab2, gpu_partition: gpu}", configs=("config.yaml", "configs/paper.yaml"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    local = workflow_localrules() | {"all"}
    for job in planned_jobs(proc.stdout):
        if job["rule"] in local:
            continue
        call = sbatch_options(job)
        assert " -A lab2" in call, call
        if job["rule"] not in GPU_RULES:  # the slurm block names no CPU partition: the default resource fills it
            assert " -p debug" in call, call
        else:
            assert " -p gpu" in call, call


def test_only_the_unset_partition_and_account_are_left_to_default_resources():
    cfg = load_config("configs/paper.yaml")
    assert cluster.left_to_default_resources(cfg, "pretrain") == {"slurm_account", "slurm_partition"}
    cfg = load_config("configs/paper.yaml", extra={"slurm": {"account": "lab", "gpu_partition": "gpu"}})
    assert cluster.left_to_default_resources(cfg, "pretrain") == set()
    assert cluster.left_to_default_resources(cfg, "build_dataset") == {"slurm_partition"}
    cfg = load_config("configs/paper.yaml", extra={"device": "cpu", "slurm": {"gpu_partition": "gpu"}})
    assert cluster.left_to_default_resources(cfg, "pretrain") == {"slurm_account", "slurm_partition"}

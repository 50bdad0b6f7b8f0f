"""Paper scale: the whole DAG (thousands of jobs) builds quickly without any dataset present, and the
SLURM profile gives GPUs exactly to the GPU rules and packs the corruption cells into few submissions."""

import json
import math
import re
import subprocess
import time

import pytest
import yaml

from conftest import REPO, job_counts, snakemake_exe

PROFILE = REPO / "workflow" / "profiles" / "slurm" / "config.yaml"


def dry_run(tmp_path, *configs, extra=()):
    cmd = [snakemake_exe(), "-n", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), *extra,
           "--configfile", *[str(REPO / c) for c in configs]]
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    proc.seconds = time.time() - t0
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


@pytest.fixture(scope="module")
def paper_dry_run(tmp_path_factory):
    return dry_run(tmp_path_factory.mktemp("paper"), "config.yaml", "configs/paper.yaml")


def rules_asking_for_a_gpu(stdout: str) -> set[str]:
    """Rules with a job that asks for a GPU in a dry run's job listing."""
    rules, rule = set(), None
    for line in stdout.splitlines():
        if m := re.match(r"^\s*(?:local)?rule (\w+):", line):
            rule = m.group(1)
        elif rule and re.match(r"^\s*resources:.*\bgpu=[1-9]", line):
            rules.add(rule)
    return rules


def paper_config() -> dict:
    return yaml.safe_load((REPO / "configs" / "paper.yaml").read_text())


def test_paper_config_builds_the_whole_dag_without_data(paper_dry_run):
    jobs = job_counts(paper_dry_run.stdout)
    assert jobs["build_dataset"] >= 15 and jobs["pretrain"] >= 150 and jobs["pretrain_stage"] >= 6
    assert sum(jobs.values()) > 1000
    assert paper_dry_run.seconds < 30  # the bound for "thousands of jobs" on a 2-core laptop


def test_paper_corruption_cells_are_one_job_each_and_one_probe_per_run(paper_dry_run):
    cfg = paper_config()
    runs = sum(len(e["methods"]) * len(e["seeds"]) for e in cfg["experiments"].values()
               if "corruptions" in e["evaluations"])
    datasets = {e["dataset"] for e in cfg["experiments"].values() if "corruptions" in e["evaluations"]}
    assert {"cifar10", "cifar100"} <= datasets  # VarCon's CIFAR-10-C and CIFAR-100-C grids
    jobs = job_counts(paper_dry_run.stdout)
    assert jobs["evaluate_corruption"] == runs * 15 * 5
    assert jobs["evaluate_clean"] == jobs["merge_evaluation"] == runs
    assert jobs["corrupt_split"] == len(datasets) * 15 * 5
    assert "varcon_cifar100/cnn/seed0/corruptions/jpeg_compression/s5.json" in paper_dry_run.stdout


def test_paper_config_covers_every_paper():
    cfg = yaml.safe_load((REPO / "configs" / "paper.yaml").read_text())
    papers = set()
    for exp in cfg["experiments"].values():
        papers |= {exp["paper"]} if isinstance(exp["paper"], str) else set(exp["paper"])
    assert {"clear", "subembed", "mcl", "adnce", "varcon"} <= papers
    ks = sorted(e["k"] for n, e in cfg["experiments"].items() if n.startswith("clear_ood_k"))
    assert ks == [1, 2, 3, 4, 5]
    assert all(len(e["seeds"]) >= 3 for e in cfg["experiments"].values())


def job_resources(stdout: str) -> list[tuple[str, dict]]:
    """(rule, resources) of every job in a dry run's listing (numbers as int)."""
    jobs, rule = [], None
    for line in stdout.splitlines():
        if m := re.match(r"^\s*(?:local)?rule (\w+):", line):
            rule = m.group(1)
        elif rule and (m := re.match(r"^\s*resources: (.*)$", line)):
            items = (item.partition("=") for item in m.group(1).split(", "))
            jobs.append((rule, {k: int(v) if v.isdigit() else v for k, _, v in items}))
    return jobs


def test_slurm_profile_gpu_rules(tmp_path):
    """With the cluster's partitions set in the config (slurm:), the GPU rules' jobs go to the GPU
    partition with GPUs, CPUs per GPU, memory and runtime, and no other job asks for a GPU."""
    profile = yaml.safe_load(PROFILE.read_text())
    assert profile["executor"] == "slurm"
    overlay = tmp_path / "cluster.yaml"
    overlay.write_text("slurm: {partition: cpu, gpu_partition: gpu}\n")
    proc = dry_run(tmp_path, "config.yaml", "configs/paper.yaml", overlay, extra=("--workflow-profile", str(PROFILE.parent)))
    jobs = job_resources(proc.stdout)
    gpu_rules = {rule for rule, res in jobs if res.get("slurm_partition") == "gpu"}
    assert {"pretrain", "pretrain_stage", "cluster_stage", "evaluate", "evaluate_clean",
            "evaluate_corruption"} <= gpu_rules
    # every rule whose jobs ask for a GPU at paper scale goes to the GPU partition, and only those
    assert rules_asking_for_a_gpu(proc.stdout) == gpu_rules
    for rule, res in jobs:
        if rule in gpu_rules:
            assert res["slurm_partition"] == "gpu" and res["gpu"] > 0, (rule, res)
            assert res["cpus_per_gpu"] > 0 and res["mem_mb"] > 0 and res["runtime"] > 0, (rule, res)
            assert "--gres" not in str(res.get("slurm_extra", ""))  # the plugin rejects it
        else:
            assert res.get("gpu", 0) == 0, (rule, res)
    assert "gpu" not in str(profile.get("default-resources", ""))
    for rule in ("build_dataset", "show_dataset", "corrupt_split", "merge_evaluation", "collect_results",
                 "plot_training_curves", "html_report"):
        assert all(res.get("gpu", 0) == 0 for r, res in jobs if r == rule), rule


def test_slurm_profile_packs_corruption_cells_and_keeps_multi_gpu_methods(tmp_path, paper_dry_run):
    """group-components puts 25 cells in one submission. Its cores (the group's pool) hold one cell's
    threads, so the cells take turns on the submission's one GPU instead of asking for 25; and nothing
    caps GPUs, so a method with gpus: 4 still gets 4."""
    profile = yaml.safe_load(PROFILE.read_text())
    assert profile["cores"] == paper_config()["train_threads"]  # a cell's threads: the whole pool
    assert "gpu" not in str(profile.get("resources", ""))
    (per_group,) = [int(g.split("=")[1]) for g in profile["group-components"] if g.startswith("corruptions=")]
    overlay = tmp_path / "multi_gpu.yaml"
    overlay.write_text(yaml.safe_dump({"methods": {"varcon": {"gpus": 4}}}))
    proc = dry_run(tmp_path, "config.yaml", "configs/paper.yaml", overlay, extra=("--workflow-profile", str(PROFILE.parent)))
    cells = job_counts(paper_dry_run.stdout)["evaluate_corruption"]
    assert proc.stdout.count("Group job corruptions") == math.ceil(cells / per_group)
    exps = paper_config()["experiments"].values()
    # ImageNet experiments set their own gpus (8) through method_overrides, which win over methods.varcon
    own = [e for e in exps if "gpus" in e.get("method_overrides", {}).get("varcon", {})]
    varcon_runs = sum(len(e["seeds"]) for e in exps if "varcon" in e["methods"] and e not in own)
    assert len(re.findall(r"^\s*resources:.*\bgpu=4\b", proc.stdout, re.M)) == varcon_runs
    imagenet_runs = sum(len(e["seeds"]) * len(e["methods"]) for e in own)
    assert imagenet_runs >= 12
    # MCL-CLIP trains its stages after the vanilla stage 0 on 8 GPUs; the vanilla stage asks for one
    clip = paper_config()["methods"]["mcl_clip"]
    clip_stage_jobs = sum(len(e["seeds"]) * (clip["mcl"]["stages"] - 1) for e in exps if "mcl_clip" in e["methods"])
    assert clip["gpus"] == 8 and clip_stage_jobs >= 9
    assert len(re.findall(r"^\s*resources:.*\bgpu=8\b", proc.stdout, re.M)) == imagenet_runs + clip_stage_jobs


def test_tiny_scale_rules_request_no_gpu(tmp_path):
    """At tiny scale (the default config) no job asks for a GPU, so a laptop never waits for one."""
    proc = dry_run(tmp_path, "config.yaml")
    assert rules_asking_for_a_gpu(proc.stdout) == set() and re.search(r"gpu=[1-9]", proc.stdout) is None


def test_imagenet_pretraining_runs_data_parallel_under_torchrun(tmp_path):
    """VarCon's ImageNet runs: ResNet-50 with the ImageNet stem, 8 GPUs, one torchrun launch per job."""
    proc = dry_run(tmp_path, "config.yaml", "configs/paper.yaml",
                   extra=("-p", "results/runs/varcon_imagenet100/varcon/seed0/model.pt"))
    assert "torchrun --standalone --nproc_per_node=8 -m clbench.cli train" in proc.stdout
    assert '"stem":"imagenet"' in proc.stdout and '"name":"resnet50"' in proc.stdout
    assert "imagenet100: generator imagefolder needs root" in proc.stdout + proc.stderr  # says what to set; plans anyway


def test_paper_jobs_receive_each_paper_s_protocol(tmp_path):
    """The pretrain and evaluate jobs of a paper-scale run get the papers' settings on their command lines:
    ADNCE's STL-10 (projector 2048 -> 512 -> 128, 32 px crops, kNN at t 0.2, raw-feature probe), VarCon's
    head without BatchNorm and plain-momentum SGD, CLEAR's 64 px VAE on Camelyon17."""
    targets = ["results/runs/adnce_stl10/adnce/seed0/evaluation.json",
               "results/runs/varcon_cifar100/varcon/seed0/model.pt",
               "results/runs/clear_camelyon17/clear_tc/seed0/model.pt"]
    proc = dry_run(tmp_path, "config.yaml", "configs/paper.yaml", extra=("-p", *targets))
    specs = [json.loads(s) for s in re.findall(r"clbench train --spec '(\{.*?\})'", proc.stdout)]
    adnce = next(s for s in specs if s["objective"] == "adnce")
    assert (adnce["projection_hidden_dim"], adnce["projection_batch_norm"], adnce["crop_size"]) == (512, True, 32)
    assert adnce["loss"] == {"temperature": 0.2, "mu": 0.8, "sigma": 1.0}
    varcon = next(s for s in specs if s["objective"] == "varcon")
    assert varcon["projection_batch_norm"] is False and varcon["optimizer"]["nesterov"] is False
    tc = next(s for s in specs if s["objective"] == "clear_vae")
    assert tc["vae"]["architecture"] == "conv5" and tc["batch_size"] == 64 and tc["vae"]["estimator_steps"] == 1
    (evaluation,) = [json.loads(s) for s in re.findall(r"clbench evaluate .*?--spec '(\{.*?\})'", proc.stdout)]
    assert evaluation["knn"] == {"k": 200, "temperature": 0.2} and evaluation["probe"]["standardize"] is False

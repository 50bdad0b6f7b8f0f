"""clbench plan and clbench.ops.cost: the jobs a configuration plans (as a dry run counts them), their expected
hours from the cost table, the SLURM time limits that follow them, downloads and disk."""

import re
import subprocess
import sys
from collections import Counter
from types import SimpleNamespace

import pytest

from clbench.ops import cluster, cost, plan
from clbench.config import composition
from clbench import sweeps
from clbench import workflow as wf
from conftest import REPO, job_counts, snakemake_exe

SCHEMA = wf.load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")


def resolved(*files, args=()):
    layers = composition.config_layers([REPO / "config.yaml"], [REPO / f for f in files], args)
    return sweeps.expand(composition.resolve(layers, SCHEMA)[0], SCHEMA)  # as the workflow plans the sweeps


def dry_run_counts(tmp_path, *files, args=()):
    proc = subprocess.run([snakemake_exe(), "-n", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
                           "--configfile", *[str(REPO / f) for f in ("config.yaml", *files)],
                           *(("--config", *args) if args else ())], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return job_counts(proc.stdout), proc.stdout


@pytest.mark.parametrize("files, args", [((), ()), (("configs/smoke.yaml",), ()),
                                         (("configs/paper.yaml",), ()),
                                         (("configs/paper.yaml",), ("papers=[mcl]",))])
def test_planned_jobs_are_the_jobs_a_dry_run_plans(tmp_path, files, args):
    counts, _ = dry_run_counts(tmp_path, *files, args=args)
    planned = Counter(job.rule for job in plan.planned_jobs(resolved(*files, args=args)))
    assert dict(planned) == counts


def test_the_cost_table_names_its_devices_and_marks_the_gpu_as_not_measured():
    table = cost.load_table()
    assert table["generated_by"] == "benchmarks/throughput.py" and table["cpu"]["measured"] is True
    assert table["gpu"]["measured"] is False and "not measured" in table["gpu"]["source"]
    assert "2,470 images/s" in table["gpu"]["source"] and table["cpu"]["device"]
    # every workload of the shipped configs has a MAC count
    for files in [(), ("configs/paper.yaml",)]:
        for key in cost.workloads(resolved(*files)):
            assert table["workloads"][key]["macs"] > 0, key
    # the GPU rate is NVIDIA's ResNet-50 figure: ResNet-50 at 224 px runs at 2,470 images/s on it
    rn50 = cost.Workload("resnet50-imagenet@224", "contrastive", ("encoder", ("resnet50", "imagenet")), 224, 3)
    assert cost.rates(table, rn50, gpu=True)[0] == pytest.approx(2470)


def test_expected_time_follows_epochs_images_views_and_gpus():
    cfg = resolved("configs/paper.yaml")
    one = cost.train_seconds(cfg, "varcon_cifar100", "varcon")
    cfg["methods"]["varcon"]["epochs"] *= 2
    assert cost.train_seconds(cfg, "varcon_cifar100", "varcon") == pytest.approx(2 * one, rel=0.05)
    # ImageNet-1K VarCon (ResNet-50, 224 px, 200 epochs, 8 GPUs) costs far more than a CIFAR run
    imagenet = cost.train_seconds(cfg, "varcon_imagenet1k", "varcon")
    assert imagenet > 5 * one
    expected = 200 * 1_281_167 * 2 / (2470 * 8 * 0.84)  # epochs x images x views / (8 GPUs' images/s)
    assert imagenet == pytest.approx(expected, rel=0.25)


def test_slurm_time_limits_follow_the_estimate_with_the_safety_factor():
    cfg = resolved("configs/paper.yaml")
    job = {"experiment": "varcon_imagenet1k", "method": "varcon", "seed": 0}
    seconds = cost.job_seconds(cfg, "pretrain", job)
    assert cost.runtime_minutes(cfg, "pretrain", job) == pytest.approx(seconds * cost.SAFETY_FACTOR / 60, abs=1)
    small = {"experiment": "clear_styled", "method": "clear", "seed": 0}
    assert cost.runtime_minutes(cfg, "pretrain", small) < cost.runtime_minutes(cfg, "pretrain", job)
    assert cost.runtime_minutes(cfg, "pretrain", small, safety_factor=1) >= cost.MIN_RUNTIME_MINUTES
    slower = resolved("configs/paper.yaml", args=("slurm={time_factor: 3}",))
    assert cost.runtime_minutes(slower, "pretrain", job) == pytest.approx(seconds * 3 / 60, abs=1)
    # the rule's runtime resource: the estimate x the attempt; a runtime set in slurm.resources wins
    resources = cluster.rule_resources(cfg, "pretrain", lambda w: 8, runtime_minutes=lambda r, w: cost.runtime_minutes(
        cfg, r, w))
    wildcards = SimpleNamespace(items=lambda: job.items())
    assert resources["runtime"](wildcards, 8, 2) == 2 * cost.runtime_minutes(cfg, "pretrain", job)
    cfg["slurm"]["resources"] = {"pretrain": {"runtime": 99}}
    resources = cluster.rule_resources(cfg, "pretrain", lambda w: 8, runtime_minutes=lambda r, w: 5)
    assert resources["runtime"](wildcards, 8, 1) == 99


def test_a_dry_run_asks_slurm_for_the_estimated_time(tmp_path):
    _, out = dry_run_counts(tmp_path, "configs/paper.yaml", args=("experiments=[varcon_imagenet1k]",))
    cfg = resolved("configs/paper.yaml", args=("experiments=[varcon_imagenet1k]",))
    jobs = re.findall(r"rule pretrain:\n(?:.*\n)*?\s+wildcards: (.*)\n\s+resources: .*?runtime=(\d+)", out)
    assert jobs, out[-2000:]
    for wildcards, runtime in jobs:
        names = dict(item.split("=") for item in wildcards.split(", "))
        assert int(runtime) == cost.runtime_minutes(cfg, "pretrain", names) != 720, (wildcards, runtime)


def test_plan_prints_each_experiment_with_gpu_hours_time_limits_and_disk():
    proc = subprocess.run([sys.executable, "-m", "clbench.cli", "plan", "--configfile", "configs/paper.yaml"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "NOT MEASURED" in out and "NVIDIA A100" in out and "measured on" in out
    cfg = resolved("configs/paper.yaml")
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line and line.split()[0] in cfg["experiments"]}
    assert set(rows) == set(cfg["experiments"])
    total = next(line.split() for line in out.splitlines() if line.startswith("total "))
    assert int(total[1].replace(",", "")) == len(plan.planned_jobs(cfg)) > 2000
    assert float(rows["varcon_imagenet1k"][2].replace(",", "")) > float(rows["varcon_cifar100"][2].replace(",", ""))
    assert "varcon_imagenet1k: pretrain x6:" in out and "GB" in out
    selected = subprocess.run([sys.executable, "-m", "clbench.cli", "plan", "--configfile", "configs/paper.yaml",
                               "--config", "papers=[varcon]"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert selected.returncode == 0 and "varcon_cifar100" in selected.stdout and "clear_styled" not in selected.stdout


def test_downloads_count_each_archive_once():
    cfg = resolved("configs/paper.yaml")
    rows = plan.plan(cfg)
    mnist = [name for name, exp in cfg["experiments"].items()
             if cfg["datasets"][exp["dataset"]]["generator"] == "styled_mnist"]  # each reads MNIST's archive alone
    assert len(mnist) > 1 and sum(rows[e].download > 0 for e in mnist) == 1
    total = sum(r.download for r in rows.values())
    archives = {a for exp in cfg["experiments"].values() for a in cost.dataset_facts(cfg["datasets"][exp["dataset"]])["archives"]}
    assert total == cost.download_bytes(archives)


def test_max_runtime_caps_every_time_limit():
    cfg = resolved("configs/paper.yaml", args=("slurm={max_runtime: 2880}",))
    job = {"experiment": "mcl_mmvp", "method": "mcl_clip", "seed": 0, "stage": 1}
    assert cost.runtime_minutes(cfg, "pretrain_stage", job) > 2880  # the estimate itself
    resources = cluster.rule_resources(cfg, "pretrain_stage", lambda w: 8,
                                       runtime_minutes=lambda r, w: cost.runtime_minutes(cfg, r, w))
    assert resources["runtime"](SimpleNamespace(items=lambda: job.items()), 8, 1) == 2880
    limits = [limit for row in plan.plan(cfg).values() for values in row.limits.values() for _, limit in values]
    assert max(limits) == 2880

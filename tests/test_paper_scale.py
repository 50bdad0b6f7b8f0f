"""Paper scale: the whole DAG builds without any dataset present, and the SLURM profile gives GPUs
exactly to the GPU rules."""

import re
import subprocess

import pytest
import yaml

from conftest import REPO, snakemake_exe

PROFILE = REPO / "workflow" / "profiles" / "slurm" / "config.yaml"


def dry_run(tmp_path, *configs):
    cmd = [snakemake_exe(), "-n", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", *[str(REPO / c) for c in configs]]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def job_counts(stdout: str) -> dict[str, int]:
    stats = stdout.split("Job stats:")[1].split("\n\n")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M) if m.group(1) != "total"}


@pytest.fixture(scope="module")
def paper_dry_run(tmp_path_factory):
    return dry_run(tmp_path_factory.mktemp("paper"), "config.yaml", "configs/paper.yaml")


def test_paper_config_builds_the_whole_dag_without_data(paper_dry_run):
    jobs = job_counts(paper_dry_run.stdout)
    assert jobs["build_dataset"] >= 15 and jobs["pretrain"] >= 150 and jobs["pretrain_stage"] >= 6
    assert sum(jobs.values()) >= 350


def test_paper_config_covers_every_paper():
    cfg = yaml.safe_load((REPO / "configs" / "paper.yaml").read_text())
    papers = set()
    for exp in cfg["experiments"].values():
        papers |= {exp["paper"]} if isinstance(exp["paper"], str) else set(exp["paper"])
    assert {"clear", "subembed", "mcl", "adnce", "varcon"} <= papers
    ks = sorted(e["k"] for n, e in cfg["experiments"].items() if n.startswith("clear_ood_k"))
    assert ks == [1, 2, 3, 4, 5]
    assert all(len(e["seeds"]) >= 3 for e in cfg["experiments"].values())


def test_slurm_profile_gpu_rules():
    profile = yaml.safe_load(PROFILE.read_text())
    assert profile["executor"] == "slurm"
    gpu_rules = {rule for rule, res in profile["set-resources"].items() if res.get("gpu", 0) > 0}
    assert {"pretrain", "pretrain_stage", "cluster_stage", "evaluate"} <= gpu_rules
    for rule in gpu_rules:
        res = profile["set-resources"][rule]
        assert {"cpus_per_gpu", "mem_mb", "runtime"} <= set(res), rule
        assert "slurm_extra" not in res or "--gres" not in res["slurm_extra"]  # the plugin rejects it
    assert profile["default-resources"].get("gpu", 0) == 0
    for rule in ("build_dataset", "show_dataset", "collect_results", "plot_training_curves", "html_report"):
        assert profile["set-resources"].get(rule, {}).get("gpu", 0) == 0


def test_tiny_scale_rules_request_no_gpu(tmp_path):
    """At tiny scale (the default config) no job asks for a GPU, so a laptop never waits for one."""
    proc = subprocess.run([snakemake_exe(), "-n", "--snakefile", str(REPO / "Snakefile"), "--directory",
                           str(tmp_path), "--configfile", str(REPO / "config.yaml")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"gpu=[1-9]", proc.stdout) is None

"""The whole default pipeline at smoke scale, through real `snakemake` runs in a temporary directory."""

import re
import subprocess

import pandas as pd
import pytest
import yaml

from conftest import REPO, snakemake_exe

pytestmark = pytest.mark.slow


def snakemake(workdir, *args, configs=("configs/smoke.yaml",), timeout=900):
    cmd = [snakemake_exe(), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", "2",
           "--configfile", str(REPO / "config.yaml"), *[str(REPO / c) if not str(c).startswith("/") else str(c)
                                                        for c in configs], *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def planned_jobs(proc) -> dict[str, int]:
    """Job counts per rule from a dry run's 'Job stats' table."""
    counts, in_stats = {}, False
    for line in proc.stdout.splitlines():
        if line.startswith("Job stats"):
            in_stats = True
            continue
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if in_stats and m and m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("smoke")
    proc = snakemake(workdir)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return workdir


def test_outputs_exist(smoke_run):
    results = smoke_run / "results"
    for p in ["report/index.html", "tables/metrics.csv", "tables/summary.csv", "tables/summary.md",
              "tables/summary.tex", "tables/corruptions.csv", "tables/stage_probes.csv",
              "figures/training_curves.png", "data/styled_digits/samples.png"]:
        assert (results / p).stat().st_size > 0, p


def test_every_method_is_evaluated_well_above_chance(smoke_run):
    summary = pd.read_csv(smoke_run / "results" / "tables" / "summary.csv")
    means = summary.set_index(["experiment", "method", "metric"])["mean"]
    # 10 digit classes: chance is 0.1 (two or three epochs on 800 images: well above chance, far from done)
    for exp, method in [("varcon_digits", "cnn"), ("varcon_digits", "supcon"), ("varcon_digits", "varcon"),
                        ("clear_styled", "clear")]:
        assert means[(exp, method, "linear_top1")] > 0.2, (exp, method)
    # 10 colours: what self-supervised features on Trifeature pick up first
    for method in ("infonce", "adnce", "mcl"):
        assert means[("trifeature_ssl", method, "probe_colour_top1")] > 0.5, method
    # the poster's probes: background is linearly decodable from the sub-embeddings
    assert means[("subembed_digits_on_photos", "subembed", "probe_r1_background")] > 0.3
    metrics = set(summary["metric"])
    assert {"gmig", "probe_r0_digit", "probe_r1_background", "mean_corruption_top1", "knn_top1",
            "linear_top1_relative", "head_top1"} <= metrics  # head_top1: the OOD CNN's own classifier


def test_report_has_every_paper_section(smoke_run):
    page = (smoke_run / "results" / "report" / "index.html").read_text()
    for section in ["id='clear'", "id='subembed'", "id='mcl'", "id='adnce'", "id='varcon'", "id='run-summary'"]:
        assert section in page
    for caption in ["content/style swap", "t-SNE", "MI simulation", "Relative OOD accuracy", "MCL: probe accuracy",
                    "Corruption robustness", "Convergence", "Training loss"]:
        assert caption in page, caption
    assert page.count("data:image/png;base64") >= 12
    assert "holds" in page or "fails" in page  # claims were evaluated
    assert "The paper's numbers beside ours" in page


def test_logs_record_device_seed_progress_and_time(smoke_run):
    # seeds_per_job all: one job, one log for both smoke seeds of a method
    log = (smoke_run / "results" / "logs" / "pretrain" / "varcon_digits" / "supcon" / "seeds.log").read_text()
    assert "device=cpu" in log and "seed=0" in log and "seed=1" in log
    assert "epochs: 100%" in log  # the tqdm bar
    assert re.search(r"finished in [\d.]+ s", log)


def test_second_run_has_nothing_to_do(smoke_run):
    proc = snakemake(smoke_run, "-n")
    assert proc.returncode == 0, proc.stderr
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_changed_learning_rate_reruns_only_that_method(smoke_run, tmp_path):
    with open(REPO / "configs" / "smoke.yaml") as f:
        cfg = yaml.safe_load(f)
    cfg["methods"]["supcon"]["optimizer"] = {"lr": 0.001}
    (tmp_path / "changed.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(smoke_run, "-n", configs=(str(tmp_path / "changed.yaml"),))
    assert proc.returncode == 0, proc.stderr
    jobs = planned_jobs(proc)
    assert jobs.get("pretrain_seeds") == 1 and jobs.get("evaluate_seeds") == 1, proc.stdout  # both seeds, one job
    assert "build_dataset" not in jobs and "pretrain" not in jobs
    assert "/supcon/seed0/model.pt" in proc.stdout and "/supcon/seed1/model.pt" in proc.stdout
    for other in ("cnn", "varcon", "clear"):  # other methods' pretrain and evaluation stay put
        assert f"/{other}/seed0/model.pt" not in proc.stdout


def test_added_seed_reruns_only_that_experiment(smoke_run, tmp_path):
    """A seed added to one experiment takes it out of the grouped seeds (seeds_per_job all): its methods get a
    job per seed, so they re-run; no other experiment's job does."""
    with open(REPO / "configs" / "smoke.yaml") as f:
        cfg = yaml.safe_load(f)
    cfg["experiments"]["varcon_digits"]["seeds"] = [0, 1, 2]
    (tmp_path / "seed.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(smoke_run, "-n", configs=(str(tmp_path / "seed.yaml"),))
    assert proc.returncode == 0, proc.stderr
    jobs = planned_jobs(proc)
    assert jobs.get("pretrain") == 9 and jobs.get("evaluate") == 9, jobs  # cnn, supcon, varcon x seeds 0-2
    assert "build_dataset" not in jobs and "pretrain_seeds" not in jobs and "pretrain_stage_seeds" not in jobs
    written = set(re.findall(r"results/runs/(\w+)/", "\n".join(re.findall(r"^\s+output: (.*)$", proc.stdout, re.M))))
    assert written == {"varcon_digits"}, written  # no other experiment's run is written again
    assert {"collect_results", "html_report"} <= set(jobs)


def test_report_zip_builds(smoke_run):
    proc = snakemake(smoke_run, "--report", str(smoke_run / "report.zip"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    import zipfile

    names = zipfile.ZipFile(smoke_run / "report.zip").namelist()
    assert any(n.endswith("summary.csv") for n in names) and any(n.endswith("varcon_corruptions.png") for n in names)


def test_lint_is_clean():
    proc = subprocess.run([snakemake_exe(), "--lint", "--snakefile", str(REPO / "Snakefile")], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Lints for" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr

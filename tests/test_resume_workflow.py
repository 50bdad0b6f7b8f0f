"""A training job killed mid-run resumes from its epoch checkpoint when snakemake is run again, and
ends with exactly the metrics of an uninterrupted run (CPU, deterministic)."""

import signal
import subprocess
import time

import pandas as pd
import psutil
import pytest
import yaml

from conftest import REPO, snakemake_exe

pytestmark = pytest.mark.slow
TARGET = "results/runs/varcon_digits/supcon/seed0/model.pt"
CHECKPOINT = "results/checkpoints/varcon_digits/supcon/seed0/last.pt"


def command(workdir, overlay, *extra):
    """snakemake run from inside ``workdir``; the target comes first (--configfile takes several values)."""
    workdir.mkdir(exist_ok=True)
    return [snakemake_exe(), TARGET, *extra, "--snakefile", str(REPO / "Snakefile"), "--cores", "2",
            "--configfile", str(REPO / "config.yaml"), str(REPO / "configs" / "smoke.yaml"), str(overlay)]


def metrics(workdir):
    df = pd.read_csv(workdir / TARGET.replace("model.pt", "metrics.csv"))
    return df.drop(columns=["seconds", "images_per_s"])


def test_killed_training_job_resumes_to_identical_metrics(tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({"methods": {"supcon": {"epochs": 4}}}))
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    subprocess.run(command(reference, overlay), cwd=reference, check=True, capture_output=True, timeout=600)

    proc = subprocess.Popen(command(killed, overlay), cwd=killed, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not (killed / CHECKPOINT).exists():
        assert proc.poll() is None and time.time() < deadline, "training ended before its first checkpoint"
        time.sleep(0.5)
    trainers = [p for p in psutil.Process(proc.pid).children(recursive=True)
                if "train" in " ".join(p.cmdline()) and "clbench" in " ".join(p.cmdline())]
    assert trainers, "no clbench train process found"
    for p in trainers:
        p.send_signal(signal.SIGKILL)
    proc.wait(timeout=120)
    assert proc.returncode != 0
    assert not (killed / TARGET).exists()
    assert (killed / CHECKPOINT).exists()

    rerun = subprocess.run(command(killed, overlay, "--rerun-incomplete"), cwd=killed, capture_output=True, text=True,
                           timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    log = (killed / "results/logs/pretrain/varcon_digits/supcon/seed0.log").read_text()
    assert "resuming from" in log
    pd.testing.assert_frame_equal(metrics(reference), metrics(killed))

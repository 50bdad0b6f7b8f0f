"""An interrupted run completes when snakemake is run again with --rerun-incomplete, and ends with
exactly the metrics of an uninterrupted run (CPU, deterministic): whether the training job itself is
killed or snakemake is interrupted (Ctrl-C) while it trains, the rerun resumes from the epoch checkpoint."""

import os
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
LOG = "results/logs/pretrain/varcon_digits/supcon/seed0.log"


def command(workdir, overlay, *extra):
    """snakemake run from inside ``workdir``; the target comes first (--configfile takes several values)."""
    workdir.mkdir(exist_ok=True)
    return [snakemake_exe(), TARGET, *extra, "--snakefile", str(REPO / "Snakefile"), "--cores", "2",
            "--configfile", str(REPO / "config.yaml"), str(REPO / "configs" / "smoke.yaml"), str(overlay)]


def metrics(workdir):
    df = pd.read_csv(workdir / TARGET.replace("model.pt", "metrics.csv"))
    return df.drop(columns=["seconds", "images_per_s"])


@pytest.fixture(scope="module")
def overlay(tmp_path_factory):
    path = tmp_path_factory.mktemp("overlay") / "overlay.yaml"
    # a job per seed: the killed job is seed 0's own (a job of several seeds resumes each from the same checkpoints)
    path.write_text(yaml.safe_dump({"seeds_per_job": "one", "methods": {"supcon": {"epochs": 4}}}))
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory, overlay):
    """The uninterrupted run both interruptions are compared with."""
    workdir = tmp_path_factory.mktemp("reference")
    subprocess.run(command(workdir, overlay), cwd=workdir, check=True, capture_output=True, timeout=600)
    return metrics(workdir)


def default_sigint():
    # A shell starts background commands with SIGINT ignored, and children inherit that (pytest run
    # with `&`, some CI runners): give snakemake the default disposition a terminal's command has.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_until_first_checkpoint(workdir, overlay):
    """Start snakemake and return it, with its clbench train processes, once an epoch checkpoint exists.

    snakemake leads its own process group (as a command typed in a terminal does), so a signal can
    go to it and its jobs without reaching pytest."""
    proc = subprocess.Popen(command(workdir, overlay), cwd=workdir, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, preexec_fn=default_sigint)
    deadline = time.time() + 600
    while not (workdir / CHECKPOINT).exists():
        assert proc.poll() is None and time.time() < deadline, "training ended before its first checkpoint"
        time.sleep(0.2)
    trainers = [p for p in psutil.Process(proc.pid).children(recursive=True)
                if "train" in " ".join(p.cmdline()) and "clbench" in " ".join(p.cmdline())]
    assert trainers, "no clbench train process found"
    return proc, trainers


def resume_and_compare(workdir, overlay, reference, *, resumed=True):
    """Rerun with --rerun-incomplete and compare with the uninterrupted run. ``resumed``: the interrupted
    job left its checkpoint and no model, and the rerun continues from the checkpoint."""
    if resumed:
        assert not (workdir / TARGET).exists()
        assert (workdir / CHECKPOINT).exists()
    rerun = subprocess.run(command(workdir, overlay, "--rerun-incomplete"), cwd=workdir, capture_output=True,
                           text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert ("resuming from" in (workdir / LOG).read_text()) == resumed
    pd.testing.assert_frame_equal(reference, metrics(workdir))


def test_killed_training_job_resumes_to_identical_metrics(tmp_path, overlay, reference):
    proc, trainers = run_until_first_checkpoint(tmp_path / "killed", overlay)
    for p in trainers:
        p.send_signal(signal.SIGKILL)
    proc.wait(timeout=120)
    assert proc.returncode != 0
    resume_and_compare(tmp_path / "killed", overlay, reference)


def test_ctrl_c_resumes_to_identical_metrics(tmp_path, overlay, reference):
    """Ctrl-C in a terminal: SIGINT to snakemake and its running jobs (the foreground process group).
    The training job stops mid-run, snakemake marks its outputs incomplete and exits."""
    proc, trainers = run_until_first_checkpoint(tmp_path / "ctrl_c", overlay)
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=120)
    assert proc.returncode != 0
    _, alive = psutil.wait_procs(trainers, timeout=30)
    assert not alive, "snakemake exited but left its training job running"
    resume_and_compare(tmp_path / "ctrl_c", overlay, reference)


def test_sigint_to_snakemake_alone_reruns_to_identical_metrics(tmp_path, overlay, reference):
    """SIGINT to the snakemake process only (kill -INT): snakemake lets its running job finish, then exits
    with that job's outputs marked incomplete, so --rerun-incomplete trains it again (from scratch: a
    finished run removes its checkpoints) and ends with the same numbers."""
    workdir = tmp_path / "sigint"
    proc, trainers = run_until_first_checkpoint(workdir, overlay)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    assert proc.returncode != 0
    _, alive = psutil.wait_procs(trainers, timeout=30)
    assert not alive, "snakemake exited but left its training job running"
    plain = subprocess.run(command(workdir, overlay, "-n"), cwd=workdir, capture_output=True, text=True, timeout=120)
    assert plain.returncode != 0 and "incomplete" in plain.stdout + plain.stderr  # never trusted as complete
    resume_and_compare(workdir, overlay, reference, resumed=False)

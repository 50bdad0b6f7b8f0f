"""The README's SLURM command on a real SLURM cluster, at smoke scale, with only the documented settings
(partition and account, in a one-line overlay) given.

Runs where `sinfo` answers (CI starts a single-node cluster with .ci/slurm), and skips otherwise. The
partition is CLBENCH_SLURM_PARTITION or the cluster's default one, the account CLBENCH_SLURM_ACCOUNT
(none if unset). Every job's sbatch call is read from Snakemake's --verbose log (the plugin logs it);
the job states come from squeue, which shows finished jobs for MinJobAge.
"""

import json
import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import REPO, snakemake_exe

pytestmark = pytest.mark.slow

# The README's SLURM command (smoke scale), run in a temporary directory
README_COMMAND = "snakemake --workflow-profile workflow/profiles/slurm --configfile configs/smoke.yaml cluster.yaml"
README_OVERLAY = "slurm: {partition: cpu, gpu_partition: gpu, account: mylab}"


def sinfo_partition() -> str | None:
    """The partition to use, or None where no SLURM cluster answers."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return None
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%P %a"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode != 0 or not proc.stdout.strip():
        return None
    up = [line.split()[0] for line in proc.stdout.splitlines() if line.split()[1:] == ["up"]]
    if os.environ.get("CLBENCH_SLURM_PARTITION"):
        return os.environ["CLBENCH_SLURM_PARTITION"]
    default = [p.rstrip("*") for p in up if p.endswith("*")]
    return (default or up or [None])[0]


PARTITION = sinfo_partition()
ACCOUNT = os.environ.get("CLBENCH_SLURM_ACCOUNT")


def run_command(workdir, *args) -> list[str]:
    """The README's command in ``workdir`` (the checkout's Snakefile and profile), with --verbose so
    that the plugin logs every sbatch call."""
    return [snakemake_exe(), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--workflow-profile", str(REPO / "workflow" / "profiles" / "slurm"),
            "--configfile", str(REPO / "config.yaml"), str(REPO / "configs" / "smoke.yaml"),
            str(workdir / "cluster.yaml"), "--verbose", *args]


def run(workdir, *args):
    cmd = run_command(workdir, *args)
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=2400)
    proc.seconds = time.time() - t0
    proc.log = proc.stdout + proc.stderr
    (workdir / f"snakemake-{len(list(workdir.glob('snakemake-*.log')))}.log").write_text(proc.log)
    return proc


def sbatch_calls(log: str) -> list[str]:
    return re.findall(r"^sbatch call: (sbatch .*)$", log, re.M)


def submitted_rules(log: str) -> list[str]:
    """The rule of every job Snakemake planned to submit (not its localrules)."""
    return re.findall(r"^rule (\w+):$", log, re.M)


def call_rule(call: str) -> str:
    """The rule of an sbatch call, from the comment the plugin gives it (rule_<name>[_wildcards_<...>])."""
    return re.search(r"--comment rule_(\w+?)(?:_wildcards_\S*)?\s", call).group(1)


def slurm_job_ids(log: str) -> list[str]:
    return re.findall(r"has been submitted with SLURM jobid (\d+)", log)


def job_states(ids) -> dict[str, tuple[str, str]]:
    """(state, partition) of the jobs squeue still knows (finished ones for MinJobAge)."""
    proc = subprocess.run(["squeue", "--states=all", "-h", "-o", "%i|%T|%P", "-j", ",".join(ids)],
                          capture_output=True, text=True, timeout=60)
    rows = [line.split("|") for line in proc.stdout.splitlines() if line.strip()]
    return {job: (state, partition) for job, state, partition in rows}


def min_job_age() -> int:
    """Seconds SLURM keeps finished jobs in squeue (MinJobAge)."""
    out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=60).stdout
    m = re.search(r"^MinJobAge\s*=\s*(\d+)", out, re.M)
    return int(m.group(1)) if m else 0


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory):
    if PARTITION is None:
        pytest.skip("no SLURM cluster answers (sinfo); .ci/slurm start sets up a single-node one")
    workdir = tmp_path_factory.mktemp("slurm")
    settings = {"partition": PARTITION, **({"account": ACCOUNT} if ACCOUNT else {})}
    (workdir / "cluster.yaml").write_text("slurm: {" + ", ".join(f"{k}: {v}" for k, v in settings.items()) + "}\n")
    first = run(workdir)
    assert first.returncode == 0, first.log[-6000:]
    return workdir, first


def test_readme_shows_the_tested_command():
    readme = (REPO / "README.md").read_text()
    assert README_COMMAND in readme and README_OVERLAY in readme


def test_every_job_is_submitted_to_the_partition_and_completes(cluster_run):
    workdir, first = cluster_run
    rules = submitted_rules(first.log)
    calls = sbatch_calls(first.log)
    assert len(rules) >= 40 and len(calls) == len(rules), (len(rules), len(calls))
    assert sorted(map(call_rule, calls)) == sorted(rules)  # one sbatch call per planned job
    assert re.search(r"(\d+) of \1 steps \(100%\) done", first.log)
    for call in calls:
        assert f" -p {PARTITION} " in call, call
        assert not ACCOUNT or f" -A {ACCOUNT} " in call, call
    ids = slurm_job_ids(first.log)
    assert len(ids) == len(calls)
    states = job_states(ids)
    assert all(state == "COMPLETED" and partition == PARTITION for state, partition in states.values()), states
    if min_job_age() >= first.seconds + 60:  # squeue still shows every finished job (.ci/slurm: an hour)
        assert len(states) == len(ids), states
    print(f"\nSLURM smoke run: {len(calls)} jobs submitted, {len(states)} seen COMPLETED in squeue, "
          f"{first.seconds:.0f} s")


def test_no_cpu_only_job_asks_for_a_gpu(cluster_run):
    _, first = cluster_run  # configs/smoke.yaml: device cpu
    for call in sbatch_calls(first.log):
        assert "--gpus" not in call and "--gres" not in call and "--cpus-per-gpu" not in call, call
        cpus = int(re.search(r"--cpus-per-task=(\d+)", call).group(1))
        mem = int(re.search(r" --mem (\d+)", call).group(1))
        assert cpus <= 2 and mem <= 4000 and " --nodes=1 " in call, call  # smoke sizes: small


def test_report_and_kept_slurm_logs_exist(cluster_run):
    workdir, first = cluster_run
    assert (workdir / "results" / "report" / "index.html").stat().st_size > 0
    logs = list((workdir / "results" / "logs" / "slurm").rglob("*.log"))
    assert len(logs) == len(sbatch_calls(first.log))  # successful jobs' logs are kept


def test_second_run_does_nothing(cluster_run):
    workdir, _ = cluster_run
    proc = run(workdir)
    assert proc.returncode == 0, proc.log[-4000:]
    assert "Nothing to be done" in proc.log and not sbatch_calls(proc.log)


def test_after_a_sigkill_a_job_that_finished_is_not_retrained(cluster_run):
    """SIGKILL leaves Snakemake's lock, and its SLURM job running. Once that job has finished, --unlock and
    the same command (the profile sets rerun-incomplete) run only what follows it: the job's own Snakemake
    recorded its completion."""
    workdir, _ = cluster_run
    model = "results/runs/varcon_digits/supcon/seed0/model.pt"
    cmd = run_command(workdir, "--forcerun", model)
    log = workdir / "killed.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True)
        try:
            for _ in range(600):
                if ids := slurm_job_ids(log.read_text()):
                    break
                time.sleep(0.5)
            else:
                pytest.fail("no job was submitted: " + log.read_text()[-3000:])
        finally:
            proc.kill()
            proc.wait()
    assert (workdir / ".snakemake" / "locks").exists() and any((workdir / ".snakemake" / "locks").iterdir())
    for _ in range(240):  # the killed Snakemake's job runs on
        if job_states(ids).get(ids[0], ("",))[0] not in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING"):
            break
        time.sleep(5)
    assert job_states(ids)[ids[0]][0] == "COMPLETED"
    unlock = run(workdir, "--unlock")
    assert unlock.returncode == 0, unlock.log[-3000:]
    proc = run(workdir)
    assert proc.returncode == 0, proc.log[-6000:]
    # not the finished pretraining (one job trained both seeds of configs/smoke.yaml: seeds_per_job all)
    assert [call_rule(c) for c in sbatch_calls(proc.log)] == ["evaluate_seeds"]
    assert "varcon_digits/supcon/seed0/evaluation.json" in proc.log


def test_changed_learning_rate_on_the_command_line_reruns_only_its_branch(cluster_run):
    workdir, _ = cluster_run
    run_json = workdir / "results" / "runs" / "varcon_digits" / "varcon" / "seed0" / "run.json"
    assert json.loads(run_json.read_text())["spec"]["optimizer"]["lr"] != 0.0012  # a new value
    proc = run(workdir, "--config", "methods={varcon: {optimizer: {lr: 0.0012}}}")
    assert proc.returncode == 0, proc.log[-6000:]
    calls = sbatch_calls(proc.log)
    comments = sorted(re.search(r"--comment (\S+)", c).group(1) for c in calls)
    # that run's training and evaluation, and the analyses reading its logs; nothing of another method
    trained = [c for c in comments if not c.startswith("rule_analyse_")]
    assert trained == ["rule_evaluate_seeds_wildcards_varcon_digits_varcon",
                       "rule_pretrain_seeds_wildcards_varcon_digits_varcon"]  # one job each for both seeds
    assert all(call_rule(c) in ("pretrain_seeds", "evaluate_seeds", "analyse") for c in calls), comments
    assert json.loads(run_json.read_text())["spec"]["optimizer"]["lr"] == 0.0012  # a number, inside the job too
    states = job_states(slurm_job_ids(proc.log))
    assert all(state == "COMPLETED" for state, _ in states.values()), states


@pytest.fixture(scope="module")
def default_resources_run(tmp_path_factory):
    """One experiment and method (a selection), with the partition and account given only as Snakemake's
    default resources, and no ``slurm:`` block."""
    if PARTITION is None:
        pytest.skip("no SLURM cluster answers (sinfo); .ci/slurm start sets up a single-node one")
    workdir = tmp_path_factory.mktemp("slurm_defaults")
    (workdir / "cluster.yaml").write_text("{}\n")
    defaults = [f"slurm_partition={PARTITION}", *([f"slurm_account={ACCOUNT}"] if ACCOUNT else [])]
    proc = run(workdir, "--default-resources", *defaults, "--config", "experiments=[varcon_digits]", "methods=[supcon]")
    assert proc.returncode == 0, proc.log[-6000:]
    return workdir, proc


def test_default_resources_reach_every_sbatch_call_without_a_slurm_block(default_resources_run):
    workdir, proc = default_resources_run
    calls = sbatch_calls(proc.log)
    assert len(calls) >= 5 and len(calls) == len(submitted_rules(proc.log))
    for call in calls:
        assert f" -p {PARTITION} " in call, call
        assert not ACCOUNT or f" -A {ACCOUNT} " in call, call
    states = job_states(slurm_job_ids(proc.log))
    assert all(state == "COMPLETED" and partition == PARTITION for state, partition in states.values()), states
    # the jobs composed the same selection: only the selected method of the selected experiment ran
    runs = workdir / "results" / "runs"
    assert sorted(p.name for p in runs.iterdir()) == ["varcon_digits"]
    assert sorted(p.name for p in (runs / "varcon_digits").iterdir()) == ["supcon"]
    assert (workdir / "results" / "report" / "index.html").stat().st_size > 0

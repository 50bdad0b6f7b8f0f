"""Corruption granularity 'cell': one job per (corruption, severity) writes the corrupted test split,
one job per (run, corruption, severity) scores the run's one saved probe on it, and a merge writes the
run's evaluation.json in the format a grid job writes."""

import json
import subprocess

import pytest
import yaml

from conftest import REPO, job_counts, snakemake_exe

pytestmark = pytest.mark.slow
TARGET = "results/runs/varcon_digits/cnn/seed0/evaluation.json"


def snakemake(workdir, overlay, *extra):
    """snakemake for TARGET in ``workdir`` on the smoke config plus ``overlay``; must succeed."""
    workdir.mkdir(exist_ok=True)
    cmd = [snakemake_exe(), TARGET, *extra, "--snakefile", str(REPO / "Snakefile"), "--cores", "2", "--configfile",
           str(REPO / "config.yaml"), str(REPO / "configs" / "smoke.yaml"), str(overlay)]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def run(workdir, overlay):
    return snakemake(workdir, overlay), json.loads((workdir / TARGET).read_text())


def cell_overlay(path, cells):
    path.write_text(yaml.safe_dump({"evaluation": {"corruptions": {**cells, "granularity": "cell"}}}))
    return path


def test_cell_granularity_runs_one_job_per_cell(tmp_path):
    cells = {"names": ["gaussian_noise", "contrast"], "severities": [2, 5], "n_test": 300}
    proc, result = run(tmp_path / "cell", cell_overlay(tmp_path / "cell.yaml", cells))
    run_dir = tmp_path / "cell" / "results/runs/varcon_digits/cnn/seed0"
    expected = []
    for name in cells["names"]:
        for s in cells["severities"]:
            assert (tmp_path / "cell" / f"results/data/styled_digits/corrupted/{name}/s{s}/test.npz").exists()
            expected.append(json.loads((run_dir / f"corruptions/{name}/s{s}.json").read_text()))
    assert result["tables"]["corruptions"] == expected  # the cells' rows, merged in table order
    assert result["metrics"]["mean_corruption_top1"] == pytest.approx(sum(r["top1"] for r in expected) / 4)
    clean = json.loads((run_dir / "evaluation_clean.json").read_text())
    assert result["metrics"] == {**clean["metrics"], "mean_corruption_top1": result["metrics"]["mean_corruption_top1"]}
    assert (run_dir / "probe.pt").exists()  # the probe is trained once, by the run's evaluate_clean job
    jobs = proc.stdout + proc.stderr
    assert jobs.count("rule evaluate_clean:") == 1 and jobs.count("rule evaluate_corruption:") == 4
    rows = {(r["corruption"], r["severity"]): r["top1"] for r in result["tables"]["corruptions"]}
    assert set(rows) == {(n, s) for n in cells["names"] for s in cells["severities"]}
    assert all(0 <= v <= 1 for v in rows.values())
    # heavier corruption, lower accuracy (the smoke test split has 300 images: all of them are used)
    assert rows[("contrast", 5)] < rows[("contrast", 2)] + 0.05

    # another severity: only its cells and the merge run; the probe, trained once, is reused
    more = cell_overlay(tmp_path / "more.yaml", {**cells, "severities": [2, 3, 5]})
    plan = job_counts(snakemake(tmp_path / "cell", more, "-n").stdout)
    assert plan == {"corrupt_split": 2, "evaluate_corruption": 2, "merge_evaluation": 1}, plan

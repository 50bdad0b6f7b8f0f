"""Corruption granularity 'cell': one job per (corruption, severity) writes the corrupted test split,
and the evaluation reads them — the same numbers a grid job computes in memory."""

import json
import subprocess

import pytest
import yaml

from conftest import REPO, snakemake_exe

pytestmark = pytest.mark.slow
TARGET = "results/runs/varcon_digits/cnn/seed0/evaluation.json"


def run(workdir, overlay):
    workdir.mkdir()
    cmd = [snakemake_exe(), TARGET, "--snakefile", str(REPO / "Snakefile"), "--cores", "2", "--configfile",
           str(REPO / "config.yaml"), str(REPO / "configs" / "smoke.yaml"), str(overlay)]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc, json.loads((workdir / TARGET).read_text())


def test_cell_granularity_runs_one_job_per_cell(tmp_path):
    cells = {"names": ["gaussian_noise", "contrast"], "severities": [2, 5], "n_test": 300}
    overlay = tmp_path / "cell.yaml"
    overlay.write_text(yaml.safe_dump({"evaluation": {"corruptions": {**cells, "granularity": "cell"}}}))
    proc, result = run(tmp_path / "cell", overlay)
    for name in cells["names"]:
        for s in cells["severities"]:
            assert (tmp_path / "cell" / f"results/data/styled_digits/corrupted/{name}/s{s}/test.npz").exists()
    rows = {(r["corruption"], r["severity"]): r["top1"] for r in result["tables"]["corruptions"]}
    assert set(rows) == {(n, s) for n in cells["names"] for s in cells["severities"]}
    assert all(0 <= v <= 1 for v in rows.values())
    # heavier corruption, lower accuracy (the smoke test split has 300 images: all of them are used)
    assert rows[("contrast", 5)] < rows[("contrast", 2)] + 0.05

"""report.figure_formats: every figure also as PDF (paper scale) from the same job, PNG only by default;
and the per-paper table files in the DAG."""

import copy
import subprocess

import pandas as pd
import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from clbench.cli import main
from clbench.report.figures import pyplot, figure_formats, save_figure
from conftest import REPO, snakemake_exe

SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")
FIGURES = ["training_curves", "clear_ood", "clear_ood_k", "mcl_stage_probes", "varcon_corruptions",
           "varcon_convergence", "varcon_temperature", "clear_mi_simulation", "clear_swap", "clear_interpolation",
           "clear_tsne"]


def _figure():
    plt = pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    return plt, fig


def test_save_figure_writes_every_format_from_one_drawing(tmp_path):
    plt, fig = _figure()
    save_figure(fig, tmp_path / "a.png")
    with figure_formats(["png", "pdf"]):
        save_figure(fig, tmp_path / "b.png")
    plt.close(fig)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.pdf", "b.png"]
    assert (tmp_path / "b.pdf").read_bytes()[:5] == b"%PDF-"
    with pytest.raises(ValueError, match="jpg"):
        with figure_formats(["png", "jpg"]):
            pass


def test_figure_command_formats_option(tmp_path):
    run = tmp_path / "runs" / "exp" / "m" / "seed0"
    run.mkdir(parents=True)
    pd.DataFrame({"epoch": [1, 2], "loss": [1.0, 0.5]}).to_csv(run / "metrics.csv", index=False)
    out = tmp_path / "fig" / "training_curves.png"
    main(["report", "curves", "--runs-root", str(tmp_path / "runs"), "--out", str(out), "--formats", "png,pdf",
          str(run / "metrics.csv")])  # the positional input after --formats stays an input
    assert out.exists() and out.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"
    with pytest.raises(SystemExit):
        main(["report", "curves", "--runs-root", "r", "--out", "o.png", "--formats", "png,jpg", "x.csv"])


@pytest.fixture
def config():
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_schema_default_png_and_png_required(config):
    cfg = copy.deepcopy(config)
    cfg.pop("report", None)
    validate(cfg, SCHEMA, set_default=True)
    assert cfg["report"]["figure_formats"] == ["png"]
    validate({**config, "report": {"figure_formats": ["png", "pdf"]}}, SCHEMA, set_default=True)
    for bad in (["pdf"], ["png", "jpg"], ["png", "png"]):
        with pytest.raises(WorkflowError, match="figure_formats"):
            validate({**copy.deepcopy(config), "report": {"figure_formats": bad}}, SCHEMA, set_default=True)


def _dry_run(workdir, *overlays):
    cmd = [snakemake_exe(), "-n", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(REPO / "config.yaml"), *map(str, overlays)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


def test_dag_has_pdfs_only_when_configured(tmp_path):
    default = _dry_run(tmp_path)
    assert ".pdf" not in default
    # one table per paper of the config (the default has every paper, no baseline-only experiment)
    for paper in ("clear", "subembed", "mcl", "adnce", "varcon"):
        for ext in ("csv", "md", "tex"):
            assert f"results/tables/paper_{paper}.{ext}" in default
    assert "paper_baseline" not in default
    # the adaptive-temperature table is an analysis of its own, which the temperature figure plots
    assert "rule analyse:" in default and "results/analyses/varcon_temperature.csv" in default
    assert "rule paper_figure:" in default and "results/figures/varcon_temperature.png" in default
    overlay = tmp_path / "pdf.yaml"
    overlay.write_text("report:\n  figure_formats: [png, pdf]\n")
    with_pdf = _dry_run(tmp_path, overlay)
    for name in FIGURES:
        assert f"results/figures/{name}.pdf" in with_pdf, name
        assert f"results/figures/{name}.png" in with_pdf, name

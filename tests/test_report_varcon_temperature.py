"""VarCon's adaptive temperature t2 per epoch (clbench.papers.varcon): the runs' table, the figure, the claim
and the HTML section, from hand-written metrics.csv with the columns the training loop logs for objective varcon."""

import json
from html import escape

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from clbench.cli import main
from clbench.papers import PAPERS, all_claims
from clbench.papers import varcon as pf
from clbench.report import html
from clbench.report.claims import evaluate_claims

DEFAULT_CLAIMS = all_claims()
CAPTION = PAPERS["varcon"].figure("varcon_temperature").caption

EXPERIMENTS = {"varcon_digits": {"paper": "varcon", "dataset": "d", "seeds": [0, 1], "methods": ["supcon", "varcon"]}}
CONFIG = {"scale": "tiny", "experiments": EXPERIMENTS,
          "methods": {"supcon": {"objective": "supcon"}, "varcon": {"objective": "varcon"}}}


def t2_stats(median: float, spread: float) -> dict:
    """A t2 distribution around ``median``: quantiles ``spread`` apart."""
    q = {"p05": -2, "p25": -1, "p50": 0, "p75": 1, "p95": 2}
    out = {f"varcon_t2_{k}": median + v * spread for k, v in q.items()}
    return {**out, "varcon_t2_mean": median, "varcon_t2_std": spread, "varcon_t2_min": median - 3 * spread,
            "varcon_t2_max": median + 3 * spread}


def write_run(root, method, seed, medians, loss=None, t2=True, stage=None):
    d = root / "varcon_digits" / method / f"seed{seed}"
    d.mkdir(parents=True)
    rows = [{"epoch": e + 1, "loss": 1.0 / (e + 1), **(t2_stats(m, 0.004) if t2 else {})} for e, m in enumerate(medians)]
    df = pd.DataFrame(rows)
    if stage is not None:
        df.insert(0, "stage", stage)
    df.to_csv(d / "metrics.csv", index=False)
    if loss is not None:
        (d / "run.json").write_text(json.dumps({"spec": {"objective": "varcon", "loss": loss}, "device": "cpu"}))
    return d / "metrics.csv"


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "results" / "runs"
    paths = [write_run(root, "varcon", 0, [0.1, 0.11, 0.115], loss={"temperature": 0.1, "epsilon": 0.02}),
             write_run(root, "varcon", 1, [0.102, 0.112, 0.119],  # seeds rise by different amounts
                        loss={"temperature": 0.1, "epsilon": 0.02}),
             write_run(root, "supcon", 0, [0.1, 0.1, 0.1], t2=False, loss={"temperature": 0.1})]
    return root, paths


def test_runs_table_reads_t2_and_the_nominal_temperature(runs, tmp_path):
    root, paths = runs
    table = pf.temperature_runs(paths, root)
    assert set(table["method"]) == {"varcon"} and len(table) == 6  # supcon logged no t2
    assert set(table["temperature"]) == {0.1} and set(table["epsilon"]) == {0.02}
    summ = pf.temperature_summary(table)
    assert summ["epoch"].tolist() == [1, 2, 3] and summ["n"].tolist() == [2, 2, 2]
    assert summ["varcon_t2_p50"].tolist() == pytest.approx([0.101, 0.111, 0.117])  # mean over the two seeds
    assert summ["varcon_t2_p95"].tolist() == pytest.approx([0.109, 0.119, 0.125])
    # no run.json: the loss's defaults (t = 0.1, epsilon = 0.02)
    other = write_run(tmp_path / "r", "varcon", 0, [0.2, 0.21])
    assert pf.temperature_runs([other], tmp_path / "r")[["temperature", "epsilon"]].iloc[0].tolist() == [0.1, 0.02]


def test_mcl_epochs_run_on_across_stages(tmp_path):
    """A stage's own metrics restart at epoch 1; a combined MCL run's already count on: both give 1..4."""
    for name, epochs in (("own", [1, 2, 1, 2]), ("combined", [1, 2, 3, 4])):
        path = write_run(tmp_path / name, "varcon", 0, [0.1, 0.11, 0.12, 0.13], stage=[0, 0, 1, 1])
        pd.read_csv(path).assign(epoch=epochs).to_csv(path, index=False)
        assert pf.temperature_runs([path], tmp_path / name)["epoch"].tolist() == [1, 2, 3, 4], name


def _assert_png(path):
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 200 and im.size[1] > 150


def temperature(results, paths, out=None, table=None, formats="png"):
    """The workflow's two steps: the analysis writes the t2 table, the figure plots it."""
    table = table or results / "analyses" / "varcon_temperature.csv"
    out = out or results / "figures" / "varcon_temperature.png"
    main(["analyse", "varcon_temperature.csv", *map(str, paths), "--results", str(results), "--out", str(table)])
    main(["report", "figure", "varcon_temperature", str(table), "--results", str(results), "--out", str(out),
          "--formats", formats])


def test_figure_and_command(runs, tmp_path):
    root, paths = runs
    out = tmp_path / "fig" / "varcon_temperature.png"
    table = tmp_path / "tables" / "varcon_temperature.csv"
    temperature(root.parent, paths, out, table, formats="png,pdf")
    _assert_png(out)
    assert out.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"
    written = pd.read_csv(table)
    assert len(written) == 6 and {"varcon_t2_p05", "varcon_t2_max", "temperature", "epsilon"} <= set(written.columns)


def test_without_t2_columns_the_figure_is_a_placeholder_and_the_report_says_why(runs, tmp_path):
    root, paths = runs
    results = root.parent
    supcon_only = [p for p in paths if "supcon" in str(p)]
    temperature(results, supcon_only)
    _assert_png(results / "figures" / "varcon_temperature.png")  # the rule's output exists all the same
    assert pd.read_csv(results / "analyses" / "varcon_temperature.csv").empty
    (results / "tables").mkdir()
    pd.DataFrame(columns=["experiment", "paper", "k", "method", "seed", "metric", "value"]).to_csv(
        results / "tables" / "metrics.csv", index=False)
    html.build_report(results, CONFIG, results / "report" / "index.html", PAPERS)
    page = (results / "report" / "index.html").read_text()
    assert "adaptive temperature t2 per epoch is not drawn" in page and "<code>varcon</code>" in page
    assert escape(CAPTION) not in page
    # a config without any VarCon method: the note names the configs that draw it
    html.build_report(results, {**CONFIG, "methods": {}}, results / "report" / "index.html", PAPERS)
    assert "configs/paper.yaml" in (results / "report" / "index.html").read_text()


def test_with_t2_the_report_shows_the_figure_and_checks_the_claim(runs):
    root, paths = runs
    results = root.parent
    temperature(results, paths)
    (results / "tables").mkdir()
    pd.DataFrame(columns=["experiment", "paper", "k", "method", "seed", "metric", "value"]).to_csv(
        results / "tables" / "metrics.csv", index=False)
    html.build_report(results, CONFIG, results / "report" / "index.html", PAPERS)
    page = (results / "report" / "index.html").read_text()
    assert escape(CAPTION) in page and "not drawn" not in page
    assert "varcon.t2_follows_confidence" in page


def test_claim_t2_rises_over_training(runs):
    root, paths = runs
    ends = pf.t2_endpoints(pf.temperature_runs(paths, root))
    assert sorted(ends["metric"].unique()) == ["varcon_t2_p50_first_epoch", "varcon_t2_p50_last_epoch"]
    claim = [c for c in DEFAULT_CLAIMS if c["id"] == "varcon.t2_follows_confidence"]
    res = evaluate_claims(ends, claim)
    assert res["verdict"].tolist() == ["holds"]
    flipped = ends.assign(metric=ends["metric"].map({"varcon_t2_p50_first_epoch": "varcon_t2_p50_last_epoch",
                                                     "varcon_t2_p50_last_epoch": "varcon_t2_p50_first_epoch"}))
    assert evaluate_claims(flipped, claim)["verdict"].tolist() == ["fails"]
    one_epoch = pf.temperature_runs(paths, root).query("epoch == 1")
    assert pf.t2_endpoints(one_epoch).empty  # nothing to compare: the claim is "not run"
    assert evaluate_claims(pf.t2_endpoints(one_epoch).assign(value=np.nan), claim)["verdict"].tolist() == ["not run"]


def test_a_missing_statistic_keeps_the_epoch(tmp_path):
    """Only the drawn quantiles are required: an epoch whose std (say) is missing still counts."""
    path = write_run(tmp_path, "varcon", 0, [0.1, 0.11])
    pd.read_csv(path).assign(varcon_t2_std=[np.nan, 0.004]).to_csv(path, index=False)
    table = pf.temperature_runs([path], tmp_path)
    assert table["epoch"].tolist() == [1, 2] and np.isnan(table["varcon_t2_std"].iloc[0])

import json

import pytest

import pandas as pd

from clbench.papers import PAPERS
from clbench.report import figures, html, tables


def _runs(tmp_path):
    root = tmp_path / "results" / "runs"
    paths, metrics = [], []
    for method, acc in [("cnn", 0.9), ("supcon", 0.95)]:
        for seed in (0, 1):
            d = root / "exp" / method / f"seed{seed}"
            d.mkdir(parents=True)
            (d / "evaluation.json").write_text(json.dumps({
                "metrics": {"linear_top1": acc + seed * 0.01, "linear_auroc": 0.99},
                "tables": {"corruptions": [{"corruption": "fog", "severity": 1, "top1": acc - 0.1}]}}))
            pd.DataFrame({"epoch": [1, 2], "loss": [1.0, 0.5], "val_knn_top1": [0.5, 0.8]}).to_csv(d / "metrics.csv", index=False)
            (d / "run.json").write_text(json.dumps({"device": "cpu"}))
            paths.append(d / "evaluation.json")
            metrics.append(d / "metrics.csv")
    return root, paths, metrics


def test_parse_run_path(tmp_path):
    assert tables.parse_run_path(tmp_path / "e" / "m" / "seed3" / "x.json", tmp_path) == \
        {"experiment": "e", "method": "m", "seed": 3}


EXPERIMENTS = {"exp": {"paper": "varcon", "baseline": "cnn", "dataset": "d", "seeds": [0, 1]}}


def test_collect_aggregates_over_seeds_with_relative_accuracy(tmp_path):
    root, paths, _ = _runs(tmp_path)
    tabs = tables.collect_evaluations(paths, root, EXPERIMENTS)
    m = tabs["metrics"]
    assert set(m["paper"]) == {"varcon"}
    rel = m[(m["metric"] == "linear_top1_relative") & (m["method"] == "supcon")].sort_values("seed")["value"]
    assert rel.tolist() == pytest.approx([0.95 / 0.9, 0.96 / 0.91])
    assert len(tabs["corruptions"]) == 4 and set(tabs["corruptions"]["method"]) == {"cnn", "supcon"}
    summary = tables.summary_table(m).set_index(["method", "metric"])
    assert summary.loc[("supcon", "linear_top1"), "mean"] == pytest.approx(0.955)
    assert summary.loc[("supcon", "linear_top1"), "std"] == pytest.approx(0.00707, abs=1e-4)
    wide = tables.wide_table(tables.summary_table(m), "exp", ["linear_top1"])
    assert wide.set_index("method").loc["supcon", "linear_top1"] == "95.5 ± 0.7"
    tables.write_tables(tabs, tmp_path / "tables")
    assert "95.5" not in (tmp_path / "tables" / "summary.md").read_text()  # raw values there
    assert r"\begin{tabular}" in (tmp_path / "tables" / "summary.tex").read_text()


def test_probes_are_compared_with_the_baselines_own_classifier_where_it_was_scored(tmp_path):
    """CLEAR's OOD comparison: a method's MLP probe over the baseline's own trained head, same seed; none where
    the baseline's head was not scored (evaluation own_head)."""
    root = tmp_path / "runs"
    values = {("cnn", 0): {"head_top1": 0.40, "mlp_top1": 0.30}, ("cnn", 1): {"head_top1": 0.50, "mlp_top1": 0.35},
              ("clear", 0): {"mlp_top1": 0.60, "linear_top1": 0.50}, ("clear", 1): {"mlp_top1": 0.55}}
    paths = []
    for experiment in ("ood", "no_head"):
        for (method, seed), metrics in values.items():
            d = root / experiment / method / f"seed{seed}"
            d.mkdir(parents=True)
            if experiment == "no_head":
                metrics = {k: v for k, v in metrics.items() if k != "head_top1"}
            (d / "evaluation.json").write_text(json.dumps({"metrics": metrics, "tables": {}}))
            paths.append(d / "evaluation.json")
    experiments = {e: {"paper": "clear", "baseline": "cnn", "ood": True, "dataset": "d", "seeds": [0, 1]}
                   for e in ("ood", "no_head")}
    m = tables.collect_evaluations(paths, root, experiments)["metrics"]
    rel = m[(m["metric"] == "mlp_top1_relative_head") & (m["experiment"] == "ood")].set_index(["method", "seed"])["value"]
    assert rel[("clear", 0)] == pytest.approx(0.60 / 0.40) and rel[("clear", 1)] == pytest.approx(0.55 / 0.50)
    assert rel[("cnn", 0)] == pytest.approx(0.30 / 0.40)  # the baseline's own probe against its head
    lin = m[m["metric"] == "linear_top1_relative_head"]
    assert len(lin) == 1 and lin["value"].iloc[0] == pytest.approx(0.50 / 0.40)
    assert not m[(m["experiment"] == "no_head") & m["metric"].str.endswith("_relative_head")].size


def test_curves_and_html(tmp_path):
    root, paths, metrics = _runs(tmp_path)
    results = tmp_path / "results"
    tables.write_tables(tables.collect_evaluations(paths, root, EXPERIMENTS), results / "tables")
    figures.training_curves(metrics, root, results / "figures" / "training_curves.png")
    assert (results / "figures" / "training_curves.png").read_bytes()[:4] == b"\x89PNG"
    bench = results / "benchmarks" / "pretrain" / "exp" / "cnn"
    bench.mkdir(parents=True)
    (bench / "seed0.tsv").write_text("s\th:m:s\tmax_rss\n12.5\t0:00:12\t100\n")
    config = {"scale": "tiny", "experiments": EXPERIMENTS}
    html.build_report(results, config, results / "report" / "index.html", PAPERS)
    page = (results / "report" / "index.html").read_text()
    assert "tiny scale" in page and "95.5 ± 0.7" in page and "data:image/png;base64" in page
    assert "pretrain" in page and "12.5" in page
    assert "VarCon" in page and "CLEAR" in page  # every paper has a section
    assert "79.36" in page  # the paper's ImageNet-1K number beside ours

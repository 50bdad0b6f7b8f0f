import json
from html import escape

import numpy as np

import pytest

import pandas as pd

from clbench.papers import PAPERS
from clbench.report import figures, html, tables


def _runs(tmp_path, methods=(("cnn", 0.9), ("supcon", 0.95))):
    root = tmp_path / "results" / "runs"
    paths, metrics = [], []
    for method, acc in methods:
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


def test_curves_split_loss_scales_use_log_axes_and_leave_out_empty_knn_panels(tmp_path):
    runs = pd.DataFrame([
        *({"experiment": "a", "method": "vae", "seed": s, "epoch": e, "loss": 300.0 / e, "val_knn_top1": np.nan}
          for s in (0, 1) for e in (1, 2, 3)),
        *({"experiment": "a", "method": "cnn", "seed": s, "epoch": e, "loss": 2.0 / e, "val_knn_top1": 0.5}
          for s in (0, 1) for e in (1, 2, 3)),
        *({"experiment": "b", "method": "infonce", "seed": 0, "epoch": e, "loss": 5.0 - e, "val_knn_top1": np.nan}
          for e in (1, 2, 3)),
    ])
    panels = dict(figures.curve_panels(runs))
    assert [(p["column"], p["methods"]) for p in panels["a"]] == [("loss", ["cnn"]), ("loss", ["vae"]),
                                                                    ("val_knn_top1", ["cnn"])]
    assert [p["column"] for p in panels["b"]] == ["loss"]  # no k-NN column logged: no k-NN panel
    assert figures.loss_scale_groups(runs[runs["experiment"] == "a"]) == [["cnn"], ["vae"]]
    assert figures.y_scale([5.0, 3.0, 2.0]) == ("linear", {})
    assert figures.y_scale([1.9e3, 1.7e5, 7.7e6]) == ("log", {})  # a diverging loss
    assert figures.y_scale([-150.0, -3.0, 0.0, 80.0, 350.0]) == ("linear", {})  # signs change, no spike
    kind, kw = figures.y_scale([-1e3, 2e3, 300.0, 7.7e6, 5e4, 5e4])  # a spike among values of both signs
    assert kind == "symlog" and kw["linthresh"] > 0


def test_mmvp_scores_show_in_percent_like_every_accuracy():
    assert tables.is_percent_metric("mmvp") and tables.is_percent_metric("mmvp_stage0")
    summary = tables.summary_table(pd.DataFrame({
        "paper": "mcl", "experiment": "mcl_mmvp", "method": "mcl_clip", "seed": [0, 1], "metric": "mmvp",
        "value": [0.30, 0.32]}))
    assert tables.wide_table(summary, "mcl_mmvp", ["mmvp"])["mmvp"].tolist() == ["31.0 ± 1.4"]


def test_table_html_scrolls_and_aligns_text_left_and_numbers_right():
    shown = html.table_html(pd.DataFrame({"method": ["cnn"], "linear_top1": ["95.5 ± 0.7"], "k": [3],
                                          "claim": ["a sentence"]}), wide=("claim",))
    assert shown.startswith("<div class='scroll'><table>")
    assert "<td>cnn</td>" in shown and "<td class='num'>95.5 ± 0.7</td>" in shown and "<td class='num'>3</td>" in shown
    assert "<td class='wide'>a sentence</td>" in shown and "<th class='num'>linear_<wbr>top1</th>" in shown
    assert ".scroll{overflow-x:auto" in html.STYLE


def test_verdicts_are_counted_in_the_summaries_order():
    claims = pd.DataFrame({"verdict": ["holds", "holds", "fails", "not comparable at this scale", "not run",
                                       "undecided: supcon seed 0 did not train (collapse)"]})
    assert html.verdict_counts(claims) == {"holds": 2, "fails": 1, "inconclusive": 0, "undecided": 1,
                                           "not comparable": 1, "not run": 1}
    assert html.verdict_counts(claims.iloc[0:0]) == dict.fromkeys(html.verdict_counts(claims), 0)


def test_health_per_method_counts_a_run_at_its_worst_stage():
    health = pd.DataFrame({
        "experiment": "e", "paper": "mcl", "method": ["mcl"] * 4 + ["simclr"] * 2, "seed": [0, 0, 1, 1, 0, 1],
        "stage": ["0", "1", "0", "1", "", ""], "status": ["ok", "failed", "ok", "warn", "ok", "ok"],
        "reasons": ["", "loss diverged", "", "probe near chance", "", ""]})
    by = html.health_by_method(health).set_index("method")
    assert by.loc["mcl", ["runs", "ok", "warn", "failed"]].tolist() == [2, 0, 1, 1]
    assert by.loc["mcl", "status"] == "failed" and by.loc["simclr", "status"] == "ok"
    assert by.loc["mcl", "reasons"] == "seed 0 stage 1: loss diverged; seed 1 stage 1: probe near chance"
    same = html.health_by_method(health.assign(reasons=health["reasons"].replace("probe near chance", "loss diverged")))
    assert same.set_index("method").loc["mcl", "reasons"] == "seeds 0 stage 1, 1 stage 1: loss diverged"
    assert "1 failed" in html.health_text(by.reset_index()) and "health not recorded" in html.health_text(None)


def test_report_title_says_reproduced_only_at_paper_scale():
    assert "reproduced" in html.report_title("paper", 5)
    assert "reproduced" not in html.report_title("tiny", 5) and "tiny scale" in html.report_title("tiny", 5)
    assert "reproduced" not in html.report_title("smoke", 5)


def test_report_shows_health_summaries_checked_caveats_and_each_rule_once(tmp_path):
    root, paths, metrics = _runs(tmp_path, (("cnn", 0.9), ("supcon", 0.95), ("varcon", 0.97)))
    results = tmp_path / "results"
    tables.write_tables(tables.collect_evaluations(paths, root, EXPERIMENTS), results / "tables")
    config = {"scale": "tiny", "experiments": EXPERIMENTS}
    out = results / "report" / "index.html"
    html.build_report(results, config, out, PAPERS)
    page = out.read_text()
    assert "health not recorded" in page and "At a glance" in page and "reproduced" not in page
    assert "Claims:</b>" in page and "Run health:</b>" in page
    # every number the paper reports stands with what it was checked against
    for number in PAPERS["varcon"].reported:
        assert escape(number["checked"]) in page
    # a claims table names each rule it used once, above it, and a short name per row
    from clbench.report.claims import RULES

    claims = page.split("<h2 id='varcon'>")[1].split("<h3>Claims</h3>")[1].split("</table>")[0]
    # varcon above supcon in linear and k-NN top-1: two rows decided by the paired test, stated once
    assert claims.count("class='v v-") >= 2 and claims.count(escape(RULES["paired"])) == 1
    for text in RULES.values():
        assert claims.count(escape(text)) <= 1
    pd.DataFrame({"experiment": "exp", "paper": "varcon", "method": ["cnn", "cnn", "supcon", "supcon"],
                  "seed": [0, 1, 0, 1], "stage": "", "status": ["ok", "ok", "failed", "ok"],
                  "reasons": ["", "", "loss is NaN at epoch 2", ""]}).to_csv(results / "tables" / "health.csv",
                                                                             index=False)
    html.build_report(results, config, out, PAPERS)
    page = out.read_text()
    assert "health not recorded" not in page and "seed 0: loss is NaN at epoch 2" in page
    assert "<h3>Run health</h3>" in page and "4 runs" in page

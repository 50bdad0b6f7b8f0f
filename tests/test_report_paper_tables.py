"""Per-paper tables (clbench.report.paper_tables, with the papers of clbench.papers): our mean ± std beside the paper's number, written as
CSV, Markdown and booktabs LaTeX, and the same tables in the HTML report."""

import json
import re
from types import SimpleNamespace

import pandas as pd
import pytest

from clbench.cli import main
from clbench.papers import PAPERS
from clbench.report import html, paper_tables as pt, tables

EXPERIMENTS = {
    "clear_styled": {"title": "Styled digits", "paper": "clear", "dataset": "styled_digits", "seeds": [0, 1, 2],
                     "methods": ["clear", "clear_neg"]},
    "clear_camelyon17": {"title": "Camelyon17", "paper": "clear", "dataset": "camelyon17", "seeds": [0, 1, 2],
                         "methods": ["cnn", "clear_tc"], "ood": True},
    "varcon_imagenet1k": {"title": "ImageNet-1K", "paper": "varcon", "dataset": "imagenet_1k", "seeds": [0, 1, 2],
                          "methods": ["supcon", "varcon"]},
}


def _metrics() -> pd.DataFrame:
    """Long per-seed metrics with known means and stds (three seeds: std of x-d, x, x+d is d)."""
    rows = []

    def add(exp, paper, method, metric, mean, d):
        for seed, v in enumerate((mean - d, mean, mean + d)):
            rows.append({"experiment": exp, "paper": paper, "k": None, "method": method, "seed": seed,
                         "metric": metric, "value": v})

    add("clear_styled", "clear", "clear", "gmig", 0.123, 0.004)
    add("clear_styled", "clear", "clear_neg", "gmig", 0.05, 0.01)
    add("clear_styled", "clear", "clear", "linear_top1", 0.91, 0.01)
    add("clear_styled", "clear", "clear_neg", "linear_top1", 0.88, 0.01)
    for metric in ("linear_top1", "ood_top1", "mlp_top1"):  # an OOD experiment reports its linear accuracy as ood_top1 too
        add("clear_camelyon17", "clear", "cnn", metric, 0.70, 0.02)
        add("clear_camelyon17", "clear", "clear_tc", metric, 0.76, 0.02)
    add("varcon_imagenet1k", "varcon", "varcon", "linear_top1", 0.80, 0.01)
    add("varcon_imagenet1k", "varcon", "supcon", "linear_top1", 0.78, 0.01)
    add("varcon_imagenet1k", "varcon", "varcon", "knn_top1", 0.75, 0.01)
    return pd.DataFrame(rows)


@pytest.fixture
def summary():
    return tables.summary_table(_metrics())


def test_tables_put_ours_beside_the_papers_number(summary):
    blocks = pt.paper_tables(summary, EXPERIMENTS, PAPERS["clear"])
    assert [b.experiment for b in blocks] == ["clear_styled", "clear_camelyon17"]
    styled = blocks[0].table.set_index("method")
    assert list(styled.columns) == ["linear_top1", "gmig", "gmig (paper)"]  # the paper's order, paper beside ours
    assert styled.loc["clear", "gmig"] == "0.123 ± 0.004"
    assert styled.loc["clear", "linear_top1"] == "91.0 ± 1.0"  # accuracies in %
    assert styled.loc["clear", "gmig (paper)"] == "≈0.3–0.4; 0.31–0.46"  # both of the paper's statements
    assert styled.loc["clear_neg", "gmig (paper)"] == "≈0.26"
    assert any("gmig of clear_neg" in s for s in blocks[0].sources)
    ood = blocks[1].table.set_index("method")
    # OOD experiment: the linear accuracy column is ood_top1; the paper's fraction 0.747 ± 0.019 (its MLP probe on
    # z_c) stands beside our MLP probe's, in % like ours
    assert "linear_top1" not in ood.columns and "ood_top1" in ood.columns
    assert ood.loc["clear_tc", "mlp_top1 (paper)"] == "74.7 ± 1.9" and "ood_top1 (paper)" not in ood.columns
    assert ood.loc["cnn", "mlp_top1 (paper)"] == ""  # the paper reports no number for the plain CNN here
    varcon = pt.paper_tables(summary, EXPERIMENTS, PAPERS["varcon"])[0].table.set_index("method")
    assert varcon.loc["varcon", "linear_top1 (paper)"] == "79.36"
    assert varcon.loc["supcon", "knn_top1"] == "—"  # not measured
    assert "knn_top1 (paper)" not in varcon.columns  # the paper reports none


def test_paper_value_units():
    row = SimpleNamespace(value=0.5, std=0.01, low=0.5, high=0.5, approx=False, unit="fraction")
    assert pt.paper_value_text(row, percent=True) == "50 ± 1"
    assert pt.paper_value_text(row, percent=False) == "0.5 ± 0.01"
    pct = SimpleNamespace(value=91.88, std=float("nan"), low=91.88, high=91.88, approx=True, unit="%")
    assert pt.paper_value_text(pct, percent=True) == "≈91.88"


def test_written_files_csv_md_tex(summary, tmp_path):
    written = pt.write_paper_tables(summary, EXPERIMENTS, tmp_path, PAPERS)
    # one file per paper of the configuration, none for the others
    assert sorted(p.name for p in written) == sorted(f"paper_{p}.{e}" for p in ("clear", "varcon")
                                                     for e in ("csv", "md", "tex"))
    csv = pd.read_csv(tmp_path / "paper_clear.csv", keep_default_na=False)
    assert list(csv.columns[:2]) == ["experiment", "method"]
    row = csv[(csv["experiment"] == "clear_styled") & (csv["method"] == "clear")].iloc[0]
    assert row["gmig"] == "0.123 ± 0.004" and row["gmig (paper)"] == "≈0.3–0.4; 0.31–0.46"
    assert csv[csv["experiment"] == "clear_camelyon17"]["mlp_top1 (paper)"].tolist() == ["", "74.7 ± 1.9"]

    md = (tmp_path / "paper_varcon.md").read_text()
    assert "| varcon | 80.0 ± 1.0 | 79.36 | 75.0 ± 1.0 |" in md
    assert "Table" in md or "ImageNet" in md  # the paper number's source
    assert sum(line.startswith("|---") for line in md.splitlines()) == 1  # one experiment, one table

    tex = (tmp_path / "paper_clear.tex").read_text()
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") == 2
    assert tex.count(r"\begin{table}") == tex.count(r"\end{table}") == 2
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert re.search(r"(?<!\\)_", tex) is None, "unescaped underscore"
    assert r"0.123 $\pm$ 0.004" in tex and "±" not in tex
    assert r"$\approx$0.3--0.4" in tex
    assert re.search(r"(?<!\\)%", tex.split("\n", 2)[2]) is None  # % only in the two comment lines on top
    for tabular in tex.split(r"\begin{tabular}")[1:]:  # every row has as many cells as its header
        rows = [line for line in tabular.split(r"\end{tabular}")[0].splitlines() if line.endswith(r"\\")]
        assert rows[0].startswith("method &") and {r.count("&") for r in rows} == {rows[0].count("&")}
    assert tex.count("{") == tex.count("}")


def test_latex_escape():
    assert tables.latex_escape("a_b & 50% ± c — d") == r"a\_b \& 50\% $\pm$ c --- d"
    assert tables.latex_escape("{x}^~#$\\") == r"\{x\}\textasciicircum{}\textasciitilde{}\#\$\textbackslash{}"


def test_paper_without_experiment_gets_no_file_and_empty_results_still_write(tmp_path):
    only = {"adnce_cifar10": {"paper": ["adnce", "mcl"], "dataset": "cifar10", "methods": ["adnce"]}}
    pt.write_paper_tables(tables.summary_table(_metrics().iloc[0:0]), only, tmp_path, PAPERS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["paper_adnce.csv", "paper_adnce.md", "paper_adnce.tex",
                                                         "paper_mcl.csv", "paper_mcl.md", "paper_mcl.tex"]
    assert pd.read_csv(tmp_path / "paper_adnce.csv").columns.tolist() == ["experiment", "method"]


def test_html_shows_the_same_tables(summary, tmp_path):
    results = tmp_path / "results"
    (results / "tables").mkdir(parents=True)
    _metrics().to_csv(results / "tables" / "metrics.csv", index=False)
    html.build_report(results, {"scale": "tiny", "experiments": EXPERIMENTS}, results / "report" / "index.html", PAPERS)
    page = (results / "report" / "index.html").read_text()
    table = pt.paper_tables(summary, EXPERIMENTS, PAPERS["clear"])[0].table
    assert html.table_html(table) in page
    assert "<th class='num'>gmig (paper)</th>" in page and "0.123 ± 0.004" in page


def test_collect_command_writes_the_paper_tables(tmp_path):
    root = tmp_path / "runs"
    paths = []
    for method, acc in (("supcon", 0.9), ("varcon", 0.92)):
        for seed in (0, 1):
            d = root / "varcon_imagenet1k" / method / f"seed{seed}"
            d.mkdir(parents=True)
            (d / "evaluation.json").write_text(json.dumps({"metrics": {"linear_top1": acc + 0.01 * seed}}))
            paths.append(str(d / "evaluation.json"))
    experiments = {"varcon_imagenet1k": EXPERIMENTS["varcon_imagenet1k"]}
    main(["report", "collect", "--runs-root", str(root), "--experiments", json.dumps(experiments),
          "--out-dir", str(tmp_path / "tables"), *paths])
    csv = pd.read_csv(tmp_path / "tables" / "paper_varcon.csv", keep_default_na=False).set_index("method")
    assert csv.loc["varcon", "linear_top1"] == "92.5 ± 0.7" and csv.loc["varcon", "linear_top1 (paper)"] == "79.36"
    assert not (tmp_path / "tables" / "paper_clear.csv").exists()

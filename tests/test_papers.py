"""The papers' registry (clbench.papers): the five papers and the baseline, their metadata, what the
workflow plans for them, the layering (no torch, no paper named in generic code), and a sixth, toy
paper registered here whose report section is rendered from fake result files."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

from clbench import workflow as wf
from clbench.cli import main
from clbench.errors import ConfigError
from clbench.io import write_text
from clbench.papers import PAPERS, Analysis, Figure, Paper, find_analysis, find_figure, register_paper, unregister_paper
from clbench.papers.targets import ReportTargets
from clbench.report.figures import pyplot, save_figure
from conftest import REPO

SRC = REPO / "src" / "clbench"
SCHEMA = wf.load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")
BUILT_IN = ["clear", "subembed", "mcl", "adnce", "varcon", "baseline"]


def config(overlay: dict | None = None) -> dict:
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    if overlay:
        from snakemake.utils import update_config

        update_config(cfg, overlay)
    return wf.validate(cfg, SCHEMA)


# --------------------------------------------------------------------------------------------------
# the registry


def test_built_in_papers_in_report_order_with_metadata():
    assert list(PAPERS)[:6] == BUILT_IN
    arxiv = {"clear": "2507.18794", "mcl": "2402.11816", "adnce": "2310.11048", "varcon": "2506.07413"}
    for key in BUILT_IN[:5]:
        paper = PAPERS[key]
        assert paper.key == key and paper.title and paper.heading and paper.summary and paper.citation
        assert paper.arxiv == arxiv.get(key) and paper.metrics and paper.reported and paper.claims
        assert all(c["paper"] == key and c["id"].startswith(f"{key}.") for c in paper.claims)
        assert all(r["id"].startswith(f"{key}.") for r in paper.reported)
    assert not PAPERS["baseline"].section_without_experiments and not PAPERS["baseline"].reported


def test_figures_and_analyses_are_found_by_name():
    figures = [f.name for p in PAPERS.values() for f in p.figures]
    analyses = [a.output for p in PAPERS.values() for a in p.analyses]
    assert len(set(figures)) == len(figures) and len(set(analyses)) == len(analyses)
    assert set(figures) == {"clear_interpolation", "clear_mi_simulation", "clear_ood", "clear_ood_k", "clear_swap",
                            "clear_tsne", "mcl_stage_probes", "varcon_convergence", "varcon_corruptions",
                            "varcon_temperature"}
    assert set(analyses) == {"clear_latents.npz", "clear_mi_simulation.csv", "varcon_temperature.csv"}
    assert find_figure("mcl_stage_probes") is PAPERS["mcl"].figure("mcl_stage_probes")
    assert find_analysis("varcon_temperature.csv").function == "clbench.papers.varcon:temperature_table"
    with pytest.raises(KeyError, match="unknown figure 'nope'"):
        find_figure("nope")


def test_register_refuses_a_second_paper_or_a_taken_figure_name():
    with pytest.raises(ValueError, match="already registered"):
        register_paper(PAPERS["adnce"])
    clash = Paper(key="clash", title="t", heading="h", summary="s", citation="c",
                  figures=[Figure(name="clear_ood", caption="c", draw=lambda files, out: None)])
    with pytest.raises(ValueError, match="figure 'clear_ood' is already paper 'clear'"):
        register_paper(clash)
    assert "clash" not in PAPERS


def test_the_schema_accepts_exactly_the_registered_papers():
    enum = SCHEMA["$defs"]["paper"].get("enum")
    if enum is not None:  # the schema may also take any name and leave the check to the registry
        assert set(enum) == set(BUILT_IN)


# --------------------------------------------------------------------------------------------------
# layering


def test_papers_and_report_import_no_torch():
    code = ("import sys\n"
            "import clbench.papers, clbench.papers.targets, clbench.report.html, clbench.report.paper_tables\n"
            "import clbench.cli\n"
            "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith(('clbench.train', 'clbench.models',"
            " 'clbench.losses')))\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", ["report", "papers"])
def test_report_and_papers_read_files_only(package):
    """Not even lazily: models and torch live in the analyses (clbench.evaluate), which the papers name
    by import path only."""
    banned = ("clbench.train", "clbench.models", "clbench.losses") + (("clbench.evaluate",) if package == "papers" else ())
    for path in (SRC / package).glob("*.py"):
        bad = {m for m in _imports(path) if m.split(".")[0] == "torch" or m.startswith(banned)}
        assert not bad, (path.name, bad)
    if package == "report":  # the report renders the papers it is given: no import of the registry
        assert not any(m.startswith("clbench.papers") for p in (SRC / "report").glob("*.py") for m in _imports(p))


def test_generic_code_names_no_paper():
    keys = [k for k in PAPERS if k != "baseline"]
    word = re.compile(r"\b(" + "|".join(keys) + r")\b", re.I)
    for path in [*(SRC / "report").glob("*.py"), REPO / "workflow" / "rules" / "report.smk",
                 REPO / "workflow" / "rules" / "analyse.smk", REPO / "workflow" / "report" / "figure.rst"]:
        hits = [line for line in path.read_text().splitlines() if word.search(line)]
        assert not hits, (path.name, hits)


# --------------------------------------------------------------------------------------------------
# what the workflow plans


def test_targets_of_the_default_config():
    targets = ReportTargets(config())
    assert targets.table_papers == BUILT_IN[:5]
    assert targets.analyses == ["clear_latents.npz", "clear_mi_simulation.csv", "varcon_temperature.csv"]
    assert len(targets.figures) == 10 and targets.extra_formats == []
    w = SimpleNamespace
    assert targets.analysis_inputs(w(analysis="clear_latents.npz")) == [
        "results/runs/clear_styled/clear/seed0/model.pt", "results/data/styled_digits/meta.json"]
    assert json.loads(targets.analysis_params(w(analysis="clear_latents.npz"))) == {"seed": 0}
    assert targets.analysis_inputs(w(analysis="varcon_temperature.csv")) == [
        *[f"results/runs/varcon_digits/varcon/seed{s}/metrics.csv" for s in (0, 1, 2)],
        *[f"results/runs/varcon_digits/varcon/seed{s}/run.json" for s in (0, 1, 2)]]
    assert targets.figure_inputs(w(figure="varcon_convergence")) == [
        f"results/runs/varcon_digits/{m}/seed{s}/metrics.csv" for m in ("cnn", "supcon", "varcon") for s in (0, 1, 2)]
    assert targets.figure_inputs(w(figure="clear_tsne")) == ["results/analyses/clear_latents.npz"]
    assert "content/style swap" in targets.figure_caption(w(figure="clear_swap"))
    assert targets.results_dir(None, ["results/figures/clear_ood.png"]) == "results"


def test_targets_follow_the_config():
    # without a CLEAR-VAE run there is nothing to swap: no latent maps and no figures of them
    cfg = config()
    cfg["experiments"] = {k: v for k, v in cfg["experiments"].items() if k == "varcon_digits"}
    targets = ReportTargets(cfg)
    assert targets.table_papers == ["varcon"]
    assert "clear_latents.npz" not in targets.analyses and "clear_swap" not in targets.figures
    # a paper without an experiment in the configuration draws no figure (its section says where it runs)
    assert not [f for f in targets.figures if f.startswith(("clear_", "mcl_"))]
    assert set(targets.figures) == {"varcon_convergence", "varcon_corruptions", "varcon_temperature"}
    # PDF copies when configured
    cfg["report"]["figure_formats"] = ["png", "pdf"]
    assert ReportTargets(cfg).extra_formats == ["pdf"] and ReportTargets(cfg).formats_arg == "png,pdf"


def test_an_unknown_paper_is_refused_naming_the_key():
    cfg = config()
    cfg["experiments"]["varcon_digits"]["paper"] = ["varcon", "nope"]
    with pytest.raises(ConfigError, match=r"^experiments\.varcon_digits\.paper: unknown paper 'nope'"):
        ReportTargets(cfg)


# --------------------------------------------------------------------------------------------------
# a sixth paper


def toy_scores(files, out):
    """The toy paper's analysis (run by ``clbench analyse``): per method, its mean linear top-1 over
    the runs' evaluation.json files, as CSV."""
    rows = []
    for path in files.inputs:
        run = Path(path).parent
        rows.append({"method": run.parent.name, "seed": int(run.name[4:]),
                     "top1": json.loads(Path(path).read_text())["metrics"]["linear_top1"] * files.params["scale"]})
    write_text(out, pd.DataFrame(rows).groupby("method", sort=False)["top1"].mean().reset_index().to_csv(index=False))


def _draw_scores(files, out):
    scores = pd.read_csv(files.inputs[0])
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.bar(scores["method"], scores["top1"])
    save_figure(fig, out)
    plt.close(fig)


def _toy_claim_rows(results: Path) -> pd.DataFrame:
    scores = pd.read_csv(results / "analyses" / "toy_scores.csv")
    return scores.rename(columns={"top1": "value"}).assign(metric="scaled_top1", seed=0, experiment="toy_exp")


TOY = Paper(
    key="toy",
    title="A Toy Paper",
    heading="Toy: a sixth paper",
    summary="Registered by a test.",
    citation="T. Oy. A Toy Paper. 2025.",
    arxiv="0000.00000",
    metrics=("linear_top1", "toy_metric"),
    reported=[{"id": "toy.exp.b", "source": "Table 2", "dataset": "toys", "method": "B", "method_key": "b",
               "experiment": "toy_exp", "metric": "toy_acc", "value": 88.0, "unit": "%", "scale": "paper"}],
    metric_names={"toy_acc": "linear_top1"},
    claims=[{"id": "toy.b_beats_a", "paper": "toy", "text": "B beats A.",
             "check": {"kind": "greater", "metric": "toy_acc", "a": "b", "b": "a"}},
            {"id": "toy.b_beats_a_scaled", "paper": "toy", "text": "B beats A, scaled.",
             "check": {"kind": "greater", "metric": "scaled_top1", "a": "b", "b": "a"}}],
    analyses=[Analysis(output="toy_scores.csv", function="test_papers:toy_scores",
                       inputs=lambda cfg: [f"{cfg.run_dir(*r)}/evaluation.json" for r in cfg.runs(cfg.experiments_of("toy"))],
                       params=lambda cfg: {"scale": 2.0})],
    figures=[Figure(name="toy_scores", caption="Toy scores per method.", draw=_draw_scores,
                    inputs=lambda cfg: [cfg.analysis("toy_scores.csv")])],
    claim_data=_toy_claim_rows,
)


@pytest.fixture
def toy():
    register_paper(TOY)
    yield TOY
    unregister_paper("toy")


def test_a_toy_paper_gets_its_tables_analysis_figure_claims_and_section(toy, tmp_path):
    experiments = {"toy_exp": {"title": "Toys", "paper": "toy", "dataset": "toys", "seeds": [0, 1],
                               "methods": ["a", "b"]}}
    cfg = config()
    cfg["experiments"] = experiments
    cfg["methods"] = {"a": {"objective": "supcon"}, "b": {"objective": "supcon"}}
    targets = ReportTargets(cfg)
    assert targets.table_papers == ["toy"] and "toy_scores.csv" in targets.analyses and "toy_scores" in targets.figures
    inputs = targets.analysis_inputs(SimpleNamespace(analysis="toy_scores.csv"))
    assert inputs == [f"results/runs/toy_exp/{m}/seed{s}/evaluation.json" for m in ("a", "b") for s in (0, 1)]

    # fake result files of the experiment, then the jobs' commands: collect, analyse, figure, report
    results = tmp_path / "results"
    for method, top1 in (("a", 0.6), ("b", 0.8)):
        for seed in (0, 1):
            run = results / "runs" / "toy_exp" / method / f"seed{seed}"
            run.mkdir(parents=True)
            (run / "evaluation.json").write_text(json.dumps({"metrics": {"linear_top1": top1 + (0.02 + 0.01 * (method == "b")) * seed,
                                                                         "toy_metric": 1.5}}))
    evaluations = [str(results / p[len("results/"):]) for p in inputs]
    main(["report", "collect", "--runs-root", str(results / "runs"), "--experiments", json.dumps(experiments),
          "--out-dir", str(results / "tables"), *evaluations])
    paper_csv = pd.read_csv(results / "tables" / "paper_toy.csv", keep_default_na=False).set_index("method")
    assert paper_csv.loc["b", "linear_top1"] == "81.5 ± 2.1" and paper_csv.loc["b", "linear_top1 (paper)"] == "88"
    assert paper_csv.loc["a", "linear_top1 (paper)"] == "" and paper_csv.loc["a", "toy_metric"] == "1.500 ± 0.000"
    assert not any((results / "tables").glob("paper_clear.*"))

    main(["analyse", "toy_scores.csv", *evaluations, "--results", str(results), "--params",
          targets.analysis_params(SimpleNamespace(analysis="toy_scores.csv")),
          "--out", str(results / "analyses" / "toy_scores.csv")])
    scores = pd.read_csv(results / "analyses" / "toy_scores.csv").set_index("method")["top1"]
    assert scores.to_dict() == pytest.approx({"a": 1.22, "b": 1.63})
    main(["report", "figure", "toy_scores", str(results / "analyses" / "toy_scores.csv"), "--results", str(results),
          "--out", str(results / "figures" / "toy_scores.png"), "--formats", "png,pdf"])
    assert (results / "figures" / "toy_scores.pdf").read_bytes()[:5] == b"%PDF-"

    main(["report", "html", "--results", str(results), "--config-json", json.dumps(cfg),
          "--out", str(results / "report" / "index.html")])
    page = (results / "report" / "index.html").read_text()
    assert re.search(r"<h1>clbench at \w+ scale: .* of six papers</h1>", page)  # tiny scale: no "reproduced"
    assert "<li><a href='#toy'>Toy: a sixth paper</a></li>" in page
    section = page[page.index("<h2 id='toy'>"):page.index("<h2 id='run-summary'>")]
    assert "T. Oy. A Toy Paper. 2025." in section and "arxiv.org/abs/0000.00000" in section
    assert "<th class='num'>linear_<wbr>top1 (paper)</th>" in section and "81.5 ± 2.1" in section
    assert "The paper's numbers beside ours" in section and "Table 2" in section and "toy_exp: 81.5 ± 2.1" in section
    verdicts = dict(re.findall(r"<code>(toy\.[a-z_]+)</code></small></td><td>toy_<wbr>exp</td><td><span[^>]*>([^<]+)</span>",
                               section))
    # two seeds where b beats a in each, by different margins: the paired test decides; the analysis' one mean per method is one
    # value per side, so its claim shows the direction only
    assert verdicts == {"toy.b_beats_a": "holds", "toy.b_beats_a_scaled": "direction only (n=1)"}
    assert "one seed, as claimed" in section
    assert "Toy scores per method." in section and "data:image/png;base64" in section
    # the other papers still have their sections, saying where they run
    assert "<h2 id='varcon'>" in page and "No experiment of this paper is in this configuration" in page

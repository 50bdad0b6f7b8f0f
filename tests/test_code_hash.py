"""Each rule's code hash covers the package code its job runs: editing a loss re-runs the pretraining that
uses it (and, through its files, what follows), editing a figure re-runs report jobs only, editing a
docstring or a comment re-runs nothing."""

from __future__ import annotations

import ast
import shutil
import subprocess

import numpy as np
import pytest
import yaml

from clbench import code_hash
from clbench.ops import rule_code
from clbench import workflow as wf
from clbench.objectives import OBJECTIVES
from clbench.papers.targets import ReportTargets
from conftest import REPO, job_counts, snakemake_exe

SCHEMA = wf.load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")


@pytest.fixture(scope="module")
def cfg():
    return wf.validate(yaml.safe_load((REPO / "config.yaml").read_text()), SCHEMA)


@pytest.fixture
def sources(tmp_path):
    """A copy of the package whose edits the hashes see (restored to the real sources afterwards)."""
    copy = tmp_path / "clbench"
    shutil.copytree(REPO / "src" / "clbench", copy, ignore=shutil.ignore_patterns("__pycache__"))
    code_hash.use_sources(copy)
    yield copy
    code_hash.use_sources(REPO / "src" / "clbench")


def all_hashes(cfg) -> dict[str, str]:
    """Every job kind's hash in the default configuration, by a readable name (the sources read afresh)."""
    code_hash.use_sources(code_hash.PACKAGE)
    out = {}
    for experiment, method, _ in wf.experiment_runs(cfg):
        out[f"train {experiment}/{method}"] = rule_code.train(cfg, experiment, method)
        out[f"evaluate {experiment}/{method}"] = rule_code.evaluate(cfg, experiment, method)
    for dataset in wf.used_datasets(cfg):
        out[f"data build {dataset}"] = rule_code.dataset(cfg, dataset)
    for command in ("cluster", "mcl-combine", "evaluate corruption", "evaluate merge", "data show", "data corrupt",
                    "data preview-augmentation", "report curves"):
        out[command] = rule_code.command(command)
    for command in ("report collect", "report protocol", "report html"):
        out[command] = rule_code.all_papers(command)
    report = ReportTargets(cfg)
    for figure in report.figures:
        out[f"figure {figure}"] = rule_code.figure(cfg, figure)
    for analysis in report.analyses:
        out[f"analyse {analysis}"] = rule_code.analysis(cfg, analysis)
    return out


def changed(before: dict, after: dict) -> set[str]:
    return {k for k in before if before[k] != after[k]}


def objective_of(cfg, name: str) -> str:
    experiment, method = name.split(" ", 1)[1].split("/")
    return wf.method_spec(cfg, experiment, method)["objective"]


def test_editing_a_loss_changes_the_training_that_uses_it_and_nothing_else(cfg, sources):
    before = all_hashes(cfg)
    with open(sources / "losses" / "varcon.py", "a") as f:
        f.write("\n\nEDITED = 1\n")
    after = all_hashes(cfg)
    varcon_training = {k for k in before if k.startswith("train ") and objective_of(cfg, k) == "varcon"}
    assert varcon_training, "the default config trains a VarCon method"
    assert changed(before, after) == varcon_training
    assert any(k.startswith("train clear") for k in before)  # CLEAR's runs are among those unchanged


def test_editing_a_figure_changes_report_jobs_only(cfg, sources):
    before = all_hashes(cfg)
    path = sources / "papers" / "varcon.py"
    text = path.read_text()
    assert "def draw_convergence(" in text
    path.write_text(text.replace("def draw_convergence(files: ResultFiles, out) -> None:\n",
                                 "def draw_convergence(files: ResultFiles, out) -> None:\n    files = files\n", 1))
    moved = changed(before, all_hashes(cfg))
    assert "figure varcon_convergence" in moved
    assert not {k for k in moved if k.split(" ")[0] in ("train", "evaluate", "data", "cluster", "mcl-combine")}
    assert not {k for k in moved if k.startswith("figure ") and not k.startswith("figure varcon")}
    assert moved <= {k for k in before if k.startswith(("figure", "report", "analyse"))}


def test_editing_the_report_page_re_runs_the_page_alone(cfg, sources):
    """The page's code (a section's layout, a sweep's columns) reaches the html_report job only: the collected
    tables, figures and cards it reads stay as they are."""
    before = all_hashes(cfg)
    with open(sources / "report" / "html.py", "a") as f:
        f.write("\n\nEDITED = 1\n")
    assert changed(before, all_hashes(cfg)) == {"report html"}


def test_docstrings_and_comments_change_no_hash(cfg, sources):
    before = all_hashes(cfg)
    path = sources / "losses" / "varcon.py"
    tree = ast.parse(path.read_text())
    assert ast.get_docstring(tree)
    path.write_text(path.read_text().replace('"""', '"""An edited docstring. ', 1) + "\n# a comment\n")
    assert changed(before, all_hashes(cfg)) == set()


def test_a_training_loop_edit_reaches_its_domain_only(cfg, sources):
    before = all_hashes(cfg)
    with open(sources / "train" / "graph.py", "a") as f:
        f.write("\n\nEDITED = 1\n")
    moved = changed(before, all_hashes(cfg))
    assert moved and all(OBJECTIVES[objective_of(cfg, k)].domain == "graph" for k in moved)


def test_names_from_an_aggregator_resolve_to_their_module(tmp_path):
    tree = ast.parse("import clbench.losses as L\nfrom clbench.losses import varcon\n"
                     "def f():\n    return L.snn, varcon\n")
    found = code_hash.imports_of(tree, "clbench")
    assert found == {"clbench.losses", "clbench.losses.contrastive", "clbench.losses.varcon"}
    # the aggregator's own imports are not followed: importing one loss does not bring in the others
    assert "clbench.losses.subembed" not in code_hash.closure(["clbench.losses.varcon"])


def test_an_unknown_command_is_refused():
    with pytest.raises(KeyError, match="no command"):
        code_hash.job_hash("no-such-command")


def _touch_all_outputs(repo, env) -> None:
    """Mark every job of the default plan as done with its current params, without running it: a first
    ``--touch`` records every job's metadata (its outputs missing, each job is due), a second one, after the
    outputs are written, makes them up to date."""
    touch = [snakemake_exe(), "--touch", "--cores", "1", "-q"]
    subprocess.run(touch, cwd=repo, env=env, capture_output=True, check=True)
    summary = subprocess.run([snakemake_exe(), "--summary", "--cores", "1"], cwd=repo, env=env, capture_output=True,
                             text=True, check=True).stdout
    for line in summary.splitlines()[1:]:
        path = repo / line.split("\t")[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".npz":
            np.savez(path, x=np.zeros(1), y=np.zeros(1))  # read back by the dataset check at planning
        else:
            path.write_text("{}" if path.suffix == ".json" else "")
    touched = subprocess.run(touch, cwd=repo, env=env, capture_output=True, text=True)
    assert touched.returncode == 0, touched.stderr[-3000:]


@pytest.mark.slow
def test_a_dry_run_after_a_loss_edit_plans_its_training_and_what_follows(tmp_path):
    import os

    repo = tmp_path / "repo"
    repo.mkdir()
    for part in ("Snakefile", "config.yaml", "workflow", "src", "envs"):
        if (REPO / part).is_dir():
            shutil.copytree(REPO / part, repo / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(REPO / part, repo / part)
    env = {**os.environ, "PYTHONPATH": str(repo / "src")}
    _touch_all_outputs(repo, env)

    def plan() -> tuple[dict[str, int], str]:
        out = subprocess.run([snakemake_exe(), "-n", "--cores", "1"], cwd=repo, env=env, capture_output=True,
                             text=True, check=True).stdout
        return (job_counts(out) if "Job stats:" in out else {}), out

    assert plan()[0] == {}
    with open(repo / "src" / "clbench" / "losses" / "varcon.py", "a") as f:
        f.write("\n\nEDITED = 1\n")
    counts, out = plan()
    # the training and evaluation jobs (those with a method wildcard): VarCon's only, none of CLEAR's
    trained = [line for line in out.splitlines() if line.strip().startswith("wildcards: experiment=") and "method=" in line]
    assert counts.get("pretrain_seeds", 0) + counts.get("pretrain", 0) >= 1
    assert trained and all("method=varcon" in line for line in trained), trained
    assert "evaluate_seeds" in counts or "evaluate" in counts

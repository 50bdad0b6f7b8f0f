"""A tiny sweep through a real `snakemake` run: 4 trials x 2 seeds of GraphCL on the generated graphs (the
cheapest method that trains at smoke scale), selected on the SVC's inner cross-validation, up to the tables and
the HTML report."""

import csv
import json
import statistics

import pytest
import yaml

from test_workflow import snakemake

pytestmark = pytest.mark.slow

SWEEP = "graph_search"
OVERLAY = {
    "datasets": {"graph_classes": {"options": {"n_graphs": 150}}},
    "methods": {"graphcl": {"epochs": 6, "graph": {"eval_epochs": [6]}}},
    "sweeps": {SWEEP: {"experiment": "graph_classes_ssl", "method": "graphcl",
                       "settings": {"loss.temperature": [0.1, 0.2, 0.5], "optimizer.lr": {"log_uniform": [1e-3, 1e-2]}},
                       "fixed": {"epochs": 3, "graph.eval_epochs": [3]}, "trials": 4, "seeds": [0, 1]}},
}
TRIALS = [f"{SWEEP}-t{i}" for i in range(4)]


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sweep")
    overlay = workdir / "sweep.yaml"
    overlay.write_text(yaml.safe_dump(OVERLAY))
    proc = snakemake(workdir, "--config", "experiments=[graph_classes_ssl]", "methods=[graphcl]",
                     configs=("configs/smoke.yaml", str(overlay)))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return workdir / "results"


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def evaluation(results, trial, seed):
    return json.loads((results / "runs" / SWEEP / trial / f"seed{seed}" / "evaluation.json").read_text())


def test_every_trial_is_listed_with_its_validation_score_health_and_selection(sweep_run):
    rows = {r["trial"]: r for r in read_csv(sweep_run / "sweeps" / SWEEP / "trials.csv")}
    assert list(rows) == TRIALS
    for trial, row in rows.items():
        assert row["seeds"] == "0 1" and row["health"] in ("ok", "warn", "failed")
        scores = [evaluation(sweep_run, trial, s)["validation"]["val_svc_top1"] for s in (0, 1)]
        assert float(row["val_mean"]) == pytest.approx(statistics.fmean(scores))
        assert float(row["val_std"]) == pytest.approx(statistics.stdev(scores))
    assert sum(not r["excluded"] for r in rows.values()) >= 2, "too few trials trained to test a selection"
    assert [r["selected"] for r in rows.values()].count("True") == 1


def test_the_selected_trial_is_the_best_validation_mean_and_reports_its_test_numbers(sweep_run):
    selection = json.loads((sweep_run / "sweeps" / SWEEP / "selection.json").read_text())
    rows = [r for r in read_csv(sweep_run / "sweeps" / SWEEP / "trials.csv") if not r["excluded"]]
    assert selection["rule"]["metric"] == "val_svc_top1"
    assert selection["selected"] == max(rows, key=lambda r: float(r["val_mean"]))["trial"]
    assert selection["n_trials"] == 4 and selection["n_excluded"] == 4 - len(rows)
    tests = [evaluation(sweep_run, selection["selected"], s)["metrics"]["svc_top1"] for s in (0, 1)]
    assert selection["test"]["svc_top1"]["mean"] == pytest.approx(statistics.fmean(tests))
    # the sweep's fixed settings train its trials alone
    run = json.loads((sweep_run / "runs" / SWEEP / selection["selected"] / "seed0" / "run.json").read_text())
    base = json.loads((sweep_run / "runs" / "graph_classes_ssl" / "graphcl" / "seed0" / "run.json").read_text())
    assert (run["epochs"], base["epochs"]) == (3, 6)


def test_only_the_selected_trial_enters_the_tables_as_the_sweeps_method(sweep_run):
    selection = json.loads((sweep_run / "sweeps" / SWEEP / "selection.json").read_text())
    for table in (sweep_run / "tables").glob("*.csv"):
        assert f"{SWEEP}-t" not in table.read_text(), table.name
    metrics = [r for r in read_csv(sweep_run / "tables" / "metrics.csv") if r["metric"] == "svc_top1"]
    assert {(r["experiment"], r["method"]) for r in metrics} == {("graph_classes_ssl", "graphcl"),
                                                                 ("graph_classes_ssl", SWEEP)}
    reported = sorted(float(r["value"]) for r in metrics if r["method"] == SWEEP)
    assert reported == sorted(evaluation(sweep_run, selection["selected"], s)["metrics"]["svc_top1"] for s in (0, 1))
    health = [r for r in read_csv(sweep_run / "tables" / "health.csv") if r["method"] == SWEEP]
    assert sorted(r["seed"] for r in health) == ["0", "1"]
    card = {r["setting"]: r for r in read_csv(sweep_run / "tables" / "protocol_graph_classes_ssl.csv")
            if r["scope"] == SWEEP}
    assert card["loss.temperature"]["value"] == f"{selection['settings']['loss.temperature']:g}"
    assert card["loss.temperature"]["source"].startswith("selected on validation from {0.1, 0.2, 0.5} (4 trials")
    assert (card["epochs"]["value"], card["epochs"]["source"]) == ("3", f"set for every trial of sweep {SWEEP} "
                                                                        "(not searched)")


def test_the_report_has_the_sweeps_section_and_its_claims_read_the_selection_alone(sweep_run):
    text = (sweep_run / "report" / "index.html").read_text()
    before, sweeps_section = text.split("<h2 id='sweeps'>Sweeps</h2>")
    sweeps_section = sweeps_section.split("<h2")[0]
    selection = json.loads((sweep_run / "sweeps" / SWEEP / "selection.json").read_text())
    assert f"Selected: <b>{selection['selected']}</b>" in sweeps_section
    assert "every trial with epochs = 3, graph.eval_epochs = [3]" in sweeps_section
    assert all(f"<td>{trial}</td>" in sweeps_section for trial in TRIALS)
    # the papers' sections (their tables, claims and cards) name the sweep as a method, never a trial or an experiment
    assert f"{SWEEP}-t" not in before and f"experiment <code>{SWEEP}</code>" not in before
    assert f"<td>{SWEEP}</td>" in before

"""Sweeps (clbench.sweeps): trials expanded deterministically and checked before any job, planned as ordinary runs,
and selected on validation scores alone, with the runs that failed health excluded and reported."""

import csv
import json
import subprocess

import pytest

from clbench.config import composition
from clbench.ops import invocation, plan
from clbench import sweeps
from clbench import workflow as wf
from clbench.cli import main
from clbench.errors import ConfigError
from conftest import REPO, job_counts, snakemake_exe

SCHEMA = wf.load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")
SMOKE_SWEEP = ("configs/smoke.yaml", "configs/sweep_smoke.yaml")


def resolved(*files, args=()):
    return invocation.resolve_invocation([REPO / f for f in files], args, REPO)[0]


def with_sweep(**sweep):
    layers = composition.config_layers([REPO / "config.yaml"], [REPO / "configs/smoke.yaml"])
    spec = {"experiment": "subembed_digits_on_photos", "method": "subembed",
            "settings": {"loss.temperature": [0.1, 0.5]}, "trials": 3, **sweep}
    return sweeps.expand(composition.resolve([*layers, ("test", {"sweeps": {"s": spec}})], SCHEMA)[0], SCHEMA)


# --------------------------------------------------------------------------------------------------
# expansion


def test_random_trials_are_drawn_deterministically_within_their_distributions():
    sweep = {"settings": {"a": [1, 2, 3], "b": {"uniform": [0.0, 1.0]}, "c": {"log_uniform": [1e-4, 1e-2]}},
             "trials": 20, "sampling_seed": 3}
    trials = sweeps.sample_trials(sweep, "sweeps.s")
    assert trials == sweeps.sample_trials(sweep, "sweeps.s")
    assert trials != sweeps.sample_trials({**sweep, "sampling_seed": 4}, "sweeps.s")
    assert len(trials) == 20
    assert {t["a"] for t in trials} <= {1, 2, 3}
    assert all(0 <= t["b"] <= 1 and 1e-4 <= t["c"] <= 1e-2 for t in trials)


def test_a_grid_runs_every_combination_and_refuses_a_range():
    grid = sweeps.sample_trials({"settings": {"a": [1, 2], "b": [3, 4, 5]}, "grid": True}, "sweeps.s")
    assert len(grid) == 6 and {(t["a"], t["b"]) for t in grid} == {(a, b) for a in (1, 2) for b in (3, 4, 5)}
    with pytest.raises(ConfigError, match=r"sweeps\.s\.settings\.b"):
        sweeps.sample_trials({"settings": {"a": [1], "b": {"uniform": [0, 1]}}, "grid": True}, "sweeps.s")


def test_each_trial_is_the_method_with_its_settings_in_an_experiment_named_as_the_sweep():
    cfg = resolved(*SMOKE_SWEEP)
    exp = cfg["experiments"]["subembed_search"]
    assert exp["methods"] == [f"subembed_search-t{i}" for i in range(4)] and exp["seeds"] == [0, 1]
    assert exp["dataset"] == cfg["experiments"]["subembed_digits_on_photos"]["dataset"]
    spec = sweeps.selection_spec(cfg, "subembed_search")
    for trial, settings in spec["trials"].items():
        method = cfg["methods"][trial]
        assert method["loss"]["temperature"] == settings["loss.temperature"]
        assert method["optimizer"]["lr"] == settings["optimizer.lr"]
        assert method["loss"]["regularizer"] == cfg["methods"]["subembed"]["loss"]["regularizer"]
        assert method["epochs"] == 5  # the sweep's fixed setting, for its trials alone
    assert cfg["methods"]["subembed"]["epochs"] == resolved("configs/smoke.yaml")["methods"]["subembed"]["epochs"] == 2
    # the tables and claims read the sweep through its selection alone
    assert "subembed_search" not in sweeps.reported(cfg)["experiments"]


@pytest.mark.parametrize("sweep, key", [
    ({"settings": {"loss.temperature": [0.1, -1.0]}}, r"sweeps\.s\.settings .*temperature"),
    ({"settings": {"loss.tau": [0.1]}}, r"sweeps\.s\.settings"),
    ({"select": {"split": "test"}}, r"sweeps\.s\.select\.split"),
    ({"select": {"metric": "top1"}}, r"sweeps\.s\.select\.metric"),
    ({"method": "infonce"}, r"sweeps\.s\.method"),
    ({"experiment": "nowhere"}, r"sweeps\.s\.experiment"),
    ({"select": {"metric": "val_svc_top1"}},
     r"sweeps\.s\.select\.metric: 'val_svc_top1'.*\['val_top1', 'val_knn_top1'\]"),
    ({"fixed": {"loss.temperature": 0.2}}, r"sweeps\.s\.fixed\.loss\.temperature: also in settings"),
    ({"fixed": {"epochs": 0}}, r"sweeps\.s\.fixed"),
])
def test_a_bad_sweep_is_refused_before_any_job_naming_its_key(sweep, key):
    with pytest.raises(ConfigError, match=key):
        with_sweep(**sweep)


def test_a_sweep_over_its_budget_is_refused():
    cfg = resolved("configs/paper.yaml")
    plan.check_sweep_budgets(cfg)
    cfg["sweeps"]["subembed_search"]["budget_gpu_hours"] = 0.5
    with pytest.raises(ConfigError, match=r"sweeps\.subembed_search\.budget_gpu_hours: its 12 trials x 3 seeds"):
        plan.check_sweep_budgets(cfg)


def test_plan_counts_the_paper_sweeps_trials_and_their_gpu_hours():
    cfg = resolved("configs/paper.yaml")
    (line,) = plan.sweep_lines(cfg)
    assert line.startswith("sweep subembed_search: 12 trials x 3 seeds = 36 runs,")
    assert plan.plan(cfg)["subembed_search"].gpu_h > 0


def test_a_dry_run_plans_the_trials_as_ordinary_jobs_and_the_selection(tmp_path):
    proc = subprocess.run([snakemake_exe(), "-n", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
                           "--configfile", *[str(REPO / f) for f in ("config.yaml", *SMOKE_SWEEP)]],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    for trial in range(4):
        assert f"runs/subembed_search/subembed_search-t{trial}/seed1/evaluation.json" in proc.stdout
    assert job_counts(proc.stdout)["select_sweep"] == 1
    from collections import Counter
    assert dict(Counter(job.rule for job in plan.planned_jobs(resolved(*SMOKE_SWEEP)))) == job_counts(proc.stdout)


# --------------------------------------------------------------------------------------------------
# selection, end to end through the CLI on constructed evaluation files

HEALTHY = {"status": "ok", "checks": [], "reasons": []}
FAILED = {"status": "failed", "checks": [], "reasons": ["loss ends at 5.53, the loss of constant embeddings (collapse)"]}


def write_runs(root, scores):
    """``scores``: trial -> [(val_top1, test top1, health)] per seed; the evaluation files of each run."""
    paths = []
    for trial, runs in scores.items():
        for seed, (val, test, health) in enumerate(runs):
            path = root / "runs" / "s" / trial / f"seed{seed}" / "evaluation.json"
            path.parent.mkdir(parents=True)
            path.write_text(json.dumps({"metrics": {"top1": test, "val_top1": 0.0}, "health": health,
                                        "validation": {"split": "validation", "probe": "k-NN probe",
                                                       "val_top1": val, "val_knn_top1": None}}))
            paths.append(str(path))
    return paths


def spec(n=4, **select):
    return {"sweep": "s", "experiment": "e", "method": "m", "distributions": {"loss.temperature": "{0.1, 0.5}"},
            "seeds": [0, 1], "trials": {f"s-t{i}": {"loss.temperature": 0.1 * (i + 1)} for i in range(n)},
            "select": {"metric": "val_top1", "split": "val", "direction": "max", **select}}


def run_select(tmp_path, scores, **select):
    out = tmp_path / "sweeps" / "s"
    code = main(["sweep", "select", "--spec", json.dumps(spec(**select)), "--out-dir", str(out),
                 *write_runs(tmp_path, scores)])
    assert code in (0, None)
    with open(out / "trials.csv") as f:
        return json.loads((out / "selection.json").read_text()), list(csv.DictReader(f))


SCORES = {  # t1: best validation; t2: better test, worse validation; t3: best validation but a failed run
    "s-t0": [(0.50, 0.50, HEALTHY), (0.52, 0.50, HEALTHY)],
    "s-t1": [(0.80, 0.60, HEALTHY), (0.78, 0.62, HEALTHY)],
    "s-t2": [(0.70, 0.95, HEALTHY), (0.72, 0.97, HEALTHY)],
    "s-t3": [(0.99, 0.99, HEALTHY), (0.98, 0.99, FAILED)],
}


def test_the_selection_picks_the_best_validation_mean_ignoring_a_better_test_score(tmp_path):
    selection, rows = run_select(tmp_path, SCORES)
    assert selection["selected"] == "s-t1"
    assert selection["test"]["top1"]["mean"] == pytest.approx(0.61)
    assert selection["test"]["top1"]["n"] == 2
    assert selection["settings"] == {"loss.temperature": pytest.approx(0.2)}
    assert [r["selected"] for r in rows] == ["False", "True", "False", "False"]
    assert float(rows[1]["val_mean"]) == pytest.approx(0.79)


def test_a_trial_with_a_failed_run_is_excluded_counted_and_reported(tmp_path):
    selection, rows = run_select(tmp_path, SCORES)
    assert selection["excluded"] == ["s-t3"] and selection["n_excluded"] == 1 and selection["n_trials"] == 4
    t3 = rows[3]
    assert t3["health"] == "failed" and "seed 1: failed health: loss ends at 5.53" in t3["excluded"]


def test_the_direction_min_picks_the_lowest_validation_score(tmp_path):
    selection, _ = run_select(tmp_path, SCORES, direction="min")
    assert selection["selected"] == "s-t0"


@pytest.mark.parametrize("select", [{"split": "test"}, {"metric": "top1"}])
def test_the_selection_fails_when_its_rule_reads_test(tmp_path, select):
    with pytest.raises(ValueError, match="validation"):
        run_select(tmp_path, SCORES, **select)


def test_the_selection_reads_no_test_metric():
    evaluation = {"metrics": {"top1": 0.9}, "tables": {"x": []}, "validation": {"val_top1": 0.5}, "health": HEALTHY}
    assert set(sweeps.validation_view(evaluation)) == {"validation", "health"}
    runs = {"a": {0: sweeps.validation_view(evaluation)}}
    assert sweeps.select(runs, {"metric": "val_top1"})["trials"]["a"]["val_mean"] == 0.5


def test_a_score_measured_on_test_for_want_of_a_validation_split_is_excluded():
    view = {"validation": {"split": "test (the dataset has no validation split)", "val_top1": 0.9}, "health": HEALTHY}
    good = {"validation": {"split": "validation", "val_top1": 0.1}, "health": HEALTHY}
    result = sweeps.select({"a": {0: view}, "b": {0: good}}, {"metric": "val_top1"})
    assert result["selected"] == "b" and "no validation split" in result["trials"]["a"]["excluded"]


def test_with_every_trial_excluded_no_trial_is_selected_and_none_enters_the_tables(tmp_path):
    failed = {t: [(v, x, FAILED) for v, x, _ in runs] for t, runs in SCORES.items()}
    selection, rows = run_select(tmp_path, failed)
    assert selection["selected"] is None and selection["n_excluded"] == 4 and selection["test"] == {}
    assert all(r["excluded"] and r["selected"] == "False" for r in rows)
    assert sweeps.selected_runs([tmp_path / "sweeps" / "s" / "selection.json"], tmp_path / "runs") == {}
    from clbench.report.html import sweeps_html

    assert "No trial selected" in sweeps_html(tmp_path)


def test_only_the_selected_trials_test_numbers_enter_the_tables_as_the_sweeps_method(tmp_path):
    run_select(tmp_path, SCORES)
    other = tmp_path / "runs" / "e" / "m" / "seed0" / "evaluation.json"
    other.parent.mkdir(parents=True)
    other.write_text(json.dumps({"metrics": {"top1": 0.4}, "health": HEALTHY}))
    code = main(["report", "collect", "--runs-root", str(tmp_path / "runs"), "--experiments",
                 json.dumps({"e": {"paper": "unpublished"}}),
                 "--sweep-selections", str(tmp_path / "sweeps" / "s" / "selection.json"),
                 "--out-dir", str(tmp_path / "tables"), str(other)])
    assert code in (0, None)
    with open(tmp_path / "tables" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["metric"] == "top1"]
    assert {(r["experiment"], r["method"]) for r in rows} == {("e", "m"), ("e", "s")}
    assert sorted(float(r["value"]) for r in rows if r["method"] == "s") == [0.60, 0.62]


def test_the_card_of_the_swept_experiment_names_the_sweep_as_the_source_of_its_settings():
    from clbench.papers import PAPERS
    from clbench.papers.targets import planned_experiment
    from clbench.report.protocol import protocol_card

    cfg = sweeps.reported(resolved(*SMOKE_SWEEP))
    record = planned_experiment(cfg, "subembed_digits_on_photos")
    selection = {"subembed_search": {"settings": {"loss.temperature": 0.2, "loss.weight": 1.5, "optimizer.lr": 0.001}}}
    rows = {r["setting"]: r for r in protocol_card(record, PAPERS, selections=selection) if r["scope"] == "subembed_search"}
    assert set(rows) == {"loss.temperature", "loss.weight", "optimizer.lr", "epochs"}
    assert (rows["epochs"]["value"], rows["epochs"]["source"]) == ("5", "set for every trial of sweep subembed_search "
                                                                        "(not searched)")
    assert rows["loss.temperature"]["value"] == "0.2"
    assert rows["loss.temperature"]["source"].startswith("selected on validation from {0.1, 0.2, 0.5} (4 trials; sweep "
                                                         "subembed_search")
    assert rows["optimizer.lr"]["source"].startswith("selected on validation from log-uniform [0.0003, 0.003] (4 trials")
    planned = {r["setting"]: r for r in protocol_card(record, PAPERS) if r["scope"] == "subembed_search"}
    assert planned["loss.weight"]["value"] == "selected on validation"
    assert not sweeps.reported(resolved("configs/smoke.yaml"))["experiments"]["subembed_digits_on_photos"].get("sweeps")


def test_the_report_shows_each_sweeps_trials_and_the_selected_trials_test_numbers(tmp_path):
    from clbench.report.html import sweeps_html

    run_select(tmp_path, SCORES)
    text = sweeps_html(tmp_path)
    assert "Sweep <code>s</code>" in text and "Selected: <b>s-t1</b>" in text and "1 trial(s) excluded" in text
    assert all(f"s-t{i}" in text for i in range(4)) and "loss ends at 5.53" in text
    assert "61.0 ± " in text  # the selected trial's mean test top-1, in % like the papers' tables
    assert "validation val_<wbr>top1</th>" in text and "val_mean" not in text
    assert sweeps_html(tmp_path / "elsewhere") == ""


def test_config_show_names_the_sweep_as_the_origin_of_its_trials(capsys):
    assert main(["config", "show", "--directory", str(REPO), "--configfile", str(REPO / "configs/paper.yaml")]) in (0, None)
    lines = capsys.readouterr().out.splitlines()
    assert "methods.subembed_search-t0.loss.temperature: 0.6275  # sweeps.subembed_search" in lines
    assert any(line.startswith('sweeps.subembed_search.settings.loss.temperature.log_uniform: [0.05, 1.0]')
               for line in lines)


def test_a_selection_that_leaves_out_the_swept_experiment_leaves_out_its_sweep():
    cfg = resolved("configs/paper.yaml", args=["papers=[mcl]"])
    assert not cfg["sweeps"] and "subembed_search" not in cfg["experiments"]
    assert not any(m.startswith("subembed_search-") for m in cfg["methods"])
    assert "subembed_search" in resolved("configs/paper.yaml", args=["papers=[subembed]"])["experiments"]


# --------------------------------------------------------------------------------------------------
# graph experiments: the validation score is the inner cross-validation on the training folds


def test_the_graph_validation_score_never_reads_the_outer_test_fold():
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    from clbench.evaluate.graph_svc import svc_cross_validation

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    x = rng.normal(size=(80, 4)) + 6 * y[:, None]
    before = svc_cross_validation(x, y, seed=0)
    _, test = next(StratifiedKFold(n_splits=10, shuffle=True, random_state=0).split(x, y))
    flipped = x.copy()
    flipped[test] = rng.normal(size=(len(test), 4)) + 6 * (1 - y[test, None])  # the test fold: the other class
    after = svc_cross_validation(flipped, y, seed=0)
    assert before[0]["accuracy"] == 1.0 and after[0]["accuracy"] == 0.0  # the test metric reads the test fold ...
    assert after[0]["inner_accuracy"] == before[0]["inner_accuracy"] > 0.9  # ... the validation score does not


def test_a_graph_evaluation_records_the_mean_inner_score_of_its_last_epoch_as_validation(monkeypatch):
    import types

    import numpy as np
    import torch

    from clbench.data import graphs
    from clbench.evaluate import graph_svc

    rng = np.random.default_rng(1)
    y = np.repeat([0, 1, 2], 20)
    embeddings = {5: rng.normal(size=(60, 3)), 10: rng.normal(size=(60, 3)) + 2 * y[:, None]}
    monkeypatch.setattr(graphs, "num_graphs", lambda split: len(split["y"]))
    monkeypatch.setattr(graphs, "graph", lambda split, i: i)
    monkeypatch.setattr(graph_svc, "embed_graphs", lambda enc, _graphs, _device: torch.as_tensor(embeddings[enc]))
    run = types.SimpleNamespace(train={"y": y}, model=types.SimpleNamespace(encoders=lambda: {5: 5, 10: 10}),
                                device="cpu", seed=0)
    result = graph_svc.evaluate_graph_svc(run)
    last = [r for r in result["tables"]["graph_svc"] if r["epoch"] == 10]
    validation = result["validation"]
    assert validation["split"] == "validation" and set(validation) >= set(sweeps.GRAPH_VALIDATION_METRICS)
    assert validation["val_svc_top1"] == pytest.approx(np.mean([r["inner_accuracy"] for r in last]))
    assert validation["val_svc_top1"] != pytest.approx(result["metrics"]["svc_top1"])  # not the outer test folds'
    assert sweeps.validation_view({**result, "health": HEALTHY})["validation"] == validation


def graph_sweep(**select):
    return with_sweep(experiment="graph_classes_ssl", method="graphcl", settings={"loss.temperature": [0.1, 0.5]},
                      **({"select": select} if select else {}))


def test_a_sweep_on_a_graph_experiment_selects_on_the_inner_cross_validation_score():
    cfg = graph_sweep()
    spec = sweeps.selection_spec(cfg, "s")
    assert spec["select"]["metric"] == "val_svc_top1"
    assert cfg["methods"]["s-t0"]["objective"] == cfg["methods"]["graphcl"]["objective"]
    view = lambda val: {"validation": {"split": "validation", "val_svc_top1": val}, "health": HEALTHY}  # noqa: E731
    runs = {"s-t0": {0: view(0.70), 1: view(0.72)}, "s-t1": {0: view(0.81), 1: view(0.79)},
            "s-t2": {0: view(0.60), 1: view(0.62)}}
    result = sweeps.select(runs, spec["select"])
    assert result["selected"] == "s-t1" and result["trials"]["s-t1"]["val_mean"] == pytest.approx(0.80)


def test_a_graph_sweep_refuses_an_image_validation_score_naming_the_valid_one():
    with pytest.raises(ConfigError, match=r"sweeps\.s\.select\.metric: 'val_top1'.*graph_svc.*\['val_svc_top1'\]"):
        graph_sweep(metric="val_top1")

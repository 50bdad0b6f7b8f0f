"""Protocol cards: every experiment's settings with their values and sources, read from what the runs
recorded (run.json, evaluation.json, meta.json), written by the report stage and shown in the report."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import yaml

from clbench import workflow as wf
from clbench.cli import main
from clbench.papers import PAPERS
from clbench.papers.targets import ReportTargets, planned_experiment
from clbench.report.paper import ExperimentRecord, Paper, Source
from clbench.report.protocol import (
    ALL_METHODS,
    CARD_COLUMNS,
    EVALUATION_READS,
    MLP_HIDDEN,
    MLP_PROBE_KEYS,
    PROBE_DEFAULTS,
    PROBE_FREE_EVALUATIONS,
    card_counts,
    format_value,
    protocol_card,
    read_card,
    recorded_experiment,
    source_text,
)
from conftest import REPO

SCHEMA = wf.load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")
CATEGORIES = {"architecture", "objective", "optimiser", "schedule", "epochs", "batch", "augmentation",
              "data recipe", "evaluation protocol", "seeds"}


def resolved(*overlays: str) -> dict:
    """config.yaml with the overlays composed over it, as the workflow composes ``--configfile``s; validated
    and checked."""
    from clbench.config import composition

    layers = composition.config_layers([REPO / "config.yaml"], [REPO / path for path in overlays])
    cfg, _ = composition.resolve(layers, SCHEMA)
    wf.check_config(cfg, SCHEMA)
    return cfg


@pytest.fixture(scope="module")
def paper_cfg():
    return resolved("configs/paper.yaml")


@pytest.fixture(scope="module")
def tiny_cfg():
    return resolved()


def card(cfg, experiment):
    return protocol_card(planned_experiment(cfg, experiment), PAPERS)


def rows_of(rows, setting, scope=None):
    return [r for r in rows if r["setting"] == setting and (scope is None or r["scope"] in (scope, ALL_METHODS))]


# ---- every experiment has a complete card ----------------------------------------------------------


@pytest.mark.parametrize("config", ["paper", "tiny"])
def test_every_experiment_has_a_card_with_a_source_for_every_setting(config, paper_cfg, tiny_cfg):
    cfg = paper_cfg if config == "paper" else tiny_cfg
    for experiment in cfg["experiments"]:
        rows = card(cfg, experiment)
        assert rows, experiment
        for r in rows:
            assert set(r) == set(CARD_COLUMNS), experiment
            assert r["source"].strip() and r["value"].strip() and r["setting"].strip(), (experiment, r)
        categories = {r["category"] for r in rows}
        assert CATEGORIES <= categories, (experiment, CATEGORIES - categories)
        # a sweep of the experiment reports as a method of its own name, beside the experiment's methods
        swept = {name for name, sweep in cfg.get("sweeps", {}).items() if sweep["experiment"] == experiment}
        methods = set(cfg["experiments"][experiment]["methods"])
        scopes = {r["scope"] for r in rows if r["category"] == "optimiser"} - swept
        assert scopes == {ALL_METHODS} or scopes <= methods, (experiment, scopes)


def test_paper_scale_cards_cite_the_papers_and_their_code(paper_cfg):
    """Spot checks: the values the papers' official code states are on the cards with that code's file."""
    adnce = {"adnce_cifar10": (0.4, 0.7, 0.5), "adnce_cifar100": (0.3, 0.5, 1.0), "adnce_stl10": (0.2, 0.8, 1.0)}
    for experiment, (t, mu, sigma) in adnce.items():
        rows = card(paper_cfg, experiment)
        for setting, value in (("loss.temperature", t), ("loss.mu", mu), ("loss.sigma", sigma)):
            (row,) = rows_of(rows, setting, "adnce")
            assert row["value"] == f"{value:g}" and row["source"].startswith("ADNCE official code, image/README.md")
        (epochs,) = rows_of(rows, "epochs")
        assert epochs["value"] == "400" and epochs["source"] == "ADNCE official code, image/train_test.sh"
        (k,) = rows_of(rows, "knn.k")
        assert k["source"].startswith("ADNCE official code, image/train_test.sh")
    rows = card(paper_cfg, "clear_ood_k1")
    (lr,) = rows_of(rows, "optimizer.lr", "cnn")
    assert lr["value"] == "0.0001" and "get_cnn_trainer" in lr["source"] and not lr["source"].startswith("assumed")
    rows = card(paper_cfg, "varcon_cifar100")
    (eps,) = rows_of(rows, "loss.epsilon", "varcon")
    assert eps["source"].startswith("VarCon official code, README.md")
    (lr,) = rows_of(rows, "probe.lr")
    assert lr["value"] == "5" and lr["source"].startswith("VarCon official code, README.md (Linear Evaluation)")


def one(rows, setting, scope=None):
    (row,) = rows_of(rows, setting, scope)
    return row


def test_every_card_says_how_the_linear_probe_trains(paper_cfg, tiny_cfg):
    """features (cached features of the training images) or augmented (augmented images through the
    frozen encoder, with its recipe): ADNCE's and VarCon's protocols, sourced; the tiny scale's features."""
    for cfg in (paper_cfg, tiny_cfg):
        for experiment in cfg["experiments"]:
            rows = card(cfg, experiment)
            if set(cfg["experiments"][experiment]["evaluations"]) <= PROBE_FREE_EVALUATIONS | {"sts"}:
                assert not rows_of(rows, "probe.protocol"), experiment  # the graph SVC fits no probe
                continue
            protocol = one(rows, "probe.protocol")
            assert protocol["category"] == "evaluation protocol"
            augmented = cfg is paper_cfg and experiment.startswith(("adnce_", "varcon_"))
            assert protocol["value"] == ("augmented" if augmented else "features"), experiment
            assert bool(rows_of(rows, "probe.augment")) is augmented, experiment
            assert not rows_of(rows, "probe.num_workers")  # operational
    for experiment in ("adnce_cifar10", "adnce_cifar100"):
        rows = card(paper_cfg, experiment)
        assert one(rows, "probe.protocol")["source"].startswith("ADNCE official code, image/linear.py")
        assert one(rows, "probe.augment")["value"] == "simclr"
        assert one(rows, "probe.augment")["source"].startswith("ADNCE official code, image/utils.py train_transform")
    # STL-10: the official probe trains on 32 px crops of the 96 px images, and so does this one
    rows = card(paper_cfg, "adnce_stl10")
    assert one(rows, "probe.augment")["source"].startswith("ADNCE official code, image/utils.py train_transform")
    crop = one(rows, "probe.crop_size")
    assert crop["value"] == "32" and "RandomResizedCrop(32)" in crop["source"]
    for experiment in ("varcon_digits", "varcon_cifar100"):
        rows = card(paper_cfg, experiment)
        assert one(rows, "probe.augment")["value"] == "crop_flip"
        assert one(rows, "probe.augment")["source"].startswith("VarCon official code, main_linear.py")
        assert one(rows, "probe.protocol")["source"].startswith("VarCon official code, README.md (Linear Evaluation)")


def test_clear_cards_carry_the_mlp_probe_and_the_cnn_baseline(paper_cfg):
    for experiment in ("clear_ood_k1", "pacs_ood_k2", "clear_celeba", "clear_camelyon17", "clear_styled"):
        rows = card(paper_cfg, experiment)
        lr = one(rows, "mlp_probe.lr")
        assert lr["value"] == "0.0003" and "experiment_helper()" in lr["source"], experiment
        assert not lr["source"].startswith("assumed")
        for key in ("hidden_dim", "optimizer", "weight_decay", "epochs", "batch_size", "schedule", "standardize"):
            row = one(rows, f"mlp_probe.{key}")
            assert row["category"] == "evaluation protocol" and not row["source"].startswith(("assumed", "not set")), \
                (experiment, row)
        # the linear probe is not the official protocol: its settings are not cited for the MLP probe's values
        assert one(rows, "probe.lr")["source"] == "assumed"
    assert one(card(paper_cfg, "clear_camelyon17"), "mlp_probe.epochs")["value"] == "1"
    rows = card(paper_cfg, "clear_ood_k1")
    for setting, value in (("encoder.name", "small_cnn"), ("encoder.pool", "flatten"), ("classifier.kind", "mlp"),
                           ("classifier.hidden_dim", "256")):
        row = one(rows, setting, "cnn")
        assert row["category"] == "architecture" and row["value"] == value
        assert row["source"].startswith("CLEAR official code, code/src/models/cnn.py SimpleCNNClassifier"), row
    assert not rows_of(rows, "encoder.feature_dim")  # a flattened map has no further layer
    # at 64 px the official baseline has five 4x4 convs, and so does the card's
    depth = one(card(paper_cfg, "pacs_ood_k1"), "encoder.layers", "cnn")
    assert depth["value"] == "5"
    assert depth["source"].startswith("CLEAR official code, code/src/models/cnn.py SimpleCNN64Classifier")
    assert one(card(paper_cfg, "pacs_ood_k1"), "encoder.pool", "cnn")["source"].startswith("CLEAR official code")


def test_cards_show_only_settings_the_model_reads(paper_cfg):
    rows = card(paper_cfg, "clear_ood_k1")
    for setting in ("vae.penalty_weight", "vae.estimator_lr", "vae.estimator_steps", "vae.estimator_latents"):
        assert not rows_of(rows, setting, "clear"), setting  # PS-SNN has no MI estimator
        assert rows_of(rows, setting, "clear_tc") and rows_of(rows, setting, "clear_club"), setting
    assert not [r for r in rows if r["setting"].startswith("classifier.") and r["scope"] != "cnn"]
    varcon = card(paper_cfg, "varcon_digits")
    kind = one(varcon, "classifier.kind", "cnn")
    assert kind["value"] == "linear" and kind["category"] == "architecture"  # the unset head, linear
    assert not rows_of(varcon, "classifier.hidden_dim") and not rows_of(varcon, "encoder.pool")
    assert not {r["category"] for r in varcon if r["setting"].startswith(("classifier.", "encoder."))} - {
        "architecture"}


def test_the_ood_design_is_on_the_card_and_read_from_meta_json(paper_cfg, tmp_path):
    for experiment, where in (("clear_ood_k1", "code/expr/expr_utils.py generate_style_dict"),
                              ("pacs_ood_k3", "code/run_pacs_downstream_expr.py generate_style_dict")):
        design = one(card(paper_cfg, experiment), "ood_design")
        assert design["value"] == "random" and design["category"] == "data recipe"
        assert design["source"].startswith(f"CLEAR official code, {where}"), design
    # an independent recipe draws no OOD split: neither k nor the design is on its card
    assert not rows_of(card(paper_cfg, "clear_styled"), "ood_design") and not rows_of(card(paper_cfg, "clear_styled"), "k")
    # what the dataset's meta.json recorded is what the card shows
    planned = planned_experiment(paper_cfg, "pacs_ood_k1")
    cyclic = {"generator": "pacs", "recipe": "ood_k", "k": 1, "ood_design": "cyclic", "image_size": 64,
              "val_fraction": 0.1, "seed": 0}
    files = write_runs(tmp_path, "pacs_ood_k1", dict(planned.methods), seeds=(0,), dataset=cyclic)
    record, provenance = recorded_experiment(files, planned)
    assert "meta.json" in provenance
    design = one(protocol_card(record, PAPERS, provenance), "ood_design")
    assert design["value"] == "cyclic" and design["source"].startswith("assumed; CLEAR official code")
    assert design["source"].endswith("gives random")


def test_the_mcl_card_shows_the_batch_sampler_its_stages_recorded(paper_cfg, tmp_path):
    planned = planned_experiment(paper_cfg, "trifeature_ssl")
    rows = protocol_card(planned, PAPERS)
    for setting, value in (("batch_sampler.one_cluster_per_batch", "unset (true)"),
                           ("batch_sampler.small_clusters", "unset (skip)"), ("batch_sampler.drop_last", "unset (true)")):
        row = one(rows, setting, "mcl")
        assert row["value"] == value and row["category"] == "batch"
        assert row["source"].startswith("MCL official code, my_training/data.py MCL_batch_sampler_DDP")
    specs = {m: {k: v for k, v in s.items() if k != "mcl"} for m, s in planned.methods.items()}
    files = write_runs(tmp_path, "trifeature_ssl", specs, seeds=(0, 1), stage_runs={"mcl": 3})
    for f in files:  # stage 0 shuffles plainly; stages 1 and 2 draw each batch from one cluster
        if f.name == "run.json" and f.parent.parent.name == "mcl":
            info = json.loads(f.read_text())
            seed = int(f.parent.name[-1])  # the clusters, and so the clusters and samples used, vary with the seed
            info["stage_batch_samplers"] = [None, sampler_summary(seed), sampler_summary(seed)]
            f.write_text(json.dumps(info))
    summary = sampler_summary(0)
    record, _ = recorded_experiment(files, planned)
    rows = protocol_card(record, PAPERS)
    assert one(rows, "batch_sampler.one_cluster_per_batch", "mcl")["value"] == "true"
    assert one(rows, "batch_sampler.small_clusters", "mcl")["value"] == "skip"
    assert one(rows, "batch_sampler.small_clusters", "mcl")["source"].startswith("MCL official code")
    assert not rows_of(rows, "batch_sampler.one_cluster_per_batch", "infonce")
    mixed = tmp_path / "runs" / "trifeature_ssl" / "mcl" / "seed0" / "run.json"
    info = json.loads(mixed.read_text())
    info["stage_batch_samplers"] = [None, {**summary, "small_clusters": "merge", "mixed_batches": 2},
                                    {**summary, "small_clusters": "merge", "mixed_batches": 1}]
    mixed.write_text(json.dumps(info))
    with pytest.raises(ValueError, match="different settings"):  # seed1 recorded the official sampler
        recorded_experiment(files, planned)
    record, _ = recorded_experiment([f for f in files if "seed1" not in str(f)], planned)
    rows = protocol_card(record, PAPERS)
    row = one(rows, "batch_sampler.one_cluster_per_batch", "mcl")
    assert row["value"] == "false" and row["source"].startswith("assumed; MCL official code")
    row = one(rows, "batch_sampler.small_clusters", "mcl")
    assert row["value"] == "merge" and row["source"].startswith("assumed; MCL official code")


def sampler_summary(seed: int, **options) -> dict:
    """What a stage's run.json records of its batch sampler: the sampler's own summary."""
    import numpy as np

    from clbench.data.samplers import ClusterBatchSampler

    ids = np.random.default_rng(seed).integers(0, 10, size=600)
    return ClusterBatchSampler(ids, batch_size=32, seed=seed, **options).summary()


def test_card_defaults_are_the_evaluate_jobs():
    """The card fills in the evaluate job's values for unset probe settings; they must be the job's own."""
    from clbench.evaluate.linear_probe import MLP_HIDDEN as PROBE_MLP_HIDDEN
    from clbench.evaluate.runner import DEFAULTS

    assert {k: DEFAULTS["probe"][k] for k in PROBE_DEFAULTS} == PROBE_DEFAULTS
    assert MLP_HIDDEN == PROBE_MLP_HIDDEN
    assert set(MLP_PROBE_KEYS) == set(SCHEMA["$defs"]["mlp_probe_settings"]["properties"])


def test_a_value_that_differs_from_its_source_reads_assumed(tiny_cfg):
    rows = card(tiny_cfg, "clear_ood_k3")  # tiny: CLEAR trains 5 epochs where the official script trains 41
    (epochs,) = rows_of(rows, "epochs", "clear")
    assert epochs["value"] == "5"
    assert epochs["source"] == "assumed; CLEAR official code, code/run_styledmnist_downstream_expr.py (epochs) gives 41"


# ---- the values come from what the runs recorded ---------------------------------------------------


def write_runs(results, experiment, specs, seeds=(0, 1), evaluation=None, dataset=None, stage_runs=None):
    """run.json (and evaluation.json) for every method and seed, and the dataset's meta.json."""
    files = []
    for method, spec in specs.items():
        for seed in seeds:
            run = results / "runs" / experiment / method / f"seed{seed}"
            run.mkdir(parents=True, exist_ok=True)
            info = {"spec": spec, "seed": seed} if stage_runs is None or method not in stage_runs else \
                {"stages": stage_runs[method], "stage_runs": [{"spec": spec}] * stage_runs[method], "seed": seed}
            (run / "run.json").write_text(json.dumps(info))
            ev = {"metrics": {"linear_top1": 0.5}, "tables": {}}
            if evaluation is not None:
                ev["spec"] = evaluation
            (run / "evaluation.json").write_text(json.dumps(ev))
            files += [run / "run.json", run / "evaluation.json"]
    meta = results / "data" / "d" / "meta.json"
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({"generator": "x", **({"spec": dataset} if dataset is not None else {})}))
    return files + [meta]


def test_the_card_reads_run_json_evaluation_json_and_meta_json(tiny_cfg, tmp_path):
    planned = planned_experiment(tiny_cfg, "trifeature_ssl")
    recorded_specs = {m: json.loads(json.dumps(s)) for m, s in planned.methods.items()}
    recorded_specs["adnce"]["optimizer"]["lr"] = 0.0123  # what the run recorded, not what the config says
    for spec in recorded_specs.values():
        spec.pop("mcl", None)  # an MCL run's stages are given the spec without its stage block
    evaluation = {**planned.evaluation, "probe": {**planned.evaluation["probe"], "epochs": 7}}
    dataset = {**planned.dataset, "n_train": 1234}
    files = write_runs(tmp_path, "trifeature_ssl", recorded_specs, evaluation=evaluation, dataset=dataset,
                       stage_runs={"mcl": tiny_cfg["methods"]["mcl"]["mcl"]["stages"]})
    record, provenance = recorded_experiment(files, planned)
    assert record.seeds == (0, 1) and list(record.methods) == list(planned.methods)
    assert record.methods["adnce"]["optimizer"]["lr"] == 0.0123
    assert record.methods["mcl"]["mcl"] == tiny_cfg["methods"]["mcl"]["mcl"]  # the stage block, from the plan
    assert "run.json of 6 runs" in provenance and "evaluation.json" in provenance and "meta.json" in provenance
    rows = protocol_card(record, PAPERS, provenance)
    (lr,) = rows_of(rows, "optimizer.lr", "adnce")
    assert lr["value"] == "0.0123" and lr["scope"] == "adnce"
    assert rows_of(rows, "probe.epochs")[0]["value"] == "7"
    assert rows_of(rows, "n_train")[0]["value"] == "1234"
    assert rows_of(rows, "seeds")[0]["value"] == "0, 1"
    assert rows_of(rows, "mcl.clusters", "mcl")[0]["value"] == str(tiny_cfg["methods"]["mcl"]["mcl"]["clusters"])


def test_parts_no_file_recorded_come_from_the_plan_and_say_so(tiny_cfg, tmp_path):
    planned = planned_experiment(tiny_cfg, "varcon_digits")
    files = write_runs(tmp_path, "varcon_digits", dict(planned.methods), seeds=(0,))
    record, provenance = recorded_experiment(files, planned)
    assert record.evaluation == planned.evaluation and record.dataset == planned.dataset
    assert "the configuration for the evaluation" in provenance and "the configuration for the data" in provenance


def test_recorded_runs_are_checked(tiny_cfg, tmp_path):
    planned = planned_experiment(tiny_cfg, "trifeature_ssl")
    specs = {m: {k: v for k, v in s.items() if k != "mcl"} for m, s in planned.methods.items()}
    files = write_runs(tmp_path / "a", "trifeature_ssl", specs, stage_runs={"mcl": 5})
    with pytest.raises(ValueError, match="recorded 5 stages"):
        recorded_experiment(files, planned)
    files = write_runs(tmp_path / "b", "trifeature_ssl", specs, seeds=(0,))
    other = tmp_path / "b" / "runs" / "trifeature_ssl" / "adnce" / "seed1"
    other.mkdir(parents=True)
    (other / "run.json").write_text(json.dumps({"spec": {**specs["adnce"], "epochs": 99}}))
    with pytest.raises(ValueError, match="different settings"):
        recorded_experiment([*files, other / "run.json"], planned)
    with pytest.raises(ValueError, match="no run.json"):
        recorded_experiment([f for f in files if f.name != "run.json"], planned)


# ---- sources --------------------------------------------------------------------------------------


def test_source_text():
    where = "X official code, train.py"
    assert source_text(0.1, None) == "assumed"
    assert source_text(0.1, Source(where, 0.1)) == where
    assert source_text(0.1 + 1e-12, Source(where, 0.1)) == where
    assert source_text(0.2, Source(where, 0.1)) == f"assumed; {where} gives 0.1"
    assert source_text([60, 75, 90], Source(where, [60, 75, 90])) == where
    assert source_text(True, Source(where, 1)) == f"assumed; {where} gives 1"
    assert source_text("anything", Source(where)) == where


def toy_record(**methods) -> ExperimentRecord:
    return ExperimentRecord(experiment="toy_exp", papers=("toy",), methods=methods,
                            dataset={"generator": "styled_mnist", "k": 2, "root": "/somewhere"},
                            evaluation={"evaluations": ["linear_probe"], "probe": {"lr": 0.01},
                                        "knn": {"k": 200}}, seeds=(0, 1, 2), config={})


def test_sources_come_from_the_experiments_papers_and_shared_settings_are_one_row():
    def protocol(record):
        return {m: {"optimizer.lr": Source("Toy paper, Table 3", 0.001),
                    "encoder.stem": Source("toy code, model.py", "cifar", unset="cifar")}
                for m in record.methods_with(objective="supcon")} | {"data": {"k": Source("Toy paper, Sec. 4", 2)}}

    papers = {"toy": Paper(key="toy", title="Toy", heading="Toy", summary="", citation="", protocol=protocol)}
    spec = {"objective": "supcon", "optimizer": {"name": "adam", "lr": 0.001, "momentum": 0.9},
            "encoder": {"name": "resnet18"}, "compile": True, "num_workers": 4, "epochs": 5}
    rows = protocol_card(toy_record(a=spec, b={**spec, "epochs": 6}), papers)
    (lr,) = rows_of(rows, "optimizer.lr")
    assert lr["scope"] == ALL_METHODS and lr["source"] == "Toy paper, Table 3"
    assert {r["scope"] for r in rows_of(rows, "epochs")} == {"a", "b"}  # different values: one row each
    (stem,) = rows_of(rows, "encoder.stem")
    assert stem["value"] == "unset (cifar)" and stem["source"] == "toy code, model.py"
    assert rows_of(rows, "k")[0]["source"] == "Toy paper, Sec. 4"
    settings = {r["setting"] for r in rows}
    assert not settings & {"compile", "num_workers", "optimizer.momentum", "root", "knn.k"}
    assert rows_of(rows, "loss.temperature")[0]["source"] == "assumed"  # the objective's default, unsourced
    counts = card_counts(rows)
    assert counts["settings"] == len(rows) - 1 and counts["sourced"] >= 3 and counts["not set"] == 0
    # without the paper, every setting is assumed
    bare = protocol_card(toy_record(a=spec), {})
    assert all(r["source"] in ("assumed", "not applicable") for r in bare)


# ---- the report stage writes and shows the cards ------------------------------------------------------


def test_the_report_command_writes_the_card_and_the_report_shows_it(tiny_cfg, tmp_path):
    planned = planned_experiment(tiny_cfg, "varcon_digits")
    results = tmp_path / "results"
    files = write_runs(results, "varcon_digits", dict(planned.methods), seeds=(0,), evaluation=planned.evaluation,
                       dataset=planned.dataset)
    out = results / "tables" / "protocol_varcon_digits.csv"
    main(["report", "protocol", "--planned", json.dumps(planned.to_dict()), "--out", str(out), *map(str, files)])
    with open(out, newline="") as f:
        assert tuple(next(csv.reader(f))) == CARD_COLUMNS
    rows = read_card(out)
    assert rows_of(rows, "loss.epsilon", "varcon")[0]["source"].startswith("VarCon official code")

    from clbench.report.html import protocol_card_html

    shown = protocol_card_html(results, "varcon_digits")
    assert "Protocol card:" in shown and "tables/protocol_varcon_digits.csv" in shown and "loss.epsilon" in shown
    assert protocol_card_html(results, "no_such_experiment") == ""


def test_the_workflow_plans_one_card_per_experiment(tiny_cfg):
    targets = ReportTargets(tiny_cfg)
    assert targets.protocol_cards == [f"results/tables/protocol_{e}.csv" for e in tiny_cfg["experiments"]]
    assert set(targets.protocol_cards) <= set(targets.report_inputs())
    inputs = targets.protocol_inputs(SimpleNamespace(experiment="varcon_digits"))
    assert "results/runs/varcon_digits/varcon/seed0/run.json" in inputs
    assert "results/runs/varcon_digits/varcon/seed0/evaluation.json" in inputs
    assert inputs[-1] == "results/data/styled_digits/meta.json"
    plan = json.loads(targets.protocol_plan(SimpleNamespace(experiment="varcon_digits")))
    assert ExperimentRecord.from_dict(plan) == planned_experiment(tiny_cfg, "varcon_digits")


# ---- every card row is the value its runs recorded --------------------------------------------------------
# For every experiment of both configurations, the files its runs would write are written from the resolved
# configuration as the jobs write them (run.json: clbench.train.loop.finish, a multistage run's
# clbench.train.mcl.combine_stages with each stage's own spec and batch sampler; evaluation.json: clbench.cli's
# evaluate command, the job's --spec; meta.json: the dataset's effective spec), the card is built from them,
# and each row is compared with what those files hold at the key the row names.

# the models' values for settings a method leaves out (clbench.models: the Classifier family's linear head,
# SmallCNN's average pooling, the MLP head's hidden units)
MODEL_DEFAULTS = {"classifier.kind": "linear", "encoder.pool": "avg", "classifier.hidden_dim": 256}
SAMPLER_KEYS = {"batch_sampler.small_clusters": "small_clusters", "batch_sampler.drop_last": "drop_last"}
_ABSENT = object()


@dataclass(frozen=True)
class Used:
    """A value the run's files show it used without recording it under the setting's key (a multistage
    run's stage block, seen in its stages): a card may show it as the unset default it is."""

    value: object


def lookup(tree, dotted: str):
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return _ABSENT
        node = node[part]
    return node


def leaves(tree, prefix=""):
    """Every dotted key of a nested mapping (lists of mappings entered, by index)."""
    out = []
    for key, value in tree.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):  # a multistage run's stages
            for i, item in enumerate(value):
                out += leaves(item, f"{prefix}{key}.{i}.")
        else:
            out += leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"]
    return out


def write_recorded_runs(cfg, experiment, results):
    """The run.json, evaluation.json and meta.json the experiment's jobs write, from the configuration."""
    import numpy as np

    from clbench.data.build import effective
    from clbench.data.samplers import ClusterBatchSampler

    exp = cfg["experiments"][experiment]
    evaluation = json.loads(wf.evaluation_spec(cfg, experiment))
    files = []
    for method in exp["methods"]:
        spec = wf.method_spec(cfg, experiment, method)
        for seed in exp["seeds"]:
            run = results / "runs" / experiment / method / f"seed{seed}"
            run.mkdir(parents=True)
            if spec.get("mcl") is None:
                info = {"spec": json.loads(wf.pretrain_spec(cfg, experiment, method)), "seed": seed}
            else:
                stage_runs = []
                for stage in range(spec["mcl"]["stages"]):
                    stage_spec = json.loads(wf.stage_spec(cfg, experiment, method, seed, stage))
                    stage_info = {"spec": stage_spec, "seed": seed}
                    if stage > 0:  # clbench.cli train --clusters: batches from the earlier stages' clusters
                        batch, k = stage_spec.get("batch_size", 128), spec["mcl"]["clusters"]
                        ids = np.random.default_rng(seed).integers(0, k, size=2 * batch * k)
                        stage_info["batch_sampler"] = ClusterBatchSampler(
                            ids, batch_size=batch, seed=seed, order=stage_spec.get("cluster_order", "shuffled")).summary()
                    stage_runs.append(stage_info)
                info = {"stages": len(stage_runs), "stage_batch_samplers": [s.get("batch_sampler") for s in stage_runs],
                        "stage_runs": stage_runs, "seed": seed}
            (run / "run.json").write_text(json.dumps(info))
            (run / "evaluation.json").write_text(json.dumps({"metrics": {}, "tables": {}, "spec": evaluation}))
            files += [run / "run.json", run / "evaluation.json"]
    meta = results / "data" / exp["dataset"] / "meta.json"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"spec": effective(cfg["datasets"][exp["dataset"]])}))
    return files + [meta]


def recorded_method_value(info: dict, setting: str):
    """What a method's run.json holds at ``setting``: its spec's value, the objective's default for a
    parameter it leaves out, the model's default; a multistage run's trained stages' (all the same),
    its batch sampler's policy and its stage block as the stages show it."""
    from clbench.objectives import resolved_params

    if "stage_runs" not in info:
        specs, samplers = [info["spec"]], []
    else:  # an untrained stage 0 (first_stage: initial) is the starting model, 0 epochs
        trained = [s["spec"] for s in info["stage_runs"] if s["spec"].get("epochs") != 0]
        specs, samplers = [{k: v for k, v in s.items() if k not in ("init_from", "cluster_order", "stage_labels")} for s in trained], \
            [s for s in info["stage_batch_samplers"] if s]
        stages = info["stage_runs"]
        stage_block = {
            "mcl.stages": Used(info["stages"]),
            "mcl.clusters": Used(samplers[0]["clusters"]) if samplers else _ABSENT,
            "mcl.first_stage": Used("initial" if stages[0]["spec"].get("epochs") == 0 else "train"),
            "mcl.init": Used("previous" if any("init_from" in s["spec"] for s in stages) else "fresh"),
            "mcl.order": Used(samplers[0].get("order", "shuffled")) if samplers else _ABSENT,
            "mcl.labels": Used(next((s["spec"]["stage_labels"] for s in stages if "stage_labels" in s["spec"]),
                                    "joint")),
        }
        if setting in stage_block:
            return stage_block[setting]
        if setting == "batch_sampler.one_cluster_per_batch":
            return all(s["mixed_batches"] == 0 for s in samplers) if samplers else _ABSENT
        if setting in SAMPLER_KEYS:
            values = {json.dumps(s[SAMPLER_KEYS[setting]]) for s in samplers}
            assert len(values) <= 1, (setting, values)
            return samplers[0][SAMPLER_KEYS[setting]] if samplers else _ABSENT
    values = []
    for spec in specs:
        value = lookup(spec, setting)
        section, _, param = setting.partition(".")
        if value is _ABSENT and spec.get("objective") and param and section in ("loss", "vae"):
            value = resolved_params(spec).get(param, _ABSENT)
        if value is _ABSENT:
            value = MODEL_DEFAULTS.get(setting, _ABSENT)
        values.append(value)
    assert all(v == values[0] for v in values), (setting, values)  # every trained stage trains the same spec
    return values[0]


def recorded_evaluation_value(spec: dict, setting: str):
    """What the evaluate job used at ``setting``: its --spec over the job's defaults; the MLP probe's
    settings as it trains them (mlp_probe's over the probe's)."""
    from clbench.evaluate.context import EvaluationRun
    from clbench.evaluate.linear_probe import MLP_HIDDEN as PROBE_MLP_HIDDEN
    from clbench.evaluate.runner import evaluation_settings

    settings = evaluation_settings(spec)
    if setting.startswith("mlp_probe."):
        mlp = EvaluationRun.mlp_probe_settings(SimpleNamespace(settings=settings))
        return mlp.get(setting.removeprefix("mlp_probe."), PROBE_MLP_HIDDEN if setting.endswith("hidden_dim")
                       else _ABSENT)
    return lookup(settings, setting)


def check_row(row, files_by_scope, methods):
    """The row's value is the recorded one; "unset (x)" and "not recorded" only where nothing was recorded."""
    scope, setting, value = row["scope"], row["setting"], row["value"]
    if scope == "run" or row.get("source", "").startswith("selected on validation"):  # a sweep's: test_sweeps.py
        return
    if scope == "data":
        recorded = [lookup(files_by_scope["data"], setting)]
        recorded_leaves = leaves(files_by_scope["data"])
    elif scope == "evaluation":
        recorded = [recorded_evaluation_value(files_by_scope["evaluation"], setting)]
        recorded_leaves = leaves(files_by_scope["evaluation"])
    else:
        infos = [files_by_scope[m] for m in (methods if scope == ALL_METHODS else [scope])]
        recorded = [recorded_method_value(info, setting) for info in infos]
        recorded_leaves = [k for info in infos for k in leaves(info)]
    for r in recorded:
        if value.startswith("unset (") and isinstance(r, Used):
            assert value == f"unset ({format_value(r.value)})", (row, r)
        elif value == "not recorded" or value.startswith("unset ("):
            assert r is _ABSENT, (row, r)
            if value == "not recorded":  # nor under another key: the run used it (e.g. in a nested config)
                leaf = setting.rsplit(".", 1)[-1]
                assert not [k for k in recorded_leaves if k.rsplit(".", 1)[-1] == leaf], (row, recorded_leaves)
        else:
            assert r is not _ABSENT, f"{row}: the runs recorded no {setting}"
            assert value == format_value(r.value if isinstance(r, Used) else r), (row, r)


@pytest.mark.parametrize("config", ["paper", "tiny"])
def test_every_card_row_is_what_the_runs_recorded(config, paper_cfg, tiny_cfg, tmp_path):
    cfg = paper_cfg if config == "paper" else tiny_cfg
    for experiment, exp in cfg["experiments"].items():
        results = tmp_path / experiment
        files = write_recorded_runs(cfg, experiment, results)
        record, provenance = recorded_experiment(files, planned_experiment(cfg, experiment))
        assert "run.json" in provenance and "evaluation.json" in provenance and "meta.json" in provenance
        rows = protocol_card(record, PAPERS, provenance)
        by_scope = {"data": json.loads(files[-1].read_text())["spec"],
                    "evaluation": json.loads(files[1].read_text())["spec"]}
        for method in exp["methods"]:
            by_scope[method] = json.loads((results / "runs" / experiment / method / f"seed{exp['seeds'][0]}" /
                                           "run.json").read_text())
        for row in rows:
            check_row(row, by_scope, exp["methods"])
            if row["scope"] == "evaluation" and "." in row["setting"]:  # read by one of the experiment's evaluations
                block = row["setting"].split(".")[0]
                assert any(block in EVALUATION_READS[e] for e in exp["evaluations"]), (experiment, row)
        seeds = one(rows, "seeds")["value"]
        assert seeds == format_value(sorted(exp["seeds"])), experiment


def test_the_row_check_catches_a_card_that_differs_from_the_runs(tiny_cfg, tmp_path):
    """The check above fails on the faults it exists for: a value the runs did not record, a setting shown
    as not recorded that the run holds under another key, "unset" where the run recorded a value."""
    files = write_recorded_runs(tiny_cfg, "mcl_mmvp", tmp_path)
    info = json.loads(files[0].read_text())
    by_scope = {"mcl_clip": info}
    with pytest.raises(AssertionError):
        check_row({"scope": "mcl_clip", "setting": "epochs", "value": "99"}, by_scope, ["mcl_clip"])
    with pytest.raises(AssertionError):  # tiny: QuickGELU is in the CLIP config
        check_row({"scope": "mcl_clip", "setting": "clip.quick_gelu", "value": "not recorded"}, by_scope, ["mcl_clip"])
    with pytest.raises(AssertionError):  # the later stage recorded its sampler's policy
        check_row({"scope": "mcl_clip", "setting": "batch_sampler.small_clusters", "value": "unset"}, by_scope,
                  ["mcl_clip"])
    check_row({"scope": "mcl_clip", "setting": "batch_sampler.small_clusters", "value": "skip"}, by_scope, ["mcl_clip"])
    check_row({"scope": "mcl_clip", "setting": "clip.config.quick_gelu", "value": "true"}, by_scope, ["mcl_clip"])


def test_the_four_rows_that_drifted_from_the_runs(tiny_cfg, paper_cfg, tmp_path):
    """The batch sampler's policy under the key its summary records; QuickGELU where the tiny CLIP's config
    sets it; no probe settings where no evaluation fits a probe; no regulariser weight without a regulariser."""
    for cfg, experiment in ((tiny_cfg, "trifeature_ssl"), (tiny_cfg, "mcl_mmvp"), (paper_cfg, "mcl_mmvp")):
        files = write_recorded_runs(cfg, experiment, tmp_path / cfg["scale"] / experiment)
        record, provenance = recorded_experiment(files, planned_experiment(cfg, experiment))
        rows = protocol_card(record, PAPERS, provenance)
        method = "mcl" if experiment == "trifeature_ssl" else "mcl_clip"
        row = one(rows, "batch_sampler.small_clusters", method)
        assert row["value"] == "skip" and row["source"].startswith("MCL official code"), row
        if experiment == "mcl_mmvp":
            assert not [r for r in rows if r["setting"].startswith(("probe.", "mlp_probe.", "knn."))]
            assert not [r for r in rows if r["setting"].startswith(("encoder.", "projection_", "augment", "views"))]
            gelu = one(rows, "clip.config.quick_gelu" if cfg is tiny_cfg else "clip.quick_gelu", method)
            assert gelu["value"] == "true" and gelu["source"].startswith("MCL official code"), gelu
            assert one(rows, "epochs", method)["value"] == str(cfg["methods"]["mcl_clip"]["epochs"])  # not stage 0's
    rows = card(tiny_cfg, "subembed_digits_on_photos")
    assert {r["scope"] for r in rows_of(rows, "loss.weight")} == {
        "subembed_info_min", "subembed_ortho", "subembed", "subembed_hess"}


def test_a_regulariser_weight_without_a_regulariser_changes_nothing(tiny_cfg):
    """Why the card leaves loss.weight out for subembed_plain: the loss does not read it (and does with a regulariser)."""
    import torch

    from clbench.models.methods import build_method

    views = torch.rand(8, 2, 3, 32, 32)
    labels = torch.zeros(8, dtype=torch.long)
    for method, reads_weight in (("subembed_plain", False), ("subembed", True)):
        losses = []
        for weight in (1.0, 5.0):
            spec = wf.method_spec(tiny_cfg, "subembed_digits_on_photos", method)
            spec["loss"] = {**spec.get("loss", {}), "weight": weight}
            torch.manual_seed(0)
            model = build_method(spec, 3, 10, 32).eval()
            losses.append(float(model.loss_terms(views, labels)["loss"]))
        assert (losses[0] != losses[1]) is reads_weight, (method, losses)


def test_the_card_knows_what_every_evaluation_reads():
    from clbench.evaluate.suite import EVALUATIONS

    assert set(EVALUATION_READS) == set(EVALUATIONS)

"""Run health: the checks flag constructed failures (collapse, divergence, chance, a VAE that outputs its
mean image, a diverging MI penalty), pass healthy constructed runs, stop a diverging training job, and
reach run.json, evaluation.json and health.csv."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from clbench import health
from clbench.evaluate.context import EvaluationRun
from clbench.evaluate.health_checks import evaluation_checks, evaluation_health
from clbench.objectives import OBJECTIVES
from helpers import quadrant_dataset

SUPCON = {"objective": "supcon", "views": 2, "batch_size": 128}
INFONCE = {"objective": "info_nce", "views": 2, "batch_size": 128}


def rows(losses, **columns):
    out = [{"epoch": i + 1, "loss": v} for i, v in enumerate(losses)]
    for name, values in columns.items():
        for r, v in zip(out, values):
            r[name] = v
    return out


def status(h, name):
    return next(c for c in h["checks"] if c["name"] == name)["status"]


# ---- the contract --------------------------------------------------------------------------------


def test_checks_follow_the_contract_and_the_worst_status_wins():
    h = health.training_health(rows([2.3, 1.5, 1.0]))
    assert set(h) == {"status", "checks", "reasons"} and h["status"] == "ok" and h["reasons"] == []
    for c in h["checks"]:
        assert set(c) == {"name", "status", "value", "threshold", "detail"}
        assert c["status"] in ("ok", "warn", "failed", "skipped")
    json.dumps(h, allow_nan=False)  # JSON without NaN: non-finite numbers are null
    ok, warn, failed = (health.check(n, s, f"{n} detail") for n, s in (("a", "ok"), ("b", "warn"), ("c", "failed")))
    skipped = health.check("d", "skipped", "does not apply")
    assert health.combine([ok, skipped])["status"] == "ok"
    assert health.combine([ok, warn, skipped]) == {"status": "warn", "checks": [ok, warn, skipped],
                                                   "reasons": ["b detail"]}
    assert health.combine([warn, failed, ok])["status"] == "failed"
    assert health.combine([warn, failed])["reasons"] == ["b detail", "c detail"]
    nan = health.check("e", "failed", "x", value=math.nan, threshold=math.inf)
    assert nan["value"] is None and nan["threshold"] is None


def test_the_schema_documents_the_defaults():
    schema = yaml.safe_load(open(os.path.join(os.path.dirname(__file__), "..", "workflow", "schemas",
                                              "config.schema.yaml")))
    block = schema["properties"]["health"]["properties"]
    assert {k: v["default"] for k, v in block.items()} == health.DEFAULTS
    assert all(v.get("description") for v in block.values())


def test_health_imports_no_torch():
    code = "import sys, clbench.health; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- the loss: finite, no divergence, moves -------------------------------------------------------


def test_a_diverging_loss_fails():
    h = health.training_health(rows([1.2, 1.9e3, 1.7e5]))
    assert status(h, "loss_divergence") == "failed" and h["status"] == "failed"
    assert "epoch 3" in h["reasons"][0] or "epoch 2" in h["reasons"][0]
    assert "health.divergence_factor = 5" in h["reasons"][0]
    spike = health.training_health(rows([6.0, 5.5, 5.2, 80.0, 5.1]))
    assert status(spike, "loss_divergence") == "failed"  # a spike, even when the loss comes back
    assert status(health.training_health(rows([6.0, 5.5, 5.2, 80.0, 5.1]), {"divergence_factor": 20}),
                  "loss_divergence") == "ok"


@pytest.mark.parametrize("losses", [
    [314.7, 230.5, 187.7, 162.8, 151.6],  # a VAE falling by orders of magnitude
    [5000.0, 500.0, 50.0, 5.0, 4.0],
    [81.88, -40.21, -105.6, -141.5, -158.5],  # negative terms (CLEAR-neg's total)
    [2.3, 1.0, 0.3, 0.05, 0.001, 0.01],  # cross-entropy near 0, a little noise
    [-0.5, -0.8, -0.7, -0.9],  # an MI bound below zero
    [5.087, 4.919, 4.761, 4.749, 4.701, 4.695],
])
def test_healthy_losses_do_not_diverge(losses):
    h = health.training_health(rows(losses))
    assert status(h, "loss_divergence") == "ok" and status(h, "loss_finite") == "ok"


def test_a_non_finite_loss_fails():
    h = health.training_health(rows([2.0, 1.5, float("nan")]))
    assert status(h, "loss_finite") == "failed" and "epoch 3" in h["reasons"][0]
    assert status(health.training_health(rows([2.0, float("inf")])), "loss_finite") == "failed"


def test_a_loss_that_does_not_move_warns():
    h = health.training_health(rows([5.54, 5.541, 5.539, 5.54]))
    assert status(h, "loss_moves") == "warn" and h["status"] == "warn"
    assert status(health.training_health(rows([2.3, 1.9])), "loss_moves") == "ok"
    assert status(health.training_health(rows([2.3])), "loss_moves") == "skipped"


# ---- collapse ----------------------------------------------------------------------------------------


def test_collapsed_supcon_fails_against_ln_2b_minus_1():
    # varcon_digits: SupCon at batch 128 x 2 views ended at 5.51-5.54; ln(255) = 5.541
    collapsed = health.training_health_of(SUPCON, rows([5.846, 5.537, 5.53, 5.509], supcon=[5.846, 5.537, 5.53, 5.509]),
                                          batch_size=128)
    assert status(collapsed, "loss_collapse") == "failed" and collapsed["status"] == "failed"
    reason = collapsed["reasons"][0]
    assert "ln(255)" in reason and "5.541" in reason and "collapse" in reason
    trained = health.training_health_of(SUPCON, rows([5.8, 5.2, 4.6]), batch_size=128)
    assert status(trained, "loss_collapse") == "ok" and trained["status"] == "ok"
    # the margin is a setting: 5.2 is within 10% of ln(255)
    assert status(health.training_health_of(SUPCON, rows([5.8, 5.2]), {"collapse_margin": 0.1}, batch_size=128),
                  "loss_collapse") == "failed"


def test_constant_embeddings_score_the_declared_constant_loss():
    import clbench.losses as losses

    b = 16
    z = torch.ones(b, 8)
    labels = torch.arange(b) % 4
    cases = {"info_nce": losses.info_nce(z, z), "adnce": losses.adnce(z, z),
             "supcon": losses.supcon(torch.stack([z, z], 1), labels)}
    for name, value in cases.items():
        expected, _ = OBJECTIVES[name].constant_loss.at(b, 2, OBJECTIVES[name].defaults)
        assert float(value) == pytest.approx(expected, rel=1e-5), name
    assert OBJECTIVES["cross_entropy"].constant_loss is None and OBJECTIVES["clear_vae"].constant_loss is None


def test_the_collapse_check_reads_the_objectives_own_term():
    # a regulariser's share must not push a trained sub-embedding run over k ln(2B - 1)
    spec = {"objective": "sub_embedding", "views": 2, "batch_size": 64, "loss": {"k": 2}}
    k_ln = 2 * math.log(127)
    h = health.training_health_of(spec, rows([k_ln + 5, k_ln + 4], sub_info_max=[9.0, 8.0]), batch_size=64)
    assert status(h, "loss_collapse") == "ok"
    h = health.training_health_of(spec, rows([12.0, 11.0], sub_info_max=[k_ln, k_ln - 0.01]), batch_size=64)
    assert status(h, "loss_collapse") == "failed"


def test_a_collapsed_encoder_has_no_spread():
    rng = np.random.default_rng(0)
    constant = np.tile(rng.normal(size=(1, 32)), (200, 1)) + 1e-9 * rng.normal(size=(200, 32))
    assert health.check_spread(constant, 1e-3)["status"] == "failed"
    assert health.embedding_spread(constant) < 1e-6
    healthy = rng.normal(size=(200, 32))
    assert health.check_spread(healthy, 1e-3)["status"] == "ok"
    assert health.check_effective_rank(healthy, 2.0)["status"] == "ok"
    line = np.outer(np.sign(rng.normal(size=200)), rng.normal(size=32))  # two opposite points: one direction
    assert health.effective_rank(line) == pytest.approx(1.0, abs=1e-6)
    assert health.check_effective_rank(line, 2.0)["status"] == "warn"


# ---- MI penalties ------------------------------------------------------------------------------------


def test_mi_penalties_stay_finite_and_bounded():
    ok = health.training_health(rows([300, 200, 150], l1out_penalty=[0.5, 0.3, 0.2]))
    assert status(ok, "mi_penalties") == "ok"
    diverged = health.training_health(rows([300, 200, 150], l1out_penalty=[0.5, 1.9e3, 7.7e6]))
    assert status(diverged, "mi_penalties") == "failed" and "l1out_penalty" in diverged["reasons"][-1]
    nan = health.training_health(rows([300, 200], club_sample_penalty=[0.5, float("nan")]))
    assert status(nan, "mi_penalties") == "failed"
    assert status(health.training_health(rows([3, 2])), "mi_penalties") == "skipped"


# ---- chance and the VAE -----------------------------------------------------------------------------


def test_a_run_at_chance_fails_and_ood_experiments_are_skipped():
    assert health.majority_rate([0, 0, 0, 1]) == 0.75
    at_chance = health.check_probe_above_chance(0.12, 0.10, 0.05)
    assert at_chance["status"] == "failed" and "chance" in at_chance["detail"]
    assert health.check_probe_above_chance(0.60, 0.10, 0.05)["status"] == "ok"
    assert health.check_probe_above_chance(0.12, 0.10, 0.05, ood=True)["status"] == "skipped"
    assert health.check_probe_above_chance(None, 0.10, 0.05)["status"] == "skipped"


class _MeanImageVAE(torch.nn.Module):
    """A 'VAE' whose decoder outputs the training mean image whatever the input."""

    capabilities = frozenset({"factors"})

    def __init__(self, mean_image: torch.Tensor, identity: bool = False):
        super().__init__()
        self.register_buffer("mean_image", mean_image)
        self.identity = identity

    def features(self, x):
        return x.flatten(1)[:, :16]

    def reconstruct(self, x):
        return x if self.identity else self.mean_image.expand_as(x)


def _run(model, data):
    from clbench.data import dataset_dir
    from clbench.evaluate.runner import evaluation_settings

    return EvaluationRun(model, dataset_dir.load(data, "train"), dataset_dir.load(data, "test"),
                         evaluation_settings({"evaluations": []}), seed=0)


def test_a_vae_that_outputs_its_mean_image_fails(tmp_path):
    data = quadrant_dataset(tmp_path / "d") and tmp_path / "d"
    from clbench.data import dataset_dir

    mean = torch.as_tensor(dataset_dir.load(data, "train")["x"]).float().div(255).mean(0)
    blob = {c["name"]: c for c in evaluation_checks(_run(_MeanImageVAE(mean), data), data, {})}
    assert blob["reconstruction"]["status"] == "failed" and blob["reconstruction"]["value"] > 0.95
    good = {c["name"]: c for c in evaluation_checks(_run(_MeanImageVAE(mean, identity=True), data), data, {})}
    assert good["reconstruction"]["status"] == "ok" and good["reconstruction"]["value"] == 0.0
    assert health.check_reconstruction(None, None, 0.9)["status"] == "skipped"


# ---- evaluation: the recorded training health plus the evaluation checks ---------------------------


def test_evaluation_health_combines_run_json_and_flags_a_collapsed_encoder(tmp_path):
    data = quadrant_dataset(tmp_path / "d") and tmp_path / "d"

    class Constant(torch.nn.Module):
        capabilities = frozenset()

        def features(self, x):
            return torch.ones(len(x), 8)

    model_dir = tmp_path / "run"
    model_dir.mkdir()
    recorded = health.training_health(rows([2.0, 1.0]))
    (model_dir / "run.json").write_text(json.dumps({"health": recorded}))
    h = evaluation_health(_run(Constant(), data), data, model_dir / "model.pt", {})
    names = [c["name"] for c in h["checks"]]
    assert names[:len(recorded["checks"])] == [c["name"] for c in recorded["checks"]]
    assert h["status"] == "failed" and status(h, "embedding_spread") == "failed"
    assert status(h, "probe_above_chance") == "skipped"  # no evaluation fitted a probe of y
    missing = evaluation_health(_run(Constant(), data), data, tmp_path / "nowhere" / "model.pt", {})
    assert status(missing, "training") == "skipped"


def test_evaluate_run_records_health_and_flags_a_probe_at_chance(tmp_path):
    from clbench.evaluate.runner import evaluate_run
    from clbench.models.checkpoint import save_model
    from clbench.models.methods import build_method
    from clbench.train import loop

    data = quadrant_dataset(tmp_path / "d") and tmp_path / "d"
    spec = {"objective": "cross_entropy", "encoder": {"name": "small_cnn", "width": 8, "feature_dim": 32},
            "epochs": 3, "batch_size": 32, "optimizer": {"name": "adam", "lr": 0.01}, "augment": "none"}
    loop.train(spec, data, tmp_path / "run", tmp_path / "ckpt", seed=0, device="cpu")
    evaluation = {"evaluations": ["linear_probe"], "probe": {"epochs": 30}}
    trained = evaluate_run(tmp_path / "run" / "model.pt", data, evaluation, seed=0)["health"]
    assert status(trained, "probe_above_chance") == "ok" and trained["status"] == "ok", trained["reasons"]
    assert status(trained, "loss_finite") == "ok"  # from run.json
    # an untrained encoder of constant features: at chance on validation data, no spread
    torch.manual_seed(0)
    untrained = build_method(spec, 1, 4, 16)
    with torch.no_grad():
        for p in untrained.encoder.parameters():
            p.zero_()
    save_model(tmp_path / "flat" / "model.pt", untrained, spec, {"in_channels": 1, "num_classes": 4, "image_size": 16})
    flat = evaluate_run(tmp_path / "flat" / "model.pt", data, evaluation, seed=0)["health"]
    assert status(flat, "probe_above_chance") == "failed" and flat["status"] == "failed"
    ood = evaluate_run(tmp_path / "flat" / "model.pt", data, evaluation, seed=0, health={"ood": True})["health"]
    assert status(ood, "probe_above_chance") == "skipped"


# ---- training stops early -------------------------------------------------------------------------


def test_the_epoch_guard_stops_a_diverging_run():
    health.stop_if_diverged([5.0, 4.0, 3.9])  # healthy: nothing happens
    with pytest.raises(health.TrainingDiverged, match=r"epoch 3.*1e\+04.*health.divergence_factor = 5"):
        health.stop_if_diverged([5.0, 4.0, 1e4])
    with pytest.raises(health.TrainingDiverged, match="epoch 2.*not finite"):
        health.stop_if_diverged([5.0, float("nan")])
    health.stop_if_diverged([5.0, 4.0, 1e4], {"stop_early": False})  # only logged
    health.stop_if_diverged([5.0, 4.0, 1e4], {"divergence_factor": 1e4})


def test_train_stops_when_an_epoch_diverges_and_records_health(tmp_path, monkeypatch):
    from clbench.train import loop

    data = quadrant_dataset(tmp_path / "d") and tmp_path / "d"
    spec = {"objective": "cross_entropy", "encoder": {"name": "small_cnn", "width": 8, "feature_dim": 32},
            "epochs": 4, "batch_size": 64, "optimizer": {"name": "adam", "lr": 0.01}, "augment": "none",
            "val_every": 0}
    losses = iter([1.4, 1.2, 900.0, 1.0])
    original = loop.train_epoch

    def epoch_with_a_spike(run, epoch):
        row = original(run, epoch)
        return {**row, "loss": next(losses)}

    monkeypatch.setattr(loop, "train_epoch", epoch_with_a_spike)
    with pytest.raises(health.TrainingDiverged, match="epoch 3.*900.*health.divergence_factor"):
        loop.train(spec, data, tmp_path / "run", tmp_path / "ckpt", seed=0, device="cpu")
    assert not (tmp_path / "run" / "run.json").exists()
    losses = iter([1.4, 1.2, 900.0, 1.0])
    info = loop.train(spec, data, tmp_path / "run2", tmp_path / "ckpt2", seed=0, device="cpu",
                      health={"stop_early": False})
    recorded = json.loads((tmp_path / "run2" / "run.json").read_text())["health"]
    assert info["health"] == recorded and recorded["status"] == "failed"
    assert status(recorded, "loss_divergence") == "failed"


def test_a_huge_learning_rate_stops_training(tmp_path):
    from clbench.train import loop

    data = quadrant_dataset(tmp_path / "d") and tmp_path / "d"
    spec = {"objective": "info_nce", "encoder": {"name": "small_cnn", "width": 8, "feature_dim": 32}, "views": 2,
            "epochs": 3, "batch_size": 32, "optimizer": {"name": "sgd", "lr": 1e12, "momentum": 0.0, "nesterov": False},
            "augment": "none", "val_every": 0, "loss": {"similarity": "dot"}}
    with pytest.raises(health.TrainingDiverged, match="training stopped at epoch"):
        loop.train(spec, data, tmp_path / "run", tmp_path / "ckpt", seed=0, device="cpu")
    assert not (tmp_path / "run" / "model.pt").exists()


# ---- MCL stages and the health table ---------------------------------------------------------------


def test_stage_health_names_each_stage():
    good, bad = health.training_health(rows([2.0, 1.0])), health.training_health(rows([2.0, 3e3]))
    h = health.stage_health([good, bad])
    assert h["status"] == "failed" and [s["status"] for s in h["stages"]] == ["ok", "failed"]
    assert all(c["name"].startswith(("stage0.", "stage1.")) for c in h["checks"])
    assert h["reasons"][0].startswith("stage 1: ")


def test_collect_writes_the_health_table(tmp_path):
    from clbench.report.tables import HEALTH_COLUMNS, collect_evaluations, write_tables

    runs = tmp_path / "runs"
    ok = health.training_health(rows([2.0, 1.0]))
    failed = health.training_health(rows([2.0, 3e3]))
    files = {"e/a/seed0": {"metrics": {"m": 1.0}, "health": ok},
             "e/b/seed0": {"metrics": {"m": 0.5}, "health": health.stage_health([ok, failed])},
             "e/c/seed1": {"metrics": {"m": 0.5}}}
    paths = []
    for run, blob in files.items():
        (runs / run).mkdir(parents=True)
        (runs / run / "evaluation.json").write_text(json.dumps(blob))
        paths.append(runs / run / "evaluation.json")
    tables = collect_evaluations(paths, runs, {"e": {"paper": "varcon"}})
    write_tables(tables, tmp_path / "tables")
    table = pd.read_csv(tmp_path / "tables" / "health.csv", keep_default_na=False)
    assert list(table.columns) == HEALTH_COLUMNS
    got = [tuple(r) for r in table[["method", "seed", "stage", "status"]].astype(str).itertuples(index=False)]
    assert got == [("a", "0", "", "ok"), ("b", "0", "", "failed"), ("b", "0", "0", "ok"), ("b", "0", "1", "failed"),
                   ("c", "1", "", "unknown")]
    assert table["paper"].tolist() == ["varcon"] * 5
    assert table.loc[1, "reasons"].startswith("stage 1: the loss diverges")
    assert table.loc[3, "reasons"].startswith("the loss diverges") and table.loc[2, "reasons"] == ""


def test_the_report_reads_health_csv_into_the_claims(tmp_path):
    from clbench.report.claims import evaluate_claims
    from clbench.report.tables import health_rows, health_table

    assert health_table(tmp_path) is None  # results from before run health: no run is taken as unhealthy
    failed = health.training_health(rows([2.0, 3e3]))
    table = pd.DataFrame([*(r for s in (0, 1) for r in health_rows({"experiment": "e", "paper": "t", "method": "a",
                                                                     "seed": s}, health.training_health(rows([2.0, 1.0])))),
                          *health_rows({"experiment": "e", "paper": "t", "method": "b", "seed": 1},
                                       health.stage_health([failed])),
                          *health_rows({"experiment": "e", "paper": "t", "method": "b", "seed": 0},
                                       health.training_health(rows([2.0, 1.0])))])
    (tmp_path / "tables").mkdir()
    table.to_csv(tmp_path / "tables" / "health.csv", index=False)
    results = pd.DataFrame([{"experiment": "e", "method": m, "seed": s, "metric": "acc", "value": v}
                            for m, s, v in (("a", 0, 0.9), ("a", 1, 0.95), ("b", 0, 0.5), ("b", 1, 0.52))])
    claim = {"id": "t.a_beats_b", "paper": "t", "text": "a beats b",
             "check": {"kind": "greater", "metric": "acc", "a": "a", "b": "b"}}
    out = evaluate_claims(results, [claim], health=health_table(tmp_path))
    assert out["verdict"].tolist() == ["undecided"]
    assert out["summary"].iloc[0].startswith("undecided: b seed 1 did not train (stage 0: the loss diverges")

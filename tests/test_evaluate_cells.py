"""Corruption cells as their own jobs: the probe saved once per run, scored per cell, merged back into
the very evaluation a single grid job writes."""

import json

import numpy as np
import pytest
import torch

from clbench.data.corruptions import corrupt_dataset
from clbench.evaluate.cells import merge_evaluation, with_corruption_rows
from clbench.evaluate.linear_probe import FittedProbe, fit_probe
from clbench.evaluate.runner import evaluate_corruption_cell, evaluate_run
from clbench.io import write_json
from clbench.models.checkpoint import save_model
from clbench.models.methods import build_method
from helpers import quadrant_dataset

CNN = {"objective": "cross_entropy", "encoder": {"name": "small_cnn", "width": 8, "feature_dim": 16}}


@pytest.fixture
def run(tmp_path):
    """A quadrant dataset and a (seeded, untrained) small CNN saved as a run's model.pt: its features
    are all the evaluations need."""
    data = tmp_path / "data"
    quadrant_dataset(data, n_train=128, n_val=32, n_test=48)
    torch.manual_seed(0)
    model = tmp_path / "model.pt"
    save_model(model, build_method(CNN, 1, 4, 16), CNN, {"in_channels": 1, "num_classes": 4, "image_size": 16})
    return data, model


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_saved_probe_predicts_exactly_like_the_fitted_one(tmp_path, kind):
    rng = np.random.default_rng(0)
    feats, labels = rng.normal(size=(64, 8)).astype(np.float32), rng.integers(0, 3, 64)
    _, probe = fit_probe(feats, labels, feats, labels, kind=kind, epochs=5, return_predictor=True)
    probe.save(tmp_path / "probe.pt")
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically: no temporary left behind
    again = FittedProbe.load(tmp_path / "probe.pt")
    np.testing.assert_array_equal(probe(feats), again(feats))


def test_merge_keeps_the_clean_evaluation_and_adds_the_table(tmp_path):
    clean = {"metrics": {"linear_top1": 0.9, "knn_top1": 0.8}, "tables": {"stage_probes": [{"stage": 0}]}}
    rows = [{"corruption": "fog", "severity": 1, "top1": 0.5}, {"corruption": "fog", "severity": 2, "top1": 0.25}]
    write_json(tmp_path / "clean.json", clean)
    for i, row in enumerate(rows):
        write_json(tmp_path / f"{i}.json", row)
    merged = merge_evaluation(tmp_path / "clean.json", [tmp_path / "0.json", tmp_path / "1.json"], tmp_path / "out.json")
    assert json.loads((tmp_path / "out.json").read_text()) == merged
    assert merged["metrics"] == {"linear_top1": 0.9, "knn_top1": 0.8, "mean_corruption_top1": 0.375}
    assert merged["tables"] == {"stage_probes": [{"stage": 0}], "corruptions": rows}
    with pytest.raises(ValueError, match="no corruption cells"):
        with_corruption_rows(clean, [])


def test_cells_give_the_grid_jobs_evaluation(tmp_path, run):
    """Same model, same corrupted images (the whole test split, same seed): the cell route's merged
    evaluation equals the grid route's, so the report cannot tell them apart."""
    data, model = run
    spec = {"evaluations": ["linear_probe", "knn", "corruptions"], "probe": {"epochs": 20}, "knn": {"k": 5}}
    cells = {"names": ["gaussian_noise", "contrast"], "severities": [2, 5], "n_test": 48}
    grid = evaluate_run(model, data, {**spec, "corruptions": {**cells, "granularity": "grid"}}, seed=0)

    clean = evaluate_run(model, data, {**spec, "corruptions": {"granularity": "cell"}}, seed=0,
                         probe_out=tmp_path / "probe.pt")
    assert "corruptions" not in clean["tables"] and "mean_corruption_top1" not in clean["metrics"]
    write_json(tmp_path / "clean.json", clean)
    rows = []
    for name in cells["names"]:
        for severity in cells["severities"]:
            corrupted = tmp_path / "corrupted" / name / f"s{severity}"
            corrupt_dataset(data, corrupted, name, severity, seed=0)
            rows.append(tmp_path / "rows" / f"{name}_s{severity}.json")
            write_json(rows[-1], evaluate_corruption_cell(model, tmp_path / "probe.pt", corrupted))
    merged = merge_evaluation(tmp_path / "clean.json", rows, tmp_path / "evaluation.json")
    assert len(merged["tables"]["corruptions"]) == 4
    assert json.loads(json.dumps(grid)) == merged


def test_saving_a_probe_needs_one(tmp_path, run):
    data, model = run
    with pytest.raises(ValueError, match="linear_probe or corruptions"):
        evaluate_run(model, data, {"evaluations": ["knn"], "knn": {"k": 5}}, probe_out=tmp_path / "probe.pt")

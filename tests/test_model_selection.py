"""Model selection never sees the test split: STS-B dev selection of the sentence trainer, the per-epoch
k-NN monitor's bank and queries, and the graph SVC's choice of C inside each outer fold.

A score on the test split is only ever the reported number; a choice made by reading it would report a
number that has been fitted to the data it claims to be measured on."""

from __future__ import annotations

import numpy as np
import pytest

from clbench.data import dataset_dir
from helpers import quadrant_dataset
from test_sentences import _spec, sentence_data, tiny_bert  # noqa: F401  (pytest fixtures)


def _rows(x) -> set[bytes]:
    x = np.asarray(x)
    return {np.ascontiguousarray(row).tobytes() for row in x.reshape(len(x), -1)}


# --------------------------------------------------------------------------------------------------
# STS-B dev selection


def test_sentence_model_selection_reads_the_dev_split_only(sentence_data, tiny_bert, tmp_path, monkeypatch):
    import clbench.train.sentence as trainer

    _, data, _ = sentence_data
    seen = []

    def recording_dev(model, split, device):
        seen.append(split)
        return float(len(seen))  # each step better than the last: every checkpoint is kept in turn

    monkeypatch.setattr(trainer, "dev_spearman", recording_dev)
    trainer.train(_spec(tiny_bert), data, tmp_path / "run", tmp_path / "ckpt", seed=0, device="cpu")
    val, test = dataset_dir.load(data, "val"), dataset_dir.load(data, "test")
    assert seen
    for split in seen:
        assert list(split["x"]) == list(val["x"]) and list(split["x2"]) == list(val["x2"])
        np.testing.assert_array_equal(split["y"], val["y"])
        assert list(split["x"]) != list(test["x"][:len(split["x"])])


# --------------------------------------------------------------------------------------------------
# the per-epoch k-NN monitor


def test_knn_monitor_bank_is_train_and_queries_are_val(tmp_path):
    from clbench.train.loop import setup

    data = tmp_path / "data"
    quadrant_dataset(data, n_train=96, n_val=40, n_test=40)
    spec = {"objective": "cross_entropy", "encoder": {"name": "small_cnn", "width": 4, "feature_dim": 8},
            "epochs": 1, "batch_size": 16, "augment": "none", "views": 1}
    run = setup(spec, data, tmp_path / "ckpt", seed=3, device="cpu")
    bank_x, bank_y, query_x, query_y = run.monitor
    train, val, test = (dataset_dir.load(data, s) for s in ("train", "val", "test"))
    assert _rows(bank_x) <= _rows(train["x"]) and not _rows(bank_x) & _rows(test["x"])
    assert _rows(query_x) <= _rows(val["x"]) and not _rows(query_x) & _rows(test["x"])
    assert len(query_y) == len(val["y"]) and len(bank_y) == len(train["y"])  # below the caps: every sample


# --------------------------------------------------------------------------------------------------
# the graph SVC's inner search for C


@pytest.fixture
def spied_svc(monkeypatch):
    """sklearn's SVC, recording the rows each fitted model was trained on and each call's predicted rows."""
    import sklearn.svm
    from sklearn.svm import SVC

    calls = []

    class SpySVC(SVC):
        def fit(self, X, y, sample_weight=None):
            self._spy_fitted = _rows(X)
            return super().fit(X, y, sample_weight)

        def predict(self, X):
            calls.append((self._spy_fitted, _rows(X)))
            return super().predict(X)

    monkeypatch.setattr(sklearn.svm, "SVC", SpySVC)
    return calls


def test_graph_svc_chooses_c_inside_the_training_folds(spied_svc):
    from sklearn.model_selection import StratifiedKFold

    from clbench.evaluate.graph_svc import svc_cross_validation

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 30)
    x = rng.normal(size=(60, 4)) + y[:, None] * 0.8  # overlapping classes: C matters
    rows = svc_cross_validation(x, y, seed=5, folds=3, inner_folds=3)
    assert len(rows) == 3
    outer_tests = [_rows(x[test]) for _, test in StratifiedKFold(3, shuffle=True, random_state=5).split(x, y)]
    for fitted, predicted in spied_svc:
        assert not fitted & predicted, "a model predicts rows it was trained on"
    for test in outer_tests:  # each outer test fold is predicted once: by the model chosen without it
        assert sum(predicted == test for _, predicted in spied_svc) == 1


def test_without_a_val_split_the_monitor_reads_no_test_sample(tmp_path):
    """No val split, no val_knn_top1: the monitor's queries are never test samples under a val name."""
    from clbench.train.loop import setup, train

    data = tmp_path / "data"
    quadrant_dataset(data, n_train=64, n_val=0, n_test=40)
    spec = {"objective": "cross_entropy", "encoder": {"name": "small_cnn", "width": 4, "feature_dim": 8},
            "epochs": 1, "batch_size": 16, "augment": "none", "views": 1}
    assert setup(spec, data, tmp_path / "ckpt0", seed=0, device="cpu").monitor is None
    train(spec, data, tmp_path / "run", tmp_path / "ckpt", seed=0, device="cpu")
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "loss" in header and "val_knn_top1" not in header

import numpy as np
import pandas as pd
import pytest
import torch

from clbench.train import loop
from clbench.models.checkpoint import load_model
from helpers import quadrant_dataset

CNN = {"objective": "cross_entropy", "encoder": {"name": "small_cnn", "width": 8, "feature_dim": 32},
       "epochs": 3, "batch_size": 32, "optimizer": {"name": "adam", "lr": 0.01}, "augment": "none", "views": 1}


@pytest.fixture
def data(tmp_path):
    quadrant_dataset(tmp_path / "data")
    return tmp_path / "data"


def test_classifier_trains_and_writes_outputs(tmp_path, data):
    info = loop.train(CNN, data, tmp_path / "run", tmp_path / "ckpt", seed=0, device="cpu")
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert list(metrics["epoch"]) == [1, 2, 3]
    assert metrics["loss"].iloc[-1] < metrics["loss"].iloc[0]
    assert metrics["val_knn_top1"].iloc[-1] > 0.6  # chance is 0.25
    assert {"lr", "seconds", "images_per_s", "cross_entropy"} <= set(metrics.columns)
    assert info["device"] == "cpu" and info["seed"] == 0
    assert not (tmp_path / "ckpt").exists()  # checkpoints are removed once the run is complete
    model = load_model(tmp_path / "run" / "model.pt")
    assert model.features(torch.zeros(2, 1, 16, 16)).shape == (2, 32)


def test_same_seed_same_result_on_cpu(tmp_path, data):
    loop.train(CNN, data, tmp_path / "a", tmp_path / "ca", seed=3, device="cpu")
    loop.train(CNN, data, tmp_path / "b", tmp_path / "cb", seed=3, device="cpu")
    a = pd.read_csv(tmp_path / "a" / "metrics.csv").drop(columns=["seconds", "images_per_s"])
    b = pd.read_csv(tmp_path / "b" / "metrics.csv").drop(columns=["seconds", "images_per_s"])
    pd.testing.assert_frame_equal(a, b)


def test_killed_run_resumes_to_identical_result(tmp_path, data, monkeypatch):
    spec = {**CNN, "augment": "digits"}
    loop.train(spec, data, tmp_path / "full", tmp_path / "c_full", seed=1, device="cpu")

    original = loop.save_checkpoint

    def save_then_die(path, epoch, *args):
        original(path, epoch, *args)
        if epoch == 0:
            raise KeyboardInterrupt("killed after the first epoch")

    monkeypatch.setattr(loop, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        loop.train(spec, data, tmp_path / "resumed", tmp_path / "c_res", seed=1, device="cpu")
    assert (tmp_path / "c_res" / "last.pt").exists()
    assert not (tmp_path / "resumed" / "model.pt").exists()
    monkeypatch.setattr(loop, "save_checkpoint", original)
    info = loop.train(spec, data, tmp_path / "resumed", tmp_path / "c_res", seed=1, device="cpu")
    assert info["resumed_from_epoch"] == 1

    full = pd.read_csv(tmp_path / "full" / "metrics.csv").drop(columns=["seconds", "images_per_s"])
    resumed = pd.read_csv(tmp_path / "resumed" / "metrics.csv").drop(columns=["seconds", "images_per_s"])
    pd.testing.assert_frame_equal(full, resumed)
    wa = torch.load(tmp_path / "full" / "model.pt")["state_dict"]
    wb = torch.load(tmp_path / "resumed" / "model.pt")["state_dict"]
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=0)


def test_checkpoint_from_another_config_is_refused(tmp_path, data, monkeypatch):
    original = loop.save_checkpoint

    def die(path, epoch, *args):
        original(path, epoch, *args)
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_checkpoint", die)
    with pytest.raises(KeyboardInterrupt):
        loop.train(CNN, data, tmp_path / "run", tmp_path / "ckpt", seed=0, device="cpu")
    monkeypatch.setattr(loop, "save_checkpoint", original)
    other = {**CNN, "optimizer": {"name": "adam", "lr": 0.5}}
    with pytest.raises(loop.CheckpointMismatch, match="another configuration"):
        loop.train(other, data, tmp_path / "run", tmp_path / "ckpt", seed=0, device="cpu")


def test_nan_loss_stops_with_context_and_writes_nothing(tmp_path, data, monkeypatch):
    from clbench.models import methods

    def nan_terms(self, views, labels):
        out = self.classifier(self.encoder(views.flatten(0, 1))).sum() * float("nan")
        return {"loss": out, "cross_entropy": out}

    monkeypatch.setattr(methods.Classifier, "loss_terms", nan_terms)
    with pytest.raises(FloatingPointError, match=r"step 0.*terms=.*batch="):
        loop.train(CNN, data, tmp_path / "run", tmp_path / "ckpt", seed=0, device="cpu")
    assert not (tmp_path / "run" / "model.pt").exists()


def test_cosine_schedule_with_warmup():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = loop.build_schedule(opt, {"epochs": 10, "warmup_epochs": 1, "schedule": "cosine"}, steps_per_epoch=10)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1) and max(lrs) == pytest.approx(1.0)
    assert lrs[-1] < 0.01 and np.all(np.diff(lrs[10:]) <= 1e-12)


def test_supcon_schedule_warms_up_from_a_start_rate_and_decays_to_a_floor():
    """SupCon's and VarCon's code: warm-up from 0.01, cosine down to lr * 0.1**3."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    spec = {"epochs": 20, "warmup_epochs": 2, "schedule": "cosine", "warmup_start_lr": 0.01, "lr_floor": 0.001,
            "optimizer": {"lr": 0.5}}
    sched = loop.build_schedule(opt, spec, steps_per_epoch=5)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.01) and np.all(np.diff(lrs[:10]) > 0) and lrs[10] == pytest.approx(0.5)
    assert 0.5 * 0.001 < lrs[-1] < 0.5 * 0.002 and min(lrs) >= 0.5 * 0.001  # the last step is one short of the end


def test_varcon_logs_the_distribution_of_its_adaptive_temperature(tmp_path, data):
    spec = {**CNN, "objective": "varcon", "views": 2, "augment": "digits", "loss": {"temperature": 0.1, "epsilon": 0.02}}
    loop.train(spec, data, tmp_path / "run", tmp_path / "ckpt", seed=0, device="cpu")
    m = pd.read_csv(tmp_path / "run" / "metrics.csv")
    stats = ["min", "p05", "p25", "p50", "p75", "p95", "max"]
    cols = [f"varcon_t2_{s}" for s in stats]
    assert set(cols) | {"varcon_t2_mean", "varcon_t2_std"} <= set(m.columns)
    values = m[cols].to_numpy()
    assert (np.diff(values, axis=1) >= 0).all()  # ordered quantiles
    assert values.min() >= 0.1 - 0.02 - 1e-9 and values.max() <= 0.1 + 0.02 + 1e-9  # t2 in [t - eps, t + eps]
    assert (m["varcon_t2_std"] > 0).all()


def test_distribution_columns_match_numpy():
    rng = np.random.default_rng(0)
    parts = [torch.from_numpy(rng.normal(size=n)) for n in (7, 50, 3)]
    got = loop.distribution_columns({"x": parts})
    v = np.concatenate([p.numpy() for p in parts])
    assert got["x_p25"] == pytest.approx(np.percentile(v, 25)) and got["x_p95"] == pytest.approx(np.percentile(v, 95))
    assert got["x_mean"] == pytest.approx(v.mean()) and got["x_std"] == pytest.approx(v.std())
    assert got["x_min"] == v.min() and got["x_max"] == v.max()

"""The options the papers' protocols need (configs/paper.yaml), each doing what it says, and each unset
exactly as before: projector shape, the 64 px CLEAR-VAE, the MI estimator's latents, SGD's Nesterov
momentum, the crop size, STL-10's train+unlabeled pretraining, the probe's optimiser, schedule and
standardisation, and evaluation settings per experiment."""

import copy
import json

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from clbench import workflow as wf
from clbench.data import dataset_dir
from clbench.evaluate import linear_probe
from clbench.evaluate.context import EvaluationRun
from clbench.models.clear_vae import ClearVAE
from clbench.models.heads import projection_head
from clbench.models.methods import build_method
from clbench.train import loop
from conftest import REPO
from helpers import quadrant_dataset

SCHEMA = wf.load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")
NEW_METHOD_KEYS = {"projection_hidden_dim", "projection_batch_norm", "crop_size"}


def kinds(module):
    return [type(m).__name__ for m in module]


# --------------------------------------------------------------------------------------------------
# projector


def test_projection_head_default_is_simclr_s():
    head = projection_head(64, 16)
    assert kinds(head) == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert head[0].out_features == 64 and head[0].bias is None and head[3].out_features == 16


def test_projection_head_hidden_width_and_no_batchnorm():
    head = projection_head(64, 16, hidden_dim=32, batch_norm=False)
    assert kinds(head) == ["Linear", "ReLU", "Linear"]
    assert (head[0].in_features, head[0].out_features, head[2].out_features) == (64, 32, 16)
    assert head[0].bias is not None  # without BN the first layer keeps its bias (SupCon's head)


@pytest.mark.parametrize("objective, extra", [("info_nce", {"views": 2}), ("varcon", {"views": 2}),
                                              ("sub_embedding", {"views": 2, "paired_views": True})])
def test_methods_build_the_configured_projector(objective, extra):
    spec = {"objective": objective, "encoder": {"name": "small_cnn", "width": 8, "feature_dim": 32},
            "projection_dim": 8, **extra}
    torch.manual_seed(0)
    default = build_method(spec, 1, 4, 16)
    torch.manual_seed(0)
    reference = projection_head(32, 8)
    assert {k: v.shape for k, v in default.projector.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()}
    shaped = build_method({**spec, "projection_hidden_dim": 12, "projection_batch_norm": False}, 1, 4, 16)
    assert kinds(shaped.projector) == ["Linear", "ReLU", "Linear"] and shaped.projector[0].out_features == 12


# --------------------------------------------------------------------------------------------------
# CLEAR-VAE architecture and the MI estimator's latents


def test_conv5_vae_is_the_official_64px_architecture():
    vae = ClearVAE(3, 64, 32, 32, 32, "conv5")
    convs = [m for m in vae.encoder if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [
        (3, 32, 4, 2), (32, 64, 4, 2), (64, 128, 4, 2), (128, 256, 4, 2), (256, 512, 4, 2)]
    assert vae.bottom == (512, 2, 2) and vae.heads.in_features == 2048
    assert kinds(vae.decoder_in) == ["Linear", "BatchNorm1d", "ReLU"]
    assert kinds(vae.decoder)[-3:] == ["ConvTranspose2d", "BatchNorm2d", "Sigmoid"]
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in vae.decoder) == 5
    x = torch.rand(4, 3, 64, 64)
    x_hat, (mu_c, _, _), (mu_s, _, _) = vae(x)
    assert x_hat.shape == x.shape and mu_c.shape == mu_s.shape == (4, 32)
    assert ClearVAE(3, 96, 4, 4, 8, "conv5")(torch.rand(2, 3, 96, 96))[0].shape == (2, 3, 96, 96)


def test_conv5_needs_32px_and_conv3_is_the_default():
    with pytest.raises(ValueError, match="too small"):
        ClearVAE(1, 28, architecture="conv5")
    with pytest.raises(ValueError, match="'conv3', 'conv5'"):
        ClearVAE(1, 28, architecture="conv4")
    torch.manual_seed(0)
    default = ClearVAE(1, 28).state_dict()
    torch.manual_seed(0)
    explicit = ClearVAE(1, 28, architecture="conv3").state_dict()
    assert list(default) == list(explicit) and all(torch.equal(default[k], explicit[k]) for k in default)
    assert kinds(ClearVAE(1, 28).decoder)[-2:] == ["ConvTranspose2d", "Sigmoid"]


@pytest.mark.parametrize("latents, encodes", [("step", 0), ("resampled", 3)])
def test_mi_estimator_trains_on_the_step_s_latents_or_fresh_ones(latents, encodes):
    spec = {"objective": "clear_vae", "vae": {"z_content": 4, "z_style": 4, "width": 8, "style": "l1out",
                                              "estimator_latents": latents}}
    model = build_method(spec, 1, 4, 16).train()
    x = torch.rand(8, 1, 1, 16, 16)
    model.loss_terms(x, torch.arange(8) % 4)
    seen = []
    encode = model.vae.encode
    model.vae.encode = lambda images: seen.append(images) or encode(images)
    losses = [model.auxiliary_loss() for _ in range(3)]
    assert len(seen) == encodes and all(torch.equal(images, x[:, 0]) for images in seen)
    assert all(loss.requires_grad and torch.isfinite(loss) for loss in losses)
    assert not any(p.grad is not None for p in model.vae.parameters())
    if latents == "resampled":  # a fresh draw each time
        assert len({float(loss.detach()) for loss in losses}) == 3


# --------------------------------------------------------------------------------------------------
# training: Nesterov, crop size, train+unlabeled


def test_sgd_nesterov_unset_is_nesterov_and_can_be_switched_off():
    params = [nn.Parameter(torch.zeros(2))]
    assert loop.build_optimizer(params, {"optimizer": {"name": "sgd", "lr": 0.1}}).defaults["nesterov"] is True
    plain = loop.build_optimizer(params, {"optimizer": {"name": "sgd", "lr": 0.1, "nesterov": False}})
    assert plain.defaults["nesterov"] is False and plain.defaults["momentum"] == 0.9


@pytest.fixture
def stl_like(tmp_path):
    """A labelled train split plus an unlabeled one, marked for pretraining as STL-10's train+unlabeled."""
    path = tmp_path / "data"
    quadrant_dataset(path, n_train=64, size=32, channels=3)
    splits = {s: dataset_dir.load(path, s) for s in ("train", "val", "test")}
    rng = np.random.default_rng(0)
    splits["unlabeled"] = {"x": rng.integers(0, 255, (96, 3, 32, 32)).astype(np.uint8), "y": -np.ones(96, np.int64)}
    meta = {**dataset_dir.load_meta(path), "pretrain_splits": ["train", "unlabeled"], "unlabeled_label": -1}
    dataset_dir.save(path, splits, meta)
    return path


SIMCLR = {"objective": "info_nce", "views": 2, "augment": "simclr", "encoder": {"name": "small_cnn", "width": 8},
          "batch_size": 32, "epochs": 1, "projection_dim": 8}


def test_label_free_objectives_pretrain_on_train_and_unlabeled(stl_like, tmp_path):
    run = loop.setup(SIMCLR, stl_like, tmp_path / "ckpt", device="cpu")
    assert len(run.dataset) == 64 + 96 and run.steps_per_epoch == (64 + 96) // 32
    assert len(run.monitor[1]) == 64  # the kNN monitor keeps to labelled images
    supervised = {**SIMCLR, "objective": "supcon"}
    assert len(loop.setup(supervised, stl_like, tmp_path / "ckpt2", device="cpu").dataset) == 64
    with pytest.raises(ValueError, match="clusters cover the train split only"):
        loop.pretraining_split(SIMCLR, stl_like, dataset_dir.load_meta(stl_like),
                               dataset_dir.load(stl_like, "train"), clustered=True)


def test_crop_size_sets_the_training_crop(stl_like, tmp_path):
    views, _, _ = loop.setup({**SIMCLR, "crop_size": 16}, stl_like, tmp_path / "ckpt", device="cpu").dataset[0]
    assert views.shape == (2, 3, 16, 16)
    views, _, _ = loop.setup(SIMCLR, stl_like, tmp_path / "ckpt2", device="cpu").dataset[0]
    assert views.shape == (2, 3, 32, 32)


# --------------------------------------------------------------------------------------------------
# the probe


def separable(n=200, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, d, generator=g) + 3.0 * y[:, None].float()
    return x, y


def test_probe_defaults_are_unchanged():
    x, y = separable()
    before = linear_probe.fit_probe(x, y, x, y, epochs=20)
    explicit = linear_probe.fit_probe(x, y, x, y, epochs=20, optimizer="adam", momentum=0.9, schedule="constant",
                                      standardize=True)
    assert before == explicit


def test_sgd_probe_with_step_schedule_on_raw_features():
    x, y = separable()
    res, probe = linear_probe.fit_probe(x, y, x, y, optimizer="sgd", lr=0.05,
                                        weight_decay=0.0, epochs=30, batch_size=50, schedule="step",
                                        milestones=[10, 20], gamma=0.2, standardize=False, return_predictor=True)
    assert res["top1"] > 0.95
    assert torch.equal(probe.mean, torch.zeros(8)) and torch.equal(probe.std, torch.ones(8))
    opt = linear_probe.probe_optimizer([nn.Parameter(torch.zeros(1))], "sgd", 5.0, 0.0, 0.9)
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == 0.9 and not opt.defaults["nesterov"]


def test_probe_schedules_per_epoch():
    def lrs(schedule, **kw):
        opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=5.0)
        sched = linear_probe.probe_schedule(opt, schedule, 100, **kw)
        out = []
        for _ in range(100):
            out.append(opt.param_groups[0]["lr"])
            if sched is not None:
                opt.step()
                sched.step()
        return out

    step = lrs("step", milestones=[60, 75, 90], gamma=0.2)  # SupCon's linear evaluation: epochs 61.., 76.., 91..
    assert step[59] == 5.0 and step[60] == pytest.approx(1.0) and step[75] == pytest.approx(0.2)
    assert step[90] == pytest.approx(0.04) and step[99] == pytest.approx(0.04)
    assert lrs("constant") == [5.0] * 100
    cosine = lrs("cosine")
    assert cosine[0] == 5.0 and cosine[50] == pytest.approx(2.5) and cosine[99] < 0.01
    with pytest.raises(ValueError, match="constant, cosine or step"):
        linear_probe.probe_schedule(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0), "linear", 10)


def test_evaluation_run_passes_the_configured_probe_settings(monkeypatch):
    seen = {}
    monkeypatch.setattr("clbench.evaluate.context.fit_probe", lambda *a, **kw: seen.update(kw) or {"top1": 1.0})
    settings = {"probe": {"kind": "linear", "epochs": 100, "lr": 5.0, "weight_decay": 0.0, "batch_size": 1024,
                          "optimizer": "sgd", "momentum": 0.9, "schedule": "step", "milestones": [60, 75, 90],
                          "gamma": 0.2, "standardize": False}}
    run = EvaluationRun(nn.Identity(), {}, {}, settings)
    run.probe(torch.zeros(4, 2), [0, 1, 0, 1], torch.zeros(2, 2), [0, 1])
    assert {k: seen[k] for k in settings["probe"]} == settings["probe"]
    seen.clear()
    run = EvaluationRun(nn.Identity(), {}, {}, {"probe": {"kind": "linear", "epochs": 5, "lr": 0.01,
                                                          "weight_decay": 0.0, "batch_size": 0}})
    run.probe(torch.zeros(4, 2), [0, 1, 0, 1], torch.zeros(2, 2), [0, 1])
    assert not set(linear_probe.PROBE_OPTIONS) & set(seen)  # unset: fit_probe's defaults


# --------------------------------------------------------------------------------------------------
# the configuration: per-experiment evaluation, and the default's jobs untouched


def load(*overlays):
    from snakemake.utils import update_config

    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    for overlay in overlays:
        update_config(cfg, overlay)
    return wf.validate(cfg, SCHEMA)


def test_experiment_evaluation_merges_over_the_top_level():
    cfg = load({"experiments": {"trifeature_ssl": {"evaluation": {"knn": {"temperature": 0.5},
                                                                  "probe": {"optimizer": "sgd", "lr": 5.0}}}}})
    wf.check_config(cfg, SCHEMA)
    merged = wf.experiment_evaluation(cfg, "trifeature_ssl")
    assert merged["knn"] == {"k": 200, "temperature": 0.5}
    assert merged["probe"] == {**cfg["evaluation"]["probe"], "optimizer": "sgd", "lr": 5.0}
    assert json.loads(wf.evaluation_spec(cfg, "trifeature_ssl"))["knn"]["temperature"] == 0.5
    assert json.loads(wf.evaluation_spec(cfg, "varcon_digits"))["knn"]["temperature"] == 0.1
    assert "evaluation" not in cfg["experiments"]["varcon_digits"]  # no default is filled in


def test_new_options_leave_the_default_runs_untouched():
    """Unset, every new option keeps today's behaviour, and the default's jobs get the same params."""
    cfg = load()
    for experiment, method, _ in wf.experiment_runs(cfg):
        spec = wf.method_spec(cfg, experiment, method)
        assert not NEW_METHOD_KEYS & set(spec) and "nesterov" not in spec["optimizer"]
        assert not {"architecture", "estimator_latents"} & set(spec.get("vae", {}))
    for experiment in cfg["experiments"]:
        spec = json.loads(wf.evaluation_spec(cfg, experiment))
        assert set(spec["probe"]) == {"kind", "epochs", "lr", "weight_decay", "batch_size"}
        assert spec["knn"] == {"k": 200, "temperature": 0.1}


@pytest.mark.parametrize("overlay, key, words", [
    ({"experiments": {"varcon_digits": {"evaluation": {"probe": {"lr": 0}}}}},
     "experiments.varcon_digits.evaluation.probe.lr", "less than or equal to the minimum of 0"),
    ({"experiments": {"varcon_digits": {"evaluation": {"probe": {"learning_rate": 5.0}}}}},
     "experiments.varcon_digits.evaluation.probe.learning_rate", "unknown key"),
    ({"experiments": {"varcon_digits": {"evaluation": {"knn": {"temperature": 0}}}}},
     "experiments.varcon_digits.evaluation.knn.temperature", "0"),
    ({"experiments": {"varcon_digits": {"evaluation": {"corruptions": {"n_test": 5}}}}},
     "experiments.varcon_digits.evaluation.corruptions", "unknown key"),
    ({"experiments": {"varcon_digits": {"evaluation": {"probe": {"milestones": [60]}}}}},
     "experiments.varcon_digits.evaluation.probe.milestones", "only schedule step"),
    ({"experiments": {"varcon_digits": {"evaluation": {"probe": {"schedule": "step", "milestones": [60, 150]}}}}},
     "experiments.varcon_digits.evaluation.probe.milestones", "below the probe's 100 epochs"),
    ({"experiments": {"varcon_digits": {"evaluation": {"probe": {"schedule": "step"}}}}},
     "experiments.varcon_digits.evaluation.probe.milestones", "needs milestones"),
    ({"evaluation": {"probe": {"momentum": 0.9}}}, "evaluation.probe.momentum", "only optimizer sgd"),
    ({"evaluation": {"probe": {"optimizer": "rmsprop"}}}, "evaluation.probe.optimizer", "rmsprop"),
    ({"methods": {"cnn": {"crop_size": 16}}}, "methods.cnn.crop_size", "augment is digits"),
    ({"methods": {"cnn": {"projection_batch_norm": False}}}, "methods.cnn.projection_batch_norm", "no projector"),
    ({"methods": {"clear": {"projection_hidden_dim": 64}}}, "methods.clear.projection_hidden_dim", "no projector"),
    ({"methods": {"infonce": {"projection_hidden_dim": 0}}}, "methods.infonce.projection_hidden_dim", "0"),
    ({"methods": {"infonce": {"optimizer": {"nesterov": False}}}}, "methods.infonce.optimizer.nesterov",
     "only optimizer sgd"),
    ({"methods": {"clear": {"vae": {"architecture": "conv4"}}}}, "methods.clear.vae.architecture", "conv4"),
    ({"methods": {"clear": {"vae": {"estimator_latents": "fresh"}}}}, "methods.clear.vae.estimator_latents", "fresh"),
    ({"experiments": {"varcon_digits": {"method_overrides": {"varcon": {"crop_size": 0}}}}},
     "experiments.varcon_digits.method_overrides.varcon.crop_size", "0"),
])
def test_bad_protocol_options_are_refused_naming_the_key(overlay, key, words):
    from clbench.errors import ConfigError
    from snakemake.utils import update_config

    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    update_config(cfg, copy.deepcopy(overlay))
    with pytest.raises(ConfigError) as info:
        wf.check_config(wf.validate(cfg, SCHEMA), SCHEMA)
    assert info.value.key == key and words in str(info.value), str(info.value)

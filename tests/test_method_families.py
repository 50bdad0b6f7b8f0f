"""Each method family trains through the one loop, lowers its loss and beats chance on held-out data."""

import json

import pandas as pd
import pytest
import torch

from clbench.data import dataset_dir
from clbench.evaluate.embed import embed
from clbench.evaluate.linear_probe import fit_probe
from clbench.train import loop
from clbench.models.checkpoint import load_model
from helpers import quadrant_dataset

BASE = {"encoder": {"name": "small_cnn", "width": 8, "feature_dim": 32}, "epochs": 3, "batch_size": 32,
        "optimizer": {"name": "adam", "lr": 0.005}, "augment": "none", "projection_dim": 16, "val_every": 0}

FAMILIES = {
    "simclr_info_nce": {**BASE, "objective": "info_nce", "views": 2, "augment": "digits", "loss": {"temperature": 0.5}},
    "simclr_adnce": {**BASE, "objective": "adnce", "views": 2, "augment": "digits",
                     "loss": {"temperature": 0.5, "mu": 0.7, "sigma": 1.0}},
    "supcon": {**BASE, "objective": "supcon", "views": 2, "augment": "digits", "loss": {"temperature": 0.1}},
    "varcon": {**BASE, "objective": "varcon", "views": 2, "augment": "digits", "loss": {"temperature": 0.1}},
    "clear_ps": {**BASE, "objective": "clear_vae", "vae": {"z_content": 4, "z_style": 4, "width": 8}},
    "clear_tc": {**BASE, "objective": "clear_vae", "vae": {"z_content": 4, "z_style": 4, "width": 8, "style": "tc",
                                                             "estimator_steps": 2}},
    "clear_club": {**BASE, "objective": "clear_vae", "vae": {"z_content": 4, "z_style": 4, "width": 8,
                                                               "style": "club_sample", "estimator_steps": 2}},
    "clear_l1out_resampled": {**BASE, "objective": "clear_vae",
                              "vae": {"z_content": 4, "z_style": 4, "width": 8, "style": "l1out", "penalty_weight": 3.0,
                                      "estimator_lr": 0.002, "estimator_steps": 2, "estimator_latents": "resampled"}},
    "beta_vae": {**BASE, "objective": "clear_vae", "vae": {"z_content": 4, "z_style": 4, "width": 8,
                                                             "content": "none", "style": "none"}},
    "varcon_head_without_batchnorm": {**BASE, "objective": "varcon", "views": 2, "augment": "digits",
                                      "loss": {"temperature": 0.1}, "projection_batch_norm": False,
                                      "projection_hidden_dim": 32},
    "sub_embedding_ortho": {**BASE, "objective": "sub_embedding", "views": 2, "paired_views": True,
                            "loss": {"k": 2, "regularizer": "ortho", "weight": 1.0}},
    "cnn_flatten_mlp": {**BASE, "objective": "cross_entropy", "encoder": {"name": "small_cnn", "width": 8, "pool": "flatten"},
                        "classifier": {"kind": "mlp", "hidden_dim": 32}},
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("quadrants")
    quadrant_dataset(path, n_train=320)
    return path


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_trains_and_beats_chance(name, data, tmp_path):
    spec = FAMILIES[name]
    loop.train(spec, data, tmp_path / "run", tmp_path / "ckpt", seed=0, device="cpu")
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert metrics["loss"].iloc[-1] < metrics["loss"].iloc[0], metrics
    model = load_model(tmp_path / "run" / "model.pt")
    train, test = dataset_dir.load(data, "train"), dataset_dir.load(data, "test")
    result = fit_probe(embed(model, train["x"]), torch.as_tensor(train["y"]), embed(model, test["x"]),
                       torch.as_tensor(test["y"]), epochs=100)
    assert result["top1"] > 0.5, result  # 4 classes: chance is 0.25


def test_cnn_baseline_flatten_and_mlp_head_is_the_official_architecture(tmp_path):
    """CLEAR's SimpleCNNClassifier: three stride-2 convs (32/64/128), flatten (2048 at 28 px),
    Linear(2048, 256) - BN - ReLU - Linear(256, 10). Its features are the 256 hidden activations."""
    from clbench.models.checkpoint import save_model
    from clbench.models.methods import build_method

    spec = {"objective": "cross_entropy", "encoder": {"name": "small_cnn", "pool": "flatten"}, "classifier": {"kind": "mlp"}}
    model = build_method(spec, 1, 10, 28)
    assert model.encoder.out_dim == 2048
    head = model.classifier
    assert [type(m).__name__ for m in head] == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert (head[0].in_features, head[0].out_features, head[3].out_features) == (2048, 256, 10)
    assert not any(isinstance(m, torch.nn.AdaptiveAvgPool2d) for m in model.modules())
    x = torch.rand(4, 1, 28, 28)
    model.eval()
    with torch.no_grad():
        assert model.encoder(x).shape == (4, 2048) and model.features(x).shape == (4, 256)
        assert torch.allclose(head[3](model.features(x)), head(model.encoder(x)))
    save_model(tmp_path / "m.pt", model, spec, {"in_channels": 1, "num_classes": 10, "image_size": 28})
    again = load_model(tmp_path / "m.pt")
    with torch.no_grad():
        assert torch.equal(again.features(x), model.features(x))
    # the default stays the pooled encoder with one linear layer, features = the encoder's output
    default = build_method({"objective": "cross_entropy"}, 1, 10, 28)
    assert isinstance(default.classifier, torch.nn.Linear) and default.encoder.out_dim == 128
    with pytest.raises(ValueError, match="pool"):
        build_method({"objective": "cross_entropy", "encoder": {"pool": "max"}}, 1, 10, 28)
    with pytest.raises(ValueError, match="classifier kind"):
        build_method({"objective": "cross_entropy", "classifier": {"kind": "svm"}}, 1, 10, 28)


def test_clear_swaps_and_factors(data, tmp_path):
    loop.train(FAMILIES["clear_ps"], data, tmp_path / "run", tmp_path / "ckpt", seed=0, device="cpu")
    model = load_model(tmp_path / "run" / "model.pt")
    x = torch.rand(3, 1, 16, 16)
    with torch.no_grad():
        mu_c, mu_s = model.factors(x)
        swapped = model.vae.decode(mu_c, mu_s.roll(1, 0))
    assert mu_c.shape == (3, 4) and mu_s.shape == (3, 4) and swapped.shape == x.shape
    assert 0 <= float(swapped.min()) and float(swapped.max()) <= 1


def test_kl_weight_follows_logistic_annealing(data, tmp_path):
    loop.train({**FAMILIES["beta_vae"], "epochs": 1}, data, tmp_path / "run", tmp_path / "ckpt", seed=0, device="cpu")
    model = load_model(tmp_path / "run" / "model.pt")
    assert int(model.step) == 10  # 320 samples / batch 32
    assert model.anneal() == pytest.approx(0.125 / (1 + torch.exp(torch.tensor(-10.0)).item()))


def test_mcl_stages_cluster_and_concatenate(data, tmp_path):
    """Stage 0 trains, K-means clusters its features, stage 1 draws every batch from one cluster,
    and the combined model's features are the normalised concatenation of both stages."""
    import numpy as np

    from clbench.data.samplers import ClusterBatchSampler
    from clbench.train.mcl import combine_stages, kmeans

    spec = FAMILIES["simclr_info_nce"]
    loop.train(spec, data, tmp_path / "stage0", tmp_path / "c0", seed=0, device="cpu")
    train = dataset_dir.load(data, "train")
    ids = kmeans(embed(load_model(tmp_path / "stage0" / "model.pt"), train["x"]).numpy(), 4, seed=0)
    assert ids.shape == (len(train["y"]),) and len(np.unique(ids)) == 4
    sampler = ClusterBatchSampler(ids, batch_size=32, seed=0)
    for batch in sampler:
        assert len(np.unique(ids[np.asarray(batch)])) == 1 or len(batch) < 32  # small clusters may merge
    loop.train(spec, data, tmp_path / "stage1", tmp_path / "c1", seed=0, device="cpu", batch_sampler=sampler)
    stage1 = json.loads((tmp_path / "stage1" / "run.json").read_text())["batch_sampler"]
    assert stage1 == sampler.summary() and stage1["mixed_batches"] == 0 and stage1["samples"] == len(train["y"])
    assert stage1["samples_used"] == stage1["batches"] * 32
    combine_stages([tmp_path / "stage0", tmp_path / "stage1"], tmp_path / "mcl")
    info = json.loads((tmp_path / "mcl" / "run.json").read_text())
    assert info["stage_batch_samplers"] == [None, stage1]
    model = load_model(tmp_path / "mcl" / "model.pt")
    feats = embed(model, train["x"][:8])
    assert feats.shape == (8, 64) and torch.allclose(feats.norm(dim=1), torch.ones(8), atol=1e-5)
    # the stages' features concatenated as they are, then L2-normalised
    raw = torch.cat([embed(load_model(tmp_path / f"stage{s}" / "model.pt"), train["x"][:8]) for s in (0, 1)], 1)
    assert torch.allclose(feats, torch.nn.functional.normalize(raw, dim=1), atol=1e-6)
    metrics = pd.read_csv(tmp_path / "mcl" / "metrics.csv")
    assert list(metrics["stage"]) == [0, 0, 0, 1, 1, 1] and list(metrics["epoch"]) == [1, 2, 3, 4, 5, 6]
    test = dataset_dir.load(data, "test")
    result = fit_probe(embed(model, train["x"]), torch.as_tensor(train["y"]), embed(model, test["x"]),
                       torch.as_tensor(test["y"]), epochs=100)
    assert result["top1"] > 0.5


@pytest.mark.parametrize("name,dim", [("resnet18", 512), ("resnet50", 2048)])
def test_resnet_cifar_stem(name, dim):
    from clbench.models import build_encoder

    net = build_encoder({"name": name}, in_channels=3)
    assert isinstance(net.maxpool, torch.nn.Identity) and net.conv1.stride == (1, 1) and net.conv1.kernel_size == (3, 3)
    with torch.no_grad():
        assert net.eval()(torch.zeros(2, 3, 32, 32)).shape == (2, dim) and net.out_dim == dim


def test_resnet_imagenet_stem_downsamples_224px_input_by_32():
    from clbench.models import build_encoder

    net = build_encoder({"name": "resnet18", "stem": "imagenet"}, in_channels=3).eval()
    assert net.conv1.stride == (2, 2) and net.conv1.kernel_size == (7, 7)
    assert isinstance(net.maxpool, torch.nn.MaxPool2d)
    trunk = torch.nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)
    with torch.no_grad():
        assert trunk(torch.zeros(1, 3, 224, 224)).shape == (1, 512, 7, 7)
    with pytest.raises(ValueError, match="stem"):
        build_encoder({"name": "resnet18", "stem": "tiny"}, in_channels=3)


def test_clear_neg_pushes_same_label_style_means_apart():
    """The official clear-neg ablation (ps=False): the SNN on the style means, subtracted."""
    import torch

    from clbench.losses.contrastive import snn
    from clbench.models.methods import build_method

    torch.manual_seed(0)
    x, y = torch.rand(16, 1, 1, 28, 28), torch.arange(16) % 4
    out = {}
    for style in ("neg_snn", "none"):
        torch.manual_seed(1)
        method = build_method({"objective": "clear_vae", "vae": {"content": "snn", "style": style}}, 1, 4, 28)
        torch.manual_seed(2)
        out[style] = method.loss_terms(x, y)
    neg = out["neg_snn"]
    assert torch.allclose(neg["loss"], out["none"]["loss"] - 100.0 * neg["snn_style"], atol=1e-4)
    assert neg["snn_style"] > 0 and "snn_style" not in out["none"]

"""The evaluation runner: no evaluation sees the test labels, the linear-evaluation protocols, gMIG.

Leakage tests. The training labels are one constant class: they carry no signal, so a probe or
kNN fitted on the training split predicts that class everywhere and scores exactly its share of
the (balanced) test split, 0.25. The test labels carry a strong signal (a control run with the
true training labels scores above 0.9 on every evaluation), so an evaluation that fitted on, or looked
up, the test split would score far above 0.25. Every evaluation that scores ``y`` is checked:
the linear probe (both protocols), the MLP probe, kNN and every corruption cell (grid and cell
routes).
"""

import numpy as np
import pytest
import torch

from clbench.data import dataset_dir
from clbench.data.corruptions import corrupt_dataset
from clbench.evaluate.disentanglement import gmig
from clbench.evaluate.embed import embed
from clbench.evaluate.linear_probe import fit_probe, fit_probe_on_images
from clbench.evaluate.runner import evaluate_corruption_cell, evaluate_run
from clbench.evaluate.suite import sampled_latents
from clbench.models.checkpoint import load_model, save_model
from clbench.models.inputs import to_float
from clbench.models.methods import build_method
from helpers import quadrant_dataset

# an untrained small CNN whose flattened feature map keeps where the bright square is
CNN = {"objective": "cross_entropy", "encoder": {"name": "small_cnn", "width": 8, "pool": "flatten"}}
SHAPE = {"in_channels": 1, "num_classes": 4, "image_size": 16}
N = 400
CHANCE = 0.25  # the test split holds exactly N/4 samples of each class
BAND = 0.02
CELLS = {"names": ["contrast", "gaussian_noise"], "severities": [1, 2], "n_test": N}
SPEC = {"evaluations": ["linear_probe", "mlp_probe", "knn", "corruptions"], "probe": {"epochs": 100},
        "knn": {"k": 50}}


def balanced_quadrants(path, train_labels: str):
    """Quadrant images with exactly N/4 test samples per class; ``train_labels``: ``true`` or ``constant``."""
    quadrant_dataset(path, n_train=N, n_val=8, n_test=N, seed=3)
    splits = {s: {k: np.asarray(v) for k, v in dataset_dir.load(path, s).items()} for s in ("train", "val", "test")}
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        y = np.repeat(np.arange(4), N // 4)
        rng.shuffle(y)
        x = rng.integers(0, 80, (N, 1, 16, 16)).astype(np.uint8)
        for k in range(4):
            r, c = divmod(k, 2)
            x[y == k, :, r * 8 + 2:r * 8 + 6, c * 8 + 2:c * 8 + 6] = 230
        splits[split] = {"x": x, "y": y.astype(np.int64), "factor_style": rng.integers(0, 2, N)}
    if train_labels == "constant":
        splits["train"]["y"] = np.zeros(N, np.int64)
    splits["val"] = {k: v[:8] for k, v in splits["test"].items()}
    dataset_dir.save(path, splits, {"name": "quadrants", "classes": ["tl", "tr", "bl", "br"],
                                    "factors": {"style": ["a", "b"]}, "seed": 3})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("leak")
    torch.manual_seed(0)
    save_model(root / "model.pt", build_method(CNN, 1, 4, 16), CNN, SHAPE)
    for labels in ("true", "constant"):
        balanced_quadrants(root / labels, labels)
    return root


def _scores(result: dict) -> dict:
    m = result["metrics"]
    out = {"linear": m["linear_top1"], "mlp": m["mlp_top1"], "knn": m["knn_top1"]}
    for row in result["tables"]["corruptions"]:
        out[f"{row['corruption']}/s{row['severity']}"] = row["top1"]
    return out


@pytest.mark.parametrize("protocol", ["features", "augmented"])
def test_no_evaluation_scores_above_chance_when_only_the_test_labels_carry_signal(runs, protocol):
    """(The augmented protocol runs here with the recipe ``none``: its images still go through the
    loader and the frozen encoder every epoch, but the probe learns on the same distribution it is
    tested on. With a real augmentation a probe that learned "one class on augmented images" need not
    predict that class on plain test images, so its score would not sit at the test share of that
    class; the augmentation itself is tested below.)"""
    spec = {**SPEC, "probe": {**SPEC["probe"], "protocol": protocol, "augment": "none"},
            "corruptions": {**CELLS, "granularity": "grid"}}
    control = _scores(evaluate_run(runs / "model.pt", runs / "true", spec, seed=0))
    assert min(control.values()) > 0.9, control  # the features carry the test labels: a leak would show
    scores = _scores(evaluate_run(runs / "model.pt", runs / "constant", spec, seed=0))
    assert len(scores) == 3 + 4
    for name, top1 in scores.items():
        assert abs(top1 - CHANCE) <= BAND, (name, top1)


def test_corruption_cell_jobs_score_the_probe_fitted_on_the_training_split(runs, tmp_path):
    """The cell route: the clean job fits and saves the probe, each cell job only applies it."""
    spec = {**SPEC, "evaluations": ["linear_probe", "corruptions"], "corruptions": {"granularity": "cell"}}
    for labels, check in (("true", lambda t: t > 0.95), ("constant", lambda t: abs(t - CHANCE) <= BAND)):
        probe = tmp_path / labels / "probe.pt"
        probe.parent.mkdir()
        clean = evaluate_run(runs / "model.pt", runs / labels, spec, seed=0, probe_out=probe)
        assert check(clean["metrics"]["linear_top1"])
        for name in CELLS["names"]:
            for severity in CELLS["severities"]:
                corrupted = tmp_path / labels / name / f"s{severity}"
                corrupt_dataset(runs / labels, corrupted, name, severity, seed=0)
                row = evaluate_corruption_cell(runs / "model.pt", probe, corrupted)
                assert check(row["top1"]), (labels, name, severity, row)


# ------------------------------------------------------------------------------------------------
# linear evaluation on augmented images


@pytest.fixture(scope="module")
def frozen(runs):
    model = load_model(runs / "model.pt")
    train, test = dataset_dir.load(runs / "true", "train"), dataset_dir.load(runs / "true", "test")
    return model, train, test, embed(model, train["x"]), embed(model, test["x"])


def test_probe_on_images_without_augmentation_equals_the_probe_on_cached_features(frozen):
    model, train, test, ftr, fte = frozen
    kw = dict(epochs=40, lr=0.01, weight_decay=1e-4, batch_size=0, seed=1)
    a, pa = fit_probe(ftr, train["y"], fte, test["y"], return_predictor=True, **kw)
    b, pb = fit_probe_on_images(model, train["x"], train["y"], fte, test["y"], augment=None, train_feats=ftr,
                                return_predictor=True, **kw)
    assert np.abs(pa(fte) - pb(fte)).max() < 1e-4 and a["top1"] == b["top1"] > 0.95


def test_probe_on_images_trains_on_augmented_images_through_the_frozen_encoder(frozen):
    """Every epoch every training image passes through the augmentation, then the frozen encoder.
    A mirroring augmentation swaps left and right quadrants, so the probe learns the mirrored
    classes: tested on plain images it gets exactly the left/right-swapped mapping wrong."""
    model, train, test, ftr, fte = frozen
    state = {k: v.clone() for k, v in model.state_dict().items()}
    calls = []

    def mirror(images, device, seed):  # a batched augmentation: uint8 batch -> float batch on the device
        calls.append(len(images))
        return to_float(images, device).flip(-1)

    r, predict = fit_probe_on_images(model, train["x"], train["y"], fte, test["y"], augment=mirror,
                                     train_feats=ftr, epochs=3, batch_size=64, lr=0.05, return_predictor=True)
    assert sum(calls) == 3 * N
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())  # frozen, BN stats too
    pred = predict(fte).argmax(1)
    mirrored = np.array([1, 0, 3, 2])[test["y"]]
    assert (pred == mirrored).mean() > 0.95 and r["top1"] < 0.05
    # the same run with the digits recipe (small affine jitter) learns the true classes
    jitter = fit_probe_on_images(model, train["x"], train["y"], fte, test["y"], augment="digits",
                                 train_feats=ftr, epochs=3, batch_size=64, lr=0.05)
    assert jitter["top1"] > 0.9


def test_probe_augmentation_is_drawn_per_image_from_the_probe_seed(frozen):
    """The recipe runs batched on the probe's device; its draws depend on (seed, epoch, step) only."""
    model, train, test, ftr, fte = frozen
    kw = dict(augment="crop_flip", train_feats=ftr, epochs=2, batch_size=64, lr=0.05, return_predictor=True)
    _, a = fit_probe_on_images(model, train["x"], train["y"], fte, test["y"], seed=3, **kw)
    torch.manual_seed(99)  # the global stream does not matter
    _, b = fit_probe_on_images(model, train["x"], train["y"], fte, test["y"], seed=3, **kw)
    _, c = fit_probe_on_images(model, train["x"], train["y"], fte, test["y"], seed=4, **kw)
    assert np.array_equal(a(fte), b(fte)) and not np.array_equal(a(fte), c(fte))


def test_the_runner_selects_the_linear_evaluation_protocol(runs):
    spec = {"evaluations": ["linear_probe"], "probe": {"epochs": 5, "augment": "digits"}}
    features = evaluate_run(runs / "model.pt", runs / "true", spec, seed=0)["metrics"]
    augmented = evaluate_run(runs / "model.pt", runs / "true", {**spec, "probe": {**spec["probe"], "protocol": "augmented"}},
                             seed=0)["metrics"]
    assert features != augmented
    with pytest.raises(ValueError, match="protocol"):
        evaluate_run(runs / "model.pt", runs / "true", {**spec, "probe": {"protocol": "cached"}}, seed=0)


# ------------------------------------------------------------------------------------------------
# gMIG on latents sampled from q(z|x)

VAE = {"objective": "clear_vae", "vae": {"z_content": 3, "z_style": 3, "width": 8}}


def test_gmig_is_computed_on_sampled_latents_and_gmig_mean_on_the_means(runs, tmp_path):
    torch.manual_seed(0)
    vae = build_method(VAE, 1, 4, 16)
    with torch.no_grad():  # log-variances well away from 0 so that samples differ visibly from means
        vae.vae.heads.bias[3:6].fill_(0.5)
        vae.vae.heads.bias[9:12].fill_(0.5)
    save_model(tmp_path / "vae.pt", vae, VAE, SHAPE)
    spec = {"evaluations": ["gmig"], "probe": {"epochs": 5}}
    result = evaluate_run(tmp_path / "vae.pt", runs / "true", spec, seed=7)["metrics"]
    assert result == evaluate_run(tmp_path / "vae.pt", runs / "true", spec, seed=7)["metrics"]  # seeded
    model = load_model(tmp_path / "vae.pt")
    test = dataset_dir.load(runs / "true", "test")
    mu_c, lv_c, mu_s, lv_s = embed(model, test["x"], fn=lambda m, xb: m.latent_params(xb))
    zc, zs = sampled_latents(mu_c, lv_c, 7, 0), sampled_latents(mu_s, lv_s, 7, 1)
    assert result["gmig"] == pytest.approx(gmig(zc.numpy(), zs.numpy(), test["y"], random_state=7), abs=1e-12)
    assert result["gmig_mean"] == pytest.approx(gmig(mu_c.numpy(), mu_s.numpy(), test["y"], random_state=7), abs=1e-12)
    assert result["gmig"] != result["gmig_mean"]
    other = evaluate_run(tmp_path / "vae.pt", runs / "true", spec, seed=8)["metrics"]
    assert other["gmig"] != result["gmig"] and other["gmig_mean"] == pytest.approx(
        gmig(mu_c.numpy(), mu_s.numpy(), test["y"], random_state=8), abs=1e-12)


def test_sampled_latents_follow_q():
    mu = torch.tensor([[0.0, 2.0]]).repeat(20000, 1)
    logvar = torch.tensor([[0.0, np.log(0.25)]]).repeat(20000, 1)
    z = sampled_latents(mu, logvar, seed=0, stream=0)
    assert torch.allclose(z.mean(0), torch.tensor([0.0, 2.0]), atol=0.03)
    assert torch.allclose(z.std(0), torch.tensor([1.0, 0.5]), atol=0.02)
    assert torch.equal(z, sampled_latents(mu, logvar, seed=0, stream=0))
    assert not torch.equal(z, sampled_latents(mu, logvar, seed=0, stream=1))


def test_probe_crop_size_sets_the_size_the_encoder_sees_in_training(frozen):
    """ADNCE's STL-10 probe trains on 32 px crops of 96 px images and tests at 96 px: the crops reach the
    encoder at crop_size; the test features stay those of the full-size images."""
    model, train, test, ftr, fte = frozen
    sizes, features = [], model.features

    def recording(x):  # this encoder flattens, so it sees the crops resized back to its 16 px
        sizes.append(tuple(x.shape[-2:]))
        return features(torch.nn.functional.interpolate(x, size=16))

    model.features = recording
    try:
        r = fit_probe_on_images(model, train["x"], train["y"], fte, test["y"], augment="crop_flip", crop_size=8,
                                train_feats=ftr, epochs=1, batch_size=64, lr=0.05)
    finally:
        del model.features
    assert sizes and set(sizes) == {(8, 8)} and train["x"].shape[-1] == 16
    assert r["n_train"] == len(train["y"])


@pytest.mark.parametrize("evaluations, probe", [(["linear_probe"], "linear probe"), (["knn"], "k-NN probe")])
def test_the_validation_scores_a_sweep_selects_on_are_measured_on_the_validation_split(runs, tmp_path,
                                                                                       evaluations, probe):
    """The validation labels are shifted by one class: a score read on them is near 0 where the test score is
    near 1, so a validation score measured on test (or copied from a test metric) would show."""
    splits = {s: {k: np.asarray(v) for k, v in dataset_dir.load(runs / "true", s).items()} for s in ("train", "test")}
    splits["val"] = {k: v[:200].copy() for k, v in splits["test"].items()}
    splits["val"]["y"] = (splits["val"]["y"] + 1) % 4
    dataset_dir.save(tmp_path / "shifted", splits, {"name": "quadrants", "classes": ["tl", "tr", "bl", "br"],
                                                    "factors": {"style": ["a", "b"]}, "seed": 3})
    result = evaluate_run(runs / "model.pt", tmp_path / "shifted", {**SPEC, "evaluations": evaluations}, seed=0)
    validation = result["validation"]
    assert validation["split"] == "validation" and validation["probe"] == probe
    assert max(result["metrics"].values()) > 0.9 and validation["val_top1"] < 0.1, (result["metrics"], validation)

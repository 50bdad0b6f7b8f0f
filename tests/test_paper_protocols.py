"""configs/paper.yaml runs each paper's own protocol: every setting asserted through the resolved configuration.

The configuration is resolved as the workflow resolves it: config.yaml with configs/paper.yaml merged in
(as ``--configfile`` does), validated and checked by :mod:`clbench.workflow`; a method's settings in an
experiment are :func:`clbench.config.schema.method_spec` (its ``method_overrides`` merged in), its objective's
parameters :func:`clbench.objectives.resolved_params`, an experiment's evaluation settings what its
evaluate job receives (:func:`clbench.workflow.evaluation_spec`). Where the architecture is the point,
the model is built from the resolved spec and its layers are checked.
"""

import json

import pytest
import yaml
from torch import nn

from clbench import workflow as wf
from clbench.objectives import resolved_params
from conftest import REPO

SCHEMA = wf.load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")

STYLED_MNIST_OOD = [f"clear_ood_k{k}" for k in range(1, 6)]
VAE_64PX = ["pacs_ood_k1", "pacs_ood_k2", "pacs_ood_k3", "clear_celeba"] + [f"clear_celeba_ood_k{k}" for k in (1, 2, 3)]
CLEAR_OOD = STYLED_MNIST_OOD + VAE_64PX + ["clear_camelyon17"]
CLEAR_VAES = ["clear", "clear_tc", "clear_l1out", "clear_club"]
ADNCE = {"adnce_cifar10": {"temperature": 0.4, "mu": 0.7, "sigma": 0.5},
         "adnce_cifar100": {"temperature": 0.3, "mu": 0.5, "sigma": 1.0},
         "adnce_stl10": {"temperature": 0.2, "mu": 0.8, "sigma": 1.0}}
VARCON_CIFAR = ["varcon_digits", "varcon_cifar100"]
CLEAR_MLP = CLEAR_OOD + ["clear_styled"]  # the experiments with CLEAR's MLP probe on mu_c


@pytest.fixture(scope="module")
def cfg():
    from clbench.config import composition

    layers = composition.config_layers([REPO / "config.yaml"], [REPO / "configs" / "paper.yaml"])
    cfg, _ = composition.resolve(layers, SCHEMA)
    wf.check_config(cfg, SCHEMA)
    return cfg


def spec(cfg, experiment, method):
    assert method in cfg["experiments"][experiment]["methods"], (experiment, method)
    return wf.method_spec(cfg, experiment, method)


def params(cfg, experiment, method):
    return resolved_params(spec(cfg, experiment, method))


def evaluation(cfg, experiment):
    """What the experiment's evaluate job is given (its --spec)."""
    return json.loads(wf.evaluation_spec(cfg, experiment))


def build(cfg, experiment, method, channels=3, classes=10, size=32):
    from clbench.models.methods import build_method

    return build_method(spec(cfg, experiment, method), channels, classes, size)


def layers(module):
    return [m for m in module.modules() if not isinstance(m, nn.Sequential)]


# --------------------------------------------------------------------------------------------------
# CLEAR


@pytest.mark.parametrize("experiment", CLEAR_OOD)
def test_clear_ood_experiments_run_the_cnn_baseline_and_every_variant(cfg, experiment):
    exp = cfg["experiments"][experiment]
    assert exp["methods"] == ["cnn", *CLEAR_VAES] and exp["baseline"] == "cnn"
    assert exp["ood"] is (experiment != "clear_celeba")  # CelebA: the whole set, no unseen-combination split yet


@pytest.mark.parametrize("experiment", CLEAR_OOD)
def test_clear_cnn_baseline_adam_1e4_no_augmentation(cfg, experiment):
    s = spec(cfg, experiment, "cnn")
    assert s["objective"] == "cross_entropy" and s["augment"] == "none"
    assert s["optimizer"]["name"] == "adam" and s["optimizer"]["lr"] == 1e-4 and s["optimizer"]["weight_decay"] == 0
    assert s["schedule"] == "constant" and s["warmup_epochs"] == 0
    camelyon = experiment == "clear_camelyon17"
    assert (s["epochs"], s["batch_size"]) == ((6, 64) if camelyon else (41, 128))


@pytest.mark.parametrize("experiment", STYLED_MNIST_OOD)
def test_clear_cnn_baseline_is_simple_cnn_classifier_flatten_then_mlp(cfg, experiment):
    """SimpleCNNClassifier (code/src/models/cnn.py): three 3x3 stride-2 convs 32/64/128 with BN and ReLU,
    flattened (2048 values at 28 px), then Linear(2048, 256) - BN - ReLU - Linear(256, 10)."""
    s = spec(cfg, experiment, "cnn")
    assert s["encoder"]["name"] == "small_cnn" and s["encoder"]["pool"] == "flatten" and s["encoder"]["width"] == 32
    assert s["classifier"] == {"kind": "mlp", "hidden_dim": 256}
    model = build(cfg, experiment, "cnn", channels=1, classes=10, size=28)
    convs = [m for m in model.encoder.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [(32, (3, 3), (2, 2)), (64, (3, 3), (2, 2)),
                                                                         (128, (3, 3), (2, 2))]
    assert model.encoder.out_dim == 2048
    first, bn, relu, last = layers(model.classifier)
    assert (first.in_features, first.out_features) == (2048, 256) and isinstance(bn, nn.BatchNorm1d)
    assert isinstance(relu, nn.ReLU) and (last.in_features, last.out_features) == (256, 10)


@pytest.mark.parametrize("experiment", VAE_64PX + ["clear_camelyon17"])
def test_64px_cnn_baseline_is_the_five_conv_cnn_with_the_flatten_mlp_head(cfg, experiment):
    """The official SimpleCNN64Classifier: five 4x4 stride-2 convs (32..512 channels; 64 px ends at 2x2,
    2048 values flattened), then Linear(2048, 256) - BN - ReLU - Linear."""
    s = spec(cfg, experiment, "cnn")
    assert s["encoder"] == {**s["encoder"], "name": "small_cnn", "pool": "flatten", "layers": 5}
    assert s["classifier"] == {"kind": "mlp", "hidden_dim": 256}
    model = build(cfg, experiment, "cnn", channels=3, classes=7, size=64)
    convs = [(m.out_channels, m.kernel_size, m.stride) for m in model.encoder.modules() if isinstance(m, nn.Conv2d)]
    assert convs == [(c, (4, 4), (2, 2)) for c in (32, 64, 128, 256, 512)]
    assert model.encoder.out_dim == 2048 and layers(model.classifier)[0].in_features == 2048
    assert layers(model.classifier)[0].out_features == 256


@pytest.mark.parametrize("experiment", CLEAR_MLP)
def test_clear_mlp_probe_on_mu_c(cfg, experiment):
    """experiment_helper() of the downstream scripts: Linear(z, 256) - BN - ReLU - Linear, Adam 3e-4 without
    weight decay or scheduler, the script's epochs and batches, mu_c unstandardised; Camelyon17's notebook
    fits it for one epoch on batches of 64."""
    ev = evaluation(cfg, experiment)
    assert "mlp_probe" in ev["evaluations"]
    camelyon = experiment == "clear_camelyon17"
    assert ev["mlp_probe"] == {"optimizer": "adam", "lr": 3e-4, "weight_decay": 0.0, "epochs": 1 if camelyon else 41,
                               "batch_size": 64 if camelyon else 128, "hidden_dim": 256, "schedule": "constant",
                               "standardize": False}


@pytest.mark.parametrize("experiment", STYLED_MNIST_OOD + ["pacs_ood_k1", "pacs_ood_k2", "pacs_ood_k3"])
def test_ood_k_splits_draw_the_allowed_styles_at_random(cfg, experiment):
    """The official OOD-k draw (generate_style_dict: np.random.choice per digit or class), set explicitly."""
    from clbench.data.build import effective

    data = cfg["datasets"][cfg["experiments"][experiment]["dataset"]]
    assert data["options"]["ood_design"] == "random" and effective(data)["ood_design"] == "random"
    assert data["k"] == cfg["experiments"][experiment]["k"]
    assert data["recipe"] == ("ood" if data["generator"] == "styled_mnist" else "ood_k")


def test_styled_mnist_random_design_leaves_styles_out_of_training(cfg):
    """At k = 1 the official draw leaves some styles out of every digit's training set: a style is in none
    with probability (5/6)^10 = 0.16, so about 19% of test samples (each digit's 5 held-out styles) carry
    a style the model never saw."""
    from clbench.data.styled_mnist import STYLES, ood_allowed_styles

    data = cfg["datasets"]["styled_mnist_ood1"]
    never = [(~ood_allowed_styles(1, seed, data["options"]["ood_design"]).any(axis=0)).sum() for seed in range(300)]
    assert 0.12 < sum(never) / (300 * len(STYLES)) < 0.2


@pytest.mark.parametrize("experiment", STYLED_MNIST_OOD + ["clear_styled"])
def test_styled_mnist_vae(cfg, experiment):
    for method in cfg["experiments"][experiment]["methods"]:
        s, p = spec(cfg, experiment, method), params(cfg, experiment, method)
        if s["objective"] != "clear_vae":
            continue
        assert p["architecture"] == "conv3" and p["width"] == 32 and (p["z_content"], p["z_style"]) == (8, 8)
        assert p["alpha"] == 100 and p["temperature"] == 0.1 and (p["anneal_loc"], p["anneal_scale"]) == (0, 1)
        assert p["similarity"] == ("l2" if method == "clear_l2" else "cosine")
        assert p["beta"] == {"clear_beta05": 0.5, "clear_beta1": 1.0, "clear_beta2": 2.0}.get(method, 1 / 8)
        assert s["optimizer"]["name"] == "adam" and s["optimizer"]["lr"] == 5e-4 and s["schedule"] == "constant"
        assert s["batch_size"] == 128 and s["augment"] == "none"
        assert s["epochs"] == (16 if experiment == "clear_styled" else 41)  # gMIG studies 16, OOD studies 41


def test_clear_styled_runs_every_variant_and_the_beta_sweep(cfg):
    methods = cfg["experiments"]["clear_styled"]["methods"]
    assert set(methods) == {"beta_vae", "clear_neg", "clear_l2", *CLEAR_VAES,
                            "clear_beta05", "clear_beta1", "clear_beta2"}
    assert (params(cfg, "clear_styled", "beta_vae")["content"], params(cfg, "clear_styled", "beta_vae")["style"]) == (
        "none", "none")


@pytest.mark.parametrize("experiment", VAE_64PX + ["clear_camelyon17"])
def test_64px_vae_five_conv_layers_z32_32_beta_1_32(cfg, experiment):
    camelyon = experiment == "clear_camelyon17"
    for method in CLEAR_VAES:
        s, p = spec(cfg, experiment, method), params(cfg, experiment, method)
        assert p["architecture"] == "conv5" and (p["z_content"], p["z_style"]) == (32, 32) and p["beta"] == 1 / 32
        assert s["optimizer"]["name"] == "adam" and s["optimizer"]["lr"] == (1e-4 if camelyon else 3e-5)
        assert s["batch_size"] == (64 if camelyon else 128) and s["epochs"] == (7 if camelyon else 41)
        assert p["temperature"] == (0.3 if camelyon and method != "clear_tc" else 0.1)
    vae = build(cfg, experiment, "clear", size=64).vae
    convs = [m for m in vae.encoder if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (32 * 2**i, (4, 4), (2, 2)) for i in range(5)]
    assert vae.heads.in_features == 2048 and vae.heads.out_features == 2 * (32 + 32)


@pytest.mark.parametrize("experiment", CLEAR_OOD + ["clear_styled"])
def test_mi_penalty_variants(cfg, experiment):
    tc = params(cfg, experiment, "clear_tc")
    assert (tc["content"], tc["style"], tc["penalty_weight"], tc["estimator_steps"]) == ("snn", "tc", 1.0, 1)
    # discriminator Adam 1e-4; the Camelyon17 notebook trains it at 5e-4
    assert tc["estimator_lr"] == (5e-4 if experiment == "clear_camelyon17" else 1e-4)
    for method, style in (("clear_club", "club_sample"), ("clear_l1out", "l1out")):
        p = params(cfg, experiment, method)
        assert (p["content"], p["style"], p["penalty_weight"], p["estimator_lr"], p["estimator_steps"]) == (
            "snn", style, 3.0, 2e-3, 5)
    for method in ("clear_tc", "clear_club", "clear_l1out"):
        assert params(cfg, experiment, method)["estimator_latents"] == "resampled"


# --------------------------------------------------------------------------------------------------
# ADNCE


@pytest.mark.parametrize("experiment", sorted(ADNCE))
def test_adnce_backbone_optimiser_and_schedule(cfg, experiment):
    for method in ("infonce", "adnce"):
        s = spec(cfg, experiment, method)
        assert s["encoder"]["name"] == "resnet50" and s["encoder"].get("stem", "cifar") == "cifar"
        assert (s["projection_hidden_dim"], s["projection_batch_norm"], s["projection_dim"]) == (512, True, 128)
        assert s["optimizer"] == {"name": "adam", "lr": 1e-3, "weight_decay": 1e-6, "momentum": 0.9}
        assert s["schedule"] == "constant" and s["warmup_epochs"] == 0
        assert s["epochs"] == 400 and s["batch_size"] == 256 and s["views"] == 2 and s["augment"] == "simclr"
    model = build(cfg, experiment, "adnce")
    assert model.encoder.conv1.kernel_size == (3, 3) and model.encoder.conv1.stride == (1, 1)
    assert isinstance(model.encoder.maxpool, nn.Identity) and model.encoder.out_dim == 2048
    first, bn, relu, last = layers(model.projector)
    assert (first.in_features, first.out_features, first.bias) == (2048, 512, None)
    assert isinstance(bn, nn.BatchNorm1d) and bn.num_features == 512 and isinstance(relu, nn.ReLU)
    assert (last.in_features, last.out_features) == (512, 128) and last.bias is not None


@pytest.mark.parametrize("experiment", sorted(ADNCE))
def test_adnce_per_dataset_loss_and_infonce_at_the_same_temperature(cfg, experiment):
    want = ADNCE[experiment]
    adnce = params(cfg, experiment, "adnce")
    assert {k: adnce[k] for k in want} == want and adnce["similarity"] == "cosine"
    assert spec(cfg, experiment, "infonce")["objective"] == "info_nce"
    assert params(cfg, experiment, "infonce")["temperature"] == want["temperature"]


def test_stl10_pretrains_on_train_and_unlabeled_with_32px_crops(cfg):
    assert cfg["experiments"]["adnce_stl10"]["dataset"] == "stl10"
    stl = cfg["datasets"]["stl10"]
    assert stl["name"] == "stl10" and stl["options"]["unlabeled"] is True and "image_size" not in stl  # 96 px
    for method in ("infonce", "adnce"):
        assert spec(cfg, "adnce_stl10", method)["crop_size"] == 32
        assert "crop_size" not in spec(cfg, "adnce_cifar10", method)


@pytest.mark.parametrize("experiment", sorted(ADNCE))
def test_adnce_linear_evaluation_and_knn_at_the_training_temperature(cfg, experiment):
    ev = evaluation(cfg, experiment)
    assert ev["probe"] == {"kind": "linear", "optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-6, "epochs": 100,
                           "batch_size": 512, "schedule": "constant", "standardize": False,
                           "protocol": "augmented", "augment": "simclr", "num_workers": 8,
                           **({"crop_size": 32} if experiment == "adnce_stl10" else {})}  # 32 px crops of 96 px
    assert ev["knn"] == {"k": 200, "temperature": ADNCE[experiment]["temperature"]}
    for method in ("infonce", "adnce"):
        assert ev["knn"]["temperature"] == params(cfg, experiment, method)["temperature"]


# --------------------------------------------------------------------------------------------------
# VarCon


@pytest.mark.parametrize("experiment", VARCON_CIFAR)
def test_varcon_cifar_training(cfg, experiment):
    s, p = spec(cfg, experiment, "varcon"), params(cfg, experiment, "varcon")
    assert p == {"temperature": 0.1, "epsilon": 0.02}
    assert s["encoder"]["name"] == "resnet50" and s["encoder"].get("stem", "cifar") == "cifar"
    assert s["epochs"] == 200 and s["batch_size"] == 1024 and s["augment"] == "supcon"
    assert s["optimizer"] == {"name": "sgd", "lr": 0.5, "momentum": 0.9, "nesterov": False, "weight_decay": 1e-4}
    assert s["schedule"] == "cosine" and s["warmup_epochs"] == 10
    assert (s["projection_hidden_dim"], s["projection_batch_norm"], s["projection_dim"]) == (2048, False, 128)


@pytest.mark.parametrize("method", ["varcon", "supcon"])
def test_varcon_projection_head_is_linear_relu_linear_without_batchnorm(cfg, method):
    model = build(cfg, "varcon_cifar100", method, classes=100)
    first, relu, last = layers(model.projector)
    assert (first.in_features, first.out_features) == (2048, 2048) and isinstance(relu, nn.ReLU)
    assert (last.in_features, last.out_features) == (2048, 128)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in model.projector.modules())


@pytest.mark.parametrize("experiment", VARCON_CIFAR)
def test_cross_entropy_baseline_is_the_same_resnet50(cfg, experiment):
    cnn, varcon = spec(cfg, experiment, "cnn"), spec(cfg, experiment, "varcon")
    assert cnn["objective"] == "cross_entropy" and cnn["encoder"] == varcon["encoder"]
    assert cfg["experiments"][experiment]["baseline"] == "cnn"
    model = build(cfg, experiment, "cnn")
    assert model.encoder.out_dim == 2048 and model.encoder.conv1.stride == (1, 1)


@pytest.mark.parametrize("experiment", VARCON_CIFAR + ["varcon_imagenet100", "varcon_imagenet1k"])
def test_varcon_linear_evaluation_is_supcon_s(cfg, experiment):
    probe = evaluation(cfg, experiment)["probe"]
    assert probe == {"kind": "linear", "optimizer": "sgd", "lr": 5.0, "momentum": 0.9, "weight_decay": 0.0,
                     "epochs": 100, "batch_size": 1024, "schedule": "step", "milestones": [60, 75, 90],
                     "gamma": 0.2, "standardize": False, "protocol": "augmented", "augment": "crop_flip",
                     "num_workers": 8}


# --------------------------------------------------------------------------------------------------
# MCL and the evaluation defaults


def test_mcl_simclr_baseline_is_mcl_stage_zero(cfg):
    mcl, infonce = spec(cfg, "trifeature_ssl", "mcl"), spec(cfg, "trifeature_ssl", "infonce")
    assert mcl["mcl"] == {"stages": 3, "clusters": 10, "labels": "joint"}
    for key in ("objective", "loss", "views", "augment", "epochs", "batch_size", "optimizer", "schedule",
                "warmup_epochs", "projection_dim"):
        assert infonce[key] == mcl[key], key
    assert infonce["encoder"]["name"] == mcl["encoder"]["name"] == "resnet18"
    assert infonce.get("projection_hidden_dim") is None and infonce.get("projection_batch_norm", True)


def test_other_experiments_keep_the_top_level_evaluation(cfg):
    own = {name for name, exp in cfg["experiments"].items() if "evaluation" in exp}
    assert own == set(ADNCE) | set(VARCON_CIFAR) | {"varcon_imagenet100", "varcon_imagenet1k"} | set(CLEAR_MLP)
    own_probe = {name for name in own if {"probe", "knn"} & set(cfg["experiments"][name]["evaluation"])}
    assert own_probe == set(ADNCE) | set(VARCON_CIFAR) | {"varcon_imagenet100", "varcon_imagenet1k"}
    for name in set(cfg["experiments"]) - own_probe:
        ev = evaluation(cfg, name)
        assert ev["probe"] == cfg["evaluation"]["probe"] and ev["knn"] == cfg["evaluation"]["knn"]
    for name in set(cfg["experiments"]) - set(CLEAR_MLP):
        assert evaluation(cfg, name)["mlp_probe"] == cfg["evaluation"]["mlp_probe"]


def test_every_pretraining_job_gets_the_resolved_spec(cfg):
    """What a pretrain job runs is the merged spec (its --spec), so the assertions above are what runs."""
    for experiment, method, _ in wf.experiment_runs(cfg):
        if not wf.is_mcl(cfg, method):
            assert json.loads(wf.pretrain_spec(cfg, experiment, method)) == spec(cfg, experiment, method)


def test_celeba_ood_k_studies_hold_out_hair_colours(cfg):
    """run_celeba_downstream_expr.py: for k in 1..3, kceleba_train_test_split (k hair colours per class seen), the
    64 px models, the MLP probe; get_process_celeba's hair rule (some hair colour, not blurry)."""
    for k in (1, 2, 3):
        exp = cfg["experiments"][f"clear_celeba_ood_k{k}"]
        data = cfg["datasets"][exp["dataset"]]
        assert (data["name"], data["recipe"], data["k"], exp["k"]) == ("celeba", "ood_k", k, k) and exp["ood"]
        assert data["options"] == {"hair": "official", "ood_design": "random"} and data["image_size"] == 64
        assert exp["baseline"] == "cnn" and "mlp_probe" in exp["evaluations"]
        assert spec(cfg, f"clear_celeba_ood_k{k}", "cnn")["encoder"]["layers"] == 5
    assert cfg["datasets"]["celeba"]["options"] == {"hair": "official"}


# --------------------------------------------------------------------------------------------------
# MCL on CLIP, ADNCE on sentences and graphs: the official code's settings, and the cards that source them


def card(cfg, experiment):
    from clbench.papers import PAPERS
    from clbench.papers.targets import planned_experiment
    from clbench.report.protocol import protocol_card

    return protocol_card(planned_experiment(cfg, experiment), PAPERS)


def row(rows, setting, scope=None):
    found = [r for r in rows if r["setting"] == setting and scope in (None, r["scope"])]
    assert len(found) == 1, (setting, scope, found)
    return found[0]


def test_mcl_clip_runs_the_official_stage_labels_precision_and_views(cfg):
    clip = spec(cfg, "mcl_mmvp", "mcl_clip")
    assert clip["mcl"]["labels"] == "previous"  # cluster.py: the previous stage's 10 clusters
    assert spec(cfg, "trifeature_ssl", "mcl")["mcl"]["labels"] == "joint"  # the paper's text
    assert json.loads(wf.stage_spec(cfg, "mcl_mmvp", "mcl_clip", 0, 3))["stage_labels"] == "previous"
    assert "stage_labels" not in json.loads(wf.stage_spec(cfg, "trifeature_ssl", "mcl", 0, 2))
    assert clip["clip"]["precision"] == "fp16" and clip["clip"]["crop_scale"] == [0.9, 1.0]
    assert cfg["datasets"]["cc12m_mmvp"].get("image_fit", "shortest_side") == "shortest_side"
    rows = card(cfg, "mcl_mmvp")
    labels = row(rows, "mcl.labels")
    assert labels["value"] == "previous" and "cluster.py lines 76-80" in labels["source"]
    assert not labels["source"].startswith("assumed")
    assert row(rows, "clip.precision")["value"] == "fp16" and "GradScaler" in row(rows, "clip.precision")["source"]
    assert "whole image" in row(rows, "clip.crop_scale")["source"]
    assert "MiniBatchKMeans" in row(rows, "mcl.kmeans")["value"] and "cluster.py" in row(rows, "mcl.kmeans")["source"]
    assert row(rows, "batch_sampler.ranks")["source"].startswith("assumed")
    fit = row(rows, "image_fit", "data")
    assert "shortest_side" in fit["value"] and "open_clip's eval transform" in fit["source"]
    unimodal = row(card(cfg, "trifeature_ssl"), "mcl.labels")
    assert unimodal["value"] == "joint" and unimodal["source"].startswith("MCL paper")


@pytest.mark.parametrize("experiment, simcse, adnce", [("adnce_sts_bert", "simcse_bert", "adnce_bert"),
                                                        ("adnce_sts_roberta", "simcse_roberta", "adnce_roberta")])
def test_sentence_baseline_at_simcse_temperature_and_the_test_embedding(cfg, experiment, simcse, adnce):
    from clbench.models.sentence import sentence_settings

    assert params(cfg, experiment, simcse)["temperature"] == 0.05  # SimCSE's own, train.py's default
    assert params(cfg, experiment, adnce)["temperature"] == {"adnce_bert": 0.07, "adnce_roberta": 0.06}[adnce]
    for method in (simcse, adnce):
        assert sentence_settings(spec(cfg, experiment, method))["pooler"] == "cls_before_pooler"
    rows = card(cfg, experiment)
    temperature = row(rows, "loss.temperature", simcse)
    assert temperature["value"] == "0.05" and "train.py lines 89-90" in temperature["source"]
    pooler = row(rows, "sentence.pooler", "all methods")
    assert pooler["value"] == "cls_before_pooler" and "evaluate.sh line 7" in pooler["source"]
    assert "randomly initialised pooler" in pooler["source"] and "sts_avg_cls" in pooler["source"]
    assert "N(0, 0.02)" in row(rows, "sentence.head_init", "all methods")["value"]


RANDOM2 = ["tu_dd", "tu_mutag", "tu_reddit_binary", "tu_reddit_multi_5k", "tu_imdb_binary"]


@pytest.mark.parametrize("experiment", RANDOM2 + ["tu_collab"])
def test_graph_random2_rates_are_marked_assumed_with_file_and_line(cfg, experiment):
    rows = card(cfg, experiment)
    for setting in ("graph.node_drop_rate", "graph.subgraph_keep"):
        source = row(rows, setting, "all methods")["source"]
        if experiment in RANDOM2:
            assert source.startswith("assumed: the official random2 cannot run as shipped; GraphCL's rates")
            assert "aug.py lines 254-259" in source and "arguments.py line 28" in source
        else:  # random4 calls the functions at their own defaults
            assert not source.startswith("assumed")
    assert row(rows, "graph.self_loops", "all methods")["source"].startswith("assumed")
    assert row(rows, "graph_svc.outer_folds", "evaluation")["source"].startswith("assumed")

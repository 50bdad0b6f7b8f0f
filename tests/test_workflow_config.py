"""clbench.workflow: the workflow's configuration logic as plain functions of the config (no Snakemake)."""

import copy
import json
import subprocess
import sys

import pytest
import yaml

from clbench import workflow as wf
from clbench.data.dataset_dir import DatasetError
from clbench.errors import ConfigError
from conftest import REPO
from helpers import quadrant_dataset

SCHEMA = wf.load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")


def load(*paths):
    """The default config with overlays composed over it (as the workflow composes --configfile), unvalidated."""
    from clbench.config.composition import compose

    layers = [("config.yaml", yaml.safe_load((REPO / "config.yaml").read_text()))]
    layers += [(str(p), yaml.safe_load((REPO / p).read_text()) if isinstance(p, str) else p) for p in paths]
    return compose(layers)[0]


@pytest.fixture
def raw():
    return load()


@pytest.fixture
def cfg(raw):
    return wf.validate(raw, SCHEMA)


def refused(cfg, overlay=None) -> ConfigError:
    """The ConfigError that validating and checking ``cfg`` (with ``overlay`` merged in) raises."""
    from snakemake.utils import update_config

    cfg = copy.deepcopy(cfg)
    update_config(cfg, overlay or {})
    with pytest.raises(ConfigError) as info:
        wf.check_config(wf.validate(cfg, SCHEMA), SCHEMA)
    return info.value


def test_importing_the_module_stays_light():
    """Snakemake imports it while planning, and every cluster job re-plans: no torch, no numpy."""
    code = "import sys, clbench.workflow; print(sorted({'torch', 'numpy', 'scipy', 'pandas'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --------------------------------------------------------------------------------------------------
# schema


def test_validate_fills_defaults_without_sharing_them(raw):
    cfg = wf.validate(raw, SCHEMA)
    assert cfg["results_dir"] == "results" and cfg["gpus_per_train_job"] == 0
    assert cfg["methods"]["cnn"]["schedule"] == "cosine" and cfg["methods"]["cnn"]["encoder"]["name"] == "small_cnn"
    del raw["experiments"]["varcon_digits"]["seeds"]
    cfg = wf.validate(raw, SCHEMA)
    assert cfg["experiments"]["varcon_digits"]["seeds"] == [0]
    assert cfg["evaluation"]["corruptions"]["granularity"] == "grid"
    assert cfg["methods"]["cnn"]["encoder"] is not cfg["methods"]["supcon"]["encoder"]


def test_validate_fills_the_same_defaults_as_snakemake(raw):
    from snakemake.utils import validate

    theirs = copy.deepcopy(raw)
    validate(theirs, str(REPO / "workflow" / "schemas" / "config.schema.yaml"), set_default=True)
    assert wf.validate(raw, SCHEMA) == theirs


@pytest.mark.parametrize("overlay, key, words", [
    ({"methods": {"cnn": {"learning_rate": 0.1}}}, "methods.cnn.learning_rate", "valid keys here: ['augment'"),
    ({"methods": {"supcon": {"epochs": -3}}}, "methods.supcon.epochs", "-3"),
    ({"experimnets": {}}, "experimnets", "'experiments'"),
    ({"datasets": {"extra": {"n_train": 10}}}, "datasets.extra.generator", "required"),
    ({"methods": {"cnn": {"batch_size": "big"}}}, "methods.cnn.batch_size", "big"),
    ({"experiments": {"clear_styled": {"seeds": [0, 0]}}}, "experiments.clear_styled.seeds", "non-unique"),
    ({"experiments": {"clear_styled": {"evaluations": ["linear_probe", "gmigg"]}}},
     "experiments.clear_styled.evaluations[1]", "gmigg"),
])
def test_schema_errors_are_config_errors_naming_the_key(cfg, overlay, key, words):
    error = refused(cfg, overlay)
    assert error.key == key and str(error).startswith(f"{key}: ") and words in str(error)


# --------------------------------------------------------------------------------------------------
# merging and paths


def test_deep_merge_merges_nested_mappings_and_replaces_the_rest():
    base = {"a": 1, "loss": {"temperature": 0.1, "epsilon": 0.02}, "seeds": [0, 1]}
    assert wf.deep_merge(base, {"loss": {"epsilon": 0.05}, "seeds": [2]}) == {
        "a": 1, "loss": {"temperature": 0.1, "epsilon": 0.05}, "seeds": [2]}
    assert base["loss"]["epsilon"] == 0.02  # not modified


def test_method_spec_applies_the_experiment_overrides():
    cfg = wf.validate(load("configs/paper.yaml"), SCHEMA)
    spec = wf.method_spec(cfg, "varcon_imagenet100", "varcon")
    assert spec["encoder"] == {"name": "resnet50", "stem": "imagenet", "width": 32, "feature_dim": 128}
    assert spec["gpus"] == 8 and spec["optimizer"]["lr"] == 1.0 and spec["optimizer"]["weight_decay"] == 0.0001
    assert wf.method_spec(cfg, "varcon_cifar100", "varcon")["encoder"].get("stem") is None
    assert wf.method_gpus(cfg, "varcon_imagenet100", "varcon") == 8 and wf.method_gpus(cfg, "varcon_cifar100", "varcon") == 1
    assert wf.train_command(cfg, "varcon_imagenet100", "varcon") == "torchrun --standalone --nproc_per_node=8 -m clbench.cli"
    assert wf.train_command(cfg, "varcon_cifar100", "varcon") == "clbench"


def test_run_paths(cfg):
    assert wf.run_dir(cfg, "trifeature_ssl", "mcl", 0) == "results/runs/trifeature_ssl/mcl/seed0"
    assert wf.checkpoint_dir(cfg, "trifeature_ssl", "mcl", "0", stage="1") == "results/checkpoints/trifeature_ssl/mcl/seed0/stage1"
    assert wf.dataset_meta(cfg, "trifeature_ssl") == "results/data/trifeature/meta.json"
    assert wf.previous_stage_clusters(cfg, "trifeature_ssl", "mcl", 0, 1) == ["results/runs/trifeature_ssl/mcl/seed0/stage0/clusters.npy"]
    assert wf.mcl_stage_models(cfg, "trifeature_ssl", "mcl", 0) == [
        f"results/runs/trifeature_ssl/mcl/seed0/stage{s}/model.pt" for s in (0, 1)]
    assert wf.mcl_clusters(cfg, "trifeature_ssl", "mcl") == 4
    stage = json.loads(wf.stage_spec(cfg, "trifeature_ssl", "mcl"))
    assert "mcl" not in stage and stage == {k: v for k, v in cfg["methods"]["mcl"].items() if k != "mcl"}
    assert wf.pretrain_spec(cfg, "varcon_digits", "varcon") == wf.as_json(cfg["methods"]["varcon"])
    runs = list(wf.experiment_runs(cfg))
    assert len(runs) == sum(len(e["methods"]) * len(e["seeds"]) for e in cfg["experiments"].values())
    assert len(wf.all_evaluations(cfg)) == len(runs) and wf.all_metrics(cfg)[0].endswith("/metrics.csv")
    assert wf.all_dataset_previews(cfg)[:6] == [f"results/data/{d}/samples.png" for d in sorted(
        {"styled_digits", "styled_digits_ood3", "digits_on_photos", "trifeature", "graph_classes", "trifeature_captions"})]


def test_as_json_is_canonical():
    assert wf.as_json({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'


def test_name_regex_matches_exactly_the_names():
    import re

    pattern = wf.name_regex(["mcl", "a-b"])
    assert re.fullmatch(pattern, "mcl") and re.fullmatch(pattern, "a-b") and not re.fullmatch(pattern, "mclx")
    assert not re.fullmatch(wf.name_regex([]), "")


def test_corruption_cells_and_evaluation_spec_by_granularity():
    cfg = wf.validate(load("configs/paper.yaml"), SCHEMA)
    cells = wf.corruption_cells(cfg, "varcon_cifar100")
    assert len(cells) == 75 and cells[0] == ("gaussian_noise", 1) and cells[-1] == ("jpeg_compression", 5)
    assert wf.corruption_cells(cfg, "adnce_cifar10") == []
    assert json.loads(wf.evaluation_spec(cfg, "varcon_cifar100"))["corruptions"] == {"granularity": "cell"}
    assert wf.corruption_cell_results(cfg, "varcon_cifar100", "cnn", 0)[0] == (
        "results/runs/varcon_cifar100/cnn/seed0/corruptions/gaussian_noise/s1.json")
    assert wf.corrupted_meta(cfg, "varcon_cifar100", "fog", 3) == "results/data/cifar100/corrupted/fog/s3/meta.json"
    dirs = wf.used_dataset_dirs(cfg)
    assert "results/data/cifar10/corrupted/fog/s3" in dirs and "results/data/imagenet100" in dirs
    assert len(dirs) == len({e["dataset"] for e in cfg["experiments"].values()}) + 2 * 75

    tiny = wf.validate(load(), SCHEMA)
    assert wf.corruption_cells(tiny, "varcon_digits") == []
    spec = json.loads(wf.evaluation_spec(tiny, "varcon_digits"))
    assert spec["corruptions"] == {"names": "all", "severities": [1, 2, 3, 4, 5], "n_test": 300}
    assert spec["evaluations"] == ["linear_probe", "knn", "corruptions"] and spec["y_factor"] == "y"
    assert "corruptions" not in json.loads(wf.evaluation_spec(tiny, "clear_styled"))


def test_official_corruption_root_only_for_the_matching_cifar(tmp_path):
    cfg = wf.validate(load("configs/paper.yaml", {"evaluation": {"corruptions": {"cifar100c_root": str(tmp_path)}}}), SCHEMA)
    assert wf.official_corruption_root(cfg, "cifar100") == str(tmp_path)
    assert wf.official_corruption_root(cfg, "cifar10") == "" and wf.official_corruption_root(cfg, "stl10") == ""


def test_final_outputs(cfg):
    assert wf.final_outputs(cfg) == ["results/tables/summary.csv", "results/figures/training_curves.png",
                                     "results/report/index.html"]


# --------------------------------------------------------------------------------------------------
# checks: the shipped configs pass, bad settings are refused naming the key


@pytest.mark.parametrize("overlays", [(), ("configs/smoke.yaml",), ("configs/paper.yaml",)])
def test_shipped_configs_pass_the_checks(overlays):
    cfg = wf.validate(load(*overlays), SCHEMA)
    warnings = wf.check_config(cfg, SCHEMA)
    if overlays == ("configs/paper.yaml",):  # ImageNet needs a user-given root; a dry run plans without it
        assert [w.split(":")[0] for w in warnings] == ["datasets.imagenet100", "datasets.imagenet1k"]
        assert "needs root" in warnings[0]
    else:
        assert warnings == []


def test_unknown_dataset_or_method_of_an_experiment(cfg):
    error = refused(cfg, {"experiments": {"varcon_digits": {"methods": ["cnn", "simclrr"]}}})
    assert error.key == "experiments.varcon_digits.methods" and "simclrr" in str(error)
    error = refused(cfg, {"experiments": {"varcon_digits": {"dataset": "cifar11"}}})
    assert error.key == "experiments.varcon_digits.dataset" and "cifar11" in str(error)


def test_method_overrides_are_checked(cfg):
    error = refused(cfg, {"experiments": {"varcon_digits": {"method_overrides": {"adnce": {"epochs": 2}}}}})
    assert error.key == "experiments.varcon_digits.method_overrides.adnce"
    error = refused(cfg, {"experiments": {"varcon_digits": {"method_overrides": {"varcon": {"epochs": 0}}}}})
    assert error.key == "experiments.varcon_digits.method_overrides.varcon.epochs"
    error = refused(cfg, {"experiments": {"varcon_digits": {"method_overrides": {"varcon": {"mcl": {"stages": 2}}}}}})
    assert error.key == "experiments.varcon_digits.method_overrides.varcon" and "multistage" in str(error)


def test_mcl_with_too_many_joint_clusters(cfg):
    error = refused(cfg, {"methods": {"mcl": {"mcl": {"stages": 4, "clusters": 10}}}})
    assert error.key == "methods.mcl.mcl" and "datasets.trifeature.n_train = 2000" in str(error)


def test_missing_dataset_root(cfg, tmp_path):
    error = refused(cfg, {"datasets": {"styled_digits": {"root": str(tmp_path / "no_such_mnist")}}})
    assert error.key == "datasets.styled_digits.root" and "download: true" in str(error)
    # an unused dataset's root is not checked
    unused = {"datasets": {"extra": {"generator": "styled_mnist", "root": str(tmp_path / "nowhere")}}}
    cfg2 = copy.deepcopy(cfg)
    cfg2["datasets"]["extra"] = unused["datasets"]["extra"]
    wf.check_config(wf.validate(cfg2, SCHEMA), SCHEMA)


def test_corruption_names_and_official_roots(cfg, tmp_path):
    error = refused(cfg, {"evaluation": {"corruptions": {"names": ["fog", "speckle"]}}})
    assert error.key == "evaluation.corruptions.names" and "speckle" in str(error)
    error = refused(cfg, {"evaluation": {"corruptions": {"cifar100c_root": str(tmp_path / "no_CIFAR-100-C")}}})
    assert error.key == "evaluation.corruptions.cifar100c_root"


# --------------------------------------------------------------------------------------------------
# existing dataset directories


def test_verify_datasets_refuses_a_truncated_split(tmp_path):
    path = tmp_path / "data" / "styled_digits"
    quadrant_dataset(path, n_train=32, n_val=8, n_test=8)
    wf.verify_datasets([path, tmp_path / "data" / "not_built_yet"])  # a missing directory is not an error
    data = (path / "train.npz").read_bytes()
    (path / "train.npz").write_bytes(data[:-100])
    with pytest.raises(DatasetError, match="train.npz is truncated or unreadable"):
        wf.verify_datasets([path])


# --------------------------------------------------------------------------------------------------
# objectives, datasets and experiments: settings that would fail or silently do something else in a job


@pytest.mark.parametrize("overlay, key, words", [
    ({"methods": {"varcon": {"loss": {"temperature": 0}}}}, "methods.varcon.loss.temperature", "must be > 0, got 0"),
    ({"methods": {"adnce": {"loss": {"mu": 0.7, "sigmaa": 1}}}}, "methods.adnce.loss.sigmaa", "known: mu, sigma"),
    ({"methods": {"varcon": {"loss": {"temperature": 0.1, "epsilon": 0.5}}}}, "methods.varcon.loss.epsilon",
     "must be < temperature (0.1)"),
    ({"methods": {"supcon": {"loss": {"epsilon": 0.1}}}}, "methods.supcon.loss.epsilon", "unknown parameter"),
    ({"methods": {"clear": {"vae": {"style": "club"}}}}, "methods.clear.vae.style", "club_sample"),
    ({"methods": {"infonce": {"views": 1}}}, "methods.infonce.views", "needs views: 2"),
    ({"methods": {"subembed": {"loss": {"k": 3}}}}, "methods.subembed.loss.k", "projection_dim (128)"),
    ({"methods": {"infonce": {"augment": "none"}}}, "methods.infonce.augment", "identical"),
    ({"methods": {"cnn": {"mcl": {"stages": 2, "clusters": 2}}}}, "methods.cnn.mcl", "cross_entropy"),
    ({"experiments": {"varcon_digits": {"method_overrides": {"varcon": {"loss": {"epsilon": 0.2}}}}}},
     "experiments.varcon_digits.method_overrides.varcon.loss.epsilon", "must be < temperature"),
])
def test_method_settings_are_refused_naming_the_key(cfg, overlay, key, words):
    error = refused(cfg, overlay)
    assert error.key == key and words in str(error), str(error)


@pytest.mark.parametrize("overlay, key, words", [
    ({"datasets": {"styled_digits_ood3": {"k": 9}}}, "datasets.styled_digits_ood3.k", "1..5 of the 6 styles"),
    ({"datasets": {"styled_digits_ood3": {"k": 0}}}, "datasets.styled_digits_ood3.k", "less than the minimum of 1"),
    ({"datasets": {"styled_digits": {"k": 2}}}, "datasets.styled_digits.k", "applies only with recipe: ood"),
    ({"datasets": {"styled_digits": {"recipe": "ood_k"}}}, "datasets.styled_digits.recipe", "'independent', 'ood'"),
    ({"datasets": {"styled_digits": {"source": "mnsit"}}}, "datasets.styled_digits.source", "'embedded', 'mnist'"),
    ({"datasets": {"styled_digits": {"image_size": 32}}}, "datasets.styled_digits.image_size", "28"),
    ({"datasets": {"styled_digits": {"options": {"colour": "red"}}}}, "datasets.styled_digits.options.colour",
     "reads no colour"),
    ({"datasets": {"trifeature": {"k": 3}}}, "datasets.trifeature.k", "reads no k"),
    ({"datasets": {"trifeature": {"options": {"holdout": 1.5}}}}, "datasets.trifeature.options.holdout", "1.5"),
    ({"datasets": {"digits_on_photos": {"options": {"vary": ["digit", "colour"]}}}},
     "datasets.digits_on_photos.options.vary[1]", "'colour' is not one of ['digit', 'location', 'background']"),
    ({"datasets": {"trifeature": {"generator": "trifeatures"}}}, "datasets.trifeature.generator", "known: camelyon17"),
])
def test_dataset_settings_are_refused_by_their_generator(cfg, overlay, key, words):
    error = refused(cfg, overlay)
    assert error.key == key and words in str(error), str(error)


def test_paper_scale_dataset_settings_are_checked():
    cfg = wf.validate(load("configs/paper.yaml"), SCHEMA)
    for overlay, key, words in [
        ({"datasets": {"pacs_ood3": {"k": 4}}}, "datasets.pacs_ood3.k", "1..3 of the 4 domains"),
        ({"datasets": {"pacs_ood3": {"recipe": "lodo"}}}, "datasets.pacs_ood3.k", "applies only with recipe: ood_k"),
        ({"datasets": {"cifar10": {"options": {"unlabeled": True}}}}, "datasets.cifar10.options.unlabeled", "stl10"),
        ({"datasets": {"cifar10": {"name": "cifar11"}}}, "datasets.cifar10.name", "cifar100"),
        ({"datasets": {"cifar10": {"k": 3}}}, "datasets.cifar10.k", "applies only with recipe: ood_k"),
        ({"datasets": {"camelyon17": {"options": {"storage": "disk"}}}}, "datasets.camelyon17.options.storage", "paths"),
    ]:
        error = refused(cfg, overlay)
        assert error.key == key and words in str(error), str(error)


@pytest.mark.parametrize("overlay, key, words", [
    ({"experiments": {"varcon_digits": {"evaluations": ["linear_probe", "gmig"]}}},
     "experiments.varcon_digits.evaluations[1]", "needs a model with factors"),
    ({"experiments": {"trifeature_ssl": {"evaluations": ["slice_probes"]}}},
     "experiments.trifeature_ssl.evaluations[0]", "needs a model with slices"),
    ({"experiments": {"clear_styled": {"evaluations": ["linear_probe", "stage_probes"]}}},
     "experiments.clear_styled.evaluations[1]", "needs a model with stages"),
    ({"experiments": {"varcon_digits": {"baseline": "infonce"}}}, "experiments.varcon_digits.baseline",
     "not one of this experiment's methods"),
    ({"experiments": {"clear_ood_k3": {"k": 4}}}, "experiments.clear_ood_k3.k", "datasets.styled_digits_ood3.k = 3"),
    ({"experiments": {"varcon_digits": {"k": 2}}}, "experiments.varcon_digits.k", "no k"),
    ({"experiments": {"varcon_digits": {"seeds": [0, 1, 0]}}}, "experiments.varcon_digits.seeds", "non-unique"),
])
def test_experiment_settings_are_refused_naming_the_key(cfg, overlay, key, words):
    error = refused(cfg, overlay)
    assert error.key == key and words in str(error), str(error)


def test_experiment_k_follows_the_generator_default(cfg):
    """A dataset without k gets its generator's default (styled_mnist: 3), which the experiment must match."""
    del cfg["datasets"]["styled_digits_ood3"]["k"]
    wf.check_config(cfg, SCHEMA)
    cfg["experiments"]["clear_ood_k3"]["k"] = 2
    with pytest.raises(ConfigError, match=r"^experiments\.clear_ood_k3\.k: 2 disagrees .* = 3$"):
        wf.check_config(cfg, SCHEMA)


def test_evaluation_of_one_model_kind_is_fine_beside_other_methods(cfg):
    """trifeature_ssl's stage_probes read only its MCL method: the others skip it, the experiment is valid."""
    assert "stage_probes" in cfg["experiments"]["trifeature_ssl"]["evaluations"]
    wf.check_config(cfg, SCHEMA)


def test_generator_declarations_match_what_their_modules_read():
    """Each registry entry declares exactly the keys its module's build accepts, with the module's bounds."""
    import importlib

    import jsonschema

    from clbench.data import embedded, imagefolder, mnist_on_stl, pacs, styled_mnist, torchvision_sources
    from clbench.data.build import GENERATORS, UNIVERSAL_KEYS

    assert set(GENERATORS) >= {"styled_mnist", "mnist_on_stl", "trifeature", "gaussian_mixture", "torchvision", "pacs",
                               "camelyon17", "imagefolder"}
    for name, generator in GENERATORS.items():
        module = importlib.import_module(generator.module)
        declared = set(generator.keys) | UNIVERSAL_KEYS
        if hasattr(module, "DEFAULTS"):  # the synthetic generators: spec_params accepts DEFAULTS and the common keys
            assert set(module.DEFAULTS) <= declared <= set(module.DEFAULTS) | embedded.COMMON_KEYS, name
        else:  # the real sources: merged_spec accepts ACCEPTED and the common keys
            assert declared == set(module.ACCEPTED) | imagefolder.COMMON_KEYS, name
        for key, schema in generator.keys.items():
            if "default" in schema:
                jsonschema.validate(schema["default"], schema)
    keys = GENERATORS["styled_mnist"].keys
    assert keys["k"]["maximum"] == len(styled_mnist.STYLES) - 1 and keys["k"]["default"] == styled_mnist.DEFAULTS["k"]
    keys = GENERATORS["pacs"].keys
    assert keys["k"]["maximum"] == len(pacs.DOMAINS) - 1 and keys["test_domain"]["enum"] == list(pacs.DOMAINS)
    assert GENERATORS["torchvision"].keys["name"]["enum"] == list(torchvision_sources.SOURCES)
    assert GENERATORS["mnist_on_stl"].keys["vary"]["items"]["enum"] == list(mnist_on_stl.FACTORS)


def test_augmented_views_are_previewed_per_dataset_with_its_recipes(cfg):
    assert wf.dataset_recipes(cfg, "trifeature") == ["simclr"]
    assert wf.dataset_recipes(cfg, "styled_digits") == ["digits"]  # cnn, supcon and varcon; CLEAR trains unaugmented
    assert wf.dataset_recipes(cfg, "digits_on_photos") == []  # paired views, no augmentation
    previews = wf.all_dataset_previews(cfg)
    assert f"{cfg['results_dir']}/data/trifeature/augmented_views.png" in previews
    assert f"{cfg['results_dir']}/data/digits_on_photos/augmented_views.png" not in previews
    cfg["experiments"]["trifeature_ssl"]["evaluation"] = {"probe": {"protocol": "augmented", "augment": "crop_flip"}}
    assert wf.dataset_recipes(cfg, "trifeature") == ["crop_flip", "simclr"]


def test_seeds_per_job_all_groups_the_experiments_of_the_shared_seed_list(cfg):
    assert cfg["seeds_per_job"] == "all" and wf.shared_seeds(cfg) == [0, 1, 2]
    assert wf.grouped_experiments(cfg) == list(cfg["experiments"])
    assert wf.per_seed(cfg, "r/{experiment}/seed{seed}/model.pt") == [
        "r/{experiment}/seed0/model.pt", "r/{experiment}/seed1/model.pt", "r/{experiment}/seed2/model.pt"]
    assert wf.seeds_arg(cfg) == "0,1,2"
    # an experiment with other seeds gets a job per seed; the list most experiments share stays grouped
    cfg["experiments"]["clear_styled"]["seeds"] = [0, 1]
    assert wf.shared_seeds(cfg) == [0, 1, 2] and "clear_styled" not in wf.grouped_experiments(cfg)
    cfg["seeds_per_job"] = "one"
    assert wf.shared_seeds(cfg) == [] and wf.grouped_experiments(cfg) == [] and wf.per_seed(cfg, "x{seed}") == []

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
    """The default config with overlays merged in (as snakemake merges --configfile), unvalidated."""
    from snakemake.utils import update_config

    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    for path in paths:
        update_config(cfg, yaml.safe_load((REPO / path).read_text()) if isinstance(path, str) else path)
    return cfg


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
    assert cfg["experiments"]["clear_styled"]["seeds"] == [0]
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
    assert wf.all_dataset_previews(cfg) == [f"results/data/{d}/samples.png" for d in sorted(
        {"styled_digits", "styled_digits_ood3", "digits_on_photos", "trifeature"})]


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
    assert error.key == "methods.mcl.mcl" and "datasets.trifeature.n_train = 4000" in str(error)


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

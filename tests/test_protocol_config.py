"""Config keys of the protocol mechanisms: accepted where they apply, refused by name elsewhere, and the
per-experiment evaluation settings reaching the evaluate job's spec."""

import copy
import json

import pytest
import yaml

from clbench import workflow as wf
from clbench.errors import ConfigError
from conftest import REPO

SCHEMA = wf.load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")


@pytest.fixture
def config():
    return yaml.safe_load((REPO / "config.yaml").read_text())


def _checked(cfg):
    cfg = wf.validate(cfg, SCHEMA)
    wf.check_config(cfg, SCHEMA)
    return cfg


def test_protocol_keys_are_accepted_and_unset_ones_add_nothing(config):
    plain = _checked(copy.deepcopy(config))
    cfg = copy.deepcopy(config)
    cfg["methods"]["cnn"]["encoder"] = {"name": "small_cnn", "pool": "flatten"}
    cfg["methods"]["cnn"]["classifier"] = {"kind": "mlp", "hidden_dim": 256}
    cfg["methods"]["supcon"]["augment"] = "crop_flip"
    cfg["evaluation"]["mlp_probe"] = {"lr": 3e-4, "batch_size": 128, "epochs": 41}
    cfg["experiments"]["trifeature_ssl"]["evaluation"] = {
        "probe": {"protocol": "augmented", "augment": "simclr", "batch_size": 512}, "knn": {"temperature": 0.5}}
    cfg["datasets"]["styled_digits_ood3"]["options"] = {"ood_design": "cyclic"}
    cfg = _checked(cfg)
    # unset, the new keys stay unset: the default config's specs (and their run hashes) do not change
    assert plain["evaluation"]["probe"] == {"kind": "linear", "epochs": 100, "lr": 0.01, "weight_decay": 0.0001,
                                           "batch_size": 0}
    assert plain["evaluation"]["mlp_probe"] == {}
    assert "pool" not in plain["methods"]["cnn"]["encoder"] and "classifier" not in plain["methods"]["cnn"]
    assert cfg["experiments"]["trifeature_ssl"]["evaluation"]["knn"] == {"temperature": 0.5}


@pytest.mark.parametrize("overlay,key,words", [
    ({"evaluation": {"probe": {"protocol": "cached"}}}, "evaluation.probe.protocol", "cached"),
    ({"evaluation": {"probe": {"protocol": "augmented", "augment": "autoaugment"}}}, "evaluation.probe.augment",
     "autoaugment"),
    ({"evaluation": {"probe": {"augment": "simclr"}}}, "evaluation.probe.augment", "only protocol augmented"),
    ({"evaluation": {"mlp_probe": {"kind": "linear"}}}, "evaluation.mlp_probe.kind", "unknown key"),
    ({"evaluation": {"mlp_probe": {"momentum": 0.5}}}, "evaluation.mlp_probe.momentum", "only optimizer sgd"),
    ({"methods": {"cnn": {"encoder": {"pool": "max"}}}}, "methods.cnn.encoder.pool", "max"),
    ({"methods": {"cnn": {"classifier": {"kind": "svm"}}}}, "methods.cnn.classifier.kind", "svm"),
    ({"experiments": {"clear_ood_k3": {"evaluation": {"probe": {"protocol": "images"}}}}},
     "experiments.clear_ood_k3.evaluation.probe.protocol", "images"),
    ({"experiments": {"clear_ood_k3": {"evaluation": {"mlp_probe": {"hidden_dim": 0}}}}},
     "experiments.clear_ood_k3.evaluation.mlp_probe.hidden_dim", "0"),
    ({"datasets": {"styled_digits_ood3": {"options": {"ood_design": "latin"}}}},
     "datasets.styled_digits_ood3.options.ood_design", "latin"),
    ({"datasets": {"styled_digits": {"options": {"ood_design": "random"}}}},
     "datasets.styled_digits.options.ood_design", "recipe"),
])
def test_bad_protocol_values_are_refused_by_name(config, overlay, key, words):
    from snakemake.utils import update_config

    update_config(config, copy.deepcopy(overlay))
    with pytest.raises(ConfigError) as info:
        _checked(config)
    assert info.value.key == key and words in str(info.value), str(info.value)


def test_an_experiments_evaluation_settings_reach_its_evaluate_job(config):
    config["experiments"]["trifeature_ssl"]["evaluation"] = {"probe": {"protocol": "augmented", "epochs": 7},
                                                             "mlp_probe": {"lr": 3e-4}}
    cfg = _checked(config)
    spec = json.loads(wf.evaluation_spec(cfg, "trifeature_ssl"))
    assert spec["probe"]["protocol"] == "augmented" and spec["probe"]["epochs"] == 7
    assert spec["probe"]["lr"] == config["evaluation"]["probe"]["lr"] and spec["mlp_probe"] == {"lr": 3e-4}
    other = json.loads(wf.evaluation_spec(cfg, "clear_ood_k3"))
    assert "protocol" not in other["probe"] and other["probe"]["epochs"] == 100 and other["mlp_probe"] == {}

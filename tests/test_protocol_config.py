"""Config keys of the protocol mechanisms: schema entries, and the per-experiment evaluation settings
reaching the evaluate job."""

import copy
import json
import re
import subprocess

import pytest
import yaml
from snakemake.utils import validate

from conftest import REPO, snakemake_exe

SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")


@pytest.fixture
def config():
    with open(REPO / "config.yaml") as f:
        return yaml.safe_load(f)


def test_protocol_keys_are_accepted_with_their_defaults(config):
    cfg = copy.deepcopy(config)
    cfg["methods"]["cnn"]["encoder"] = {"name": "small_cnn", "pool": "flatten"}
    cfg["methods"]["cnn"]["classifier"] = {"kind": "mlp", "hidden_dim": 256}
    cfg["methods"]["supcon"]["augment"] = "crop_flip"
    cfg["evaluation"]["mlp_probe"] = {"lr": 3e-4, "batch_size": 128, "epochs": 41}
    cfg["experiments"]["trifeature_ssl"]["evaluation"] = {
        "probe": {"protocol": "augmented", "augment": "simclr", "optimizer": "adam", "batch_size": 512},
        "knn": {"temperature": 0.5}}
    cfg["datasets"]["styled_digits_ood3"]["options"] = {"ood_design": "cyclic"}
    validate(cfg, SCHEMA, set_default=True)
    probe = cfg["evaluation"]["probe"]
    assert (probe["protocol"], probe["augment"], probe["hidden_dim"], probe["optimizer"]) == ("features", "simclr", 256, "adam")
    # an experiment's override gets no defaults filled in: absent keys keep the top-level settings
    assert cfg["experiments"]["trifeature_ssl"]["evaluation"]["knn"] == {"temperature": 0.5}
    assert "pool" not in cfg["methods"]["infonce"].get("encoder", {})  # new method keys add nothing to old specs


@pytest.mark.parametrize("where,value", [
    (("evaluation", "probe", "protocol"), "cached"),
    (("evaluation", "probe", "augment"), "autoaugment"),
    (("evaluation", "mlp_probe", "kind"), "linear"),
    (("methods", "cnn", "encoder", "pool"), "max"),
    (("methods", "cnn", "classifier", "kind"), "svm"),
    (("experiments", "clear_ood_k3", "evaluation", "probe", "protocol"), "images"),
])
def test_bad_protocol_values_are_refused_by_name(config, where, value):
    node = config
    for key in where[:-1]:
        node = node.setdefault(key, {})
    node[where[-1]] = value
    with pytest.raises(Exception, match=re.escape(str(value)) + "|" + where[-1]):
        validate(config, SCHEMA, set_default=True)


def test_an_experiments_evaluation_settings_reach_its_evaluate_job(tmp_path, config):
    config["experiments"]["trifeature_ssl"]["evaluation"] = {"probe": {"protocol": "augmented", "epochs": 7}}
    (tmp_path / "overlay.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.run([snakemake_exe(), "-n", "-p", "--snakefile", str(REPO / "Snakefile"), "--configfile",
                           str(REPO / "config.yaml"), str(tmp_path / "overlay.yaml"), "--directory", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    specs = {}
    for line in proc.stdout.splitlines():
        m = re.search(r"evaluate run .*?--metrics \S*runs/([^/]+)/.*?--spec '(\{.*?\})'", line)
        if m:
            specs.setdefault(m.group(1), []).append(json.loads(m.group(2)))
    assert specs["trifeature_ssl"] and all(s["probe"]["protocol"] == "augmented" and s["probe"]["epochs"] == 7
                                           and s["probe"]["lr"] == config["evaluation"]["probe"]["lr"]
                                           for s in specs["trifeature_ssl"])
    others = [s for name, group in specs.items() if name != "trifeature_ssl" for s in group]
    assert others and all(s["probe"]["protocol"] == "features" and s["probe"]["epochs"] == 100 for s in others)


def test_ood_design_is_a_declared_styled_mnist_key():
    from clbench.data.build import check_spec
    from clbench.errors import ConfigError

    check_spec({"generator": "styled_mnist", "recipe": "ood", "options": {"ood_design": "cyclic"}}, "datasets.d")
    with pytest.raises(ConfigError, match=r"datasets\.d\.options\.ood_design"):
        check_spec({"generator": "styled_mnist", "recipe": "ood", "options": {"ood_design": "latin"}}, "datasets.d")
    with pytest.raises(ConfigError, match="ood_design"):  # it would be ignored without recipe ood
        check_spec({"generator": "styled_mnist", "recipe": "independent", "options": {"ood_design": "random"}},
                   "datasets.d")

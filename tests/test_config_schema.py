"""The config schema rejects unknown keys and wrong values before any job runs, naming the key."""

import copy
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


def test_default_config_is_valid_and_defaults_are_filled(config):
    cfg = copy.deepcopy(config)
    validate(cfg, SCHEMA, set_default=True)
    assert cfg["results_dir"] == "results"
    assert cfg["methods"]["cnn"]["schedule"] == "cosine"
    assert cfg["methods"]["cnn"]["encoder"]["name"] == "small_cnn"
    assert cfg["evaluation"]["probe"]["kind"] == "linear"
    assert cfg["experiments"]["clear_styled"]["seeds"] == [0]


@pytest.mark.parametrize("path", ["configs/smoke.yaml", "configs/paper.yaml"])
def test_shipped_configs_are_valid(path, config):
    if not (REPO / path).exists():
        pytest.skip(f"{path} not written yet")
    with open(REPO / path) as f:
        overlay = yaml.safe_load(f)
    from snakemake.utils import update_config

    update_config(config, overlay)  # as snakemake merges --configfile overlays
    validate(config, SCHEMA, set_default=True)


def test_unknown_method_key_is_rejected(config):
    config["methods"]["cnn"]["learning_rate"] = 0.1
    with pytest.raises(Exception, match="learning_rate"):
        validate(config, SCHEMA)


def test_negative_epochs_is_rejected(config):
    config["methods"]["supcon"]["epochs"] = -3
    with pytest.raises(Exception, match=r"-3|epochs"):
        validate(config, SCHEMA)


def test_unknown_top_level_key_is_rejected(config):
    config["experimnets"] = {}
    with pytest.raises(Exception, match="experimnets"):
        validate(config, SCHEMA)


def test_wrong_type_is_rejected(config):
    config["methods"]["cnn"]["batch_size"] = "big"
    with pytest.raises(Exception, match="big"):
        validate(config, SCHEMA)


def _dry_run(repo, tmp_path, overlay: dict):
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(overlay))
    return subprocess.run([snakemake_exe(), "-n", "--snakefile", str(repo / "Snakefile"), "--configfile",
                           str(repo / "config.yaml"), str(tmp_path / "bad.yaml"), "--directory", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)


def test_snakemake_refuses_bad_config_before_any_job(repo, tmp_path, config):
    config["methods"]["cnn"]["epochs"] = -1
    proc = _dry_run(repo, tmp_path, config)
    assert proc.returncode != 0
    assert "epochs" in proc.stderr + proc.stdout
    assert not (tmp_path / "results").exists()


def test_experiment_with_unknown_method_is_refused(repo, tmp_path, config):
    config["experiments"]["varcon_digits"]["methods"].append("simclrr")
    proc = _dry_run(repo, tmp_path, config)
    assert proc.returncode != 0
    assert "simclrr" in proc.stderr + proc.stdout


def test_mcl_with_too_many_joint_clusters_is_refused(repo, tmp_path, config):
    config["methods"]["mcl"]["mcl"] = {"stages": 4, "clusters": 10}
    proc = _dry_run(repo, tmp_path, config)
    assert proc.returncode != 0
    assert "methods.mcl.mcl" in proc.stderr + proc.stdout
    assert not (tmp_path / "results").exists()


def test_missing_dataset_root_is_refused_before_any_job(repo, tmp_path, config):
    config["datasets"]["styled_digits"]["root"] = str(tmp_path / "no_such_mnist")
    proc = _dry_run(repo, tmp_path, config)
    assert proc.returncode != 0
    assert "datasets.styled_digits.root" in proc.stderr + proc.stdout and "download: true" in proc.stderr + proc.stdout

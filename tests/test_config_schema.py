"""The config schema rejects unknown keys and wrong values before any job runs, naming the key."""

import copy
import json
import re
import subprocess

import pytest
import yaml
from snakemake.utils import validate

from conftest import REPO, snakemake_exe
from helpers import quadrant_dataset

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
    assert cfg["experiments"]["clear_styled"]["seeds"] == [0, 1, 2] and cfg["seeds_per_job"] == "all"
    cfg = copy.deepcopy(config)
    del cfg["experiments"]["clear_styled"]["seeds"]
    validate(cfg, SCHEMA, set_default=True)
    assert cfg["experiments"]["clear_styled"]["seeds"] == [0]  # the schema's default


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


def _dry_run(repo, tmp_path, overlay: dict, mode=("-n",)):
    """snakemake in ``tmp_path`` on the default config plus ``overlay``: a dry run, or a real one with
    ``mode=("--cores", "1")``."""
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(overlay))
    return subprocess.run([snakemake_exe(), *mode, "--snakefile", str(repo / "Snakefile"), "--configfile",
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


def test_unknown_corruption_and_missing_official_set_are_refused(repo, tmp_path, config):
    config["evaluation"]["corruptions"]["names"] = ["fog", "speckle"]
    proc = _dry_run(repo, tmp_path, config)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "evaluation.corruptions.names" in out and "speckle" in out
    config["evaluation"]["corruptions"] = {"names": ["fog"], "cifar100c_root": str(tmp_path / "no_CIFAR-100-C")}
    proc = _dry_run(repo, tmp_path, config)
    assert proc.returncode != 0 and "evaluation.corruptions.cifar100c_root" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_method_overrides_are_checked_and_applied(repo, tmp_path, config):
    exp = config["experiments"]["varcon_digits"]
    exp["method_overrides"] = {"adnce": {"epochs": 2}}
    proc = _dry_run(repo, tmp_path, config)
    assert proc.returncode != 0 and "experiments.varcon_digits.method_overrides.adnce" in proc.stdout + proc.stderr
    exp["method_overrides"] = {"varcon": {"epochs": 0}}
    proc = _dry_run(repo, tmp_path, config)
    assert proc.returncode != 0 and "experiments.varcon_digits.method_overrides.varcon.epochs" in proc.stdout + proc.stderr
    exp["method_overrides"] = {"varcon": {"epochs": 7, "loss": {"epsilon": 0.05}}}
    proc = _dry_run(repo, tmp_path, config, mode=("-n", "-p"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    specs = re.findall(r"train --spec '(\{.*?\})'", proc.stdout)
    varcon = [json.loads(s) for s in specs if '"objective":"varcon"' in s]
    assert varcon and all(s["epochs"] == 7 and s["loss"] == {"temperature": config["methods"]["varcon"]["loss"]["temperature"],
                                                              "epsilon": 0.05} for s in varcon)
    assert not (tmp_path / "results").exists()


def _built_dataset(tmp_path):
    """A small built dataset directory where the default config reads styled_digits."""
    path = tmp_path / "results" / "data" / "styled_digits"
    quadrant_dataset(path, n_train=32, n_val=8, n_test=8)
    return path


def _files(tmp_path):
    """Every file under results/ with its content (to show that a refused run wrote nothing)."""
    return {p: p.read_bytes() for p in (tmp_path / "results").rglob("*") if p.is_file()}


def test_truncated_dataset_file_stops_the_run_before_any_job(repo, tmp_path):
    path = _built_dataset(tmp_path)
    data = (path / "train.npz").read_bytes()
    (path / "train.npz").write_bytes(data[: len(data) - 100])
    before = _files(tmp_path)
    proc = _dry_run(repo, tmp_path, {}, mode=("--cores", "1"))  # a real run: it must not start any job
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert out.count("results/data/styled_digits/train.npz is truncated or unreadable") == 1, out
    assert "Delete results/data/styled_digits/train.npz (or the whole directory results/data/styled_digits)" in out
    assert "No job was started" in out and "rule build_dataset" not in out
    assert _files(tmp_path) == before  # no log, no benchmark, no output: nothing was written


def test_damaged_bytes_inside_a_dataset_array_stop_the_run_before_any_job(repo, tmp_path):
    """Not only a truncated file: a byte changed inside an array (same size) fails its recorded checksum."""
    path = _built_dataset(tmp_path)
    data = bytearray((path / "train.npz").read_bytes())
    data[len(data) // 3] ^= 0xFF
    (path / "train.npz").write_bytes(bytes(data))
    proc = _dry_run(repo, tmp_path, {}, mode=("--cores", "1"))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "DatasetError: " in out and "results/data/styled_digits/train.npz is damaged" in out, out[-2000:]
    assert "No job was started" in out and "rule build_dataset" not in out and 'File "' not in out


def test_unreadable_dataset_meta_json_stops_the_run_before_any_job(repo, tmp_path):
    path = _built_dataset(tmp_path)
    (path / "meta.json").write_text('{"name": "quadrants", "sizes": {"tra')
    before = _files(tmp_path)
    proc = _dry_run(repo, tmp_path, {})
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "results/data/styled_digits/meta.json is unreadable" in out and "Delete results/data/styled_digits/meta.json" in out
    assert _files(tmp_path) == before


@pytest.mark.parametrize("overlay, key", [
    ({"methods": {"varcon": {"loss": {"temperature": 0}}}}, "methods.varcon.loss.temperature"),
    ({"methods": {"adnce": {"loss": {"mu": 0.7, "sigmaa": 1}}}}, "methods.adnce.loss.sigmaa"),
    ({"methods": {"varcon": {"loss": {"temperature": 0.1, "epsilon": 0.5}}}}, "methods.varcon.loss.epsilon"),
    ({"datasets": {"styled_digits_ood3": {"k": 9}}}, "datasets.styled_digits_ood3.k"),
    ({"experiments": {"varcon_digits": {"evaluations": ["linear_probe", "gmig"]}}}, "experiments.varcon_digits.evaluations[1]"),
])
def test_snakemake_refuses_bad_overlays_naming_the_key(repo, tmp_path, overlay, key):
    """An overlay on the default config, as a user passes it with --configfile: refused before any job."""
    proc = _dry_run(repo, tmp_path, overlay)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and f"ConfigError: {key}: " in out, out[-2000:]
    assert 'File "' not in out and "Traceback" not in out, out[-2000:]  # one message, no frame lines
    assert not (tmp_path / "results").exists()

"""Reading the config files: a key given twice, a tab-indented or list-shaped overlay, a missing file and a
dotted --config key are refused in one line naming the file or key; 1e-3 is a number in a file as on the
command line; every refusal prints one message, without Snakemake's traceback frames."""

import subprocess

import pytest
import yaml

from clbench import cli
from clbench.config.files import check_config_args, config_file_order, load_config_file, preflight, reload_config
from clbench.errors import ConfigError
from conftest import REPO, snakemake_exe


def write(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    return tmp_path / name


@pytest.mark.parametrize("text, key, words", [
    ("methods:\n  cnn: {epochs: 2}\nmethods:\n  supcon: {epochs: 3}\n", "methods", "lines 1 and 3"),
    ("methods:\n  cnn:\n    epochs: 2\n    batch_size: 8\n    epochs: 3\n", "methods.cnn.epochs", "lines 3 and 5"),
    ("experiments:\n  e: {seeds: [0], seeds: [1]}\n", "experiments.e.seeds", "lines 2 and 2"),
])
def test_a_key_given_twice_is_refused_naming_the_file_and_key(tmp_path, text, key, words):
    path = write(tmp_path, "overlay.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_config_file(path)
    assert info.value.key == key and str(path) in str(info.value) and words in str(info.value)


@pytest.mark.parametrize("text, words", [
    ("methods:\n\tcnn: {epochs: 2}\n", "line 2, column 1"),
    ("- methods\n- experiments\n", "got a list"),
    ("just text\n", "got a single value"),
    ("methods: {cnn: [\n", "not valid YAML"),
])
def test_a_malformed_file_is_refused_naming_the_file(tmp_path, text, words):
    path = write(tmp_path, "overlay.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_config_file(path)
    assert info.value.key == str(path) and words in str(info.value)
    if "\t" in text:
        assert "tabs" in str(info.value)


def test_a_missing_file_is_refused_naming_it(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config_file(tmp_path / "nope.yaml")
    assert info.value.key == str(tmp_path / "nope.yaml") and "--configfile" in str(info.value)


def test_yaml_1_2_numbers_are_numbers_in_files(tmp_path):
    path = write(tmp_path, "o.yaml", "a: 1e-3\nb: 5E+2\nc: '1e-3'\nd: 1.0e-4\ne: 3\n")
    assert load_config_file(path) == {"a": 0.001, "b": 500.0, "c": "1e-3", "d": 0.0001, "e": 3}
    assert load_config_file(write(tmp_path, "empty.yaml", "")) == {}


def test_a_dotted_config_key_is_refused_with_the_yaml_that_sets_it():
    with pytest.raises(ConfigError) as info:
        check_config_args(["results_dir=out", "methods.cnn.epochs=3"])
    assert info.value.key == "methods.cnn.epochs" and "--config 'methods={cnn: {epochs: 3}}'" in str(info.value)
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        check_config_args(["results_dir"])
    check_config_args(["results_dir=out", "methods={cnn: {epochs: 3}}"])


def test_reload_merges_as_snakemake_does_with_typed_numbers(tmp_path):
    base = write(tmp_path, "config.yaml", "methods:\n  cnn: {epochs: 5, optimizer: {lr: 0.1}}\nresults_dir: r\n")
    overlay = write(tmp_path, "o.yaml", "methods:\n  cnn: {optimizer: {lr: 1e-3}}\n")
    assert config_file_order([str(overlay), "config.yaml"], [str(overlay)]) == ["config.yaml", str(overlay)]
    assert config_file_order([str(overlay), "config.yaml"], [str(overlay)], replace=True) == [str(overlay)]
    config = {"stale": 1}
    reload_config(config, [base, overlay], {"results_dir": "out", "methods": {"cnn": {"epochs": "7"}}},
                  ["results_dir=out", "methods={cnn: {epochs: 7}}"])
    assert config == {"methods": {"cnn": {"epochs": 7, "optimizer": {"lr": 0.001}}}, "results_dir": "out"}


@pytest.mark.parametrize("args, words", [
    (["--configfile", "{tmp}/tab.yaml"], "tab.yaml: not valid YAML"),
    (["--configfiles", "{tmp}/ok.yaml", "{tmp}/list.yaml"], "list.yaml: a config file is a mapping"),
    (["--configfile", "{tmp}/missing.yaml"], "missing.yaml: no such config file"),
    (["--config", "results_dir=x", "methods.cnn.epochs=3"], "methods.cnn.epochs: --config takes top-level keys"),
])
def test_clbench_run_refuses_what_snakemake_reads_first_in_one_line(tmp_path, capsys, args, words):
    write(tmp_path, "tab.yaml", "methods:\n\tcnn: {epochs: 2}\n")
    write(tmp_path, "list.yaml", "- a\n")
    write(tmp_path, "ok.yaml", "results_dir: x\n")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    with pytest.raises(ConfigError):
        preflight(["-n", "--cores", "1", *args])
    with pytest.raises(SystemExit) as info:
        cli.main(["run", "-n", *args])
    err = capsys.readouterr().err
    assert info.value.code == 1 and err.startswith(f"ConfigError: ") and words in err
    assert err.strip().splitlines() == [err.strip().splitlines()[0], "No job was started."]


def dry_run(tmp_path, *overlays, config=()):
    (tmp_path / "config.yaml").write_text((REPO / "config.yaml").read_text())
    files = [str(write(tmp_path, f"overlay{i}.yaml", text)) for i, text in enumerate(overlays)]
    proc = subprocess.run([snakemake_exe(), "-n", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
                           *(["--configfile", *files] if files else []), *(["--config", *config] if config else [])],
                          capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def test_the_workflow_refuses_a_key_given_twice_in_one_clean_line(tmp_path):
    rc, out = dry_run(tmp_path, "methods:\n  cnn: {epochs: 2}\nmethods:\n  supcon: {epochs: 3}\n")
    assert rc == 1 and "ConfigError: methods: appears twice in" in out and "overlay0.yaml" in out, out[-2000:]
    assert 'File "' not in out and "Traceback" not in out, out[-2000:]


def test_the_workflow_reads_1e_3_in_an_overlay_as_a_number(tmp_path):
    rc, out = dry_run(tmp_path, "methods:\n  cnn: {optimizer: {lr: 1e-3}}\n")
    assert rc == 0, out[-2000:]
    rc, out = dry_run(tmp_path, "methods:\n  cnn: {optimizer: {lr: '1e-3'}}\n")  # quoted: text, refused
    assert rc == 1 and "ConfigError: methods.cnn.optimizer.lr: '1e-3' is not of type 'number'" in out, out[-2000:]
    assert 'File "' not in out, out[-2000:]

"""How the configuration is composed (clbench.config.composition): the paper config replaces the tiny default,
the smoke config overlays it, --config selects papers, experiments or methods, and each value's origin."""

import re
import subprocess
import sys

import pytest
import yaml

from clbench.config import composition
from clbench import workflow as wf
from clbench.errors import ConfigError
from conftest import REPO, snakemake_exe

SCHEMA = wf.load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")
DEFAULT = REPO / "config.yaml"


def resolved(*files, args=()):
    return composition.resolve(composition.config_layers([DEFAULT], [REPO / f for f in files], args), SCHEMA)


def tiny():
    return yaml.safe_load(DEFAULT.read_text())


def test_no_tiny_value_experiment_or_dataset_reaches_the_paper_config():
    cfg, origins = resolved("configs/paper.yaml")
    wf.check_config(cfg, SCHEMA)
    paper = yaml.safe_load((REPO / "configs" / "paper.yaml").read_text())
    # every value is the paper config's own or the schema's default
    assert set(origins.values()) == {str(REPO / "configs" / "paper.yaml"), composition.SCHEMA_DEFAULT}
    assert set(cfg["experiments"]) == set(paper["experiments"])
    assert set(cfg["datasets"]) == set(paper["datasets"]) and set(cfg["methods"]) == set(paper["methods"])
    tiny_only = set(tiny()["experiments"]) - set(paper["experiments"])
    assert "graph_classes_ssl" in tiny_only and not tiny_only & set(cfg["experiments"])
    assert not {"graph_classes", "trifeature_captions"} & set(cfg["datasets"])
    # the tiny default turns the k-NN monitor off; paper scale monitors unless a method says otherwise
    unset = [m for m, spec in paper["methods"].items() if "val_every" not in spec]
    assert unset and all(cfg["methods"][m]["val_every"] == 1 for m in unset)
    assert cfg["evaluation"]["corruptions"]["n_test"] == 500  # the schema's, not the tiny 300


def test_the_same_paper_config_with_or_without_the_default_before_it():
    with_default, _ = resolved("configs/paper.yaml")
    alone, _ = composition.resolve(composition.config_layers([], [REPO / "configs" / "paper.yaml"]), SCHEMA)
    assert with_default == alone


def test_the_smoke_config_overlays_the_default():
    cfg, origins = resolved("configs/smoke.yaml")
    assert set(cfg["experiments"]) == set(tiny()["experiments"])
    assert cfg["experiments"]["varcon_digits"]["seeds"] == [0, 1]
    assert origins["experiments.varcon_digits.seeds"] == str(REPO / "configs" / "smoke.yaml")
    assert origins["experiments.varcon_digits.dataset"] == str(DEFAULT)
    assert cfg["methods"]["clear"]["val_every"] == 0 and cfg["methods"]["clear"]["epochs"] == 2


def test_a_layer_may_replace_the_ones_before_it_and_later_layers_overlay_it():
    base = {"scale": "tiny", "experiments": {"a": {"dataset": "d", "methods": ["m"]}}, "datasets": {"d": {}}}
    scale = {"compose": "replace", "scale": "paper", "experiments": {"b": {"dataset": "e", "methods": ["n"]}}}
    cluster = {"train_threads": 16}
    cfg, selection, origins = composition.compose([("base", base), ("scale", scale), ("cluster", cluster)])
    assert cfg == {"scale": "paper", "experiments": {"b": {"dataset": "e", "methods": ["n"]}}, "train_threads": 16}
    assert selection == {} and origins["train_threads"] == "cluster" and origins["scale"] == "scale"
    with pytest.raises(ConfigError, match=r"^compose: 'merge' in scale; valid: \['overlay', 'replace'\]"):
        composition.compose([("base", base), ("scale", {**scale, "compose": "merge"})])


def test_config_values_are_read_as_yaml():
    assert composition.parse_config_args(["train_threads=4", "papers=[varcon, mcl]", "slurm={account: lab}",
                                          "results_dir=out/x", "device="]) == {
        "train_threads": 4, "papers": ["varcon", "mcl"], "slurm": {"account": "lab"}, "results_dir": "out/x",
        "device": None}


def test_a_paper_selection_keeps_its_experiments_and_records_the_others():
    cfg, origins = resolved("configs/paper.yaml", args=["papers=[varcon]"])
    wf.check_config(cfg, SCHEMA)
    paper = yaml.safe_load((REPO / "configs" / "paper.yaml").read_text())
    varcon = {n for n, e in paper["experiments"].items() if "varcon" in ([e["paper"]] if isinstance(e["paper"], str)
                                                                         else e["paper"])}
    assert set(cfg["experiments"]) == varcon and "varcon_imagenet1k" in varcon
    left_out = cfg["selection"]["not_selected"]
    assert "varcon" not in left_out and "clear_celeba" in left_out["clear"]["experiments"]
    assert set(left_out) == {"clear", "subembed", "mcl", "adnce"}
    assert cfg["selection"]["papers"] == ["varcon"] and origins["selection"] == composition.COMMAND_LINE


def test_experiment_and_method_selections_intersect_and_a_mapping_still_sets_values():
    cfg, _ = resolved(args=["experiments=[varcon_digits, trifeature_ssl]", "methods=[varcon, infonce]",
                            "papers=[varcon, mcl, adnce]"])
    assert {n: e["methods"] for n, e in cfg["experiments"].items()} == {
        "varcon_digits": ["varcon"], "trifeature_ssl": ["infonce"]}
    assert "baseline" not in cfg["experiments"]["varcon_digits"]  # its baseline was not selected
    assert cfg["selection"]["not_selected"]["varcon"] == {"experiments": [], "methods": {"varcon_digits": ["cnn", "supcon"]}}
    wf.check_config(cfg, SCHEMA)
    cfg, _ = resolved(args=["experiments={varcon_digits: {seeds: [4]}}"])
    assert "selection" not in cfg and len(cfg["experiments"]) == len(tiny()["experiments"])
    assert cfg["experiments"]["varcon_digits"]["seeds"] == [4]


@pytest.mark.parametrize("args, key, words", [
    (["papers=[varcon, simclr]"], "papers", "unknown paper 'simclr'; valid papers in this configuration: "
                                            "['adnce', 'clear', 'mcl', 'subembed', 'varcon']"),
    (["experiments=[varcon_cifar10]"], "experiments", "unknown experiment 'varcon_cifar10'; valid experiments"),
    (["methods=[simclr]"], "methods", "unknown method 'simclr'; valid methods in this configuration: ['adnce', "),
    (["papers=[varcon]", "experiments=[clear_styled]"], "experiments", "leaves no experiment to run"),
    (["papers=[]"], "papers", "an empty selection"),
    (["papers=varcon"], "papers", "a list of names, e.g. papers=[a,b]"),
])
def test_a_bad_selection_is_refused_naming_its_key_and_the_valid_names(args, key, words):
    with pytest.raises(ConfigError) as e:
        resolved(args=args)
    assert str(e.value).startswith(f"{key}: ") and words in str(e.value)


def test_config_show_prints_each_value_with_its_origin():
    proc = subprocess.run([sys.executable, "-m", "clbench.cli", "config", "show", "--configfile", "configs/paper.yaml",
                           "--config", "train_threads=16", "papers=[mcl]"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert 'scale: "paper"  # configs/paper.yaml' in lines and "train_threads: 16  # --config" in lines
    assert "methods.mcl.val_every: 1  # schema default" in lines
    assert not [line for line in lines if line.endswith("# config.yaml")]
    assert {line.split(".")[1] for line in lines if line.startswith("experiments.")} == {"trifeature_ssl", "mcl_mmvp"}
    bad = subprocess.run([sys.executable, "-m", "clbench.cli", "config", "show", "--config", "experiments=[nope]"],
                         cwd=REPO, capture_output=True, text=True)
    assert bad.returncode == 1 and "experiments: unknown experiment 'nope'" in bad.stderr


def planned_experiments(tmp_path, *configfiles, args=()):
    """A dry run in an empty directory, and the experiments of the jobs it plans (every job with an
    experiment wildcard)."""
    proc = subprocess.run([snakemake_exe(), "-n", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
                           "--configfile", *[str(REPO / f) for f in configfiles], "--config", *args],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc, set(re.findall(r"wildcards: .*?experiment=([\w-]+)", proc.stdout))


def test_a_paper_selected_on_the_command_line_plans_only_its_jobs(tmp_path):
    proc, experiments = planned_experiments(tmp_path, "config.yaml", "configs/paper.yaml", args=["papers=[varcon]"])
    assert experiments == {"varcon_digits", "varcon_cifar100", "varcon_imagenet100", "varcon_imagenet1k"}
    built = set(re.findall(r"rule build_dataset:\n(?:.*\n)*?\s+wildcards: dataset=([\w-]+)", proc.stdout))
    assert built and not built & {"styled_digits", "celeba", "stl10", "trifeature", "tu_mutag"}


def test_an_experiment_selected_in_the_default_plans_only_its_jobs(tmp_path):
    _, experiments = planned_experiments(tmp_path, "config.yaml", args=["experiments=[trifeature_ssl]", "methods=[mcl]"])
    assert experiments == {"trifeature_ssl"}


def test_the_report_says_per_paper_what_was_not_selected():
    from clbench.report.html import selection_html

    cfg, _ = resolved(args=["papers=[varcon, mcl]", "methods=[varcon, supcon, mcl, infonce, adnce, mcl_clip]"])
    page = selection_html(cfg)
    assert "--config papers=[varcon,mcl] methods=[varcon,supcon,mcl,infonce,adnce,mcl_clip]" in page
    assert "<li>clear: experiments <code>clear_styled</code>, <code>clear_ood_k3</code></li>" in page
    assert "in <code>varcon_digits</code> the methods <code>cnn</code>" in selection_html(cfg, "varcon")
    assert selection_html(cfg, "mcl") == ""  # every experiment and method of MCL ran
    full, _ = resolved()
    assert selection_html(full) == "" and selection_html(full, "clear") == ""


def test_a_selection_without_stage_probes_draws_no_stage_probe_figure():
    from clbench.papers.targets import ReportTargets

    assert "mcl_stage_probes" in ReportTargets(resolved()[0]).figures
    assert "mcl_stage_probes" not in ReportTargets(resolved(args=["papers=[varcon]"])[0]).figures

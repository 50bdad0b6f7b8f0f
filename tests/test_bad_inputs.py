"""Bad inputs a user makes, each refused before any job runs, naming the dotted key and what would be valid:
settings that a job would fail on after spending compute, and combinations that would report a number whose
name says something else (clbench.config.checks, through clbench.config.settings.check_config)."""

import copy

import pytest
import yaml

from clbench import workflow as wf
from clbench.errors import ConfigError
from conftest import REPO

SCHEMA = wf.load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")
BASE = yaml.safe_load((REPO / "config.yaml").read_text())

CIFAR = {"generator": "torchvision", "name": "cifar10", "download": True}
SENTENCES = {"generator": "sentences", "download": True, "options": {"models": ["bert-base-uncased"]}}
SIMCSE = {"objective": "simcse", "epochs": 1, "batch_size": 64, "optimizer": {"name": "adamw", "lr": 3e-5},
          "sentence": {"model": "bert-base-uncased"}}


def experiment(dataset, methods, evaluations, **more):
    return {"paper": "baseline", "dataset": dataset, "methods": methods, "evaluations": evaluations, "seeds": [0],
            **more}


def refused(overlay) -> ConfigError:
    from snakemake.utils import update_config

    cfg = copy.deepcopy(BASE)
    update_config(cfg, overlay)
    with pytest.raises(ConfigError) as info:
        wf.check_config(wf.validate(cfg, SCHEMA), SCHEMA)
    return info.value


# (what a user wrote, the key the refusal names, words of what would be valid)
CASES = {
    # silent wrong results
    "batch larger than the training set": (
        {"methods": {"cnn": {"batch_size": 4096}}}, "methods.cnn.batch_size", "at most 2000"),
    "batch larger than the training set, from an override": (
        {"experiments": {"clear_styled": {"method_overrides": {"clear": {"batch_size": 4096}}}}},
        "experiments.clear_styled.method_overrides.clear.batch_size", "at most 2000"),
    "warm-up as long as training": (
        {"methods": {"supcon": {"warmup_epochs": 40, "epochs": 40}}}, "methods.supcon.warmup_epochs", "fewer than 40"),
    "ood on an IID split": (
        {"experiments": {"clear_styled": {"ood": True}}}, "experiments.clear_styled.ood", "remove ood"),
    "linear probe on CLIP pair data": (
        {"experiments": {"mcl_mmvp": {"evaluations": ["mmvp_pairs", "linear_probe"]}}},
        "experiments.mcl_mmvp.evaluations[1]", "['mmvp_pairs']"),
    "corruption grid on CLIP pair data": (
        {"experiments": {"mcl_mmvp": {"evaluations": ["corruptions", "mmvp_pairs"]}}},
        "experiments.mcl_mmvp.evaluations[0]", "['mmvp_pairs']"),
    "factor probes without factors": (
        {"datasets": {"cifar": CIFAR},
         "experiments": {"c": experiment("cifar", ["supcon"], ["linear_probe", "factor_probes"])}},
        "experiments.c.evaluations[1]", "has none"),
    "a severity listed twice": (
        {"evaluation": {"corruptions": {"severities": [1, 3, 3]}}}, "evaluation.corruptions.severities", "[3]"),
    "a corruption listed twice": (
        {"evaluation": {"corruptions": {"names": ["contrast", "contrast"]}}}, "evaluation.corruptions.names",
        "list each once"),
    "a clip block on an image method": (
        {"methods": {"supcon": {"clip": {"model": "RN50"}}}}, "methods.supcon.clip", "objective clip does"),
    "an empty results directory": ({"results_dir": ""}, "results_dir", "results_dir: results"),
    # failures inside a job
    "an unknown open_clip model": (
        {"methods": {"mcl_clip": {"clip": {"model": "ViT-Q-99", "config": None}}}}, "methods.mcl_clip.clip.model",
        "open_clip architecture"),
    "a typo in the CLIP tower config": (
        {"methods": {"mcl_clip": {"clip": {"config": {"vision_cfg": {"layer": 2}}}}}},
        "methods.mcl_clip.clip.config.vision_cfg.layer", "'layers'"),
    "a typo in the CLIP model config": (
        {"methods": {"mcl_clip": {"clip": {"config": {"embed_dims": 32}}}}},
        "methods.mcl_clip.clip.config.embed_dims", "'embed_dim'"),
    "a reversed crop scale, from an override": (
        {"experiments": {"mcl_mmvp": {"method_overrides": {"mcl_clip": {"clip": {"crop_scale": [1.0, 0.5]}}}}}},
        "experiments.mcl_mmvp.method_overrides.mcl_clip.clip.crop_scale", "[0.5, 1.0]"),
    "a reversed crop scale": (
        {"methods": {"mcl_clip": {"clip": {"crop_scale": [1.0, 0.5]}}}}, "methods.mcl_clip.clip.crop_scale",
        "[0.5, 1.0]"),
    "a CLIP method without its clip block": (
        {"methods": {"bare_clip": {"objective": "clip", "epochs": 1}}}, "methods.bare_clip.clip", "clip: {model:"),
    "a CLIP method on a dataset without captions": (
        {"experiments": {"c": experiment("styled_digits", ["mcl_clip"], ["linear_probe"])}}, "experiments.c.methods",
        "trifeature_captions"),
    "a VAE too deep for 28 px": (
        {"methods": {"clear": {"vae": {"architecture": "conv5"}}}}, "methods.clear.vae.architecture", "use conv3"),
    "paired views on a dataset without pairs": (
        {"methods": {"supcon": {"paired_views": True}}}, "methods.supcon.paired_views", "paired_views: false"),
    "a graph class smaller than the folds": (
        {"datasets": {"graph_classes": {"options": {"n_graphs": 24}}}}, "datasets.graph_classes.options.n_graphs",
        "at least 30"),
    "an empty sentence model name": (
        {"methods": {"s": {**SIMCSE, "sentence": {"model": ""}}}}, "methods.s.sentence.model", "bert-base-uncased"),
    "the default sentence model, not fetched": (
        {"datasets": {"sentences": {**SENTENCES, "options": {"models": ["roberta-base"]}}},
         "methods": {"s": {k: v for k, v in SIMCSE.items() if k != "sentence"}},
         "experiments": {"sts": experiment("sentences", ["s"], ["sts"])}},
        "datasets.sentences.models", "['bert-base-uncased', 'roberta-base']"),
    "a sentence model the build job does not fetch": (
        {"datasets": {"sentences": SENTENCES},
         "methods": {"s": {**SIMCSE, "sentence": {"model": "roberta-base"}}},
         "experiments": {"sts": experiment("sentences", ["s"], ["sts"])}},
        "datasets.sentences.models", "['bert-base-uncased', 'roberta-base']"),
    "a sentence experiment with an image evaluation": (
        {"datasets": {"sentences": SENTENCES}, "methods": {"s": SIMCSE},
         "experiments": {"sts": experiment("sentences", ["s"], ["sts", "linear_probe"])}},
        "experiments.sts.evaluations[1]", "['sts']"),
    "a paper-scale dataset with neither download nor root": (
        {"resources_dir": "/nonexistent/resources", "datasets": {"cifar": {**CIFAR, "download": False}},
         "experiments": {"c": experiment("cifar", ["supcon"], ["linear_probe"])}},
        "datasets.cifar.download", "set download: true, or root:"),
    "a SLURM account with spaces": ({"slurm": {"account": "my lab"}}, "slurm.account", "no spaces"),
    "an empty SLURM partition": ({"slurm": {"partition": ""}}, "slurm.partition", "null leaves it"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_naming_the_key(case):
    overlay, key, words = CASES[case]
    error = refused(overlay)
    assert error.key == key, str(error)
    assert str(error).startswith(f"{key}: ") and words in str(error), str(error)


def test_the_shipped_configs_pass_every_check():
    from snakemake.utils import update_config

    for overlays in ([], ["configs/smoke.yaml"], ["configs/paper.yaml"]):
        cfg = copy.deepcopy(BASE)
        for path in overlays:
            update_config(cfg, yaml.safe_load((REPO / path).read_text()))
        wf.check_config(wf.validate(cfg, SCHEMA), SCHEMA)


def test_good_neighbours_of_the_bad_inputs_pass(tmp_path):
    """Each check refuses only its case: the valid setting next to it is accepted."""
    from snakemake.utils import update_config

    for overlay in (
        {"methods": {"cnn": {"batch_size": 2000}}},
        {"methods": {"supcon": {"warmup_epochs": 39, "epochs": 40}}},
        {"experiments": {"clear_ood_k3": {"ood": True}}},
        {"evaluation": {"corruptions": {"severities": [1, 3, 5]}}},
        {"methods": {"mcl_clip": {"clip": {"crop_scale": [0.5, 1.0]}}}},
        {"methods": {"mcl_clip": {"clip": {"model": "ViT-B-32", "config": None}}}},
        {"datasets": {"graph_classes": {"options": {"n_graphs": 130}}}},
        {"resources_dir": str(tmp_path), "datasets": {"cifar": {**CIFAR, "download": False}},
         "experiments": {"c": experiment("cifar", ["supcon"], ["linear_probe"])}},
        {"slurm": {"account": "my-lab_01"}},
    ):
        if "resources_dir" in overlay:
            (tmp_path / "cifar10").mkdir(exist_ok=True)  # a copy already in resources_dir
        cfg = copy.deepcopy(BASE)
        update_config(cfg, overlay)
        wf.check_config(wf.validate(cfg, SCHEMA), SCHEMA)


def test_the_constants_repeated_for_planning_are_the_models():
    from clbench.config.checks import SENTENCE_MODEL, VAE_ARCHITECTURES
    from clbench.models.clear_vae import ARCHITECTURES
    from clbench.models.sentence import SETTINGS

    assert VAE_ARCHITECTURES == ARCHITECTURES and SENTENCE_MODEL == SETTINGS["model"]


def test_every_dataset_generator_says_what_it_holds():
    from clbench.data.build import GENERATORS
    from clbench.config.checks import DATASET_KINDS, EVALUATION_DATA
    from clbench.evaluate import EVALUATIONS

    assert set(DATASET_KINDS) == set(GENERATORS)
    assert set(EVALUATION_DATA) == set(EVALUATIONS)


def test_open_clip_is_read_without_importing_it():
    import subprocess
    import sys

    code = ("import sys; from clbench.config.checks import open_clip_names, open_clip_tower_keys; "
            "names, keys = open_clip_names(), open_clip_tower_keys(); "
            "print('ViT-B-32' in names, 'layers' in keys['vision_cfg'], 'embed_dim' in keys[''], 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True", "True", "False"]


@pytest.mark.parametrize("case", ["ood on an IID split", "a SLURM account with spaces"])
def test_snakemake_refuses_a_bad_input_in_one_line_before_any_job(tmp_path, case):
    import subprocess

    from conftest import snakemake_exe

    overlay, key, words = CASES[case]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(overlay))
    proc = subprocess.run([snakemake_exe(), "-n", "--snakefile", str(REPO / "Snakefile"), "--configfile",
                           str(REPO / "config.yaml"), str(tmp_path / "bad.yaml"), "--directory", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and f"ConfigError: {key}: " in out and words in out, out[-2000:]
    assert 'File "' not in out and "Traceback" not in out and "No job was started." in out
    assert not (tmp_path / "results").exists()

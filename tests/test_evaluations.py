"""The evaluation registry: names match the schema, requirements are checked before and while running."""

import subprocess
import sys

import pytest
import torch
import yaml

from clbench.errors import ConfigError
from clbench.evaluate import EVALUATIONS, check_evaluations, register_evaluation
from clbench.evaluate.runner import evaluate_run
from clbench.models.checkpoint import save_model
from clbench.models.methods import METHOD_FAMILIES, StageConcat, build_method
from clbench.objectives import FAMILIES, OBJECTIVES, method_capabilities
from conftest import REPO
from helpers import quadrant_dataset

CNN = {"objective": "cross_entropy", "encoder": {"name": "small_cnn", "width": 8, "feature_dim": 16}}
SHAPE = {"in_channels": 1, "num_classes": 4, "image_size": 16}


def _config(path="config.yaml"):
    with open(REPO / path) as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("quadrants")
    quadrant_dataset(path, n_train=96, n_val=16, n_test=32)
    return path


def _saved(tmp_path, spec):
    torch.manual_seed(0)
    path = tmp_path / "model.pt"
    save_model(path, build_method(spec, 1, 4, 16), spec, SHAPE)
    return path


def test_schema_evaluations_enum_is_the_registry():
    with open(REPO / "workflow" / "schemas" / "config.schema.yaml") as f:
        schema = yaml.safe_load(f)
    enum = schema["$defs"]["experiment"]["properties"]["evaluations"]["items"]["enum"]
    assert sorted(enum) == sorted(EVALUATIONS)


def test_every_evaluation_is_documented_and_requires_known_capabilities():
    offered = {c for o in OBJECTIVES.values() for c in o.capabilities} | {"stages"}
    for name, ev in EVALUATIONS.items():
        assert ev.name == name and ev.doc, name
        assert ev.requires <= offered, name


def test_models_offer_what_their_objectives_declare(tmp_path):
    from test_clip import TINY_RN, clip_spec
    from test_sentences import write_tiny_bert

    assert set(FAMILIES) < set(METHOD_FAMILIES)
    specs = {"cross_entropy": CNN, "info_nce": {**CNN, "objective": "info_nce", "views": 2},
             "adnce": {**CNN, "objective": "adnce", "views": 2}, "supcon": {**CNN, "objective": "supcon"},
             "varcon": {**CNN, "objective": "varcon"},
             "clear_vae": {"objective": "clear_vae", "vae": {"z_content": 2, "z_style": 2, "width": 4}},
             "sub_embedding": {**CNN, "objective": "sub_embedding", "views": 2}}
    specs |= {"graph_info_nce": {"objective": "graph_info_nce"}, "graph_adnce": {"objective": "graph_adnce"}}
    bert = str(write_tiny_bert(tmp_path / "bert"))
    specs |= {name: {"objective": name, "sentence": {"model": bert}} for name in ("simcse", "adnce_sentence")}
    specs |= {"clip": clip_spec(TINY_RN)}
    assert set(specs) == set(OBJECTIVES)
    for name, spec in specs.items():
        model = build_method(spec, 1, 4, 16)
        assert model.capabilities == method_capabilities(spec), name
    concat = build_method({"objective": "mcl_concat", "stage_specs": [CNN, CNN]}, 1, 4, 16)
    assert isinstance(concat, StageConcat)
    assert concat.capabilities == method_capabilities({**CNN, "mcl": {"stages": 2}}) == {"stages"}


def test_check_evaluations_refuses_unknown_names_and_unmet_requirements():
    methods = {"cnn": CNN, "infonce": {**CNN, "objective": "info_nce", "views": 2}}
    with pytest.raises(ConfigError) as info:
        check_evaluations(["linear_probe", "linear_prob"], methods, "experiments.x.evaluations")
    assert str(info.value).startswith("experiments.x.evaluations[1]: unknown evaluation 'linear_prob'; known: ")
    with pytest.raises(ConfigError, match=r"^experiments\.x\.evaluations\[0\]: evaluation gmig needs a model "
                                          r"with factors; none of the methods cnn, infonce has one"):
        check_evaluations(["gmig"], methods, "experiments.x.evaluations")
    with pytest.raises(ConfigError, match="stage_probes needs a model with stages"):
        check_evaluations(["stage_probes"], methods, "experiments.x.evaluations")
    # one method with the capability is enough: the others skip that evaluation when it runs
    check_evaluations(["stage_probes"], {**methods, "mcl": {**methods["infonce"], "mcl": {"stages": 2}}}, "e")


@pytest.mark.parametrize("path", ["config.yaml", "configs/paper.yaml"])
def test_shipped_experiments_pass(path):
    from snakemake.utils import update_config

    config = _config()
    if path != "config.yaml":
        update_config(config, _config(path))
    for name, exp in config["experiments"].items():
        methods = {m: config["methods"][m] for m in exp["methods"]}
        check_evaluations(exp.get("evaluations", ["linear_probe", "knn"]), methods, f"experiments.{name}.evaluations")


def test_runner_skips_an_evaluation_the_model_cannot_serve(data, tmp_path):
    model = _saved(tmp_path, CNN)
    spec = {"evaluations": ["gmig", "slice_probes", "stage_probes", "knn"], "knn": {"k": 5}}
    result = evaluate_run(model, data, spec, seed=0)
    assert set(result["metrics"]) == {"knn_top1"} and result["tables"] == {}


def test_runner_refuses_an_unknown_evaluation(data, tmp_path):
    with pytest.raises(ValueError, match="unknown evaluations"):
        evaluate_run(_saved(tmp_path, CNN), data, {"evaluations": ["knn", "tsne"]}, seed=0)


def test_a_registered_evaluation_runs_with_the_shared_features(data, tmp_path):
    seen = {}

    @register_evaluation("test_feature_stats", doc="mean feature norm")
    def feature_stats(run):
        seen["features"] = run.features("test")
        return {"metrics": {"test_feature_norm": float(run.features("test").norm(dim=1).mean())},
                "tables": {"test_feature_dims": [{"dims": int(run.features("train").shape[1])}]}}

    try:
        result = evaluate_run(_saved(tmp_path, CNN), data, {"evaluations": ["test_feature_stats", "linear_probe"],
                                                            "probe": {"epochs": 5}}, seed=0)
        assert result["metrics"]["test_feature_norm"] > 0 and "linear_top1" in result["metrics"]
        assert result["tables"]["test_feature_dims"] == [{"dims": 16}]
        assert seen["features"].shape == (32, 16)
        with pytest.raises(ValueError, match="already registered"):
            register_evaluation("test_feature_stats")(lambda run: {})
    finally:
        EVALUATIONS.pop("test_feature_stats", None)


def test_saving_the_probe_needs_an_evaluation_that_fits_it(data, tmp_path):
    with pytest.raises(ValueError, match="saving the probe needs one"):
        evaluate_run(_saved(tmp_path, CNN), data, {"evaluations": ["knn"], "knn": {"k": 5}}, seed=0,
                     probe_out=tmp_path / "probe.pt")


def test_the_registry_imports_no_torch():
    code = "import sys; from clbench.evaluate import EVALUATIONS, check_evaluations; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_own_head_scores_the_trained_classifier_not_a_refit_probe(data, tmp_path):
    from clbench.data import dataset_dir
    from clbench.evaluate.embed import embed
    from clbench.models.checkpoint import load_model

    path = _saved(tmp_path, {**CNN, "classifier": {"kind": "mlp", "hidden_dim": 8}})
    result = evaluate_run(path, data, {"evaluations": ["own_head", "linear_probe"], "probe": {"epochs": 5}}, seed=0)
    assert set(result["metrics"]) >= {"head_top1", "head_auroc", "head_aupr", "linear_top1"}
    test = dataset_dir.load(data, "test")
    logits = embed(load_model(path), test["x"], fn=lambda m, xb: m.classifier(m.encoder(xb)))
    own = float((logits.argmax(1).numpy() == test["y"]).mean())
    assert result["metrics"]["head_top1"] == pytest.approx(own)
    # a model without a trained classifier head skips it when it runs, and is refused when planned
    ssl = {**CNN, "objective": "info_nce", "views": 2}
    (tmp_path / "ssl").mkdir()
    skipped = evaluate_run(_saved(tmp_path / "ssl", ssl), data, {"evaluations": ["own_head", "knn"], "knn": {"k": 5}},
                           seed=0)
    assert "head_top1" not in skipped["metrics"] and "knn_top1" in skipped["metrics"]
    with pytest.raises(ConfigError, match=r"evaluation own_head needs a model with classifier; none of the methods "
                                          r"infonce, mcl has one"):
        check_evaluations(["own_head"], {"infonce": ssl, "mcl": {**CNN, "mcl": {"stages": 2}}}, "experiments.x.evaluations")
    check_evaluations(["own_head"], {"cnn": CNN, "infonce": ssl}, "experiments.x.evaluations")

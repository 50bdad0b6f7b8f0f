"""The objective registry: declarations, and the refusal of bad method settings at the dotted key."""

import copy
import inspect
import subprocess
import sys

import pytest
import yaml

from clbench.errors import ConfigError
from clbench.objectives import (
    FAMILIES,
    OBJECTIVES,
    Objective,
    Param,
    check_method,
    register_objective,
    resolve_ref,
    resolved_params,
)
from conftest import REPO


def _refused(spec, where="methods.m"):
    with pytest.raises(ConfigError) as info:
        check_method(spec, where)
    return str(info.value)


def _config(path="config.yaml"):
    with open(REPO / path) as f:
        return yaml.safe_load(f)


def _schema():
    with open(REPO / "workflow" / "schemas" / "config.schema.yaml") as f:
        return yaml.safe_load(f)


# ---- the overlays that must be refused before any job runs ----

def test_zero_varcon_temperature_is_refused():
    msg = _refused({"objective": "varcon", "loss": {"temperature": 0}}, "methods.varcon")
    assert msg.startswith("methods.varcon.loss.temperature: must be > 0")


def test_misspelt_adnce_parameter_is_refused_and_known_ones_listed():
    msg = _refused({"objective": "adnce", "views": 2, "loss": {"mu": 0.7, "sigmaa": 1}}, "methods.adnce")
    assert msg == ("methods.adnce.loss.sigmaa: unknown parameter of objective adnce; "
                   "known: mu, sigma, similarity, temperature")


def test_varcon_epsilon_must_stay_below_temperature():
    msg = _refused({"objective": "varcon", "loss": {"temperature": 0.1, "epsilon": 0.5}}, "methods.varcon")
    assert msg.startswith("methods.varcon.loss.epsilon: must be < temperature (0.1), got 0.5")
    # the boundary: t2 = (t - eps) + 2 eps p reaches 0 at p = 0
    assert "epsilon" in _refused({"objective": "varcon", "loss": {"temperature": 0.1, "epsilon": 0.1}})
    # epsilon against the default temperature (0.1)
    assert "epsilon" in _refused({"objective": "varcon", "loss": {"epsilon": 0.2}})
    check_method({"objective": "varcon", "loss": {"temperature": 0.1, "epsilon": 0.09}}, "methods.varcon")


def test_the_key_names_where_the_method_was_configured():
    where = "experiments.imagenet.method_overrides.varcon"
    msg = _refused({"objective": "varcon", "loss": {"temperature": -1}}, where)
    assert msg.startswith(f"{where}.loss.temperature: ")


# ---- every kind of refusal ----

@pytest.mark.parametrize(
    "spec, key, words",
    [
        ({}, "m.objective", "missing"),
        ({"objective": "simclr"}, "m.objective", "unknown objective 'simclr'; known: adnce, "),
        ({"objective": "info_nce", "views": 2, "loss": {"temperature": "0.5"}}, "m.loss.temperature", "must be a number"),
        ({"objective": "info_nce", "views": 2, "loss": {"temperature": True}}, "m.loss.temperature", "must be a number"),
        ({"objective": "info_nce", "views": 2, "loss": {"temperature": float("inf")}}, "m.loss.temperature", "finite"),
        ({"objective": "info_nce", "views": 2, "loss": {"similarity": "dotp"}}, "m.loss.similarity",
         "must be one of cosine, dot, l2, got 'dotp'"),
        ({"objective": "adnce", "views": 2, "loss": {"sigma": 0}}, "m.loss.sigma", "must be > 0, got 0"),
        ({"objective": "adnce", "views": 2, "loss": {"mu": float("nan")}}, "m.loss.mu", "finite"),
        ({"objective": "varcon", "loss": {"epsilon": -0.01}}, "m.loss.epsilon", "must be >= 0"),
        ({"objective": "cross_entropy", "loss": {"temperature": 0.1}}, "m.loss.temperature",
         "unknown parameter of objective cross_entropy; known: none"),
        ({"objective": "clear_vae", "vae": {"styel": "tc"}}, "m.vae.styel", "unknown parameter of objective clear_vae"),
        ({"objective": "clear_vae", "vae": {"style": "club"}}, "m.vae.style", "one of ps_snn, neg_snn, tc, club_sample, l1out, none"),
        ({"objective": "clear_vae", "vae": {"estimator_steps": 0}}, "m.vae.estimator_steps", "must be >= 1, got 0"),
        ({"objective": "clear_vae", "vae": {"z_content": 8.0}}, "m.vae.z_content", "must be an integer"),
        ({"objective": "clear_vae", "vae": {"estimator_lr": 0.0}}, "m.vae.estimator_lr", "must be > 0"),
        ({"objective": "clear_vae", "loss": {"temperature": 0.1}}, "m.loss", "objective clear_vae reads no loss settings"),
        ({"objective": "supcon", "vae": {"beta": 1.0}}, "m.vae", "objective supcon reads no vae settings"),
        ({"objective": "supcon", "loss": [0.1]}, "m.loss", "must be a mapping"),
        ({"objective": "sub_embedding", "views": 2, "loss": {"regularizer": "orth"}}, "m.loss.regularizer",
         "one of none, info_min, ortho, p_ortho, hess"),
        ({"objective": "sub_embedding", "views": 2, "loss": {"k": 0}}, "m.loss.k", "must be >= 1"),
        ({"objective": "sub_embedding", "views": 2, "loss": {"k": 3}}, "m.loss.k", "must divide projection_dim (128)"),
        ({"objective": "sub_embedding", "views": 2, "projection_dim": 10, "loss": {"k": 4}}, "m.loss.k",
         "must divide projection_dim (10)"),
        ({"objective": "sub_embedding", "views": 2, "loss": {"k": 1, "regularizer": "hess"}}, "m.loss.k",
         "must be >= 2 for regularizer hess"),
        ({"objective": "sub_embedding", "views": 2, "loss": {"weight": -1}}, "m.loss.weight", "must be >= 0"),
        ({"objective": "info_nce", "loss": {"temperature": 0.5}}, "m.views", "objective info_nce needs views: 2, got 1"),
        ({"objective": "sub_embedding", "views": 1}, "m.views", "needs views: 2"),
    ],
)
def test_bad_settings_are_refused_at_their_key(spec, key, words):
    msg = _refused(spec, "m")
    assert msg.startswith(f"{key}: "), msg
    assert words in msg, msg


def test_refusal_is_a_value_error_with_the_key():
    with pytest.raises(ValueError) as info:
        check_method({"objective": "varcon", "loss": {"temperature": 0}}, "methods.v")
    assert info.value.key == "methods.v.loss.temperature"


@pytest.mark.parametrize("path", ["config.yaml", "configs/smoke.yaml", "configs/paper.yaml"])
def test_shipped_methods_pass(path):
    from snakemake.utils import update_config

    config = _config()
    if path != "config.yaml":
        update_config(config, _config(path))
    for name, spec in config["methods"].items():
        check_method(spec, f"methods.{name}")
    for exp, e in config.get("experiments", {}).items():
        for mname, override in (e.get("method_overrides") or {}).items():
            merged = copy.deepcopy(config["methods"][mname])
            update_config(merged, override)
            check_method(merged, f"experiments.{exp}.method_overrides.{mname}")


# ---- the declarations ----

def test_resolved_params_fill_defaults():
    assert resolved_params({"objective": "adnce", "loss": {"mu": 0.5}}) == {
        "temperature": 0.5, "mu": 0.5, "sigma": 1.0, "similarity": "cosine"}
    assert resolved_params({"objective": "varcon"}) == {"temperature": 0.1, "epsilon": 0.02}
    assert resolved_params({"objective": "cross_entropy"}) == {}
    vae = resolved_params({"objective": "clear_vae", "vae": {"style": "tc"}})
    assert vae["style"] == "tc" and vae["estimator_lr"] == 1e-3 and vae["estimator_steps"] == 5
    assert resolved_params({"objective": "sub_embedding", "loss": {"regularizer": "hess"}}) == {
        "k": 2, "temperature": 0.5, "regularizer": "hess", "weight": 1.0}


def test_defaults_are_the_loss_functions_defaults():
    for obj in OBJECTIVES.values():
        if obj.loss is None or obj.loss.startswith("torch."):
            continue
        signature = inspect.signature(resolve_ref(obj.loss)).parameters
        for p in obj.params:
            if p.name in signature:
                assert signature[p.name].default == p.default, (obj.name, p.name)
            else:
                assert obj.family != "contrastive", f"{obj.name}.{p.name} is not an argument of {obj.loss}"


def test_declarations_are_consistent():
    for name, obj in OBJECTIVES.items():
        assert obj.name == name and obj.family in FAMILIES
        assert obj.doc and all(p.doc for p in obj.params)
        if obj.loss is not None:
            assert callable(resolve_ref(obj.loss))
        if obj.statistic is not None:
            assert callable(resolve_ref(obj.statistic.fn))
    assert OBJECTIVES["varcon"].uses_labels and not OBJECTIVES["adnce"].uses_labels
    assert OBJECTIVES["info_nce"].views == 2 and OBJECTIVES["supcon"].views is None
    assert OBJECTIVES["clear_vae"].section == "vae"


def test_schema_objective_enum_is_the_registry():
    enum = _schema()["$defs"]["method"]["properties"]["objective"]["enum"]
    assert sorted(enum) == sorted(OBJECTIVES)


def test_schema_vae_block_matches_the_clear_vae_declaration():
    props = _schema()["$defs"]["method"]["properties"]["vae"]["properties"]
    params = OBJECTIVES["clear_vae"].defaults
    assert set(props) == set(params)
    for key, prop in props.items():
        if "default" in prop:
            assert prop["default"] == params[key], key
        if "enum" in prop:
            assert tuple(prop["enum"]) == OBJECTIVES["clear_vae"].param(key).choices, key


def test_register_objective_adds_a_checked_objective_and_refuses_a_duplicate():
    toy = Objective(name="toy_nce", family="contrastive", loss="clbench.losses.contrastive:info_nce",
                    doc="a toy", views=2, view_layout="pair",
                    params=(Param("temperature", "number", 0.5, "t", minimum=0, exclusive_minimum=True),))
    try:
        assert register_objective(toy) is toy
        check_method({"objective": "toy_nce", "views": 2, "loss": {"temperature": 0.2}}, "methods.toy")
        assert "must be > 0" in _refused({"objective": "toy_nce", "views": 2, "loss": {"temperature": 0}})
        with pytest.raises(ValueError, match="already registered"):
            register_objective(Objective(name="toy_nce", family="classifier", loss=None, doc="other"))
    finally:
        OBJECTIVES.pop("toy_nce", None)


def test_bad_declarations_are_refused():
    with pytest.raises(ValueError, match="default"):
        Param("t", "number", 0, "t", minimum=0, exclusive_minimum=True)
    with pytest.raises(ValueError, match="family"):
        Objective(name="x", family="gan", loss=None, doc="x")
    with pytest.raises(ValueError, match="view_layout"):
        Objective(name="x", family="contrastive", loss="a:b", doc="x")
    with pytest.raises(ValueError, match="views=2"):
        Objective(name="x", family="contrastive", loss="a:b", doc="x", view_layout="pair")


def test_importing_the_registry_imports_no_torch():
    code = "import sys, clbench.objectives; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0

"""The configuration's schema and the settings a method or an evaluation resolves to.

:func:`validate` checks a configuration against ``workflow/schemas/config.schema.yaml`` and fills in its
defaults; a method's settings in an experiment are ``methods.<method>`` with the experiment's
``method_overrides.<method>`` merged in (:func:`method_spec`), its evaluation settings the top-level
``evaluation`` with the experiment's own (:func:`experiment_evaluation`). A refused value raises
:class:`clbench.errors.ConfigError` naming its dotted key. No torch, no numpy: Snakemake imports this while it
parses the workflow.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

import jsonschema
import yaml

from clbench.errors import ConfigError

__all__ = ['load_schema', 'validate', 'validate_subschema', 'validate_method', 'deep_merge', 'method_spec', 'experiment_evaluation']


# --------------------------------------------------------------------------------------------------
# schema


def load_schema(path: str | os.PathLike) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


def _key(where: str, path: Iterable) -> str:
    """A dotted key: ``where`` followed by a jsonschema error's path (list indices as ``[i]``)."""
    out = where
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f"{'.' if out else ''}{part}"
    return out


def _with_defaults(validator_class):
    """A validator that also fills in every ``default`` of the schema (jsonschema's FAQ recipe, as
    Snakemake's ``validate(..., set_default=True)``), copying each default so no two places share one."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = json.loads(json.dumps(subschema["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _refuse_schema_error(error: jsonschema.ValidationError, where: str = "") -> None:
    """A jsonschema error as a ConfigError: an unknown or missing key is named itself, with the valid ones."""
    key = _key(where, error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        if unknown and allowed:
            raise ConfigError(_key(key, [unknown[0]]), f"unknown key; valid keys here: {allowed}") from None
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [name for name in error.validator_value if name not in error.instance]
        if missing:
            raise ConfigError(_key(key, [missing[0]]), "required, but missing") from None
    raise ConfigError(key or "(top level)", error.message) from None


def validate(cfg: dict, schema: Mapping) -> dict:
    """Check ``cfg`` against the config schema and fill in its defaults, in place.

    Raises :class:`ConfigError` naming the offending key, e.g. ``methods.cnn: Additional properties
    are not allowed ('learning_rate' was unexpected)``.
    """
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(cfg))
    if error is not None:
        _refuse_schema_error(error)
    return cfg


def validate_subschema(value: Any, schema: Mapping, definition: str, where: str) -> None:
    """``value`` against the schema's ``$defs/<definition>`` (without filling defaults), refused at ``where``."""
    sub = {"$defs": schema["$defs"], "$ref": f"#/$defs/{definition}"}
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(sub).iter_errors(value))
    if error is not None:
        _refuse_schema_error(error, where)


def validate_method(spec: Mapping, schema: Mapping, where: str) -> None:
    """One method's settings against the schema's method definition (without filling defaults)."""
    validate_subschema(spec, schema, "method", where)


# --------------------------------------------------------------------------------------------------
# merging and method resolution


def deep_merge(base: Mapping, override: Mapping) -> dict:
    """``base`` with ``override``'s keys replaced, nested mappings merged key by key."""
    out = dict(base)
    for key, value in override.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def method_spec(cfg: Mapping, experiment: str, method: str) -> dict:
    """A method's settings in one experiment: ``methods.<method>`` with the experiment's
    ``method_overrides.<method>`` merged in (e.g. ImageNet's ResNet stem, epochs and GPUs)."""
    overrides = cfg["experiments"][experiment].get("method_overrides", {}).get(method, {})
    return deep_merge(cfg["methods"][method], overrides)


def experiment_evaluation(cfg: Mapping, experiment: str) -> dict:
    """The evaluation settings of one experiment: the top-level ``evaluation`` with the experiment's own
    ``evaluation`` (probe, mlp_probe, knn) merged in key by key (e.g. ADNCE's probe optimiser and
    linear-evaluation protocol, kNN at its temperature)."""
    return deep_merge(cfg["evaluation"], cfg["experiments"][experiment].get("evaluation", {}))

"""Typed values for nested ``--config`` settings.

Snakemake parses ``--config KEY=VALUE``: a scalar VALUE becomes an int, float or bool, but a nested one
(``methods={varcon: {optimizer: {lr: 0.001}}}``) is read with YAML's BaseLoader, which keeps every leaf
a string, so the schema would refuse ``'0.001' is not of type 'number'``. :func:`retype` reads those
values again as an overlay file's YAML would be read, so ``--config`` and ``--configfile`` mean the
same; a value of the wrong type is then refused by the schema like one from a file. Also in a cluster
job, which gets the same ``--config`` arguments.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, MutableMapping

import yaml


class _Loader(yaml.SafeLoader):
    """YAML as in a config file, plus exponent floats without a dot (``1e-3``), which YAML 1.1 (PyYAML)
    leaves as text but every user means as a number; quoted ``'1e-3'`` stays text."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_value(text: str):
    """One ``--config`` value read as a config file's YAML would read it (raises ``yaml.YAMLError``)."""
    return yaml.load(text, Loader=_Loader)


def _merge(base: MutableMapping, override: MutableMapping) -> None:
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def retype(config: MutableMapping, config_args: Iterable[str] | None) -> MutableMapping:
    """``config`` with the nested values of ``config_args`` (the raw ``--config`` arguments, as
    ``workflow.config_settings.config_args``) read again with YAML types, in place.

    Scalars (``train_threads=2``) are left as Snakemake typed them. A value that is not valid YAML
    is left as it is, so the schema names its key.
    """
    for arg in config_args or ():
        key, sep, value = arg.partition("=")
        if not sep or not isinstance(config.get(key), (dict, list)):
            continue
        try:
            typed = yaml.load(value, Loader=_Loader)
        except yaml.YAMLError:
            continue
        if isinstance(typed, dict) and isinstance(config[key], dict):
            _merge(config[key], typed)
        elif isinstance(typed, list):
            config[key] = typed
    return config

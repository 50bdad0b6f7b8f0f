"""Reading the workflow's config files as strictly as its schema reads their values.

Snakemake reads ``config.yaml`` and every ``--configfile`` overlay with PyYAML, which (YAML 1.1)

- keeps the last of two equal keys, silently dropping the first block (``methods:`` written twice);
- reads ``1e-3`` as the string ``'1e-3'``, which the schema then refuses, while ``--config`` reads it as a
  number (:mod:`clbench.config.args`);

and reports a tab-indented or list-shaped file, a missing file or a dotted ``--config`` key without
naming the file or the key. Here:

- :func:`load_config_file` reads one file, refusing those cases with a :class:`ConfigError` that names
  the file (and the dotted key), and reads YAML 1.2 numbers as numbers;
- :func:`reload_config` rebuilds the workflow's ``config`` from its files with it (``workflow/rules/common.smk``);
- :func:`preflight` checks a Snakemake command line's ``--configfile`` and ``--config`` arguments before
  Snakemake itself reads them (``clbench run``), since Snakemake loads them before any workflow code runs.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Iterable, Mapping, MutableMapping, Sequence

import yaml

from clbench.config.args import _Loader, _merge, retype
from clbench.errors import ConfigError

__all__ = ["check_config_args", "config_file_order", "load_config_file", "preflight", "reload_config"]


def _duplicate_key(node: yaml.Node, path: str = "") -> tuple[str, int, int] | None:
    """The first key that a mapping of ``node`` (recursively) holds twice: (dotted key, first line, second line)."""
    if isinstance(node, yaml.MappingNode):
        seen: dict = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            dotted = f"{path}.{key}" if path else str(key)
            if key is not None and key in seen:
                return dotted, seen[key] + 1, key_node.start_mark.line + 1
            if key is not None:
                seen[key] = key_node.start_mark.line
            found = _duplicate_key(value_node, dotted)
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found = _duplicate_key(item, f"{path}[{i}]")
            if found:
                return found
    return None


def load_config_file(path: str | os.PathLike) -> dict:
    """One config file as a dict, refused with a message naming the file when it is missing, not YAML
    (e.g. tab-indented), not a mapping of top-level keys, or holds a key twice."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError(path, "no such config file; check the path given to --configfile") from None
    except OSError as e:
        raise ConfigError(path, f"cannot read the config file ({e.strerror})") from None
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        lines = text.splitlines()
        line = lines[mark.line] if mark is not None and mark.line < len(lines) else ""
        hint = "; indent with spaces: YAML does not allow tabs" if "\t" in line else ""
        raise ConfigError(path, f"not valid YAML ({where}{e.problem}){hint}") from None
    if node is None:
        return {}
    if not isinstance(node, yaml.MappingNode):
        kind = "a list" if isinstance(node, yaml.SequenceNode) else f"a single value ({node.value!r})"
        raise ConfigError(path, f"a config file is a mapping of top-level keys (e.g. methods:, experiments:), got {kind}")
    duplicate = _duplicate_key(node)
    if duplicate:
        key, first, second = duplicate
        raise ConfigError(key, f"appears twice in {path} (lines {first} and {second}); YAML would keep only the "
                               f"second and drop the first silently: merge them into one")
    return yaml.load(text, Loader=_Loader) or {}


def reload_config(config: MutableMapping, files: Iterable[str | os.PathLike], cli_config: Mapping | None,
                  config_args: Iterable[str] | None) -> MutableMapping:
    """``config`` rebuilt in place as Snakemake builds it (each file merged over the last, then ``--config``), but
    with every file read by :func:`load_config_file`: duplicate keys refused, YAML 1.2 numbers as numbers."""
    fresh: dict = {}
    for path in files:
        _merge(fresh, load_config_file(path))
    _merge(fresh, dict(cli_config or {}))
    config.clear()
    config.update(fresh)
    return retype(config, config_args)


def config_file_order(workflow_files: Iterable, overlays: Iterable, replace: bool = False) -> list[str]:
    """The files Snakemake merged, in its order: the workflow's ``configfile:`` (unless
    ``--replace-workflow-config``), then the ``--configfile`` overlays (``workflow.configfiles`` lists both)."""
    overlays = [os.path.abspath(p) for p in overlays]
    own = [] if replace else [os.fspath(p) for p in workflow_files if os.path.abspath(p) not in overlays]
    return [*own, *overlays]


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_config_args(args: Iterable[str]) -> None:
    """``--config KEY=VALUE`` arguments: each KEY a top-level key (a dotted one is refused, with the YAML
    form that sets the nested value)."""
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep:
            raise ConfigError(arg, "a --config argument is KEY=VALUE (e.g. --config results_dir=out)")
        if "." in key and all(_IDENTIFIER.match(part) for part in key.split(".")):
            *outer, last = key.split(".")
            nested = "".join(f"{{{part}: " for part in outer[1:]) + f"{{{last}: {value}}}" + "}" * (len(outer) - 1)
            raise ConfigError(key, f"--config takes top-level keys; set a nested value as YAML, e.g. "
                                   f"--config '{outer[0]}={nested}'")
        if not _IDENTIFIER.match(key):
            raise ConfigError(key or arg, "a --config key is a top-level key of the config (letters, digits, _)")


def preflight(argv: Sequence[str]) -> None:
    """Check a Snakemake command line's ``--configfile`` files and ``--config`` arguments (what Snakemake reads
    before the workflow's own checks run); raises :class:`ConfigError` naming the file or key."""
    p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    p.add_argument("--configfile", "--configfiles", nargs="+", action="extend", default=[])
    p.add_argument("--config", "-C", nargs="*", action="extend", default=[])
    p.add_argument("--directory", "-d")
    known, _ = p.parse_known_args(list(argv))
    check_config_args(known.config)
    for path in known.configfile:
        load_config_file(path)

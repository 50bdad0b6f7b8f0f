"""The errors clbench raises for bad input, before or instead of a failing job.

:class:`ConfigError`: a refused configuration. Its message starts with the dotted key of the
offending setting, then says what is wrong and what would be valid, e.g.
``methods.varcon.loss.temperature: must be > 0, got 0``.

:class:`DatasetError`: a dataset that is missing, partial or corrupt.
"""

from __future__ import annotations

import contextlib
import sys

__all__ = ["ConfigError", "DatasetError", "refusals"]


class ConfigError(ValueError):
    """A refused configuration value.

    ``ConfigError(key, problem)`` or ``ConfigError("key: problem")``; ``.key`` is the dotted key
    and ``.problem`` the rest of the message.
    """

    def __init__(self, key: str, problem: str | None = None):
        if problem is None:
            key, _, problem = key.partition(": ")
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}" if problem else key)


class DatasetError(RuntimeError):
    """A dataset is missing, partial or corrupt; the message says where and how to fix it."""


@contextlib.contextmanager
def refusals(stream=None):
    """Stop with one clean message on a refused configuration or dataset: ``ConfigError: <key>: <problem>``
    and exit status 1, instead of the traceback Snakemake prints under an exception from the workflow's code
    (``workflow/rules/common.smk``, ``clbench run``)."""
    try:
        yield
    except (ConfigError, DatasetError) as e:
        print(f"{type(e).__name__}: {e}\nNo job was started.", file=stream or sys.stderr, flush=True)
        raise SystemExit(1) from None

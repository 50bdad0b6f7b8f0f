"""The numbers the papers report, each with its source, as one table.

Every paper module lists its numbers (:attr:`clbench.report.paper.Paper.reported`), one mapping per
number with these fields:

    id          unique key (paper.dataset.method.metric)
    source      where in the paper the number is (table / figure / section / abstract)
    dataset     dataset (and split) as the paper names it
    method      the method as the paper names it
    method_key  the method name clbench's configs use
    experiment  the experiment (name prefix) whose table shows it beside ours
    metric      machine name of the metric (the paper's ``metric_names`` map it to the pipeline's)
    value       the reported number, in the paper's own unit (None when only a range is given)
    std         the reported ± (when given)
    range       [low, high] when the paper gives a range rather than one number
    approx      true when the paper says "about" or the number is read off a figure
    unit        "%", "fraction", "ratio" or "score"
    scale       "paper" (every number is at the paper's scale)
    backbone    the paper's encoder, where it matters
    checked     what the number was checked against beyond its source
    note        anything needed to read the number right

Nothing is estimated or interpolated; where the paper's table or figure number is not known, the
source says so.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

PAPER_RESULT_FIELDS = ("id", "paper", "source", "dataset", "method", "metric", "scale")
RESULT_COLUMNS = [
    "id", "paper", "title", "arxiv", "source", "dataset", "method", "method_key", "experiment", "metric",
    "value", "std", "low", "high", "approx", "unit", "scale", "backbone", "checked", "note",
]


def paper_results_raw(papers: Iterable) -> dict:
    """The papers' metadata and numbers as one mapping: ``papers`` (key -> title, arxiv, code) and
    ``results`` (every number, with its ``paper`` key)."""
    papers = list(papers)
    return {
        "papers": {p.key: {"title": p.title, "arxiv": p.arxiv, "code": p.code} for p in papers},
        "results": [{"paper": p.key, **r} for p in papers for r in p.reported],
    }


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def validate_paper_results(data: Mapping) -> list[str]:
    """Problems of a :func:`paper_results_raw` mapping (an empty list when it is valid)."""
    errors: list[str] = []
    papers = data.get("papers")
    results = data.get("results")
    if not isinstance(papers, Mapping) or not papers:
        return ["'papers' must be a non-empty mapping"]
    if not isinstance(results, list) or not results:
        return ["'results' must be a non-empty list"]
    for key, p in papers.items():
        if not isinstance(p, Mapping) or "title" not in p or "arxiv" not in p:
            errors.append(f"paper {key!r} needs 'title' and 'arxiv' (null when it has none)")
    seen: set[str] = set()
    for i, r in enumerate(results):
        where = f"results[{i}] ({r.get('id', '?') if isinstance(r, Mapping) else '?'})"
        if not isinstance(r, Mapping):
            errors.append(f"{where} is not a mapping")
            continue
        for f in PAPER_RESULT_FIELDS:
            if r.get(f) in (None, ""):
                errors.append(f"{where}: missing {f!r}")
        if r.get("id") in seen:
            errors.append(f"{where}: duplicate id")
        seen.add(r.get("id"))
        if r.get("paper") not in papers:
            errors.append(f"{where}: unknown paper {r.get('paper')!r}")
        if r.get("scale") not in ("paper", "tiny"):
            errors.append(f"{where}: scale must be 'paper' or 'tiny'")
        value, rng, std = r.get("value"), r.get("range"), r.get("std")
        if value is None and rng is None:
            errors.append(f"{where}: needs 'value' or 'range'")
        if value is not None and not _is_number(value):
            errors.append(f"{where}: value {value!r} is not a number")
        if std is not None and (not _is_number(std) or std < 0):
            errors.append(f"{where}: std {std!r} must be a non-negative number")
        if rng is not None:
            if not (isinstance(rng, (list, tuple)) and len(rng) == 2 and all(_is_number(x) for x in rng)
                    and rng[0] <= rng[1]):
                errors.append(f"{where}: range must be [low, high] with low <= high")
        unknown = set(r) - set(RESULT_COLUMNS) - {"range"}
        if unknown:
            errors.append(f"{where}: unknown fields {sorted(unknown)}")
    return errors


def paper_results_frame(data: Mapping) -> pd.DataFrame:
    """Every number of a :func:`paper_results_raw` mapping as one row, with its paper's title and arXiv id.

    Columns :data:`RESULT_COLUMNS`. ``value`` is NaN for entries that only give a range (then
    ``low``/``high`` hold it); for single values low = high = value. Raises ``ValueError`` when the
    numbers are invalid (:func:`validate_paper_results`).
    """
    errors = validate_paper_results(data)
    if errors:
        raise ValueError("the papers' reported numbers are invalid:\n  " + "\n  ".join(errors))
    rows = []
    for r in data["results"]:
        p = data["papers"][r["paper"]]
        row = {c: r.get(c) for c in RESULT_COLUMNS}
        row["title"] = p.get("title")
        row["arxiv"] = p.get("arxiv")
        rng = r.get("range")
        v = r.get("value")
        row["value"] = float(v) if v is not None else np.nan
        row["std"] = float(r["std"]) if r.get("std") is not None else np.nan
        row["low"] = float(rng[0]) if rng else row["value"]
        row["high"] = float(rng[1]) if rng else row["value"]
        row["approx"] = bool(r.get("approx", False))
        rows.append(row)
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def reported_frame(papers: Iterable) -> pd.DataFrame:
    """The numbers of ``papers`` (:class:`~clbench.report.paper.Paper`) as one table; empty when none reports any."""
    papers = list(papers)
    if not any(p.reported for p in papers):
        return pd.DataFrame(columns=RESULT_COLUMNS)
    return paper_results_frame(paper_results_raw([p for p in papers if p.reported]))

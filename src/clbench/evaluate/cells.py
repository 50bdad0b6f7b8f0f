"""Corruption cells: the rows of a run's corruption table, and the merge of per-cell results.

At paper scale (``evaluation.corruptions.granularity: cell``) every (corruption, severity) cell of a
run is its own job writing one row as JSON; the run's clean evaluation and its rows are merged by a
cheap local job into the same ``evaluation.json`` a single grid job writes (``tables.corruptions``
and ``metrics.mean_corruption_top1``), so the report reads one format. No torch import here: the
merge must not pay torch's start-up.
"""

from __future__ import annotations

from typing import Iterable

from clbench.io import read_json, write_json


def corruption_row(name: str, severity: int, probs, labels) -> dict:
    """One cell of the table: top-1 of class probabilities ``probs`` [N, C] against ``labels`` [N]."""
    return {"corruption": name, "severity": int(severity), "top1": float((probs.argmax(1) == labels).mean())}


def with_corruption_rows(result: dict, rows: list[dict]) -> dict:
    """``result`` ({"metrics", "tables"}) with the corruption table and its mean over cells set."""
    if not rows:
        raise ValueError("no corruption cells to merge; check evaluation.corruptions.names and severities")
    mean = sum(r["top1"] for r in rows) / len(rows)
    return {**result, "metrics": {**result["metrics"], "mean_corruption_top1": float(mean)},
            "tables": {**result.get("tables", {}), "corruptions": list(rows)}}


def merge_evaluation(clean_json, cell_jsons: Iterable, out_json) -> dict:
    """Write the run's evaluation: the clean evaluation plus every cell's row (in the given order)."""
    result = with_corruption_rows(read_json(clean_json), [read_json(p) for p in cell_jsons])
    write_json(out_json, result)
    return result

"""Out-of-distribution accuracy helpers (CLEAR's unseen style-content combinations).

CLEAR reports a method's accuracy on the unseen-combination test split *relative to the plain CNN*
trained on the same split with the same seed:

    rel_acc(method, split, seed) = acc(method, split, seed) / acc(cnn, split, seed)

and, for OOD-k (k styles seen per content class during training), the curve of that number over k.
All functions take long-format pandas DataFrames (one row per number) and import nothing heavy.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd

__all__ = ["relative_accuracy", "relative_to_baseline", "ood_k_curve", "ood_k_table"]


def relative_accuracy(accuracy: float, baseline_accuracy: float) -> float:
    """acc(method) / acc(baseline); NaN when the baseline accuracy is 0 or missing."""
    if baseline_accuracy is None or not np.isfinite(baseline_accuracy) or baseline_accuracy == 0:
        return float("nan")
    return float(accuracy) / float(baseline_accuracy)


def relative_to_baseline(
    df: pd.DataFrame,
    baseline: str = "cnn",
    *,
    value_col: str = "value",
    method_col: str = "method",
    match_on: Sequence[str] | None = None,
    out_col: str = "relative",
    keep_baseline: bool = True,
) -> pd.DataFrame:
    """Divide every row's ``value_col`` by the baseline method's value in the matching row.

    Rows are matched on ``match_on`` (default: every column except ``method_col``, ``value_col``
    and ``out_col`` — typically experiment, split, seed, metric, and k for OOD-k). Each baseline
    key must be unique. Rows with no matching baseline get NaN. Returns a copy with ``out_col``
    added (the baseline's own rows get 1.0, or are dropped when ``keep_baseline=False``).
    """
    if method_col not in df.columns or value_col not in df.columns:
        raise KeyError(f"df needs columns {method_col!r} and {value_col!r}")
    if match_on is None:
        match_on = [c for c in df.columns if c not in (method_col, value_col, out_col)]
    match_on = list(match_on)
    base = df[df[method_col] == baseline]
    if base.empty:
        raise ValueError(f"no rows for baseline method {baseline!r}")
    if match_on:
        dup = base.duplicated(subset=match_on, keep=False)
        if dup.any():
            raise ValueError(
                f"baseline {baseline!r} has several rows for the same {match_on}: "
                f"{base.loc[dup, match_on].drop_duplicates().to_dict('records')[:3]}"
            )
        base_vals = base[match_on + [value_col]].rename(columns={value_col: "__base"})
        out = df.merge(base_vals, on=match_on, how="left")
    else:
        if len(base) != 1:
            raise ValueError("without match_on the baseline must have exactly one row")
        out = df.copy()
        out["__base"] = float(base[value_col].iloc[0])
    b = out["__base"].astype(float)
    out[out_col] = np.where((b != 0) & np.isfinite(b), out[value_col].astype(float) / b.where(b != 0, np.nan), np.nan)
    out = out.drop(columns="__base")
    if not keep_baseline:
        out = out[out[method_col] != baseline]
    return out.reset_index(drop=True)


def _agg(df: pd.DataFrame, by: list[str], value_col: str) -> pd.DataFrame:
    g = df.groupby(by, dropna=False, sort=True)[value_col]
    out = g.agg(mean="mean", std="std", n="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out


def ood_k_curve(
    df: pd.DataFrame,
    *,
    k_col: str = "k",
    value_col: str = "value",
    method_col: str = "method",
    seed_col: str = "seed",
    group_cols: Iterable[str] = ("experiment", "metric"),
    baseline: str | None = None,
) -> pd.DataFrame:
    """Aggregate an OOD-k sweep into a tidy curve: one row per (group, method, k) with mean, std, n.

    ``df`` is long format with at least ``method_col``, ``k_col``, ``value_col`` (and usually
    ``seed_col`` plus the ``group_cols`` that are present). With ``baseline`` set, values are first
    divided by the baseline's value of the same (group, k, seed) — CLEAR's relative OOD accuracy.
    Columns of the result: [*group_cols present, method, k, mean, std, n]; std is over seeds
    (ddof=1; 0 for a single seed).
    """
    group = [c for c in group_cols if c in df.columns]
    work = df
    if baseline is not None:
        match = group + [k_col] + ([seed_col] if seed_col in df.columns else [])
        work = relative_to_baseline(
            df, baseline, value_col=value_col, method_col=method_col, match_on=match, out_col="__rel"
        )
        work = work.drop(columns=value_col).rename(columns={"__rel": value_col})
    return _agg(work, group + [method_col, k_col], value_col)


def ood_k_table(
    df: pd.DataFrame,
    *,
    k_col: str = "k",
    value_col: str = "value",
    method_col: str = "method",
    stat: str = "mean",
    **kwargs,
) -> pd.DataFrame:
    """Wide OOD-k table: index k, one column per method, cells ``stat`` ("mean", "std" or "n").

    Takes the raw long results (as :func:`ood_k_curve`, whose keyword arguments it forwards) and
    must resolve to a single group (filter by experiment/metric first).
    """
    curve = ood_k_curve(df, k_col=k_col, value_col=value_col, method_col=method_col, **kwargs)
    extra = [c for c in curve.columns if c not in (method_col, k_col, "mean", "std", "n")]
    if extra and len(curve[extra].drop_duplicates()) > 1:
        raise ValueError(f"several groups present ({extra}); filter the frame first")
    return curve.pivot(index=k_col, columns=method_col, values=stat)

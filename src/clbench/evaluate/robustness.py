"""Corruption robustness summaries (Hendrycks & Dietterich 2019, ImageNet-C / CIFAR-C style).

Input: long-format DataFrames with one row per (corruption, severity) — columns ``corruption``,
``severity``, ``accuracy`` (a fraction in [0, 1] or a percentage; detected, or set
``accuracy_max``). Error = accuracy_max - accuracy.

    mean corruption accuracy = mean over all (c, s) cells of accuracy
    CE_c        = sum_s E(method, c, s) / sum_s E(baseline, c, s)
    mCE         = mean_c CE_c
    relCE_c     = sum_s (E(method, c, s) - E(method, clean)) / sum_s (E(baseline, c, s) - E(baseline, clean))
    relative mCE = mean_c relCE_c

The baseline is the plain CNN (or any reference model) evaluated on the same cells. Only
(corruption, severity) cells present for both the method and the baseline are used.
No torch import.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

__all__ = [
    "mean_corruption_accuracy",
    "corruption_errors",
    "mce",
    "robustness_summary",
]


def _accuracy_max(*frames: pd.DataFrame, col: str, clean: Sequence[float | None] = ()) -> float:
    vals = [np.asarray(f[col], dtype=float) for f in frames if f is not None and len(f)]
    vals += [np.asarray([c], dtype=float) for c in clean if c is not None]
    if not vals:
        return 1.0
    m = np.nanmax(np.concatenate(vals))
    return 100.0 if m > 1.0 else 1.0


def _cells(df: pd.DataFrame, accuracy_col: str) -> pd.Series:
    for c in ("corruption", "severity", accuracy_col):
        if c not in df.columns:
            raise KeyError(f"corruption results need a {c!r} column; got {list(df.columns)}")
    if df.duplicated(subset=["corruption", "severity"]).any():
        raise ValueError("several rows for the same (corruption, severity); filter or average first")
    return df.set_index(["corruption", "severity"])[accuracy_col].astype(float)


def mean_corruption_accuracy(df: pd.DataFrame, accuracy_col: str = "accuracy") -> float:
    """Mean accuracy over all (corruption, severity) cells of one model."""
    acc = _cells(df, accuracy_col)
    return float(acc.mean()) if len(acc) else float("nan")


def corruption_errors(
    method: pd.DataFrame,
    baseline: pd.DataFrame,
    *,
    accuracy_col: str = "accuracy",
    clean_accuracy: float | None = None,
    baseline_clean_accuracy: float | None = None,
    accuracy_max: float | None = None,
) -> pd.DataFrame:
    """Per-corruption table: summed errors of method and baseline, CE_c, and relCE_c when the clean
    accuracies are given. Index: corruption; columns ``err_method``, ``err_baseline``, ``ce``,
    ``n_severities`` and (with clean accuracies) ``relative_ce``."""
    a = _cells(method, accuracy_col)
    b = _cells(baseline, accuracy_col)
    common = a.index.intersection(b.index)
    if len(common) == 0:
        raise ValueError("method and baseline share no (corruption, severity) cell")
    top = accuracy_max or _accuracy_max(
        method, baseline, col=accuracy_col, clean=(clean_accuracy, baseline_clean_accuracy)
    )
    ea = (top - a.loc[common]).rename("err_method")
    eb = (top - b.loc[common]).rename("err_baseline")
    t = pd.concat([ea, eb], axis=1).reset_index()
    g = t.groupby("corruption", sort=True)
    out = pd.DataFrame(
        {
            "err_method": g["err_method"].sum(),
            "err_baseline": g["err_baseline"].sum(),
            "n_severities": g.size(),
        }
    )
    out["ce"] = out["err_method"] / out["err_baseline"].where(out["err_baseline"] != 0, np.nan)
    if clean_accuracy is not None and baseline_clean_accuracy is not None:
        ca = top - float(clean_accuracy)
        cb = top - float(baseline_clean_accuracy)
        num = out["err_method"] - out["n_severities"] * ca
        den = out["err_baseline"] - out["n_severities"] * cb
        out["relative_ce"] = num / den.where(den != 0, np.nan)
    return out


def mce(
    method: pd.DataFrame,
    baseline: pd.DataFrame,
    *,
    accuracy_col: str = "accuracy",
    clean_accuracy: float | None = None,
    baseline_clean_accuracy: float | None = None,
    accuracy_max: float | None = None,
) -> dict:
    """mCE (and relative mCE when both clean accuracies are given) of ``method`` vs ``baseline``.

    Returns ``{"mce", "relative_mce" (or None), "mean_accuracy", "baseline_mean_accuracy",
    "ce": {corruption: CE_c}, "relative_ce": {...} or None, "n_cells"}``. Values are ratios
    (1.0 = as robust as the baseline; lower is better); multiply by 100 for the paper's percent.
    """
    table = corruption_errors(
        method,
        baseline,
        accuracy_col=accuracy_col,
        clean_accuracy=clean_accuracy,
        baseline_clean_accuracy=baseline_clean_accuracy,
        accuracy_max=accuracy_max,
    )
    has_rel = "relative_ce" in table.columns
    return {
        "mce": float(table["ce"].mean()),
        "relative_mce": float(table["relative_ce"].mean()) if has_rel else None,
        "mean_accuracy": mean_corruption_accuracy(method, accuracy_col),
        "baseline_mean_accuracy": mean_corruption_accuracy(baseline, accuracy_col),
        "ce": {str(k): float(v) for k, v in table["ce"].items()},
        "relative_ce": {str(k): float(v) for k, v in table["relative_ce"].items()} if has_rel else None,
        "n_cells": int(table["n_severities"].sum()),
    }


def robustness_summary(
    df: pd.DataFrame,
    baseline: str = "cnn",
    *,
    method_col: str = "method",
    accuracy_col: str = "accuracy",
    group_cols: Sequence[str] = ("experiment", "seed"),
    clean: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per (group, method) summary of a long table holding many methods (and seeds).

    ``df``: columns [*group_cols present, method, corruption, severity, accuracy]. The baseline is
    the ``baseline`` method in the same group (same experiment and seed). ``clean`` (optional):
    columns [*group_cols present, method, accuracy] with clean test accuracies, enabling relative
    mCE. Returns long rows: [*group, method, mean_corruption_accuracy, mce, relative_mce].
    """
    group = [c for c in group_cols if c in df.columns]
    rows = []
    groups = df.groupby(group, sort=True, dropna=False) if group else [((), df)]
    for key, part in groups:
        key = key if isinstance(key, tuple) else (key,)
        base = part[part[method_col] == baseline]
        for m, mpart in part.groupby(method_col, sort=True):
            row = dict(zip(group, key))
            row[method_col] = m
            row["mean_corruption_accuracy"] = mean_corruption_accuracy(mpart, accuracy_col)
            if base.empty:
                row["mce"] = np.nan
                row["relative_mce"] = np.nan
            else:
                ca = cb = None
                if clean is not None:
                    sel = clean
                    for c, v in zip(group, key):
                        if c in sel.columns:
                            sel = sel[sel[c] == v]
                    cm = sel.loc[sel[method_col] == m, accuracy_col]
                    cbv = sel.loc[sel[method_col] == baseline, accuracy_col]
                    if len(cm) == 1 and len(cbv) == 1:
                        ca, cb = float(cm.iloc[0]), float(cbv.iloc[0])
                r = mce(mpart, base, accuracy_col=accuracy_col, clean_accuracy=ca, baseline_clean_accuracy=cb)
                row["mce"] = r["mce"]
                row["relative_mce"] = r["relative_mce"] if r["relative_mce"] is not None else np.nan
            rows.append(row)
    return pd.DataFrame(rows)

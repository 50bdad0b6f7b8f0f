"""Collect per-run result files into long tables and aggregate over seeds."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from clbench.io import write_text

RUN_PATH = re.compile(r"(?P<experiment>[^/]+)/(?P<method>[^/]+)/seed(?P<seed>\d+)/[^/]+$")


def parse_run_path(path: str | Path, runs_root: str | Path) -> dict:
    """``{runs_root}/{experiment}/{method}/seed{seed}/file`` -> its experiment, method and seed."""
    rel = Path(path).resolve().relative_to(Path(runs_root).resolve()).as_posix()
    m = RUN_PATH.fullmatch(rel)
    if not m:
        raise ValueError(f"{path} is not laid out as {runs_root}/<experiment>/<method>/seed<N>/<file>")
    return {"experiment": m["experiment"], "method": m["method"], "seed": int(m["seed"])}


def collect_json(paths, runs_root) -> pd.DataFrame:
    """One row per result JSON, its scalar fields as columns, plus experiment/method/seed."""
    rows = []
    for p in paths:
        with open(p) as f:
            data = json.load(f)
        rows.append({**parse_run_path(p, runs_root), **{k: v for k, v in data.items() if isinstance(v, (int, float))}})
    return pd.DataFrame(rows)


def aggregate(df: pd.DataFrame, metrics: list[str], by=("experiment", "method")) -> pd.DataFrame:
    """Mean, standard deviation and count over seeds for each metric."""
    g = df.groupby(list(by), sort=False)[metrics]
    mean, std, n = g.mean(), g.std(ddof=1), g.count()
    out = pd.concat({"mean": mean, "std": std, "n": n}, axis=1)
    out.columns = [f"{m}_{stat}" for stat, m in out.columns]
    return out.reset_index()


def format_mean_std(mean: float, std: float, scale: float = 100.0, digits: int = 1) -> str:
    if pd.isna(mean):
        return "—"
    if pd.isna(std):
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no tabulate dependency)."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def to_latex(df: pd.DataFrame) -> str:
    cols = [str(c).replace("_", r"\_") for c in df.columns]
    body = [" & ".join(_cell(v).replace("±", r"$\pm$").replace("_", r"\_") for v in row) + r" \\" for _, row in df.iterrows()]
    return "\n".join([r"\begin{tabular}{" + "l" * len(cols) + "}", r"\toprule", " & ".join(cols) + r" \\", r"\midrule",
                      *body, r"\bottomrule", r"\end{tabular}"]) + "\n"


def _cell(v) -> str:
    if isinstance(v, float):
        return "—" if pd.isna(v) else f"{v:.4g}"
    return str(v)


def probe_table(paths, runs_root, csv_path, md_path) -> pd.DataFrame:
    """The linear-probe table: per (experiment, method) mean ± std over seeds of top-1, AUROC, AUPR."""
    df = collect_json(paths, runs_root)
    metrics = [m for m in ("top1", "auroc", "aupr") if m in df.columns]
    agg = aggregate(df, metrics)
    write_text(csv_path, agg.to_csv(index=False))
    shown = agg[["experiment", "method"]].copy()
    for m in metrics:
        shown[f"{m} (%)"] = [format_mean_std(a, b) for a, b in zip(agg[f"{m}_mean"], agg[f"{m}_std"])]
    shown["seeds"] = agg[f"{metrics[0]}_n"].astype(int)
    write_text(md_path, to_markdown(shown))
    write_text(Path(csv_path).with_suffix(".tex"), to_latex(shown))
    return agg

"""Figures (matplotlib, Agg backend): saving in every configured format, the functions the papers'
figures share (reading tables, mean ± std over seeds, placeholder figures), and the training curves.

Figure functions take CSV paths or DataFrames; none imports torch.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from clbench.io import atomic_path
from clbench.report.tables import parse_run_path


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no display), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


FIGURE_FORMATS = ("png", "pdf", "svg")

# The formats every save_figure also writes, set once per command: the figure functions each draw and
# save in one place, so a second format costs one more savefig, not a second drawing (t-SNE, MI simulation).
_ALSO_SAVE: ContextVar[tuple[str, ...]] = ContextVar("clbench_figure_formats", default=())


@contextlib.contextmanager
def figure_formats(formats: Iterable[str]) -> Iterator[None]:
    """Within the block every :func:`save_figure` of ``x.png`` also writes ``x.pdf`` etc., one per format."""
    formats = tuple(dict.fromkeys(formats))
    unknown = sorted(set(formats) - set(FIGURE_FORMATS))
    if unknown:
        raise ValueError(f"unknown figure formats {unknown}; known: {list(FIGURE_FORMATS)}")
    token = _ALSO_SAVE.set(formats)
    try:
        yield
    finally:
        _ALSO_SAVE.reset(token)


def save_figure(fig, path: str | Path) -> None:
    """``fig`` to ``path`` (format from its suffix), plus a copy per format of :func:`figure_formats`."""
    path = Path(path)
    own = path.suffix.lstrip(".") or "png"
    for fmt in (own, *(f for f in _ALSO_SAVE.get() if f != own)):
        target = path if fmt == own else path.with_suffix(f".{fmt}")
        # No creation date in vector files: the same figure gives the same bytes on every run.
        metadata = {"CreationDate": None} if fmt == "pdf" else {"Date": None} if fmt == "svg" else None
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=fmt, dpi=120, bbox_inches="tight", metadata=metadata)


def read_table(src, required: Iterable[str] = ()) -> pd.DataFrame:
    """A table from a CSV path or a DataFrame (copied), refusing one that lacks a ``required`` column."""
    df = src.copy() if isinstance(src, pd.DataFrame) else pd.read_csv(src)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"{src if not isinstance(src, pd.DataFrame) else 'table'} lacks columns {missing}; "
                         f"has {list(df.columns)}")
    return df


def ordered(values) -> list:
    """Unique values in order of first appearance."""
    return list(dict.fromkeys(values))


def empty_figure(out, message: str, title: str = "") -> None:
    """A small figure that says in words why there is nothing to draw (the rule's output exists all the same)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 2.2))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, wrap=True)
    if title:
        ax.set_title(title)
    save_figure(fig, out)
    plt.close(fig)


def _std(x: pd.Series) -> float:
    """Sample std over seeds, 0 for a single seed (not NaN, so bands and error bars still draw)."""
    return float(x.std(ddof=1)) if len(x) > 1 else 0.0


def mean_std(df: pd.DataFrame, by: list[str], value: str) -> pd.DataFrame:
    """Mean, std (0 for one seed) and count of ``value`` per ``by`` group, groups in order of appearance."""
    g = df.groupby(by, sort=False)[value]
    out = g.agg(mean="mean", n="count").reset_index()
    out["std"] = g.agg(_std).to_numpy()
    return out


def is_fraction(values) -> bool:
    """Whether every finite value lies in [0, 1] (then accuracies are drawn in %)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return bool(len(v)) and float(v.max()) <= 1.0 + 1e-9 and float(v.min()) >= 0.0


def read_run_metrics(path, metrics: str | Sequence[str], required: Sequence[str] | None = None) -> pd.DataFrame:
    """``epoch`` and ``metrics`` of one run's metrics.csv, rows missing one of ``required`` (default: all
    of ``metrics``) dropped; empty when the file lacks a column."""
    cols = [metrics] if isinstance(metrics, str) else list(metrics)
    df = pd.read_csv(path)
    if "epoch" not in df.columns or any(c not in df.columns for c in cols):
        return pd.DataFrame(columns=["epoch", *cols])
    if "stage" in df.columns:  # a multistage run lists every stage's epochs: make the epoch axis cumulative
        offset, parts = 0, []
        for _, s in df.groupby("stage", sort=True):
            s = s.copy()
            if s["epoch"].min() <= offset:  # a stage's own epochs restart at 1; a combined run's already run on
                s["epoch"] = s["epoch"] + offset
            offset = int(s["epoch"].max())
            parts.append(s)
        df = pd.concat(parts, ignore_index=True)
    return df[["epoch", *cols]].dropna(subset=["epoch", *(cols if required is None else required)])


def training_curves(metrics_paths, runs_root, out: str | Path) -> None:
    """Per experiment: the training loss and the k-NN validation accuracy per epoch of every run."""
    plt = pyplot()
    frames = []
    for p in metrics_paths:
        df = pd.read_csv(p)
        for k, v in parse_run_path(p, runs_root).items():
            df[k] = v
        frames.append(df)
    data = pd.concat(frames, ignore_index=True)
    experiments = list(dict.fromkeys(data["experiment"]))
    panels = ["loss"] + (["val_knn_top1"] if "val_knn_top1" in data else [])
    fig, axes = plt.subplots(len(experiments), len(panels), figsize=(5 * len(panels), 3.2 * len(experiments)),
                             squeeze=False)
    for i, exp in enumerate(experiments):
        sub = data[data["experiment"] == exp]
        for j, col in enumerate(panels):
            ax = axes[i][j]
            for (method, seed), run in sub.groupby(["method", "seed"], sort=False):
                run = run.dropna(subset=[col])
                ax.plot(run["epoch"], run[col], marker="o", ms=3, label=f"{method} (seed {seed})")
            ax.set_xlabel("epoch")
            ax.set_ylabel("training loss" if col == "loss" else "k-NN val top-1")
            ax.set_title(exp)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)

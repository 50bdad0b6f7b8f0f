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


def cumulative_epochs(df: pd.DataFrame) -> pd.DataFrame:
    """A multistage run's metrics (a ``stage`` column, each stage's epochs restarting at 1) on one
    cumulative epoch axis; other runs unchanged."""
    if "stage" not in df.columns or "epoch" not in df.columns:
        return df
    offset, parts = 0, []
    for _, s in df.groupby("stage", sort=True):
        s = s.copy()
        if s["epoch"].min() <= offset:  # a stage's own epochs restart at 1; a combined run's already run on
            s["epoch"] = s["epoch"] + offset
        offset = int(s["epoch"].max())
        parts.append(s)
    return pd.concat(parts, ignore_index=True)


def read_run_metrics(path, metrics: str | Sequence[str], required: Sequence[str] | None = None) -> pd.DataFrame:
    """``epoch`` and ``metrics`` of one run's metrics.csv, rows missing one of ``required`` (default: all
    of ``metrics``) dropped; empty when the file lacks a column."""
    cols = [metrics] if isinstance(metrics, str) else list(metrics)
    df = pd.read_csv(path)
    if "epoch" not in df.columns or any(c not in df.columns for c in cols):
        return pd.DataFrame(columns=["epoch", *cols])
    df = cumulative_epochs(df)
    return df[["epoch", *cols]].dropna(subset=["epoch", *(cols if required is None else required)])


SEED_STYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))
# Methods whose largest losses lie further apart than this factor get panels of their own: on one axis
# the smaller losses would be a flat line at the bottom (a diverging run, or a VAE's loss beside an InfoNCE).
LOSS_SCALE_SPLIT = 30.0
# Within one panel, a log y-axis when positive losses span more than this factor; with values <= 0, a
# symlog one when the largest |loss| is this factor above the typical (median) one.
LOG_SPAN = 30.0


def method_colours(methods: Sequence[str]) -> dict:
    """One colour per method of a panel row (tab10: distinct for up to ten methods, then repeating)."""
    cmap = pyplot().get_cmap("tab10")
    return {m: cmap(i % cmap.N) for i, m in enumerate(methods)}


def loss_scale_groups(runs: pd.DataFrame, value: str = "loss") -> list[list[str]]:
    """The methods of one experiment grouped by the largest |``value``| of their runs: methods further apart
    than :data:`LOSS_SCALE_SPLIT` go to different groups (smallest first)."""
    largest = {}
    for method, g in runs.groupby("method", sort=False):
        v = np.abs(g[value].to_numpy(dtype=float))
        v = v[np.isfinite(v)]
        largest[method] = float(v.max()) if len(v) else np.nan
    finite = sorted((m for m in largest if np.isfinite(largest[m]) and largest[m] > 0), key=largest.get)
    groups: list[list[str]] = []
    for m in finite:
        if groups and largest[m] <= LOSS_SCALE_SPLIT * largest[groups[-1][0]]:
            groups[-1].append(m)
        else:
            groups.append([m])
    rest = [m for m in largest if m not in finite]  # all zero or not finite: beside the smallest losses
    if rest:
        groups = [groups[0] + rest, *groups[1:]] if groups else [rest]
    return groups


def y_scale(values) -> tuple[str, dict]:
    """``("linear", {})``, ``("log", {})`` or ``("symlog", {"linthresh": t})`` for the values of one axis:
    log when positive values span more than :data:`LOG_SPAN`; with values <= 0, symlog when the largest
    |value| is more than :data:`LOG_SPAN` times the median |value| (a spike, a divergence)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return "linear", {}
    if (v > 0).all():
        return ("log", {}) if v.max() / v.min() > LOG_SPAN else ("linear", {})
    typical = float(np.median(np.abs(v)))
    if typical > 0 and np.abs(v).max() / typical > LOG_SPAN:
        return "symlog", {"linthresh": typical}
    return "linear", {}


def _read_runs(metrics_paths, runs_root) -> pd.DataFrame:
    frames = []
    for p in metrics_paths:
        df = cumulative_epochs(pd.read_csv(p))
        for k, v in parse_run_path(p, runs_root).items():
            df[k] = v
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def curve_panels(data: pd.DataFrame) -> list[tuple[str, list[dict]]]:
    """Per experiment, its panels: one training-loss panel per loss scale (:func:`loss_scale_groups`)
    and a k-NN validation panel when some run of it logged one. Each panel: ``column``, ``methods``, ``title``."""
    out = []
    for exp in ordered(data["experiment"]):
        sub = data[data["experiment"] == exp]
        panels = []
        if "loss" in sub and sub["loss"].notna().any():
            groups = loss_scale_groups(sub.dropna(subset=["loss"]))
            for group in groups:
                title = "training loss" + (f": {', '.join(group)}" if len(groups) > 1 else "")
                panels.append({"column": "loss", "methods": group, "title": title})
        if "val_knn_top1" in sub and sub["val_knn_top1"].notna().any():
            methods = ordered(sub.loc[sub["val_knn_top1"].notna(), "method"])
            panels.append({"column": "val_knn_top1", "methods": methods, "title": "k-NN validation top-1 (%)"})
        if panels:
            out.append((exp, panels))
    return out


def training_curves(metrics_paths, runs_root, out: str | Path) -> None:
    """Per experiment one row of panels: the training loss per epoch of every run (a panel per loss
    scale, log y-axis where it spans orders of magnitude) and the k-NN validation accuracy where the
    runs logged it. A colour per method, a line style per seed; each row's legend beside its panels."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    data = _read_runs(metrics_paths, runs_root)
    rows = curve_panels(data)
    if not rows:
        empty_figure(out, "no run logged a training loss or a k-NN validation accuracy", "Training curves")
        return
    seeds = sorted(data["seed"].unique())
    styles = {s: SEED_STYLES[i % len(SEED_STYLES)] for i, s in enumerate(seeds)}
    ncols = max(len(panels) for _, panels in rows)
    fig = plt.figure(figsize=(4.0 * ncols + 2.4, 3.3 * len(rows)), layout="constrained")
    subfigs = np.atleast_1d(fig.subfigures(len(rows), 1))
    for subfig, (exp, panels) in zip(subfigs, rows):
        sub = data[data["experiment"] == exp]
        colours = method_colours(ordered(sub["method"]))
        axes = np.atleast_1d(subfig.subplots(1, ncols, squeeze=False)[0])
        for ax, panel in zip(axes, panels):
            col, shown = panel["column"], []
            scale = 100.0 if col == "val_knn_top1" and is_fraction(sub[col]) else 1.0
            for (method, seed), run in sub[sub["method"].isin(panel["methods"])].groupby(["method", "seed"], sort=False):
                run = run.dropna(subset=[col])
                if run.empty:
                    continue
                ax.plot(run["epoch"], run[col] * scale, color=colours[method], linestyle=styles[seed], marker="o",
                        ms=2.5, lw=1.4)
                shown.append(run[col].to_numpy(dtype=float) * scale)
            kind, kw = y_scale(np.concatenate(shown)) if shown else ("linear", {})
            if col == "loss" and kind != "linear":
                ax.set_yscale(kind, **kw)
            ax.set_title(panel["title"] + (f" ({kind} scale)" if col == "loss" and kind != "linear" else ""),
                         fontsize=11)
            ax.set_xlabel("epoch", fontsize=10)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.tick_params(labelsize=9)
            ax.grid(alpha=0.3)
        for ax in axes[len(panels):]:
            ax.axis("off")
        methods = ordered(sub["method"])
        handles = [Line2D([], [], color=colours[m], lw=2, label=m) for m in methods]
        run_seeds = sorted(sub["seed"].unique())
        if len(run_seeds) > 1:
            handles += [Line2D([], [], color="0.35", linestyle=styles[s], lw=1.4, label=f"seed {s}") for s in run_seeds]
        else:
            handles.append(Line2D([], [], color="none", label=f"seed {run_seeds[0]}"))
        if len(panels) < ncols:  # the legend in the row's first free slot, beside its last panel
            axes[len(panels)].legend(handles=handles, loc="upper left", fontsize=10, frameon=False)
        else:
            subfig.legend(handles=handles, loc="outside right upper", fontsize=10, frameon=False)
        subfig.suptitle(f"experiment {exp}", fontsize=12, fontweight="bold", x=0.02, ha="left")
    save_figure(fig, out)
    plt.close(fig)

"""The papers' figures: corruption heat-map, MCL stage probes, OOD-k curves, relative-accuracy bars,
convergence curves, VarCon's adaptive temperature, CLEAR's content/style swap grid and interpolation,
t-SNE of the CLEAR latents and CLEAR's MI simulation.

Every ``*_plot``/figure function writes one figure file (PNG or PDF, from the suffix of ``out``,
via :func:`clbench.report.figures.save_figure`, plus the copies :func:`~clbench.report.figures.figure_formats`
asks for) and returns ``None``. The table-driven ones have a companion that returns the numbers they
draw (``corruption_matrices``, ``stage_probe_summary``, ``ood_k_summary``, ``relative_summary``,
``convergence_summary``, ``varcon_temperature_summary``, ``mi_simulation_curves``), so tests and the
report can check them. CSV inputs may be paths or DataFrames.

Only the model-based figures (swap grid, interpolation, t-SNE) and the MI simulation import torch,
lazily; the CSV-driven ones import only pandas and matplotlib (Agg).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from clbench.report.figures import _pyplot, save_figure

__all__ = [
    "corruption_matrices",
    "corruption_heatmap",
    "stage_probe_summary",
    "stage_probe_plot",
    "ood_k_summary",
    "ood_k_curve",
    "relative_summary",
    "relative_bars",
    "convergence_summary",
    "convergence_plot",
    "T2_COLUMNS",
    "varcon_temperature_runs",
    "varcon_temperature_summary",
    "varcon_t2_endpoints",
    "varcon_temperature_plot",
    "swap_images",
    "clear_swap_grid",
    "clear_interpolation",
    "tsne_latents",
    "mi_simulation_curves",
    "mi_simulation",
]

# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _frame(src, required: Iterable[str] = ()) -> pd.DataFrame:
    df = src.copy() if isinstance(src, pd.DataFrame) else pd.read_csv(src)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"{src if not isinstance(src, pd.DataFrame) else 'table'} lacks columns {missing}; "
                         f"has {list(df.columns)}")
    return df


def _ordered(values) -> list:
    """Unique values in order of first appearance."""
    return list(dict.fromkeys(values))


def _empty_figure(out, message: str, title: str = "") -> None:
    plt = _pyplot()
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


def _mean_std(df: pd.DataFrame, by: list[str], value: str) -> pd.DataFrame:
    g = df.groupby(by, sort=False)[value]
    out = g.agg(mean="mean", n="count").reset_index()
    out["std"] = g.agg(_std).to_numpy()
    return out


def _is_percent(values) -> bool:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return bool(len(v)) and float(v.max()) <= 1.0 + 1e-9 and float(v.min()) >= 0.0


# --------------------------------------------------------------------------------------------
# 1. corruption heat-map
# --------------------------------------------------------------------------------------------


def corruption_matrices(corruptions_csv, experiment: str | None = None) -> dict[tuple[str, str], pd.DataFrame]:
    """``{(experiment, method): DataFrame corruption x severity}`` of the mean top-1 over seeds.

    Rows keep the corruptions' order of first appearance (the pipeline writes them in the standard
    ImageNet-C order), columns are the severities sorted. ``experiment`` restricts to one experiment.
    """
    df = _frame(corruptions_csv, ["experiment", "method", "seed", "corruption", "severity", "top1"])
    if experiment is not None:
        df = df[df["experiment"] == experiment]
        if df.empty:
            raise ValueError(f"no corruption results for experiment {experiment!r}")
    corruptions = _ordered(df["corruption"])
    severities = sorted(_ordered(df["severity"]))
    out = {}
    for exp in _ordered(df["experiment"]):
        sub = df[df["experiment"] == exp]
        for method in _ordered(sub["method"]):
            m = sub[sub["method"] == method]
            mat = m.groupby(["corruption", "severity"])["top1"].mean().unstack("severity")
            out[(exp, method)] = mat.reindex(index=corruptions, columns=severities)
    return out


def corruption_heatmap(corruptions_csv, out, experiment: str | None = None) -> None:
    """Per method, a heat-map corruption x severity of the mean top-1 over seeds (annotated).

    Methods side by side on a shared colour scale; one row of panels per experiment when
    ``experiment`` is None and the table holds several.
    """
    plt = _pyplot()
    mats = corruption_matrices(corruptions_csv, experiment)
    if not mats:
        _empty_figure(out, "no corruption results", "corruption robustness")
        return
    exps = _ordered(e for e, _ in mats)
    n_cols = max(sum(1 for e2, _ in mats if e2 == e) for e in exps)
    first = next(iter(mats.values()))
    n_corr, n_sev = first.shape
    values = np.concatenate([m.to_numpy(dtype=float).ravel() for m in mats.values()])
    pct = _is_percent(values)
    scale = 100.0 if pct else 1.0
    finite = values[np.isfinite(values)] * scale
    vmin, vmax = (0.0, 100.0) if pct else (float(finite.min()), float(finite.max()))
    if pct and len(finite):  # tighten to the data so differences stay visible
        vmin, vmax = math.floor(finite.min() / 10) * 10, math.ceil(finite.max() / 10) * 10
        if vmax <= vmin:
            vmin, vmax = max(0.0, vmin - 10), min(100.0, vmax + 10)
    cell_w, cell_h = 0.55, 0.36
    fig_w = n_cols * (n_sev * cell_w + 1.9) + 1.2
    fig_h = len(exps) * (n_corr * cell_h + 1.2)
    fig, axes = plt.subplots(len(exps), n_cols, figsize=(fig_w, fig_h), squeeze=False)
    im = None
    for r, exp in enumerate(exps):
        methods = [m for e, m in mats if e == exp]
        for c in range(n_cols):
            ax = axes[r][c]
            if c >= len(methods):
                ax.axis("off")
                continue
            mat = mats[(exp, methods[c])]
            data = mat.to_numpy(dtype=float) * scale
            im = ax.imshow(data, cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto")
            mid = (vmin + vmax) / 2
            for i in range(data.shape[0]):
                for j in range(data.shape[1]):
                    v = data[i, j]
                    if np.isfinite(v):
                        ax.text(j, i, f"{v:.0f}" if pct else f"{v:.2f}", ha="center", va="center", fontsize=7,
                                color="black" if v > mid else "white")
            ax.set_xticks(range(data.shape[1]), [str(s) for s in mat.columns])
            ax.set_xlabel("severity")
            if c == 0:
                ax.set_yticks(range(data.shape[0]), [str(s).replace("_", " ") for s in mat.index], fontsize=8)
            else:
                ax.set_yticks(range(data.shape[0]), [])
            ax.set_title(methods[c] if len(exps) == 1 else f"{exp}: {methods[c]}", fontsize=10)
    label = "top-1 accuracy (%)" if pct else "top-1 accuracy"
    fig.colorbar(im, ax=axes.ravel().tolist(), label=label, shrink=0.8, pad=0.02)
    title = "Corruption robustness: mean top-1 over seeds"
    if len(exps) == 1:
        title += f" ({exps[0]})"
    fig.suptitle(title, fontsize=11)
    save_figure(fig, out)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# 2. MCL stage probes
# --------------------------------------------------------------------------------------------


def stage_probe_summary(stage_probes_csv) -> pd.DataFrame:
    """Mean and std over seeds of the probe top-1 per (experiment, method, stage, attribute).

    Columns ``experiment, method, stage, attribute, mean, std, n``; experiments, methods and
    attributes in order of first appearance, stages sorted.
    """
    df = _frame(stage_probes_csv, ["experiment", "method", "seed", "stage", "attribute", "top1"])
    out = _mean_std(df, ["experiment", "method", "stage", "attribute"], "top1")
    keys = ["experiment", "method", "stage", "attribute"]
    for col in ("experiment", "method", "attribute"):  # first-appearance order, stages numeric
        order = {v: i for i, v in enumerate(_ordered(df[col]))}
        out[f"_{col}"] = out[col].map(order)
    out = out.sort_values(["_experiment", "_method", "stage", "_attribute"], kind="stable")
    out = out.drop(columns=["_experiment", "_method", "_attribute"])
    return out.reset_index(drop=True)[keys + ["mean", "std", "n"]]


def stage_probe_plot(stage_probes_csv, out) -> None:
    """MCL: probe accuracy of each stage's features for each attribute (grouped bars, mean +- std over
    seeds), one panel per experiment (per experiment and method when an experiment has several)."""
    plt = _pyplot()
    df = _frame(stage_probes_csv, ["experiment", "method", "seed", "stage", "attribute", "top1"])
    if df.empty:
        _empty_figure(out, "no stage-probe results", "MCL stage probes")
        return
    summ = stage_probe_summary(df)
    panels = _ordered(zip(summ["experiment"], summ["method"]))
    per_exp = summ.groupby("experiment")["method"].nunique()
    pct = _is_percent(summ["mean"])
    scale = 100.0 if pct else 1.0
    n = len(panels)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.8 * cols, 3.6 * rows), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for idx, (exp, method) in enumerate(panels):
        ax = axes[idx // cols][idx % cols]
        sub = summ[(summ["experiment"] == exp) & (summ["method"] == method)]
        stages = sorted(_ordered(sub["stage"]))
        attrs = _ordered(sub["attribute"])
        width = 0.8 / max(1, len(attrs))
        for a_i, attr in enumerate(attrs):
            s = sub[sub["attribute"] == attr].set_index("stage").reindex(stages)
            x = np.arange(len(stages)) + (a_i - (len(attrs) - 1) / 2) * width
            ax.bar(x, s["mean"] * scale, width, yerr=s["std"] * scale, capsize=3, label=str(attr),
                   color=cmap(a_i % 10), edgecolor="black", linewidth=0.4)
        ax.set_xticks(range(len(stages)), [f"stage {s}" for s in stages])
        ax.set_ylabel("probe top-1 (%)" if pct else "probe top-1")
        top = float(np.nanmax((sub["mean"] + sub["std"]).to_numpy()) * scale)
        ax.set_ylim(0, max(top, 100.0 if pct else top) * 1.2)  # headroom for the legend
        if pct:
            ax.set_yticks(range(0, 101, 20))
        ax.set_title(exp if per_exp.get(exp, 1) == 1 else f"{exp}: {method}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(title="attribute", fontsize=8, title_fontsize=8, loc="upper center", ncol=min(len(attrs), 4))
    for idx in range(n, rows * cols):
        axes[idx // cols][idx % cols].axis("off")
    fig.suptitle("MCL: attribute probe accuracy of each stage's features (mean ± std over seeds)", fontsize=11)
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# 3. OOD-k curve and relative-accuracy bars
# --------------------------------------------------------------------------------------------

_K_FROM_NAME = re.compile(r"_k(\d+)$")


def _k_values(df: pd.DataFrame) -> pd.Series:
    k = pd.to_numeric(df["k"], errors="coerce") if "k" in df.columns else pd.Series(np.nan, index=df.index)
    from_name = df["experiment"].astype(str).str.extract(_K_FROM_NAME, expand=False).astype(float)
    return k.fillna(from_name)


def ood_k_summary(metrics_csv, metric: str = "linear_top1_relative", baseline: str | None = "cnn",
                  experiments: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean and std over seeds of ``metric`` per (method, k) for the OOD-k sweep.

    Rows are those with a ``k`` (the column, or an experiment named ``..._k<k>``), restricted to
    ``experiments`` when given; the ``baseline`` method (relative accuracy 1 by definition) is left out.
    Columns ``method, k, mean, std, n``, sorted by method order then k.
    """
    df = _frame(metrics_csv, ["experiment", "method", "seed", "metric", "value"])
    df = df[df["metric"] == metric].copy()
    if experiments is not None:
        df = df[df["experiment"].isin(list(experiments))]
    df["k"] = _k_values(df)
    df = df[df["k"].notna()]
    if baseline is not None:
        df = df[df["method"] != baseline]
    if df.empty:
        return pd.DataFrame(columns=["method", "k", "mean", "std", "n"])
    df["k"] = df["k"].astype(int)
    out = _mean_std(df, ["method", "k"], "value")
    order = {m: i for i, m in enumerate(_ordered(df["method"]))}
    out = out.sort_values(["method", "k"], key=lambda s: s.map(order) if s.name == "method" else s, kind="stable")
    return out.reset_index(drop=True)[["method", "k", "mean", "std", "n"]]


def ood_k_curve(metrics_csv, out, metric: str = "linear_top1_relative", baseline: str | None = "cnn",
                experiments: Sequence[str] | None = None) -> None:
    """CLEAR's OOD-k figure: ``metric`` (relative OOD accuracy vs the plain CNN) against k per method,
    mean line with a +-std band over seeds; the dashed line at 1.0 is the baseline."""
    plt = _pyplot()
    summ = ood_k_summary(metrics_csv, metric, baseline, experiments)
    if summ.empty:
        _empty_figure(out, f"no OOD-k results for {metric}", "OOD accuracy vs k")
        return
    fig, ax = plt.subplots(figsize=(6.2, 4.0))
    cmap = plt.get_cmap("tab10")
    for i, method in enumerate(_ordered(summ["method"])):
        s = summ[summ["method"] == method]
        ax.plot(s["k"], s["mean"], marker="o", color=cmap(i % 10), label=method)
        ax.fill_between(s["k"], s["mean"] - s["std"], s["mean"] + s["std"], color=cmap(i % 10), alpha=0.2)
    relative = metric.endswith("_relative")
    if relative:
        ax.axhline(1.0, color="black", linestyle="--", linewidth=1, label=f"{baseline or 'baseline'} (= 1)")
    ks = sorted(summ["k"].unique())
    ax.set_xticks(ks)
    ax.set_xlabel("k (styles per digit seen in training)")
    ax.set_ylabel(f"{metric.replace('_', ' ')}" + (f" (vs {baseline})" if relative and baseline else ""))
    ax.set_title("OOD accuracy vs k (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)


def relative_summary(metrics_csv, metric: str, experiments: Sequence[str], baseline: str | None = "cnn") -> pd.DataFrame:
    """Mean and std over seeds of ``metric`` per (experiment, method) for ``experiments`` (in that
    order), the ``baseline`` method left out. Columns ``experiment, method, mean, std, n``."""
    df = _frame(metrics_csv, ["experiment", "method", "seed", "metric", "value"])
    experiments = list(experiments)
    df = df[(df["metric"] == metric) & df["experiment"].isin(experiments)]
    if baseline is not None:
        df = df[df["method"] != baseline]
    if df.empty:
        return pd.DataFrame(columns=["experiment", "method", "mean", "std", "n"])
    out = _mean_std(df, ["experiment", "method"], "value")
    order = {e: i for i, e in enumerate(experiments)}
    out = out.sort_values("experiment", key=lambda s: s.map(order), kind="stable")
    return out.reset_index(drop=True)[["experiment", "method", "mean", "std", "n"]]


def relative_bars(metrics_csv, out, metric: str, experiments: Sequence[str], baseline: str | None = "cnn") -> None:
    """Grouped bars of ``metric`` (e.g. ``linear_top1_relative``) per method for each experiment,
    mean +- std over seeds; for a ``*_relative`` metric the dashed line at 1.0 is the baseline."""
    plt = _pyplot()
    summ = relative_summary(metrics_csv, metric, experiments, baseline)
    if summ.empty:
        _empty_figure(out, f"no results for {metric} in {', '.join(experiments)}", metric)
        return
    exps = [e for e in experiments if e in set(summ["experiment"])]
    methods = _ordered(summ["method"])
    width = min(0.8 / len(methods), 0.3)
    fig, ax = plt.subplots(figsize=(max(4.5, 0.45 * len(exps) * len(methods) + 1.2 * len(exps) + 1.5), 4.0))
    cmap = plt.get_cmap("tab10")
    for i, method in enumerate(methods):
        s = summ[summ["method"] == method].set_index("experiment").reindex(exps)
        x = np.arange(len(exps)) + (i - (len(methods) - 1) / 2) * width
        ax.bar(x, s["mean"], width, yerr=s["std"], capsize=3, label=method, color=cmap(i % 10),
               edgecolor="black", linewidth=0.4)
    relative = metric.endswith("_relative")
    if relative:
        ax.axhline(1.0, color="black", linestyle="--", linewidth=1, label=f"{baseline or 'baseline'} (= 1)")
    ax.set_xticks(range(len(exps)), exps, rotation=15 if len(exps) > 3 else 0)
    ax.set_ylabel(metric.replace("_", " ") + (f" (vs {baseline})" if relative and baseline else ""))
    ax.set_title(f"{metric.replace('_', ' ')} (mean ± std over seeds)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# 4. convergence
# --------------------------------------------------------------------------------------------


def _read_run_metrics(path, metrics: str | Sequence[str], required: Sequence[str] | None = None) -> pd.DataFrame:
    """``epoch`` and ``metrics`` of one run's metrics.csv, rows missing one of ``required`` (default: all
    of ``metrics``) dropped; empty when the file lacks a column."""
    cols = [metrics] if isinstance(metrics, str) else list(metrics)
    df = pd.read_csv(path)
    if "epoch" not in df.columns or any(c not in df.columns for c in cols):
        return pd.DataFrame(columns=["epoch", *cols])
    if "stage" in df.columns:  # MCL runs list every stage's epochs: make the epoch axis cumulative
        offset, parts = 0, []
        for _, s in df.groupby("stage", sort=True):
            s = s.copy()
            if s["epoch"].min() <= offset:  # a stage's own epochs restart at 1; a combined run's already run on
                s["epoch"] = s["epoch"] + offset
            offset = int(s["epoch"].max())
            parts.append(s)
        df = pd.concat(parts, ignore_index=True)
    return df[["epoch", *cols]].dropna(subset=["epoch", *(cols if required is None else required)])


def convergence_summary(run_metrics_csvs: Mapping[str, Sequence], metric: str = "val_knn_top1") -> pd.DataFrame:
    """Per method label and epoch: mean and std over the label's runs (seeds) of ``metric``.
    Columns ``label, epoch, mean, std, n``."""
    frames = []
    for label, paths in run_metrics_csvs.items():
        for seed_i, p in enumerate(paths):
            df = _read_run_metrics(p, metric)
            df["label"], df["run"] = label, seed_i
            frames.append(df)
    if not frames or all(f.empty for f in frames):
        return pd.DataFrame(columns=["label", "epoch", "mean", "std", "n"])
    data = pd.concat([f for f in frames if not f.empty], ignore_index=True)
    out = _mean_std(data, ["label", "epoch"], metric)
    order = {lab: i for i, lab in enumerate(run_metrics_csvs)}
    out = out.sort_values(["label", "epoch"], key=lambda s: s.map(order) if s.name == "label" else s, kind="stable")
    return out.reset_index(drop=True)[["label", "epoch", "mean", "std", "n"]]


def convergence_plot(run_metrics_csvs: Mapping[str, Sequence], out, metric: str = "val_knn_top1",
                     title: str = "Convergence: k-NN validation accuracy") -> None:
    """``metric`` (k-NN validation top-1) vs epoch, mean over seeds with a +-std band, one line per
    method label (e.g. ``{"VarCon": [seed0.csv, seed1.csv], "SupCon": [...]}``)."""
    plt = _pyplot()
    summ = convergence_summary(run_metrics_csvs, metric)
    if summ.empty:
        _empty_figure(out, f"no {metric} in the runs' metrics.csv (val_every: 0?)", title)
        return
    pct = _is_percent(summ["mean"])
    scale = 100.0 if pct else 1.0
    fig, ax = plt.subplots(figsize=(6.2, 4.0))
    cmap = plt.get_cmap("tab10")
    for i, label in enumerate(_ordered(summ["label"])):
        s = summ[summ["label"] == label]
        n = int(s["n"].max())
        ax.plot(s["epoch"], s["mean"] * scale, marker="o", ms=3, color=cmap(i % 10),
                label=f"{label} ({n} seed{'s' if n != 1 else ''})")
        ax.fill_between(s["epoch"], (s["mean"] - s["std"]) * scale, (s["mean"] + s["std"]) * scale,
                        color=cmap(i % 10), alpha=0.2)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    name = "k-NN validation top-1" if metric == "val_knn_top1" else metric.replace("_", " ")
    ax.set_ylabel(f"{name} (%)" if pct else name)
    ax.set_title(title + " (mean ± std over seeds)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# 4b. VarCon's adaptive temperature
# --------------------------------------------------------------------------------------------

T2_STATS = ("mean", "std", "min", "p05", "p25", "p50", "p75", "p95", "max")
T2_COLUMNS = [f"varcon_t2_{s}" for s in T2_STATS]
_T2_DRAWN = ["varcon_t2_p05", "varcon_t2_p25", "varcon_t2_p50", "varcon_t2_p75", "varcon_t2_p95"]
_T2_KEYS = ["experiment", "method", "seed", "epoch", "temperature", "epsilon"]


def _loss_spec(run_json: Path) -> dict:
    """The ``loss`` settings of the method a run trained (an MCL run: its first stage's); {} without run.json."""
    info = json.loads(run_json.read_text()) if run_json.exists() else {}
    spec = info.get("spec") or (info.get("stage_runs") or [{}])[0].get("spec") or {}
    return spec.get("loss") or {}


def varcon_temperature_runs(metrics_csvs: Iterable, runs_root) -> pd.DataFrame:
    """Per run and epoch: the distribution of VarCon's per-sample temperature t2 over the epoch's
    samples (the ``varcon_t2_*`` columns the training loop logs for objective varcon) and the nominal
    ``temperature`` and ``epsilon`` from ``spec.loss`` of the run.json beside the metrics.csv (defaults
    0.1 and 0.02, as in :func:`clbench.losses.varcon`).

    Columns ``experiment, method, seed, epoch, temperature, epsilon`` and ``varcon_t2_mean`` ...
    ``varcon_t2_max`` (NaN for a statistic a run did not log). Runs without the quantiles the figure
    draws (p05, p25, p50, p75, p95) are left out, so the result is empty when no run logged t2.
    """
    from clbench.report.tables import parse_run_path

    frames = []
    for path in metrics_csvs:
        logged = [c for c in T2_COLUMNS if c in pd.read_csv(path, nrows=0).columns]
        if not set(_T2_DRAWN) <= set(logged):
            continue
        df = _read_run_metrics(path, logged, required=_T2_DRAWN).reindex(columns=["epoch", *T2_COLUMNS])
        loss = _loss_spec(Path(path).with_name("run.json"))
        frames.append(df.assign(**parse_run_path(path, runs_root), temperature=float(loss.get("temperature", 0.1)),
                                epsilon=float(loss.get("epsilon", 0.02))))
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=[*_T2_KEYS, *T2_COLUMNS])
    return pd.concat(frames, ignore_index=True)[[*_T2_KEYS, *T2_COLUMNS]]


def varcon_temperature_summary(runs) -> pd.DataFrame:
    """Mean over seeds of every t2 statistic per (experiment, method, epoch) of
    :func:`varcon_temperature_runs`' table. Columns ``experiment, method, epoch, temperature, epsilon,
    n`` (seeds) and the ``varcon_t2_*``; runs in order of first appearance, epochs sorted."""
    df = _frame(runs, [*_T2_KEYS, *_T2_DRAWN])
    cols = ["experiment", "method", "epoch", "temperature", "epsilon", "n", *T2_COLUMNS]
    if df.empty:
        return pd.DataFrame(columns=cols)
    df = df.reindex(columns=[*_T2_KEYS, *T2_COLUMNS])
    g = df.groupby(["experiment", "method", "epoch"], sort=False)
    out = g[["temperature", "epsilon", *T2_COLUMNS]].mean()
    out["n"] = g["seed"].nunique()
    out = out.reset_index()
    order = {run: i for i, run in enumerate(_ordered(zip(out["experiment"], out["method"])))}
    out["_run"] = [order[r] for r in zip(out["experiment"], out["method"])]
    return out.sort_values(["_run", "epoch"], kind="stable").reset_index(drop=True)[cols]


def varcon_t2_endpoints(runs, stat: str = "p50") -> pd.DataFrame:
    """Each run's t2 ``stat`` in its first and its last epoch as long rows (``experiment, method, seed,
    metric, value``; metrics ``varcon_t2_<stat>_first_epoch`` and ``..._last_epoch``), for the claims.
    Runs of a single epoch are left out: they have no change to compare."""
    df = _frame(runs, [*_T2_KEYS, f"varcon_t2_{stat}"]).dropna(subset=[f"varcon_t2_{stat}"])
    rows = []
    for (exp, method, seed), run in df.groupby(["experiment", "method", "seed"], sort=False):
        if run["epoch"].nunique() < 2:
            continue
        run = run.sort_values("epoch")
        for when, row in (("first", run.iloc[0]), ("last", run.iloc[-1])):
            rows.append({"experiment": exp, "method": method, "seed": seed,
                         "metric": f"varcon_t2_{stat}_{when}_epoch", "value": float(row[f"varcon_t2_{stat}"])})
    return pd.DataFrame(rows, columns=["experiment", "method", "seed", "metric", "value"])


def varcon_temperature_plot(runs, out) -> None:
    """VarCon's adaptive temperature over training, one panel per (experiment, method): the median of
    t2 over each epoch's samples (line) with the 25–75% (dark) and 5–95% (light) bands, mean over
    seeds, against the epoch; dashed, the nominal t and t ± epsilon, the range that
    t2 = (t − epsilon) + 2·epsilon·p(y|z) spans as the confidence p(y|z) goes from 0 to 1."""
    plt = _pyplot()
    summ = varcon_temperature_summary(runs)
    title = "VarCon: adaptive temperature t2 per epoch"
    if summ.empty:
        _empty_figure(out, "no VarCon run logged its adaptive temperature (varcon_t2_* in metrics.csv)", title)
        return
    panels = _ordered(zip(summ["experiment"], summ["method"]))
    cols = min(len(panels), 3)
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.8 * rows), squeeze=False)
    from matplotlib.ticker import MaxNLocator

    for idx, (exp, method) in enumerate(panels):
        ax = axes[idx // cols][idx % cols]
        s = summ[(summ["experiment"] == exp) & (summ["method"] == method)]
        t, eps = float(s["temperature"].iloc[0]), float(s["epsilon"].iloc[0])
        ax.fill_between(s["epoch"], s["varcon_t2_p05"], s["varcon_t2_p95"], color="tab:blue", alpha=0.18, lw=0,
                        label="5–95%")
        ax.fill_between(s["epoch"], s["varcon_t2_p25"], s["varcon_t2_p75"], color="tab:blue", alpha=0.38, lw=0,
                        label="25–75%")
        ax.plot(s["epoch"], s["varcon_t2_p50"], marker="o", ms=3, color="tab:blue", label="median")
        ax.axhline(t, color="black", ls="--", lw=1, label=f"t = {t:g}")
        for i, v in enumerate((t - eps, t + eps)):
            ax.axhline(v, color="gray", ls="--", lw=0.8, label=f"t ± ε (ε = {eps:g})" if i == 0 else None)
        lo = min(t - eps, float(s["varcon_t2_p05"].min()))
        hi = max(t + eps, float(s["varcon_t2_p95"].max()))
        pad = 0.08 * (hi - lo) or 0.01 * t
        ax.set_ylim(lo - pad, hi + pad)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("t2 over the epoch's samples")
        n = int(s["n"].max())
        ax.set_title(f"{exp}: {method} ({n} seed{'s' if n != 1 else ''})", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    for idx in range(len(panels), rows * cols):
        axes[idx // cols][idx % cols].axis("off")
    fig.suptitle("VarCon: adaptive temperature t2 = (t − ε) + 2ε·p(y|z)\nover each epoch's training samples, mean over seeds",
                 fontsize=10)
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# 5./6. CLEAR-VAE figures (torch imported lazily)
# --------------------------------------------------------------------------------------------


def _load_clear(model_path, dataset_dir_path, split: str = "test"):
    from clbench.data import dataset_dir
    from clbench.train.methods import load_model

    model = load_model(model_path, "cpu")
    if not (hasattr(model, "factors") and hasattr(model, "vae")):
        raise ValueError(f"{model_path} is not a CLEAR-VAE model (objective clear_vae); "
                         f"it has no factors()/vae.decode()")
    arrays = dataset_dir.load(dataset_dir_path, split)
    if len(arrays["y"]) == 0 and split != "train":
        arrays = dataset_dir.load(dataset_dir_path, "train")
    meta = dataset_dir.load_meta(dataset_dir_path)
    return model, arrays, meta


def _factors(model, x_uint8: np.ndarray):
    import torch

    with torch.no_grad():
        x = torch.as_tensor(np.asarray(x_uint8)).float().div_(255.0)
        return model.factors(x)


def _decode(model, z_c, z_s) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model.vae.decode(z_c, z_s).float().clamp(0, 1).cpu().numpy()


def _to_hwc(img: np.ndarray) -> np.ndarray:
    """float [C, H, W] in [0, 1] (or uint8) -> [H, W] (gray) or [H, W, 3]."""
    img = np.asarray(img)
    if img.dtype == np.uint8:
        img = img.astype(np.float32) / 255.0
    if img.shape[0] == 1:
        return img[0]
    return np.transpose(img[:3], (1, 2, 0))


def _mosaic(cells: list[list[np.ndarray | None]], gap: int = 1, header_gap: int = 0) -> np.ndarray:
    """Tile images [H, W] or [H, W, 3] into one RGB array, white gaps; ``header_gap`` extra pixels
    after the first row and column."""
    sample = next(c for row in cells for c in row if c is not None)
    h, w = sample.shape[:2]
    rows, cols = len(cells), max(len(r) for r in cells)
    H = rows * h + (rows - 1) * gap + (header_gap if rows > 1 else 0)
    W = cols * w + (cols - 1) * gap + (header_gap if cols > 1 else 0)
    canvas = np.ones((H, W, 3), np.float32)
    for i, row in enumerate(cells):
        for j, img in enumerate(row):
            if img is None:
                continue
            y0 = i * (h + gap) + (header_gap if i > 0 else 0)
            x0 = j * (w + gap) + (header_gap if j > 0 else 0)
            rgb = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img
            canvas[y0:y0 + h, x0:x0 + w] = rgb
    return canvas


def _spread_pick(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` indices cycling through the distinct values of ``labels`` (random within each value)."""
    values = np.unique(labels)
    pools = {v: list(rng.permutation(np.flatnonzero(labels == v))) for v in values}
    order = list(rng.permutation(values))
    picked: list[int] = []
    while len(picked) < n and any(pools.values()):
        for v in order:
            if pools[v] and len(picked) < n:
                picked.append(int(pools[v].pop()))
    return np.asarray(picked, dtype=np.int64)


def _style_key(arrays: dict, factor: str = "style") -> str | None:
    key = f"factor_{factor}"
    if key in arrays:
        return key
    others = sorted(k for k in arrays if k.startswith("factor_"))
    return others[0] if others else None


def swap_images(model, x_content: np.ndarray, x_style: np.ndarray) -> np.ndarray:
    """Decoded swaps [n_style, n_content, C, H, W]: cell (i, j) = decode(mu_c(content j), mu_s(style i))."""
    mu_c, _ = _factors(model, x_content)
    _, mu_s = _factors(model, x_style)
    n_s, n_c = len(mu_s), len(mu_c)
    z_c = mu_c.repeat(n_s, 1)
    z_s = mu_s.repeat_interleave(n_c, dim=0)
    imgs = _decode(model, z_c, z_s)
    return imgs.reshape(n_s, n_c, *imgs.shape[1:])


def clear_swap_grid(model_path, dataset_dir, out, n: int = 8, seed: int = 0) -> None:
    """CLEAR content/style swap: first row the ``n`` content sources, first column the ``n`` style
    sources, cell (i, j) = decode(mu_c of content source j, mu_s of style source i).

    Sources come from the test split, spread over the classes (content) and the style factor (style).
    """
    plt = _pyplot()
    model, arrays, meta = _load_clear(model_path, dataset_dir)
    rng = np.random.default_rng(seed)
    n = int(min(n, len(arrays["y"])))
    content_idx = _spread_pick(np.asarray(arrays["y"]), n, rng)
    skey = _style_key(arrays)
    style_idx = _spread_pick(np.asarray(arrays[skey]), n, rng) if skey else rng.permutation(len(arrays["y"]))[:n]
    xc, xs = arrays["x"][content_idx], arrays["x"][style_idx]
    swaps = swap_images(model, xc, xs)
    cells: list[list] = [[None] + [_to_hwc(x) for x in xc]]
    for i in range(n):
        cells.append([_to_hwc(xs[i])] + [_to_hwc(swaps[i, j]) for j in range(n)])
    h = xc.shape[-2]
    gap = max(1, h // 14)
    mosaic = _mosaic(cells, gap=gap, header_gap=3 * gap)
    fig, ax = plt.subplots(figsize=(0.75 * (n + 1) + 0.8, 0.75 * (n + 1) + 0.9))
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    classes = meta.get("classes") or []
    labels = [str(classes[int(y)]) if int(y) < len(classes) else str(int(y)) for y in arrays["y"][content_idx]]
    step = h + gap
    centre = 3 * gap + (h - 1) / 2  # header_gap + the middle pixel of a cell
    ax.set_xticks([(j + 1) * step + centre for j in range(n)], labels, fontsize=7)
    ax.xaxis.tick_top()
    ax.set_xlabel("content source (mu_c) →", fontsize=9)
    ax.xaxis.set_label_position("top")
    if skey:
        names = (meta.get("factors") or {}).get(skey[len("factor_"):]) or []
        slabels = [str(names[int(v)]) if int(v) < len(names) else str(int(v)) for v in arrays[skey][style_idx]]
        ax.set_yticks([(i + 1) * step + centre for i in range(n)], slabels, fontsize=7)
    ax.set_ylabel("style source (mu_s) ↓", fontsize=9)
    ax.set_title("CLEAR content/style swap: cell = decode(z_c of column, z_s of row)", fontsize=9, pad=22)
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    save_figure(fig, out)
    plt.close(fig)


def clear_interpolation(model_path, dataset_dir, out, steps: int = 8, seed: int = 0) -> None:
    """Two rows of decodes: z_c interpolated between two test images of different classes with z_s
    of the first fixed, and z_s interpolated between two images of different styles with z_c of the
    first fixed; each row is framed by its two source images."""
    import torch

    plt = _pyplot()
    model, arrays, meta = _load_clear(model_path, dataset_dir)
    rng = np.random.default_rng(seed)
    y = np.asarray(arrays["y"])
    a, b = _spread_pick(y, 2, rng) if len(np.unique(y)) > 1 else rng.permutation(len(y))[:2]
    skey = _style_key(arrays)
    s_vals = np.asarray(arrays[skey]) if skey else None
    if s_vals is not None and len(np.unique(s_vals)) > 1:
        c, d = _spread_pick(s_vals, 2, rng)
    else:
        c, d = rng.permutation(len(y))[:2]
    x = arrays["x"][[a, b, c, d]]
    mu_c, mu_s = _factors(model, x)
    t = torch.linspace(0, 1, steps)[:, None]
    zc_row = (1 - t) * mu_c[0] + t * mu_c[1]
    zs_row = (1 - t) * mu_s[2] + t * mu_s[3]
    row1 = _decode(model, zc_row, mu_s[0].expand(steps, -1))
    row2 = _decode(model, mu_c[2].expand(steps, -1), zs_row)
    cells = [[_to_hwc(x[0])] + [_to_hwc(im) for im in row1] + [_to_hwc(x[1])],
             [_to_hwc(x[2])] + [_to_hwc(im) for im in row2] + [_to_hwc(x[3])]]
    h = x.shape[-2]
    gap = max(1, h // 14)
    mosaic = _mosaic(cells, gap=gap)
    fig, ax = plt.subplots(figsize=(0.8 * (steps + 2) + 1.5, 2.6))
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_xticks([])
    step = h + gap
    ax.set_yticks([(h - 1) / 2, step + (h - 1) / 2], ["z_c interpolated\n(z_s fixed)", "z_s interpolated\n(z_c fixed)"],
                  fontsize=8)
    ax.set_xlabel(f"source | {steps} decodes, t = 0 … 1 | target", fontsize=8)
    ax.set_title("CLEAR latent interpolation", fontsize=10)
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    save_figure(fig, out)
    plt.close(fig)


def _categorical_scatter(plt, ax, emb: np.ndarray, values: np.ndarray, names: Sequence[str], title: str) -> None:
    uniq = np.unique(values)
    cmap = plt.get_cmap("tab10" if len(uniq) <= 10 else "tab20")
    if len(uniq) <= 20:
        for i, v in enumerate(uniq):
            m = values == v
            name = names[int(v)] if 0 <= int(v) < len(names) else str(int(v))
            ax.scatter(emb[m, 0], emb[m, 1], s=5, color=cmap(i % cmap.N), label=str(name), alpha=0.8, linewidths=0)
        ax.legend(fontsize=6, markerscale=2.5, loc="best", ncol=2 if len(uniq) > 10 else 1, framealpha=0.7)
    else:
        sc = ax.scatter(emb[:, 0], emb[:, 1], s=5, c=values, cmap="nipy_spectral", alpha=0.8, linewidths=0)
        plt.colorbar(sc, ax=ax, fraction=0.046, pad=0.02)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])


def tsne_latents(model_path, dataset_dir, out, n: int = 1000, seed: int = 0, factor: str = "style",
                 threads: int = 1, max_iter: int = 500) -> None:
    """t-SNE (sklearn, init="pca") of the CLEAR content means mu_c and style means mu_s of ``n`` (<= 1000)
    test images: 2x2 panels z_c by label, z_c by style, z_s by label, z_s by style.

    ``threads`` caps the OpenMP/BLAS threads of the t-SNE: on a busy machine more threads than free
    cores make it several times slower (1000 points: ~4 s on one thread, 12-20 s on two contended cores).
    ``max_iter`` (500, sklearn's default is 1000) halves the time; the clusters have settled by then.
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    plt = _pyplot()
    model, arrays, meta = _load_clear(model_path, dataset_dir)
    rng = np.random.default_rng(seed)
    n = int(min(n, 1000, len(arrays["y"])))
    idx = np.sort(rng.permutation(len(arrays["y"]))[:n])
    mu_c, mu_s = [], []
    for i in range(0, n, 512):
        c, s = _factors(model, arrays["x"][idx[i:i + 512]])
        mu_c.append(c.float().numpy())
        mu_s.append(s.float().numpy())
    latents = {"z_c": np.concatenate(mu_c), "z_s": np.concatenate(mu_s)}
    y = np.asarray(arrays["y"])[idx]
    skey = f"factor_{factor}" if f"factor_{factor}" in arrays else _style_key(arrays)
    style = np.asarray(arrays[skey])[idx] if skey else None
    fname = skey[len("factor_"):] if skey else factor
    classes = [str(c) for c in (meta.get("classes") or [])]
    snames = [str(s) for s in ((meta.get("factors") or {}).get(fname) or [])]
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3.0)))
    emb = {}
    with threadpool_limits(max(1, int(threads))):
        for name, z in latents.items():
            emb[name] = TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed,
                             learning_rate="auto", max_iter=max(250, int(max_iter))).fit_transform(z.astype(np.float64))
    fig, axes = plt.subplots(2, 2, figsize=(9.5, 8.5))
    for r, name in enumerate(("z_c", "z_s")):
        label = "content z_c (mu_c)" if name == "z_c" else "style z_s (mu_s)"
        _categorical_scatter(plt, axes[r][0], emb[name], y, classes, f"{label}, coloured by label")
        if style is not None:
            _categorical_scatter(plt, axes[r][1], emb[name], style, snames, f"{label}, coloured by {fname}")
        else:
            axes[r][1].axis("off")
            axes[r][1].text(0.5, 0.5, f"dataset has no factor {factor!r}", ha="center", va="center")
    fig.suptitle(f"t-SNE of CLEAR latents ({n} test images)", fontsize=11)
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# 7. CLEAR's MI simulation
# --------------------------------------------------------------------------------------------


def mi_simulation_curves(steps: int = 600, seed: int = 0, batch_size: int = 256, mi_every: int = 3,
                         temperature: float = 0.1, similarity: str = "cosine", d: int = 2,
                         spreads: Sequence[float] = (0.25, 0.5, 1.0, 2.0), period: int = 100) -> pd.DataFrame:
    """CLEAR's MI study on :mod:`clbench.data.gaussian_mixture` (3 labelled components whose spread
    changes every ``period`` steps): per step, the SNN and PS-SNN losses of the batch's points with
    their labels, and every ``mi_every`` steps the KNN estimate of I(x; y) (mean over the dimensions,
    :func:`clbench.evaluate.disentanglement.knn_mutual_information`). Also the exact (Monte-Carlo)
    I(X; Y) of the step's spread.

    Columns ``step, spread, true_mi, knn_mi (NaN between estimates), snn, ps_snn``.
    """
    import torch

    from clbench.data.gaussian_mixture import GaussianMixtureSim, simulate
    from clbench.evaluate.disentanglement import knn_mutual_information
    from clbench.losses import ps_snn, snn

    run = simulate(steps, batch_size, d=d, n_components=3, period=period, spreads=spreads, seed=seed)
    sim = GaussianMixtureSim(d, 3, period, tuple(spreads), seed=seed)
    true = {s: sim.true_mi(s, n=5000) for s in sim.spreads}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: thread start-up would dominate
    try:
        with torch.no_grad():
            z = torch.from_numpy(run["x"])
            labels = torch.from_numpy(run["y"])
            snn_v = np.array([float(snn(z[t], labels[t], temperature, similarity)) for t in range(steps)])
            ps_v = np.array([float(ps_snn(z[t], labels[t], temperature, similarity)) for t in range(steps)])
    finally:
        torch.set_num_threads(threads)
    from threadpoolctl import threadpool_limits

    mi = np.full(steps, np.nan)
    with threadpool_limits(1):
        for t in range(0, steps, max(1, int(mi_every))):
            mi[t] = knn_mutual_information(run["x"][t], run["y"][t], random_state=seed, reduce="mean")
    return pd.DataFrame({"step": np.arange(steps), "spread": run["spread"],
                         "true_mi": [true[float(s)] for s in run["spread"]], "knn_mi": mi,
                         "snn": snn_v, "ps_snn": ps_v})


def mi_simulation(out, steps: int = 600, seed: int = 0, **kwargs) -> None:
    """CLEAR's MI-simulation figure: over training steps, the KNN estimate of I(x; y) (with the exact
    value dashed) above the SNN loss (falls as MI rises) and the PS-SNN loss (rises with MI); the
    component spread changes every 100 steps. ``kwargs`` go to :func:`mi_simulation_curves`."""
    plt = _pyplot()
    df = mi_simulation_curves(steps, seed, **kwargs)
    est = df.dropna(subset=["knn_mi"])
    fig, axes = plt.subplots(3, 1, figsize=(7.5, 6.8), sharex=True)
    ax = axes[0]
    ax.plot(est["step"], est["knn_mi"], color="tab:green", lw=1, label="KNN estimate (mean over dims)")
    ax.plot(df["step"], df["true_mi"], color="black", ls="--", lw=1, label="exact I(X;Y)")
    ax.set_ylabel("I(x; y) (nats)")
    ax.legend(fontsize=8, loc="lower left")
    period = kwargs.get("period", 100)
    ax.set_title(f"MI simulation: 3-component Gaussian mixture, spread σ changes every {period} steps",
                 fontsize=10, pad=14)
    for ax, col, color, name in ((axes[1], "snn", "tab:blue", "SNN loss"), (axes[2], "ps_snn", "tab:red", "PS-SNN loss")):
        ax.plot(df["step"], df[col], color=color, lw=1)
        r = float(np.corrcoef(est["knn_mi"], df.loc[est.index, col])[0, 1]) if len(est) > 2 else float("nan")
        ax.set_ylabel(name)
        ax.set_title(f"{name} (temperature {kwargs.get('temperature', 0.1):g}): Pearson r with the KNN MI = {r:+.2f}",
                     fontsize=9, loc="left")
    axes[2].set_xlabel("step")
    changes = np.flatnonzero(np.diff(df["spread"].to_numpy()) != 0) + 1
    bounds = [0, *changes.tolist(), len(df)]
    for ax in axes:
        for c in changes:
            ax.axvline(c, color="gray", ls=":", lw=0.8)
        ax.grid(alpha=0.25)
    ymax = axes[0].get_ylim()[1]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        axes[0].text((lo + hi) / 2, ymax, f"σ={df['spread'].iloc[lo]:g}", ha="center", va="bottom", fontsize=7)
    axes[0].set_ylim(top=ymax * 1.12)
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)

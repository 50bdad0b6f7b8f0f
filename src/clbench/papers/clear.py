"""CLEAR: content/style disentanglement with SNN and PS-SNN (arXiv 2507.18794).

CLEAR-VAE splits the latent into content z_c and style z_s, with an SNN loss on the content means
and a pair-switched SNN (PS-SNN) on the style means. The report shows gMIG and the probes of each
latent, OOD accuracy relative to a plain CNN (bars, and against k, the styles per class seen in
training), and, from one CLEAR-VAE run, content/style swaps, interpolations and a t-SNE of both
latents; plus the MI simulation behind the PS-SNN penalty.

The swaps, interpolations and t-SNE need the model: the analysis ``clear_latents.npz``
(:func:`clbench.evaluate.latent_maps.latent_maps`) computes them; the figures here plot its arrays.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from clbench.papers.registry import register_paper
from clbench.report.figures import pyplot, empty_figure, mean_std, ordered, read_table, save_figure
from clbench.report.paper import Analysis, Figure, Paper, ResultFiles, Source

KEY = "clear"
LATENTS = "clear_latents.npz"
MI_SIMULATION = "clear_mi_simulation.csv"

# --------------------------------------------------------------------------------------------
# OOD accuracy relative to the plain CNN: bars per experiment, and the curve against k
# --------------------------------------------------------------------------------------------

_K_FROM_NAME = re.compile(r"_k(\d+)$")

# The paper's OOD comparison (the downstream scripts' experiment_helper()): an MLP probe on CLEAR's content
# means z_c against the plain CNN's own trained classifier, on the same unseen-combination split and seed.
# clbench.report.tables.relative_to_baseline_head computes it from the runs' mlp_top1 and the baseline's
# head_top1 (evaluations mlp_probe and own_head).
OOD_RELATIVE = "mlp_top1_relative_head"
OOD_RELATIVE_NAME = "OOD accuracy relative to the CNN: MLP probe on z_c / the CNN's own classifier"


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
    df = read_table(metrics_csv, ["experiment", "method", "seed", "metric", "value"])
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
    out = mean_std(df, ["method", "k"], "value")
    order = {m: i for i, m in enumerate(ordered(df["method"]))}
    out = out.sort_values(["method", "k"], key=lambda s: s.map(order) if s.name == "method" else s, kind="stable")
    return out.reset_index(drop=True)[["method", "k", "mean", "std", "n"]]


def ood_k_curve(metrics_csv, out, metric: str = "linear_top1_relative", baseline: str | None = "cnn",
                experiments: Sequence[str] | None = None, label: str | None = None) -> None:
    """The OOD-k figure: ``metric`` (relative OOD accuracy vs the plain CNN) against k per method,
    mean line with a +-std band over seeds; the dashed line at 1.0 is the baseline."""
    plt = pyplot()
    summ = ood_k_summary(metrics_csv, metric, baseline, experiments)
    if summ.empty:
        empty_figure(out, f"no OOD-k results for {metric}", "OOD accuracy vs k")
        return
    fig, ax = plt.subplots(figsize=(6.2, 4.0))
    cmap = plt.get_cmap("tab10")
    for i, method in enumerate(ordered(summ["method"])):
        s = summ[summ["method"] == method]
        ax.plot(s["k"], s["mean"], marker="o", color=cmap(i % 10), label=method)
        ax.fill_between(s["k"], s["mean"] - s["std"], s["mean"] + s["std"], color=cmap(i % 10), alpha=0.2)
    relative = "_relative" in metric
    if relative:
        ax.axhline(1.0, color="black", linestyle="--", linewidth=1, label=f"{baseline or 'baseline'} (= 1)")
    ks = sorted(summ["k"].unique())
    ax.set_xticks(ks)
    ax.set_xlabel("k (styles per digit seen in training)")
    what = "relative OOD top-1" if label else metric.replace("_", " ")
    ax.set_ylabel(what + (f" (vs {baseline})" if relative and baseline else ""))
    ax.set_title(f"{label}\nagainst k (mean ± std over seeds)" if label else "OOD accuracy vs k (mean ± std over seeds)",
                 fontsize=9 if label else None)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)


def relative_summary(metrics_csv, metric: str, experiments: Sequence[str], baseline: str | None = "cnn") -> pd.DataFrame:
    """Mean and std over seeds of ``metric`` per (experiment, method) for ``experiments`` (in that
    order), the ``baseline`` method left out. Columns ``experiment, method, mean, std, n``."""
    df = read_table(metrics_csv, ["experiment", "method", "seed", "metric", "value"])
    experiments = list(experiments)
    df = df[(df["metric"] == metric) & df["experiment"].isin(experiments)]
    if baseline is not None:
        df = df[df["method"] != baseline]
    if df.empty:
        return pd.DataFrame(columns=["experiment", "method", "mean", "std", "n"])
    out = mean_std(df, ["experiment", "method"], "value")
    order = {e: i for i, e in enumerate(experiments)}
    out = out.sort_values("experiment", key=lambda s: s.map(order), kind="stable")
    return out.reset_index(drop=True)[["experiment", "method", "mean", "std", "n"]]


def relative_bars(metrics_csv, out, metric: str, experiments: Sequence[str], baseline: str | None = "cnn",
                  label: str | None = None) -> None:
    """Grouped bars of ``metric`` (e.g. ``linear_top1_relative``) per method for each experiment,
    mean +- std over seeds; for a ``*_relative`` metric the dashed line at 1.0 is the baseline."""
    plt = pyplot()
    summ = relative_summary(metrics_csv, metric, experiments, baseline)
    if summ.empty:
        empty_figure(out, f"no results for {metric} in {', '.join(experiments)}", metric)
        return
    exps = [e for e in experiments if e in set(summ["experiment"])]
    methods = ordered(summ["method"])
    width = min(0.8 / len(methods), 0.3)
    fig, ax = plt.subplots(figsize=(max(4.5, 0.45 * len(exps) * len(methods) + 1.2 * len(exps) + 1.5), 4.0))
    cmap = plt.get_cmap("tab10")
    for i, method in enumerate(methods):
        s = summ[summ["method"] == method].set_index("experiment").reindex(exps)
        x = np.arange(len(exps)) + (i - (len(methods) - 1) / 2) * width
        ax.bar(x, s["mean"], width, yerr=s["std"], capsize=3, label=method, color=cmap(i % 10),
               edgecolor="black", linewidth=0.4)
    relative = "_relative" in metric
    if relative:
        ax.axhline(1.0, color="black", linestyle="--", linewidth=1, label=f"{baseline or 'baseline'} (= 1)")
    ax.set_xticks(range(len(exps)), exps, rotation=15 if len(exps) > 3 else 0)
    what = "relative OOD top-1" if label else metric.replace("_", " ")
    ax.set_ylabel(what + (f" (vs {baseline})" if relative and baseline else ""))
    ax.set_title(f"{label or metric.replace('_', ' ')} (mean ± std over seeds)", fontsize=9 if label else 10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)


def _ood_experiments(experiments: Mapping[str, Mapping]) -> list[str]:
    """The experiments whose test split holds unseen style-content combinations (``ood: true``)."""
    return [e for e, c in experiments.items() if c.get("ood")]


def draw_ood(files: ResultFiles, out) -> None:
    relative_bars(files.inputs[0], out, OOD_RELATIVE, _ood_experiments(files.experiments), label=OOD_RELATIVE_NAME)


def _ood_k_experiments(experiments: Mapping[str, Mapping]) -> list[str]:
    return [e for e in _ood_experiments(experiments) if experiments[e].get("k")]


def draw_ood_k(files: ResultFiles, out) -> None:
    ood_k_curve(files.inputs[0], out, metric=OOD_RELATIVE, experiments=_ood_k_experiments(files.experiments),
                label=OOD_RELATIVE_NAME)


def ood_note(results, config: Mapping) -> str:
    """With one OOD experiment and one method besides the CNN the bar chart would be a single bar: the
    report shows its number as a table instead."""
    from clbench.report.html_table import table_html
    from clbench.report.tables import format_mean_std

    metrics = Path(results) / "tables" / "metrics.csv"
    if not metrics.exists():
        return ""
    summ = relative_summary(metrics, OOD_RELATIVE, _ood_experiments(config.get("experiments", {})))
    if len(summ) != 1:
        return ""
    table = pd.DataFrame({"experiment": summ["experiment"], "method": summ["method"],
                          OOD_RELATIVE_NAME: [format_mean_std(m, sd, scale=1.0, digits=3)
                                              for m, sd in zip(summ["mean"], summ["std"])],
                          "seeds": summ["n"]})
    return ("<p>Relative OOD accuracy: top-1 on unseen style-content combinations of the MLP probe on z_c over "
            "that of the plain CNN's own classifier on the same split and seed (mean ± std over seeds; a single "
            "number, so a table rather than a figure):</p>" + table_html(table))


def ood_k_note(results, config: Mapping) -> str:
    """With a single k the OOD-k figure would be one point per method: the report says so instead (the
    number at that k is the relative OOD accuracy, shown with the OOD figure or table)."""
    metrics = Path(results) / "tables" / "metrics.csv"
    if not metrics.exists():
        return ""
    summ = ood_k_summary(metrics, OOD_RELATIVE, experiments=_ood_k_experiments(config.get("experiments", {})))
    if summ.empty or summ["k"].nunique() > 1:
        return ""
    return (f"<p class='note'>The relative OOD accuracy over k is not drawn: this configuration has one k "
            f"(k = {int(summ['k'].iloc[0])}), whose number is the relative OOD accuracy of this section. "
            "<code>configs/paper.yaml</code> runs k = 1 to 5.</p>")


# --------------------------------------------------------------------------------------------
# swaps, interpolation and t-SNE of one CLEAR-VAE run (arrays from the latent maps)
# --------------------------------------------------------------------------------------------


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


def read_latent_maps(path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def swap_grid_plot(maps: Mapping[str, np.ndarray], out) -> None:
    """Content/style swap: first row the content sources, first column the style sources, cell (i, j) =
    decode(mu_c of content source j, mu_s of style source i)."""
    plt = pyplot()
    xc, xs, swaps = maps["swap_content"], maps["swap_style"], maps["swap_decoded"]
    n = len(xc)
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
    step = h + gap
    centre = 3 * gap + (h - 1) / 2  # header_gap + the middle pixel of a cell
    ax.set_xticks([(j + 1) * step + centre for j in range(n)], [str(s) for s in maps["swap_content_labels"]], fontsize=7)
    ax.xaxis.tick_top()
    ax.set_xlabel("content source (mu_c) →", fontsize=9)
    ax.xaxis.set_label_position("top")
    if len(maps["swap_style_labels"]):
        ax.set_yticks([(i + 1) * step + centre for i in range(n)], [str(s) for s in maps["swap_style_labels"]],
                      fontsize=7)
    ax.set_ylabel("style source (mu_s) ↓", fontsize=9)
    ax.set_title("CLEAR content/style swap: cell = decode(z_c of column, z_s of row)", fontsize=9, pad=22)
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    save_figure(fig, out)
    plt.close(fig)


def interpolation_plot(maps: Mapping[str, np.ndarray], out) -> None:
    """Two rows of decodes, z_c interpolated (z_s fixed) and z_s interpolated (z_c fixed), each framed
    by its two source images."""
    plt = pyplot()
    x, row1, row2 = maps["interp_sources"], maps["interp_content"], maps["interp_style"]
    steps = len(row1)
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


def tsne_plot(maps: Mapping[str, np.ndarray], out) -> None:
    """2x2 panels: z_c by label, z_c by style, z_s by label, z_s by style."""
    plt = pyplot()
    y = maps["tsne_label"]
    style = maps.get("tsne_style")
    fname = str(maps["tsne_factor"])
    classes, snames = [str(c) for c in maps["tsne_classes"]], [str(s) for s in maps["tsne_style_names"]]
    fig, axes = plt.subplots(2, 2, figsize=(9.5, 8.5))
    for r, name in enumerate(("z_c", "z_s")):
        label = "content z_c (mu_c)" if name == "z_c" else "style z_s (mu_s)"
        emb = maps[f"tsne_{name}"]
        _categorical_scatter(plt, axes[r][0], emb, y, classes, f"{label}, coloured by label")
        if style is not None:
            _categorical_scatter(plt, axes[r][1], emb, style, snames, f"{label}, coloured by {fname}")
        else:
            axes[r][1].axis("off")
            axes[r][1].text(0.5, 0.5, f"dataset has no factor {fname!r}", ha="center", va="center")
    fig.suptitle(f"t-SNE of CLEAR latents ({len(y)} test images)", fontsize=11)
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# the MI simulation
# --------------------------------------------------------------------------------------------


def mi_simulation_plot(curves, out) -> None:
    """Over training steps, the KNN estimate of I(x; y) (with the exact value dashed) above the SNN
    loss (falls as MI rises) and the PS-SNN loss (rises with MI); the component spread changes every
    ``period`` steps (:func:`clbench.evaluate.mi_simulation.mi_simulation_curves`' table)."""
    plt = pyplot()
    df = read_table(curves, ["step", "spread", "true_mi", "knn_mi", "snn", "ps_snn", "temperature", "period"])
    est = df.dropna(subset=["knn_mi"])
    fig, axes = plt.subplots(3, 1, figsize=(7.5, 6.8), sharex=True)
    ax = axes[0]
    ax.plot(est["step"], est["knn_mi"], color="tab:green", lw=1, label="KNN estimate (mean over dims)")
    ax.plot(df["step"], df["true_mi"], color="black", ls="--", lw=1, label="exact I(X;Y)")
    ax.set_ylabel("I(x; y) (nats)")
    ax.legend(fontsize=8, loc="lower left")
    period, temperature = int(df["period"].iloc[0]), float(df["temperature"].iloc[0])
    ax.set_title(f"MI simulation: 3-component Gaussian mixture, spread σ changes every {period} steps",
                 fontsize=10, pad=14)
    for ax, col, color, name in ((axes[1], "snn", "tab:blue", "SNN loss"), (axes[2], "ps_snn", "tab:red", "PS-SNN loss")):
        ax.plot(df["step"], df[col], color=color, lw=1)
        r = float(np.corrcoef(est["knn_mi"], df.loc[est.index, col])[0, 1]) if len(est) > 2 else float("nan")
        ax.set_ylabel(name)
        ax.set_title(f"{name} (temperature {temperature:g}): Pearson r with the KNN MI = {r:+.2f}",
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


# --------------------------------------------------------------------------------------------
# what the workflow computes and draws
# --------------------------------------------------------------------------------------------


def figure_run(cfg) -> tuple[str, str, int] | None:
    """The run whose latents the swap, interpolation and t-SNE figures show: the first CLEAR-VAE
    method with PS-SNN on style of this paper's first experiment that has one, its first seed."""
    for name in cfg.experiments_of(KEY):
        exp = cfg.config["experiments"][name]
        for method in exp["methods"]:
            spec = cfg.method_spec(name, method)
            if spec["objective"] == "clear_vae" and spec.get("vae", {}).get("style", "ps_snn") == "ps_snn":
                return name, method, exp["seeds"][0]
    return None


def _latent_inputs(cfg) -> list[str]:
    experiment, method, seed = figure_run(cfg)
    return [f"{cfg.run_dir(experiment, method, seed)}/model.pt",
            f"{cfg.dataset_dir(cfg.config['experiments'][experiment]['dataset'])}/meta.json"]


def _has_figure_run(cfg) -> bool:
    return figure_run(cfg) is not None


def _latents(cfg) -> list[str]:
    return [cfg.analysis(LATENTS)]


def _metrics_table(cfg) -> list[str]:
    return [cfg.table("metrics.csv")]


ANALYSES = (
    Analysis(output=LATENTS, function="clbench.evaluate.latent_maps:latent_maps", inputs=_latent_inputs,
             params=lambda cfg: {"seed": figure_run(cfg)[2]}, needed=_has_figure_run),
    Analysis(output=MI_SIMULATION, function="clbench.evaluate.mi_simulation:mi_simulation_table",
             params=lambda cfg: {"steps": 600, "seed": 0}),
)

FIGURES = (
    Figure(
        name="clear_interpolation",
        caption="CLEAR latent interpolation: content (top) and style (bottom).",
        description="CLEAR latent interpolation: content between two digits with the style fixed (top), style "
                    "between two images with the content fixed (bottom).",
        draw=lambda files, out: interpolation_plot(read_latent_maps(files.inputs[0]), out),
        inputs=_latents, drawn=_has_figure_run,
    ),
    Figure(
        name="clear_mi_simulation",
        caption="MI simulation: KNN mutual information vs SNN and PS-SNN over steps.",
        description="CLEAR's MI simulation: KNN mutual information between points and labels, and the SNN and "
                    "PS-SNN losses, over steps as the mixture's spread changes.",
        draw=lambda files, out: mi_simulation_plot(files.inputs[0], out),
        inputs=lambda cfg: [cfg.analysis(MI_SIMULATION)],
    ),
    Figure(
        name="clear_ood",
        caption="Relative OOD accuracy vs the plain CNN: the MLP probe on z_c over the CNN's own classifier.",
        description="Top-1 accuracy on unseen style-content combinations of the MLP probe on each CLEAR variant's "
                    "z_c, relative to the plain CNN's own classifier on the same split and seed (the paper's "
                    "comparison).",
        draw=draw_ood, inputs=_metrics_table, note=ood_note,
    ),
    Figure(
        name="clear_ood_k",
        caption="Relative OOD accuracy vs the plain CNN (MLP probe on z_c / the CNN's own classifier) over k "
                "(styles per digit seen in training).",
        description="Relative OOD top-1 (the MLP probe on z_c over the plain CNN's own classifier) over k, the "
                    "number of styles (or domains) per class seen in training.",
        draw=draw_ood_k, inputs=_metrics_table, note=ood_k_note,
    ),
    Figure(
        name="clear_swap",
        caption="CLEAR content/style swap: column = content source, row = style source.",
        description="CLEAR content/style swap: each cell decodes the content of its column's image with the style "
                    "of its row's image.",
        draw=lambda files, out: swap_grid_plot(read_latent_maps(files.inputs[0]), out),
        inputs=_latents, drawn=_has_figure_run,
    ),
    Figure(
        name="clear_tsne",
        caption="t-SNE of z_c and z_s coloured by label and by style.",
        description="t-SNE of the content and style latents, coloured by label and by style.",
        draw=lambda files, out: tsne_plot(read_latent_maps(files.inputs[0]), out),
        inputs=_latents, drawn=_has_figure_run,
    ),
)

# --------------------------------------------------------------------------------------------
# the protocol: where each setting comes from (scotsun/clear-vae, code/)
# --------------------------------------------------------------------------------------------

_CODE = "CLEAR official code, code/"
_TRAINER = f"{_CODE}src/trainer.py"
_TRAINER_UTILS = f"{_CODE}src/utils/trainer_utils.py"
_CNN = f"{_CODE}src/models/cnn.py"
_STYLED_OOD_SPLIT = {"n_train": 42500, "n_val": 7500, "n_test": 10000}  # MNIST train: 50,000 (85/15) + 10,000 test
_GMIG_SPLIT = {"n_train": 40000, "n_val": 10000, "n_test": 10000}


def experiment_kind(record) -> tuple[str | None, str | None]:
    """(the official script of this kind of experiment, the kind): the gMIG study or the OOD study on
    Styled-MNIST, the 64 px studies (PACS, CelebA) or Camelyon17; (None, None) for another dataset."""
    generator, name = record.dataset.get("generator"), record.dataset.get("name")
    if generator == "styled_mnist":
        if record.config.get("ood"):
            return "run_styledmnist_downstream_expr.py", "ood"
        return "run_mig_expr_mnist.py", "gmig"
    if generator == "pacs":
        return "run_pacs_downstream_expr.py", "64px"
    if generator == "torchvision" and name == "celeba":
        return "run_celeba_downstream_expr.py", "64px"
    if generator == "camelyon17":
        return "run_camelyon17_downstream_expr.ipynb", "camelyon17"
    return None, None


_BETA_SWEEP = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1, 2, 4, 8)  # run_mig_expr_mnist.py BETAS


def _vae_sources(script: str, kind: str, vae_spec: Mapping) -> dict:
    at = f"{_CODE}{script}"
    style, content = vae_spec.get("style", "ps_snn"), vae_spec.get("content", "snn")
    beta, similarity = vae_spec.get("beta"), vae_spec.get("similarity")
    big = kind in ("64px", "camelyon17")
    vae = f"{_CODE}src/models/vae.py ({'VAE64: five 4x4 stride-2 convs' if big else 'VAE: three 3x3 stride-2 convs'})"
    src = {
        "vae.architecture": Source(vae, "conv5" if big else "conv3", unset="conv3"),
        "vae.z_content": Source(f"{at} (z_dim {64 if big else 16} = content + style)", 32 if big else 8),
        "vae.z_style": Source(f"{at} (z_dim {64 if big else 16} = content + style)", 32 if big else 8),
        "vae.beta": Source(f"{at} (beta)", 1 / 32 if big else 1 / 8),
        "vae.width": Source(f"{vae}, 32 channels in its first conv", 32),
        "vae.alpha": Source(f"{at} (--alpha)", 100.0),
        "vae.temperature": Source(f"{at} (temperature)", 0.1),
        "vae.similarity": Source(f"{_TRAINER_UTILS} (sim_fn cosine)", "cosine"),
        "vae.anneal_loc": Source(f"{_TRAINER_UTILS} (loc)", 0.0),
        "vae.anneal_scale": Source(f"{_TRAINER_UTILS} (scale)", 1.0),
        "optimizer.name": Source(f"{_TRAINER_UTILS} (torch.optim.Adam)", "adam"),
        "optimizer.lr": Source(f"{at} (vae_lr)", {"64px": 3e-5, "camelyon17": 1e-4}.get(kind, 5e-4)),
        "optimizer.weight_decay": Source(f"{_TRAINER_UTILS} (torch.optim.Adam)", 0.0),
        "schedule": Source(f"{_TRAINER} (no scheduler)", "constant"),
        "warmup_epochs": Source(f"{_TRAINER} (no scheduler)", 0),
        "epochs": Source(f"{at} (epochs)", {"gmig": 16, "camelyon17": 7}.get(kind, 41)),
        "batch_size": Source(f"{at} (DataLoader batch_size)", 64 if kind == "camelyon17" else 128),
        "augment": Source(f"{at} (ToTensor only)", "none"),
        "views": Source(f"{at} (one image per sample)", 1),
        "paired_views": Source(f"{at} (one image per sample)", False, unset=False),
    }
    if kind == "gmig" and beta not in (None, 1 / 8) and beta in _BETA_SWEEP:
        src["vae.beta"] = Source(f"{at} (BETAS: the sweep, commented out beside the default)", beta)
    if similarity == "l2":
        src["vae.similarity"] = Source("Table F.4 (similarity in the SNN losses: negative L2 distance)", "l2")
    if style == "none" and content == "none":
        src["objective"] = Source(f"{_CODE}run_mig_expr_mnist.py (bvae: alpha 0, no PS)", "clear_vae")
        src["vae.content"] = Source(f"{_CODE}run_mig_expr_mnist.py (bvae: alpha 0)", "none")
        src["vae.style"] = Source(f"{_CODE}run_mig_expr_mnist.py (bvae: no PS)", "none")
    trainers = {"ps_snn": "get_clearvae_trainer(ps=True)", "neg_snn": "get_clearvae_trainer(ps=False): clear-neg, "
                "the style SNN negated in src/trainer.py", "tc": "get_cleartcvae_trainer",
                "l1out": "get_clearmimvae_trainer (L1OutUB)", "club_sample": "get_clearmimvae_trainer (CLUBSample)"}
    if style in trainers:
        src["objective"] = Source(f"{_CODE}src/models/vae.py and {_TRAINER} (CLEAR-VAE)", "clear_vae")
        src["vae.content"] = Source(f"{_TRAINER_UTILS} {trainers[style]} (SNN on the content means)", "snn")
        src["vae.style"] = Source(f"{_TRAINER_UTILS} {trainers[style]}", style)
    if kind == "camelyon17":  # the notebook's experiment(): trainer_kwargs, and CLEAR-TC's own kwargs
        src["vae.temperature"] = (
            Source(f"{at} experiment() (tc_trainer_kwargs[\"temperature\"] = 0.1 for clear-tc)", 0.1) if style == "tc"
            else Source(f"{at} (trainer_kwargs temperature 0.3)", 0.3))
    if style == "tc":
        src.update({
            "vae.penalty_weight": Source(f"{at} (la)", 1.0),
            "vae.estimator_lr": Source(f"{at} experiment() (models[\"clear-tc\"]: factor_cls_lr 5e-4)", 5e-4)
            if kind == "camelyon17" else Source(f"{at} (factor_cls_lr)", 1e-4),
            "vae.estimator_steps": Source(f"{_TRAINER} (one discriminator step per VAE step)", 1),
            "vae.estimator_latents": Source(f"{_TRAINER} (latents re-encoded for the estimator)", "resampled",
                                            unset="step"),
        })
    elif style in ("l1out", "club_sample"):
        src.update({
            "vae.penalty_weight": Source(f"{at} (la)", 3.0),
            "vae.estimator_lr": Source(f"{at} (mi_estimator_lr)", 2e-3),
            "vae.estimator_steps": Source(f"{_TRAINER} (for j in range(5))", 5),
            "vae.estimator_latents": Source(f"{_TRAINER} (latents re-encoded for the estimator)", "resampled",
                                            unset="step"),
        })
    if style == "l1out":  # what the official L1OutUB.forward computes: its [B, B, 1] diagonal mask broadcasts
        src["vae.l1out_form"] = Source(f"{_CODE}src/models/mi_estimator.py (L1OutUB.forward: the -20 mask of shape "
                                       f"[B, B, 1] broadcasts the log-likelihoods to B x B x B, which makes the bound "
                                       f"the all-pairs mean)", "official", unset="official")
    return src


def _cnn_sources(script: str, kind: str) -> dict:
    """The plain CNN baseline: SimpleCNNClassifier at 28 px, SimpleCNN64Classifier at 64 px (src/models/cnn.py),
    clbench's small_cnn with three or five layers."""
    at = f"{_CODE}{script}"
    if kind in ("64px", "camelyon17"):
        net = f"{_CNN} SimpleCNN64Classifier"
        layers = Source(f"{net} (five 4x4 stride-2 convs, 32 to 512 channels, BN, ReLU)", 5, unset=3)
    else:
        net = f"{_CNN} SimpleCNNClassifier"
        layers = Source(f"{net} (three 3x3 stride-2 convs, 32/64/128 channels, BN, ReLU)", 3, unset=3)
    head = f"{net} cls_head (Linear(2048, 256), BN, ReLU, Linear)"
    return {
        "encoder.name": Source(f"{net} (stride-2 convs, BN, ReLU, flattened)", "small_cnn", unset="small_cnn"),
        "encoder.layers": layers,
        "encoder.width": Source(f"{net} (32 channels in its first conv)", 32),
        "encoder.pool": Source(f"{net} (nn.Flatten of the last conv map: 2048 values)", "flatten", unset="avg"),
        "classifier.kind": Source(head, "mlp", unset="linear"),
        "classifier.hidden_dim": Source(head, 256),
        "objective": Source(f"{_TRAINER} SimpleCNNTrainer (cross-entropy)", "cross_entropy"),
        "warmup_epochs": Source(f"{_TRAINER} (no scheduler)", 0),
        "optimizer.name": Source(f"{_TRAINER_UTILS} get_cnn_trainer (torch.optim.Adam)", "adam"),
        "optimizer.lr": Source(f"{_TRAINER_UTILS} get_cnn_trainer", 1e-4),
        "optimizer.weight_decay": Source(f"{_TRAINER_UTILS} get_cnn_trainer", 0.0),
        "schedule": Source(f"{_TRAINER} (no scheduler)", "constant"),
        "epochs": Source(f"{at} (epochs)", 6 if kind == "camelyon17" else 41),
        "batch_size": Source(f"{at} (DataLoader batch_size)", 64 if kind == "camelyon17" else 128),
        "augment": Source(f"{at} (ToTensor only)", "none"),
        "views": Source(f"{at} (one image per sample)", 1),
        "paired_views": Source(f"{at} (one image per sample)", False, unset=False),
    }


def _mlp_probe_sources(script: str, kind: str) -> dict:
    """CLEAR's MLP probe on mu_c (``experiment_helper()`` of the downstream scripts, trained by
    ``DownstreamMLPTrainer``); the gMIG script trains no probe, so its cards cite the Styled-MNIST one."""
    if kind == "gmig":
        at = f"{_CODE}run_styledmnist_downstream_expr.py experiment_helper() (the downstream studies' probe; " \
             f"run_mig_expr_mnist.py trains none)"
    else:
        at = f"{_CODE}{script} experiment_helper()"
    mlp = f"{_TRAINER} DownstreamMLPTrainer"
    return {
        "mlp_probe.hidden_dim": Source(f"{at} (MLP probe on mu_c: Linear(z, 256), BN, ReLU, Linear)", 256),
        "mlp_probe.optimizer": Source(f"{at} (torch.optim.Adam)", "adam", unset="adam"),
        "mlp_probe.lr": Source(f"{at} (torch.optim.Adam, lr 3e-4)", 3e-4),
        "mlp_probe.weight_decay": Source(f"{at} (torch.optim.Adam, no weight decay)", 0.0),
        "mlp_probe.epochs": Source(f"{at} (trainer.fit(1, ...))", 1) if kind == "camelyon17" else
        Source(f"{at} (trainer.fit(epochs, ...): the script's epochs)", 41),
        "mlp_probe.batch_size": Source(f"{at} (the DataLoader's batches)", 64 if kind == "camelyon17" else 128),
        "mlp_probe.schedule": Source(f"{mlp} (no scheduler)", "constant", unset="constant"),
        "mlp_probe.standardize": Source(f"{mlp} (mu_c as vae.encode gives it)", False, unset=True),
    }


def protocol(record) -> dict:
    """Where an experiment's settings come from: the official script of its kind (the gMIG or OOD
    study on Styled-MNIST, the 64 px studies, Camelyon17), the trainers, the models."""
    script, kind = experiment_kind(record)
    if script is None:
        return {}
    out: dict = {}
    for method, spec in record.methods.items():
        if spec.get("objective") == "clear_vae":
            out[method] = _vae_sources(script, kind, spec.get("vae") or {})
        elif spec.get("objective") == "cross_entropy" and method == record.config.get("baseline"):
            out[method] = _cnn_sources(script, kind)
    at = f"{_CODE}{script}"
    if kind in ("ood", "gmig"):
        split = _STYLED_OOD_SPLIT if kind == "ood" else _GMIG_SPLIT
        out["data"] = {key: Source(f"{at} (random_split of MNIST's training images)", n) for key, n in split.items()}
        out["data"]["source"] = Source(f"{at} (torchvision MNIST)", "mnist")
        if kind == "ood":
            out["data"]["k"] = Source(f"{at} (k = 1..5, one split per k)")
            out["data"]["recipe"] = Source(f"{_CODE}expr/expr_utils.py generate_style_dict (k styles per digit "
                                           f"in training, the others in test)", "ood")
            out["data"]["ood_design"] = Source(f"{_CODE}expr/expr_utils.py generate_style_dict (np.random.choice: "
                                               f"each digit's k styles drawn at random)", "random")
    elif kind == "camelyon17":
        out["data"] = {"image_size": Source(f"{at} (transforms.Resize((64, 64)) for VAE64)", 64)}
    elif kind == "64px":
        out["data"] = {"image_size": Source(f"{at} (64 px images for VAE64)", 64)}
        if record.dataset.get("generator") == "pacs":
            out["data"]["recipe"] = Source(f"{at} generate_style_dict (k domains per class in training, the "
                                           f"others in test)", "ood_k")
            out["data"]["k"] = Source(f"{at} (for k in range(1, 4): one split per k)")
            out["data"]["ood_design"] = Source(f"{at} generate_style_dict (np.random.choice: each class's k "
                                               f"domains drawn at random)", "random")
        if record.dataset.get("name") == "celeba":
            out["data"]["hair"] = Source(f"{_CODE}src/utils/data_utils.py get_process_celeba (some hair colour, not "
                                         f"blurry; several: the first)", "official")
            if record.dataset.get("recipe") == "ood_k":
                split = f"{_CODE}expr/expr_utils.py kceleba_train_test_split"
                out["data"]["recipe"] = Source(f"{split} (k hair colours per class in training, the others in test)",
                                               "ood_k")
                out["data"]["k"] = Source(f"{at} (for k in range(1, 4): one split per k)")
                out["data"]["ood_design"] = Source(f"{split} (generate_style_dict: np.random.choice per class)",
                                                   "random")
    out["evaluation"] = _mlp_probe_sources(script, kind)
    out["evaluation"]["evaluations"] = (
        Source(f"{at} (trainer.evaluate: gMIG of the sampled latents)", ["gmig"]) if kind == "gmig" else
        Source(f"{at} experiment_helper() (the MLP probe on mu_c; the CNN's own head)", ["mlp_probe", "own_head"]))
    return out


# --------------------------------------------------------------------------------------------
# the paper's numbers and claims
# --------------------------------------------------------------------------------------------

# The relative OOD numbers are the top-1 accuracy on unseen style-content combinations of the MLP probe on
# the method's z_c divided by the plain CNN's own classifier's on the same split and seed (OOD_RELATIVE).
RELATIVE = (f"{OOD_RELATIVE_NAME}: top-1 of the MLP probe on the method's z_c / top-1 of the plain CNN's own "
            f"trained classifier, same split and seed")

_GMIG_TEXT = {"dataset": "Styled-MNIST (independent styles)", "experiment": "clear_styled", "metric": "gmig",
              "unit": "score", "scale": "paper", "checked": "not checked against a second source"}

REPORTED = (
    {"id": "clear.gmig.clear_variants", **_GMIG_TEXT, "source": "the paper's gMIG results on Styled-MNIST",
     "method": "CLEAR-VAE variants (SNN + PS-SNN; TC, L1OutUB, CLUB-S)", "method_key": "clear",
     "value": None, "range": [0.3, 0.4], "approx": True,
     "note": "gMIG = (mean_d I(z_c,d; y) - mean_d I(z_s,d; y)) / H(y), KNN MI estimator, on sampled latents"},
    {"id": "clear.gmig.no_ps_snn", **_GMIG_TEXT, "source": "the paper's gMIG ablation on Styled-MNIST",
     "method": "CLEAR-VAE without PS-SNN (the SNN on style negated)", "method_key": "clear_neg", "value": 0.26, "approx": True,
     "note": "reported as ~0.26"},
    {"id": "clear.gmig.no_snn", **_GMIG_TEXT, "source": "the paper's gMIG ablation on Styled-MNIST",
     "method": "CLEAR-VAE without SNN", "method_key": "clear_no_snn", "value": 0.0, "approx": True,
     "note": "reported as ~0; without the content SNN term the latents do not separate"},
    {"id": "clear.gmig.cosine", **_GMIG_TEXT, "source": "Table F.4 (similarity in the SNN losses: cosine vs L2)",
     "method": "CLEAR-VAE, cosine similarity", "method_key": "clear", "value": None, "range": [0.31, 0.46]},
    {"id": "clear.gmig.l2", **_GMIG_TEXT, "source": "Table F.4 (similarity in the SNN losses: cosine vs L2)",
     "method": "CLEAR-VAE, negative L2 distance", "method_key": "clear_l2", "value": None, "range": [0.28, 0.39]},
    {"id": "clear.styled_mnist.ood_relative",
     "source": "the paper's OOD classification results on Styled-MNIST (k = 1..5), relative to the plain CNN",
     "dataset": "Styled-MNIST, OOD-k: k of the 6 styles per digit in training, the other 6 - k in test",
     "method": "CLEAR-VAE (MLP probe on z_c) over the CNN's own classifier", "method_key": "clear",
     "experiment": "clear_ood_k", "metric": OOD_RELATIVE, "value": None, "range": [1.5, 3.0], "unit": "ratio",
     "scale": "paper",
     "checked": "not checked against a second source",
     "note": f"the paper: relative top-1 improved by 0.5-2.0x over the vanilla CNN. Read here as a gain of "
             f"0.5 to 2.0 over the CNN, i.e. a ratio of 1.5 to 3.0 ({RELATIVE}); read as the ratio itself, "
             f"0.5-2.0 would include ratios below 1, where the CNN is better, which is not an improvement"},
    {"id": "clear.pacs.ood_relative",
     "source": "the paper's OOD classification results on PACS (k = 1..3), relative to the plain CNN",
     "dataset": "PACS, OOD-k: for each class k of the 4 domains in training, the other 4 - k in test",
     "method": "CLEAR-VAE (MLP probe on z_c) over the CNN's own classifier",
     "method_key": "clear", "experiment": "pacs_ood_k", "metric": OOD_RELATIVE, "value": None,
     "range": [1.1, 1.5], "unit": "ratio", "scale": "paper", "checked": "not checked against a second source",
     "note": f"{RELATIVE}; the range spans k = 1..3. The split each run used (which domains each class sees "
             f"in training, and how they were drawn) is the data recipe on the experiment's protocol card"},
    {"id": "clear.camelyon17.clear_tc", "source": "the paper's Camelyon17-WILDS results",
     "dataset": "Camelyon17-WILDS (official OOD test hospital)", "method": "CLEAR-TC (MLP probe on z_c)",
     "method_key": "clear_tc", "experiment": "clear_camelyon17", "metric": "mlp_top1", "value": 0.747, "std": 0.019,
     "unit": "fraction", "scale": "paper",
     "checked": "not checked against a second source; WILDS' Camelyon17 metric is test accuracy",
     "note": "mean +- std over the paper's runs; OOD top-1 of the MLP probe on z_c (experiment_helper())"},
)

STYLED_OOD = [f"clear_ood_k{k}" for k in range(1, 6)]
PACS_OOD = [f"pacs_ood_k{k}" for k in range(1, 4)]
# every experiment whose test split holds unseen style-content combinations (configs/paper.yaml; the tiny default
# runs clear_ood_k3); not clear_celeba, the whole set
OOD_EXPERIMENTS = [*STYLED_OOD, *PACS_OOD, *(f"clear_celeba_ood_k{k}" for k in range(1, 4)), "clear_camelyon17"]

CLAIMS = (
    {
        "id": "clear.gmig_ordering",
        "paper": KEY,
        "text": "gMIG: CLEAR (SNN + PS-SNN) > CLEAR-neg (no PS-SNN: the style SNN negated) > beta-VAE (neither "
                "SNN term). The paper gives 0.3-0.4 and about 0.26 for the first two; its about 0 is CLEAR "
                "without SNN (clear.no_snn_near_zero), not beta-VAE, which has no paper number here.",
        "check": {"kind": "ordering", "metric": "gmig", "order": ["clear", "clear_neg", "beta_vae"]},
    },
    {
        "id": "clear.cosine_beats_l2",
        "paper": KEY,
        "text": "Cosine similarity in the SNN losses gives a higher gMIG than negative L2 distance "
                "(Table F.4: 0.31-0.46 vs 0.28-0.39).",
        "check": {"kind": "greater", "metric": "gmig", "a": "clear", "b": "clear_l2"},
    },
    {
        "id": "clear.no_snn_near_zero",
        "paper": KEY,
        "text": "Without the SNN term gMIG is about 0: within 0 ± 0.05.",
        "check": {"kind": "within", "metric": "gmig", "method": "clear_no_snn", "lo": -0.05, "hi": 0.05},
        "scale": "paper",
    },
    {
        "id": "clear.gmig_paper_range",
        "paper": KEY,
        "text": "CLEAR reaches gMIG 0.3-0.4.",
        "check": {"kind": "within", "metric": "gmig", "method": "clear", "lo": 0.3, "hi": 0.4},
        "scale": "paper",
    },
    {
        "id": "clear.ood_beats_cnn",
        "paper": KEY,
        "text": f"On unseen style-content combinations the MLP probe on CLEAR's z_c classifies better than the "
                f"plain CNN's own classifier ({OOD_RELATIVE_NAME} > 1).",
        "check": {"kind": "greater", "a": {"method": "clear", "metric": "mlp_top1"},
                  "b": {"method": "cnn", "metric": "head_top1"}},
        "experiment": OOD_EXPERIMENTS,
        "note": RELATIVE,
    },
    {
        "id": "clear.styled_relative_range",
        "paper": KEY,
        "text": f"Styled-MNIST OOD-k: {OOD_RELATIVE_NAME}, is 1.5-3.0 for CLEAR (the paper's improvement of "
                f"0.5-2.0x, read as a gain over the CNN).",
        "check": {"kind": "within", "metric": OOD_RELATIVE, "method": "clear", "lo": 1.5, "hi": 3.0},
        "experiment": STYLED_OOD,
        "scale": "paper",
        "note": RELATIVE,
    },
    {
        "id": "clear.pacs_relative_range",
        "paper": KEY,
        "text": f"PACS OOD-k: {OOD_RELATIVE_NAME}, is 1.1-1.5x for CLEAR.",
        "check": {"kind": "within", "metric": OOD_RELATIVE, "method": "clear", "lo": 1.1, "hi": 1.5},
        "experiment": PACS_OOD,
        "scale": "paper",
        "note": RELATIVE,
    },
)

PAPER = register_paper(Paper(
    key=KEY,
    title="CLEAR: Unlearning Spurious Style-Content Associations with Contrastive LEarning with Anti-contrastive "
          "Regularization",
    heading="CLEAR: content/style disentanglement with SNN and PS-SNN (arXiv 2507.18794)",
    summary="CLEAR-VAE: a latent split into content z_c and style z_s, an SNN loss on the content means and a "
            "pair-switched SNN (PS-SNN) on the style means; gMIG, content/style swaps, OOD accuracy against a plain "
            "CNN on Styled-MNIST, PACS, CelebA and Camelyon17-WILDS.",
    citation="Minghui Sun, Benjamin A. Goldstein, Matthew M. Engelhard. CLEAR: Unlearning Spurious Style-Content "
             "Associations with Contrastive LEarning with Anti-contrastive Regularization. arXiv 2507.18794, 2025.",
    arxiv="2507.18794",
    code="https://github.com/scotsun/clear-vae",
    metrics=("linear_top1", "linear_auroc", "mlp_top1", "head_top1", "gmig", "mig", "probe_style_latent_y_top1",
             "probe_content_latent_style_top1", "probe_style_latent_style_top1", OOD_RELATIVE),
    reported=REPORTED,
    claims=CLAIMS,
    figures=FIGURES,
    analyses=ANALYSES,
    protocol=protocol,
))

"""VarCon: variational supervised contrastive learning (arXiv 2506.07413).

Supervised contrastive learning as variational inference: per-batch class centroids, a
confidence-adaptive temperature t2 = (t - eps) + 2 eps p(y|z), KL plus log-posterior. The report
shows linear / k-NN accuracy against SupCon, corruption robustness (the 15 x 5 grid as a heat-map
and mCE against the plain CNN), convergence per epoch and the distribution of t2 over training.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from clbench.io import write_text
from clbench.papers.registry import register_paper
from clbench.report.figures import (
    pyplot,
    empty_figure,
    is_fraction,
    mean_std,
    ordered,
    read_run_metrics,
    read_table,
    save_figure,
)
from clbench.report.paper import Analysis, Figure, Paper, ResultFiles, Source
from clbench.report.tables import parse_run_path

KEY = "varcon"
TEMPERATURE_TABLE = "varcon_temperature.csv"

# --------------------------------------------------------------------------------------------
# corruption heat-map
# --------------------------------------------------------------------------------------------


def corruption_matrices(corruptions_csv, experiment: str | None = None) -> dict[tuple[str, str], pd.DataFrame]:
    """``{(experiment, method): DataFrame corruption x severity}`` of the mean top-1 over seeds.

    Rows keep the corruptions' order of first appearance (the pipeline writes them in the standard
    ImageNet-C order), columns are the severities sorted. ``experiment`` restricts to one experiment.
    """
    df = read_table(corruptions_csv, ["experiment", "method", "seed", "corruption", "severity", "top1"])
    if experiment is not None:
        df = df[df["experiment"] == experiment]
        if df.empty:
            raise ValueError(f"no corruption results for experiment {experiment!r}")
    corruptions = ordered(df["corruption"])
    severities = sorted(ordered(df["severity"]))
    out = {}
    for exp in ordered(df["experiment"]):
        sub = df[df["experiment"] == exp]
        for method in ordered(sub["method"]):
            m = sub[sub["method"] == method]
            mat = m.groupby(["corruption", "severity"])["top1"].mean().unstack("severity")
            out[(exp, method)] = mat.reindex(index=corruptions, columns=severities)
    return out


def corruption_heatmap(corruptions_csv, out, experiment: str | None = None) -> None:
    """Per method, a heat-map corruption x severity of the mean top-1 over seeds (annotated).

    Methods side by side on a shared colour scale; one row of panels per experiment when
    ``experiment`` is None and the table holds several.
    """
    plt = pyplot()
    mats = corruption_matrices(corruptions_csv, experiment)
    if not mats:
        empty_figure(out, "no corruption results", "corruption robustness")
        return
    exps = ordered(e for e, _ in mats)
    n_cols = max(sum(1 for e2, _ in mats if e2 == e) for e in exps)
    first = next(iter(mats.values()))
    n_corr, n_sev = first.shape
    values = np.concatenate([m.to_numpy(dtype=float).ravel() for m in mats.values()])
    pct = is_fraction(values)
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
# convergence
# --------------------------------------------------------------------------------------------


def convergence_summary(run_metrics_csvs: Mapping[str, Sequence], metric: str = "val_knn_top1") -> pd.DataFrame:
    """Per method label and epoch: mean and std over the label's runs (seeds) of ``metric``.
    Columns ``label, epoch, mean, std, n``."""
    frames = []
    for label, paths in run_metrics_csvs.items():
        for seed_i, p in enumerate(paths):
            df = read_run_metrics(p, metric)
            df["label"], df["run"] = label, seed_i
            frames.append(df)
    if not frames or all(f.empty for f in frames):
        return pd.DataFrame(columns=["label", "epoch", "mean", "std", "n"])
    data = pd.concat([f for f in frames if not f.empty], ignore_index=True)
    out = mean_std(data, ["label", "epoch"], metric)
    order = {lab: i for i, lab in enumerate(run_metrics_csvs)}
    out = out.sort_values(["label", "epoch"], key=lambda s: s.map(order) if s.name == "label" else s, kind="stable")
    return out.reset_index(drop=True)[["label", "epoch", "mean", "std", "n"]]


def convergence_plot(run_metrics_csvs: Mapping[str, Sequence], out, metric: str = "val_knn_top1",
                     title: str = "Convergence: k-NN validation accuracy") -> None:
    """``metric`` (k-NN validation top-1) vs epoch, mean over seeds with a +-std band, one line per
    method label (e.g. ``{"VarCon": [seed0.csv, seed1.csv], "SupCon": [...]}``)."""
    plt = pyplot()
    summ = convergence_summary(run_metrics_csvs, metric)
    if summ.empty:
        empty_figure(out, f"no {metric} in the runs' metrics.csv (val_every: 0?)", title)
        return
    pct = is_fraction(summ["mean"])
    scale = 100.0 if pct else 1.0
    fig, ax = plt.subplots(figsize=(6.2, 4.0))
    cmap = plt.get_cmap("tab10")
    for i, label in enumerate(ordered(summ["label"])):
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


def _runs_by_label(paths: Iterable, runs_root) -> dict[str, list]:
    """``{"<experiment>: <method>": [metrics.csv of each seed]}`` in the order given."""
    runs: dict[str, list] = {}
    for path in paths:
        run = parse_run_path(path, runs_root)
        runs.setdefault(f"{run['experiment']}: {run['method']}", []).append(path)
    return runs


def draw_convergence(files: ResultFiles, out) -> None:
    convergence_plot(_runs_by_label(files.inputs, files.runs_root), out)


# --------------------------------------------------------------------------------------------
# the adaptive temperature t2
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


def temperature_runs(metrics_csvs: Iterable, runs_root) -> pd.DataFrame:
    """Per run and epoch: the distribution of VarCon's per-sample temperature t2 over the epoch's
    samples (the ``varcon_t2_*`` columns the training loop logs for objective varcon) and the nominal
    ``temperature`` and ``epsilon`` from ``spec.loss`` of the run.json beside the metrics.csv (defaults
    0.1 and 0.02, as in :func:`clbench.losses.varcon`).

    Columns ``experiment, method, seed, epoch, temperature, epsilon`` and ``varcon_t2_mean`` ...
    ``varcon_t2_max`` (NaN for a statistic a run did not log). Runs without the quantiles the figure
    draws (p05, p25, p50, p75, p95) are left out, so the result is empty when no run logged t2.
    """
    frames = []
    for path in metrics_csvs:
        logged = [c for c in T2_COLUMNS if c in pd.read_csv(path, nrows=0).columns]
        if not set(_T2_DRAWN) <= set(logged):
            continue
        df = read_run_metrics(path, logged, required=_T2_DRAWN).reindex(columns=["epoch", *T2_COLUMNS])
        loss = _loss_spec(Path(path).with_name("run.json"))
        frames.append(df.assign(**parse_run_path(path, runs_root), temperature=float(loss.get("temperature", 0.1)),
                                epsilon=float(loss.get("epsilon", 0.02))))
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=[*_T2_KEYS, *T2_COLUMNS])
    return pd.concat(frames, ignore_index=True)[[*_T2_KEYS, *T2_COLUMNS]]


def temperature_table(files: ResultFiles, out) -> None:
    """The analysis: :func:`temperature_runs` of the runs' metrics.csv (run.json beside each) as CSV."""
    import logging

    metrics = [p for p in files.inputs if Path(p).name == "metrics.csv"]
    runs = temperature_runs(metrics, files.runs_root)
    logging.info("%d of %d VarCon runs logged t2", runs.groupby(["experiment", "method", "seed"]).ngroups, len(metrics))
    write_text(out, runs.to_csv(index=False))


def temperature_summary(runs) -> pd.DataFrame:
    """Mean over seeds of every t2 statistic per (experiment, method, epoch) of
    :func:`temperature_runs`' table. Columns ``experiment, method, epoch, temperature, epsilon,
    n`` (seeds) and the ``varcon_t2_*``; runs in order of first appearance, epochs sorted."""
    df = read_table(runs, [*_T2_KEYS, *_T2_DRAWN])
    cols = ["experiment", "method", "epoch", "temperature", "epsilon", "n", *T2_COLUMNS]
    if df.empty:
        return pd.DataFrame(columns=cols)
    df = df.reindex(columns=[*_T2_KEYS, *T2_COLUMNS])
    g = df.groupby(["experiment", "method", "epoch"], sort=False)
    out = g[["temperature", "epsilon", *T2_COLUMNS]].mean()
    out["n"] = g["seed"].nunique()
    out = out.reset_index()
    order = {run: i for i, run in enumerate(ordered(zip(out["experiment"], out["method"])))}
    out["_run"] = [order[r] for r in zip(out["experiment"], out["method"])]
    return out.sort_values(["_run", "epoch"], kind="stable").reset_index(drop=True)[cols]


def t2_endpoints(runs, stat: str = "p50") -> pd.DataFrame:
    """Each run's t2 ``stat`` in its first and its last epoch as long rows (``experiment, method, seed,
    metric, value``; metrics ``varcon_t2_<stat>_first_epoch`` and ``..._last_epoch``), for the claims.
    Runs of a single epoch are left out: they have no change to compare."""
    df = read_table(runs, [*_T2_KEYS, f"varcon_t2_{stat}"]).dropna(subset=[f"varcon_t2_{stat}"])
    rows = []
    for (exp, method, seed), run in df.groupby(["experiment", "method", "seed"], sort=False):
        if run["epoch"].nunique() < 2:
            continue
        run = run.sort_values("epoch")
        for when, row in (("first", run.iloc[0]), ("last", run.iloc[-1])):
            rows.append({"experiment": exp, "method": method, "seed": seed,
                         "metric": f"varcon_t2_{stat}_{when}_epoch", "value": float(row[f"varcon_t2_{stat}"])})
    return pd.DataFrame(rows, columns=["experiment", "method", "seed", "metric", "value"])


def temperature_plot(runs, out) -> None:
    """VarCon's adaptive temperature over training, one panel per (experiment, method): the median of
    t2 over each epoch's samples (line) with the 25–75% (dark) and 5–95% (light) bands, mean over
    seeds, against the epoch; dashed, the nominal t and t ± epsilon, the range that
    t2 = (t − epsilon) + 2·epsilon·p(y|z) spans as the confidence p(y|z) goes from 0 to 1."""
    plt = pyplot()
    summ = temperature_summary(runs)
    title = "VarCon: adaptive temperature t2 per epoch"
    if summ.empty:
        empty_figure(out, "no VarCon run logged its adaptive temperature (varcon_t2_* in metrics.csv)", title)
        return
    panels = ordered(zip(summ["experiment"], summ["method"]))
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


def temperature_note(results: Path, config: Mapping) -> str:
    """Why the temperature figure is left out of the report, in words; "" when some run logged t2."""
    table = Path(results) / "analyses" / TEMPERATURE_TABLE
    if table.exists() and len(pd.read_csv(table)):
        return ""
    methods = config.get("methods", {})
    varcon = sorted({m for e in config.get("experiments", {}).values() for m in e.get("methods", [])
                     if methods.get(m, {}).get("objective") == "varcon"})
    if not varcon:
        why = ("it needs a method with objective <code>varcon</code> in an experiment, as in "
               "<code>config.yaml</code>'s experiment <code>varcon_digits</code> or <code>configs/paper.yaml</code>")
    else:
        why = (f"the runs of {', '.join(f'<code>{html.escape(m)}</code>' for m in varcon)} have no "
               "<code>varcon_t2_*</code> columns in their <code>metrics.csv</code> (trained by a clbench that did not "
               "log t2 yet); <code>snakemake --cores 2 -R pretrain</code> retrains them")
    return f"<p class='note'>The figure of VarCon's adaptive temperature t2 per epoch is not drawn: {why}.</p>"


def claim_data(results: Path) -> pd.DataFrame | None:
    """The t2 medians of each run's first and last epoch, for ``varcon.t2_follows_confidence``."""
    table = Path(results) / "analyses" / TEMPERATURE_TABLE
    return t2_endpoints(table) if table.exists() else None


# --------------------------------------------------------------------------------------------
# what the workflow computes and draws
# --------------------------------------------------------------------------------------------


def varcon_run_files(cfg) -> list[str]:
    """metrics.csv and run.json of every run whose method has objective varcon (they log t2)."""
    runs = [cfg.run_dir(*r) for r in cfg.runs() if cfg.method_spec(r[0], r[1])["objective"] == "varcon"]
    return [f"{d}/metrics.csv" for d in runs] + [f"{d}/run.json" for d in runs]


def paper_run_metrics(cfg) -> list[str]:
    """metrics.csv of every run of this paper's experiments (the convergence figure)."""
    return [f"{cfg.run_dir(*r)}/metrics.csv" for r in cfg.runs(cfg.experiments_of(KEY))]


FIGURES = (
    Figure(
        name="varcon_convergence",
        caption="Convergence: k-NN validation accuracy per epoch.",
        description="Convergence: k-NN validation accuracy per epoch, mean over seeds.",
        draw=draw_convergence,
        inputs=paper_run_metrics,
    ),
    Figure(
        name="varcon_corruptions",
        caption="Corruption robustness: top-1 per corruption and severity.",
        description="Top-1 accuracy per corruption and severity, per method (mean over seeds).",
        draw=lambda files, out: corruption_heatmap(files.inputs[0], out),
        inputs=lambda cfg: [cfg.table("corruptions.csv")],
    ),
    Figure(
        name="varcon_temperature",
        caption="VarCon's adaptive temperature t2 = (t − ε) + 2ε·p(y|z) over each epoch's training samples: "
                "median (line), 25–75% (dark band) and 5–95% (light band), mean over seeds; dashed, the "
                "nominal t and t ± ε. Confident samples get a higher t2 (softer targets), so t2 rises as "
                "training raises p(y|z).",
        description="VarCon's adaptive temperature t2 = (t - epsilon) + 2 epsilon p(y|z) over each epoch's training "
                    "samples, per VarCon method (mean over seeds): the median (line), the 25-75% (dark band) and "
                    "5-95% (light band) of t2, and dashed the nominal t and t +- epsilon. Confident samples get a "
                    "higher t2 (softer targets), so t2 rises as training raises the confidence p(y|z). Empty when "
                    "no run logged t2 (the varcon_t2_* columns of metrics.csv).",
        draw=lambda files, out: temperature_plot(files.inputs[0], out),
        inputs=lambda cfg: [cfg.analysis(TEMPERATURE_TABLE)],
        note=temperature_note,
    ),
)

ANALYSES = (
    Analysis(output=TEMPERATURE_TABLE, function="clbench.papers.varcon:temperature_table", inputs=varcon_run_files),
)

REPORTED = (
    {"id": "varcon.imagenet1k.varcon", "source": "abstract; the paper's main results table (ResNet-50, 200 epochs)",
     "dataset": "ImageNet-1K", "method": "VarCon", "method_key": "varcon", "experiment": "varcon_imagenet1k",
     "metric": "linear_top1", "value": 79.36, "unit": "%", "scale": "paper", "backbone": "ResNet-50",
     "checked": "arXiv abstract (2506.07413v2/v3): 79.36% Top-1 on ImageNet-1K with ResNet-50"},
    {"id": "varcon.cifar100.varcon", "source": "abstract; the paper's main results table (ResNet-50)",
     "dataset": "CIFAR-100", "method": "VarCon", "method_key": "varcon", "experiment": "varcon_cifar100",
     "metric": "linear_top1", "value": 78.29, "unit": "%", "scale": "paper", "backbone": "ResNet-50",
     "checked": "arXiv abstract (2506.07413v2/v3): 78.29% on CIFAR-100 with ResNet-50"},
    {"id": "varcon.imagenet100.varcon", "source": "the paper's main results table", "dataset": "ImageNet-100",
     "method": "VarCon", "method_key": "varcon", "experiment": "varcon_imagenet100", "metric": "linear_top1",
     "value": 86.34, "unit": "%", "scale": "paper", "checked": "not checked against a second source"},
)

CLAIMS = (
    {
        "id": "varcon.beats_supcon_linear",
        "paper": KEY,
        "text": "VarCon's linear-evaluation top-1 is above SupCon's.",
        "check": {"kind": "greater", "metric": "linear_top1", "a": "varcon", "b": "supcon"},
    },
    {
        "id": "varcon.beats_supcon_knn",
        "paper": KEY,
        "text": "VarCon's weighted kNN top-1 is above SupCon's.",
        "check": {"kind": "greater", "metric": "knn_top1", "a": "varcon", "b": "supcon"},
    },
    {
        "id": "varcon.faster_convergence",
        "paper": KEY,
        "text": "VarCon reaches a k-NN validation accuracy target in fewer epochs than SupCon. The target is "
                "clbench's (evaluation.convergence_target, 0.5 by default), not the paper's.",
        "check": {"kind": "less", "metric": "epochs_to_target", "a": "varcon", "b": "supcon"},
        "note": "the paper states faster convergence without a target accuracy; a run that never reaches the "
                "target counts inf epochs, and then no t-test is computed",
    },
    {
        "id": "varcon.corruption_robustness",
        "paper": KEY,
        "text": "VarCon is more robust to corruptions than SupCon (lower mCE vs the plain CNN).",
        "check": {"kind": "less", "metric": "mce", "a": "varcon", "b": "supcon"},
        "note": "comparison partner (SupCon) assumed; the paper reports corruption robustness",
    },
    {
        "id": "varcon.t2_follows_confidence",
        "paper": KEY,
        "text": "VarCon's temperature adapts to confidence: t2 = (t - eps) + 2 eps p(y|z) gives confident "
                "samples a higher t2 (softer targets), so as training makes the model confident the "
                "median t2 of the last epoch is above that of the first.",
        "check": {"kind": "greater", "method": "varcon", "a": {"metric": "varcon_t2_p50_last_epoch"},
                  "b": {"metric": "varcon_t2_p50_first_epoch"}},
        "note": "the paper states the per-sample direction (confident -> higher t2); the check is its "
                "consequence over training, from the t2 distribution the training loop logs per epoch",
    },
)

# --------------------------------------------------------------------------------------------
# the protocol (ziwenwang28/VarContrast)
# --------------------------------------------------------------------------------------------

_CODE = "VarCon official code, "
_README = f"{_CODE}README.md (VarCon Training (CIFAR-100))"
_LINEAR = f"{_CODE}README.md (Linear Evaluation) and main_linear.py"


def protocol(record) -> dict:
    """VarCon's settings from the official README and scripts: the CIFAR pretraining and the linear
    evaluation; the temperature and epsilon on every dataset. SupCon's and the baseline's settings are
    not the paper's statement, so they read "assumed"."""
    cifar = record.dataset.get("generator") == "torchvision" and record.dataset.get("name") in ("cifar10", "cifar100")
    out: dict = {}
    for method in record.methods_with(objective="varcon"):
        src = {"objective": Source(f"{_README}: --method VarCon", "varcon"),
               "loss.temperature": Source(f"{_README}: --temp", 0.1),
               "loss.epsilon": Source(f"{_README}: --epsilon", 0.02)}
        if cifar:
            head = f"{_CODE}networks/resnet_big.py (VarConResNet head mlp: Linear, ReLU, Linear)"
            src.update({
                "encoder.name": Source(f"{_README}: --model", "resnet50"),
                "encoder.stem": Source(f"{_CODE}networks/resnet_big.py (3x3 stride-1 conv1, no max-pool)", "cifar",
                                       unset="cifar"),
                "projection_hidden_dim": Source(head, 2048),
                "projection_batch_norm": Source(head, False, unset=True),
                "projection_dim": Source(f"{_CODE}networks/resnet_big.py (feat_dim)", 128),
                "epochs": Source(f"{_README}: --epochs", 200),
                "batch_size": Source(f"{_README}: 8 GPUs x --batch_size 128", 1024),
                "optimizer.name": Source(f"{_CODE}util.py set_optimizer (optim.SGD)", "sgd"),
                "optimizer.lr": Source(f"{_README}: --learning_rate", 0.5),
                "optimizer.momentum": Source(f"{_CODE}main_varcon.py (--momentum)", 0.9),
                "optimizer.nesterov": Source(f"{_CODE}util.py set_optimizer (plain momentum)", False, unset=True),
                "optimizer.weight_decay": Source(f"{_README}: --weight_decay", 1e-4),
                "schedule": Source(f"{_README}: --cosine", "cosine"),
                "warmup_epochs": Source(f"{_CODE}main_varcon.py (--warm: warm_epochs 10)", 10),
                "warmup_start_lr": Source(f"{_CODE}main_varcon.py (--warm: warmup_from 0.01)", 0.01),
                "lr_floor": Source(f"{_CODE}util.py adjust_learning_rate (eta_min = lr * lr_decay_rate ** 3, "
                                   f"lr_decay_rate 0.1)", 0.001),
                "augment": Source(f"{_CODE}main_varcon.py (RandomResizedCrop scale 0.2-1, flip, jitter, grey)",
                                  "supcon"),
                "views": Source(f"{_CODE}main_varcon.py (TwoCropTransform)", 2),
            })
        out[method] = src
    if out and cifar:
        out["evaluation"] = {
            "probe.kind": Source(f"{_LINEAR} (LinearClassifier on the frozen encoder)", "linear"),
            "probe.optimizer": Source(f"{_LINEAR} (SGD)", "sgd", unset="adam"),
            "probe.lr": Source(f"{_LINEAR}: --learning_rate 5.0", 5.0),
            "probe.momentum": Source(f"{_LINEAR} (momentum 0.9)", 0.9),
            "probe.weight_decay": Source(f"{_LINEAR} (weight_decay 0)", 0.0),
            "probe.epochs": Source(f"{_LINEAR}: --epochs 100", 100),
            "probe.batch_size": Source(f"{_LINEAR}: 8 GPUs x --batch_size 128", 1024),
            "probe.schedule": Source(f"{_LINEAR} (lr_decay_epochs 60,75,90)", "step", unset="constant"),
            "probe.milestones": Source(f"{_LINEAR} (lr_decay_epochs)", [60, 75, 90]),
            "probe.gamma": Source(f"{_LINEAR} (lr_decay_rate)", 0.2),
            "probe.standardize": Source(f"{_LINEAR} (the encoder's features)", False, unset=True),
            "probe.protocol": Source(f"{_LINEAR} (trains on train_transform images, tests on val_transform ones)",
                                     "augmented", unset="features"),
            "probe.augment": Source(f"{_CODE}main_linear.py train_transform (RandomResizedCrop(32, scale 0.2-1), "
                                    f"flip)", "crop_flip"),
        }
    return out


PAPER = register_paper(Paper(
    key=KEY,
    title="Variational Supervised Contrastive Learning",
    heading="VarCon: variational supervised contrastive learning (arXiv 2506.07413)",
    summary="Supervised contrastive learning as variational inference: per-batch class centroids, a "
            "confidence-adaptive temperature, KL plus log-posterior; CIFAR-10/100, ImageNet-100/1K, corruption "
            "robustness.",
    citation="Ziwen Wang, Jiajun Fan, Thao Nguyen, Heng Ji, Ge Liu. Variational Supervised Contrastive Learning. "
             "NeurIPS 2025.",
    arxiv="2506.07413",
    code="https://github.com/ziwenwang28/VarContrast",
    metrics=("linear_top1", "knn_top1", "mean_corruption_top1", "mce", "epochs_to_target"),
    reported=REPORTED,
    claims=CLAIMS,
    figures=FIGURES,
    analyses=ANALYSES,
    claim_data=claim_data,
    protocol=protocol,
))

"""Figures (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from clbench.io import atomic_path
from clbench.report.tables import parse_run_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> None:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=120, bbox_inches="tight")


def training_curves(metrics_paths, runs_root, out: str | Path) -> None:
    """Per experiment: the training loss and the k-NN validation accuracy per epoch of every run."""
    plt = _pyplot()
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

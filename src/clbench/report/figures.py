"""Figures (matplotlib, Agg backend)."""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from pathlib import Path
from typing import Iterable, Iterator

import pandas as pd

from clbench.io import atomic_path
from clbench.report.tables import parse_run_path


def _pyplot():
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

"""``clbench data show``: a PNG grid of samples of a dataset directory, one row per class or factor value.

Uses matplotlib's object API with the Agg canvas (no pyplot, no global backend switch). Samples
with a paired view (``x2``) are shown as ``x | x2`` side by side; datasets without images but with
``features`` (the Gaussian-mixture simulation) are shown as a scatter plot of the first two
feature dimensions.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from clbench.data import dataset_dir
from clbench.io import atomic_path

MAX_GROUPS = 40


def _group_labels(arrays: dict, meta: dict, by: str) -> tuple[np.ndarray, list[str]]:
    if by in ("y", "class", "label"):
        values = arrays["y"]
        names = list(meta.get("classes") or [])
    else:
        name = by[len("factor_"):] if by.startswith("factor_") else by
        key = f"factor_{name}"
        if key not in arrays:
            available = ["y"] + sorted(k[len("factor_"):] for k in arrays if k.startswith("factor_"))
            raise ValueError(f"no factor {name!r} in this dataset; choose `by` from {available}")
        values = arrays[key]
        names = list((meta.get("factors") or {}).get(name) or [])
    values = np.asarray(values, dtype=np.int64)
    top = int(values.max()) + 1 if len(values) else 0
    names = [str(n) for n in names] + [str(v) for v in range(len(names), top)]
    return values, names


def _to_hwc(x: np.ndarray) -> np.ndarray:
    """uint8 [N, C, H, W] -> float [N, H, W, 3] in [0, 1]."""
    x = np.asarray(x)
    if x.shape[1] == 1:
        x = np.repeat(x, 3, axis=1)
    return np.transpose(x[:, :3], (0, 2, 3, 1)).astype(np.float32) / 255.0


def show(dataset_dir_path: str | os.PathLike, out_png: str | os.PathLike, split: str = "train", by: str = "y",
         per_group: int = 8, max_groups: int = MAX_GROUPS) -> Path:
    """Write a PNG grid of ``per_group`` samples for each value of ``by`` (``"y"`` or a factor name).

    Rows are the values present in ``split`` (at most ``max_groups``), labelled with the names in
    ``meta.json``; each row shows the first samples of that value (splits are stored shuffled).
    Returns the PNG path.
    """
    from matplotlib.figure import Figure

    meta = dataset_dir.load_meta(dataset_dir_path)
    if meta.get("domain") == "graph":  # graphs, not images: drawn by clbench.data.graph_show
        from clbench.data.graph_show import graphs_figure

        return write_png(graphs_figure(dataset_dir_path, split=split), out_png)
    arrays = dataset_dir.load(dataset_dir_path, split)
    if "text" in arrays:  # a sentence table (clbench.data.sentences): the first sentences, as text
        from clbench.data.sentences import sentence_figure

        return write_png(sentence_figure(arrays, f"{meta.get('name', Path(dataset_dir_path).name)}: {split}"), out_png)
    values, names = _group_labels(arrays, meta, by)
    groups = [g for g in range(len(names)) if np.any(values == g)][:max_groups]
    title = f"{meta.get('name', Path(dataset_dir_path).name)}: {split}, by {by}"

    x = arrays["x"]  # an array, or LazyImages: only the shown rows are decoded
    is_image = x.ndim == 4 and x.shape[2] > 1 and x.shape[3] > 1
    if not is_image and "features" in arrays:
        feats = np.asarray(arrays["features"], dtype=np.float64)
        feats = feats if feats.shape[1] >= 2 else np.concatenate([feats, np.zeros_like(feats)], 1)
        fig = Figure(figsize=(5, 5))
        ax = fig.add_subplot()
        for g in groups:
            sel = values == g
            ax.scatter(feats[sel, 0], feats[sel, 1], s=3, alpha=0.5, label=names[g])
        ax.legend(markerscale=4, fontsize=7, loc="best")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("feature 0")
        ax.set_ylabel("feature 1")
    else:
        pair = "x2" in arrays
        pad = 2
        sample = _to_hwc(x[:1])[0]
        h, w = sample.shape[:2]
        cell_w = 2 * w + 1 if pair else w
        rows, cols = len(groups), per_group
        mosaic = np.empty((rows * (h + pad) + pad, cols * (cell_w + pad) + pad, 3), np.float32)
        mosaic[:] = (0.72, 0.82, 1.0)  # pale blue gaps, distinct from white and black images
        for r, g in enumerate(groups):
            idx = np.flatnonzero(values == g)[:per_group]
            imgs = _to_hwc(x[idx])
            if pair:
                imgs2 = _to_hwc(np.asarray(arrays["x2"])[idx])
                sep = np.ones((len(idx), h, 1, 3), np.float32)
                imgs = np.concatenate([imgs, sep, imgs2], axis=2)
            for c, img in enumerate(imgs):
                top, left = pad + r * (h + pad), pad + c * (cell_w + pad)
                mosaic[top:top + h, left:left + cell_w] = img
        scale = max(0.35, min(1.0, 48 / max(h, 1)))  # inches per 48 px, bounded
        fig = Figure(figsize=(max(4.0, mosaic.shape[1] / 48 * scale + 1.6), max(1.5, mosaic.shape[0] / 48 * scale + 0.6)))
        ax = fig.add_subplot()
        ax.imshow(mosaic, interpolation="nearest")
        ax.set_yticks([pad + r * (h + pad) + h / 2 for r in range(rows)])
        ax.set_yticklabels([names[g] for g in groups], fontsize=7)
        ax.set_xticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_title(title + (" (pairs x | x2)" if pair else ""), fontsize=9)
    return write_png(fig, out_png)


def write_png(fig, out_png: str | os.PathLike) -> Path:
    """Lay out a matplotlib Figure and write it atomically as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig.tight_layout()
    FigureCanvasAgg(fig)
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    return out_png

"""``clbench data show`` for a graph dataset: a few graphs of each class, drawn in a spectral layout.

Each graph is placed by a force-directed layout (cycles come out as rings, grids as meshes, trees
as branches; graphs over 400 nodes on a circle), one row per class.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from clbench.data import dataset_dir
from clbench.data.graphs import graph

MAX_LAYOUT_NODES = 400


def force_layout(n: int, edge_index: np.ndarray, iterations: int = 80) -> np.ndarray:
    """``[n, 2]`` node positions by Fruchterman-Reingold (from a circle, so deterministic): edges pull,
    all pairs push; disconnected parts drift apart rather than collapse."""
    angle = 2 * np.pi * np.arange(n) / max(n, 1)
    pos = np.stack([np.cos(angle), np.sin(angle)], 1)
    if n < 2:
        return pos
    adjacency = np.zeros((n, n))
    adjacency[edge_index[0], edge_index[1]] = 1.0
    adjacency = np.maximum(adjacency, adjacency.T)
    np.fill_diagonal(adjacency, 0.0)
    k = 1.0 / np.sqrt(n)
    step = 0.1
    for _ in range(iterations):
        delta = pos[:, None, :] - pos[None, :, :]
        dist = np.maximum(np.linalg.norm(delta, axis=2), 1e-3)
        force = (k * k / dist**2 - adjacency * dist / k)[:, :, None] * delta
        move = force.sum(1)
        length = np.maximum(np.linalg.norm(move, axis=1, keepdims=True), 1e-9)
        pos = pos + move / length * np.minimum(length, step)
        step *= 0.96
    return pos


def graphs_figure(path: str | os.PathLike, split: str = "train", per_group: int = 6):
    """The matplotlib Figure of ``per_group`` graphs per class of a graph dataset's ``split``."""
    from matplotlib.figure import Figure

    meta = dataset_dir.load_meta(path)
    arrays = dataset_dir.load(path, split)
    classes = list(meta.get("classes") or [])
    y = arrays["y"]
    groups = [c for c in range(len(classes)) if np.any(y == c)][:20]
    fig = Figure(figsize=(1.6 * per_group, 1.7 * max(1, len(groups))))
    for r, c in enumerate(groups):
        for k, i in enumerate(np.flatnonzero(y == c)[:per_group]):
            x, edges = graph(arrays, int(i))
            pos = force_layout(len(x), edges) if len(x) <= MAX_LAYOUT_NODES else None
            if pos is None:  # a very large graph (REDDIT): its nodes on a circle
                angle = 2 * np.pi * np.arange(len(x)) / len(x)
                pos = np.stack([np.cos(angle), np.sin(angle)], 1)
            ax = fig.add_subplot(len(groups), per_group, r * per_group + k + 1)
            for a, b in edges.T[edges[0] < edges[1]]:
                ax.plot(pos[[a, b], 0], pos[[a, b], 1], color="0.55", lw=0.6)
            ax.scatter(pos[:, 0], pos[:, 1], s=6, color=f"C{r % 10}", zorder=3)
            ax.set_xticks([])
            ax.set_yticks([])
            if k == 0:
                ax.set_ylabel(classes[c], fontsize=8)
    fig.suptitle(f"{meta.get('name', Path(path).name)}: {split}, {len(y)} graphs, by class", fontsize=9)
    return fig

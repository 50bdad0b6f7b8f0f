"""Graph datasets in the dataset directory format, and generated structural graph classes.

A graph dataset keeps the directory contract (``{train,val,test}.npz`` + ``meta.json``, see
:mod:`clbench.data.dataset_dir`); each split archive stores its graphs packed:

- ``x``: float32 node features ``[total_nodes, F]`` (F = 1, the constant 1, for graphs without node labels);
- ``y``: int64 graph labels ``[G]``;
- ``edge_index``: int64 ``[2, total_edges]``, each graph's edges in its own node numbering (0..n_g - 1),
  both directions of an undirected edge;
- ``node_ptr``, ``edge_ptr``: int64 ``[G + 1]``, where each graph's nodes and edges start.

The graph experiments cross-validate over all graphs, so every graph is in ``train`` and ``val`` /
``test`` are empty. ``meta.json`` adds ``domain: graph``, ``num_node_features``, ``node_features``
(``labels`` or ``constant``) and per-class node and edge counts.

The generator ``graph_classes`` (offline, the tiny default; TU datasets: :mod:`clbench.data.tu`):
one class per structure of ``classes`` (``cycle``, ``tree``, ``grid``, ``ladder``, ``star_forest``,
or ``sbm{k}``: a stochastic block model with k communities), each graph with ``min_nodes``..``max_nodes`` nodes, then a ``noise`` share of its
edges rewired at random, so structure is evidence rather than a giveaway. Keys: ``classes``,
``n_graphs``, ``min_nodes``, ``max_nodes``, ``noise``, ``seed``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from clbench.data import dataset_dir
from clbench.data.embedded import rng_for, spec_params

STRUCTURES = ("cycle", "tree", "grid", "ladder", "star_forest", "sbm1", "sbm2", "sbm3", "sbm4")
DEFAULTS: dict[str, Any] = {
    "classes": ["tree", "cycle", "grid"],
    "n_graphs": 300,
    "min_nodes": 12,
    "max_nodes": 30,
    "noise": 0.15,
    "seed": 0,
    "name": "graph_classes",
    "source": None,
}


# --------------------------------------------------------------------------------------------------
# the packed format


def pack(graphs: list[tuple[np.ndarray, np.ndarray]], labels) -> dict[str, np.ndarray]:
    """Pack ``[(x [n, F], edge_index [2, e]), ...]`` and their labels into one split's arrays."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(graphs) != len(labels):
        raise ValueError(f"{len(graphs)} graphs but {len(labels)} labels")
    features = graphs[0][0].shape[1] if graphs else 1
    nodes = np.array([0] + [len(x) for x, _ in graphs], dtype=np.int64)
    edges = np.array([0] + [e.shape[1] for _, e in graphs], dtype=np.int64)
    x = np.concatenate([x for x, _ in graphs]).astype(np.float32) if graphs else np.zeros((0, features), np.float32)
    e = np.concatenate([e for _, e in graphs], axis=1).astype(np.int64) if graphs else np.zeros((2, 0), np.int64)
    return {"x": x, "y": labels, "edge_index": e, "node_ptr": np.cumsum(nodes), "edge_ptr": np.cumsum(edges)}


def graph(split: Mapping[str, np.ndarray], i: int) -> tuple[np.ndarray, np.ndarray]:
    """Graph ``i`` of a packed split: ``(x [n, F], edge_index [2, e])`` in its own node numbering."""
    n0, n1 = split["node_ptr"][i], split["node_ptr"][i + 1]
    e0, e1 = split["edge_ptr"][i], split["edge_ptr"][i + 1]
    return split["x"][n0:n1], split["edge_index"][:, e0:e1]


def num_graphs(split: Mapping[str, np.ndarray]) -> int:
    return len(split["y"])


def collate(graphs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One batch of graphs as a disjoint union: ``x [N, F]``, ``edge_index [2, E]`` (shifted), ``batch [N]``."""
    sizes = np.array([len(x) for x, _ in graphs], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    x = np.concatenate([x for x, _ in graphs]).astype(np.float32)
    edge_index = np.concatenate([e + o for (_, e), o in zip(graphs, offsets)], axis=1).astype(np.int64)
    batch = np.repeat(np.arange(len(graphs), dtype=np.int64), sizes)
    return x, edge_index, batch


def graph_batch(graphs: list[tuple[np.ndarray, np.ndarray]], device="cpu"):
    """``[(x, edge_index), ...]`` as the tensors a graph encoder takes: ``(x, edge_index, batch, B)``."""
    import torch

    x, edge_index, batch = collate(graphs)
    return (torch.from_numpy(x).to(device), torch.from_numpy(edge_index).to(device), torch.from_numpy(batch).to(device),
            len(graphs))


def _empty_like(split: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return pack([], []) | {"x": np.zeros((0, split["x"].shape[1]), np.float32)}


def _class_stats(split: Mapping[str, np.ndarray], classes: list[str]) -> dict:
    nodes, edges = np.diff(split["node_ptr"]), np.diff(split["edge_ptr"]) // 2
    return {name: {"graphs": int((split["y"] == c).sum()), "mean_nodes": float(nodes[split["y"] == c].mean()),
                   "mean_edges": float(edges[split["y"] == c].mean())}
            for c, name in enumerate(classes) if (split["y"] == c).any()}


def save(out_dir: Path, split: dict[str, np.ndarray], meta: dict) -> dict:
    """Write all graphs as ``train`` (val and test empty: the evaluation cross-validates over all)."""
    meta = {**meta, "domain": "graph", "num_node_features": int(split["x"].shape[1]),
            "graph_stats": _class_stats(split, meta["classes"]), "recipe": "all graphs in train (cross-validation)"}
    return dataset_dir.save(out_dir, {"train": split, "val": _empty_like(split), "test": _empty_like(split)}, meta)


# --------------------------------------------------------------------------------------------------
# generated structural classes


def _undirected(pairs) -> np.ndarray:
    """Both directions of each undirected edge, without duplicates or self-loops: ``[2, 2m]``."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    pairs = np.unique(np.sort(pairs, axis=1), axis=0)
    return np.concatenate([pairs, pairs[:, ::-1]]).T.copy()


def _structure(kind: str, n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    if kind == "cycle":
        return [(i, (i + 1) % n) for i in range(n)]
    if kind == "tree":  # a uniform random recursive tree
        return [(i, int(rng.integers(0, i))) for i in range(1, n)]
    if kind in ("grid", "ladder"):
        w = 2 if kind == "ladder" else max(2, int(round(np.sqrt(n))))
        h = -(-n // w)
        cell = lambda r, c: r * w + c  # noqa: E731
        pairs = [(cell(r, c), cell(r, c + 1)) for r in range(h) for c in range(w - 1)]
        pairs += [(cell(r, c), cell(r + 1, c)) for r in range(h - 1) for c in range(w)]
        return [(a, b) for a, b in pairs if a < n and b < n]
    if kind == "star_forest":  # stars of 4-6 leaves, their centres on a path
        pairs, centre, prev = [], 0, None
        while centre < n:
            leaves = int(rng.integers(4, 7))
            pairs += [(centre, j) for j in range(centre + 1, min(n, centre + 1 + leaves))]
            if prev is not None:
                pairs.append((prev, centre))
            prev, centre = centre, centre + 1 + leaves
        return pairs
    if kind.startswith("sbm"):  # k communities, expected degree about 4, 90% of it inside a community
        k = int(kind[3:])
        block = rng.integers(0, k, n)
        same = block[:, None] == block[None, :]
        size = n / k
        p_in, p_out = min(1.0, 3.6 / max(size - 1, 1)), (0.4 / max(n - size, 1)) if k > 1 else 0.0
        upper = np.triu(rng.random((n, n)) < np.where(same, p_in, p_out), 1)
        return [tuple(p) for p in np.argwhere(upper)] + [(i, i + 1) for i in range(n - 1) if rng.random() < 0.05]
    raise ValueError(f"unknown structure {kind!r}; known: {', '.join(STRUCTURES)}")


def _rewire(pairs: list[tuple[int, int]], n: int, share: float, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Move a ``share`` of the edges to endpoints drawn at random."""
    pairs = list(pairs)
    for i in rng.choice(len(pairs), int(round(share * len(pairs))), replace=False) if pairs else []:
        pairs[i] = (int(rng.integers(0, n)), int(rng.integers(0, n)))
    return pairs


def build_graph_classes(spec: dict, out_dir: Path, resources_dir: Path) -> dict:
    """Write ``n_graphs`` generated graphs, classes drawn in turn, constant node features."""
    p = spec_params(spec, DEFAULTS, "graph_classes")
    classes = list(p["classes"])
    unknown = sorted(set(classes) - set(STRUCTURES))
    if unknown or len(classes) < 2 or len(set(classes)) != len(classes):
        raise ValueError(f"graph_classes: classes must be >= 2 distinct of {STRUCTURES}, got {classes}")
    if not 3 <= p["min_nodes"] <= p["max_nodes"]:
        raise ValueError(f"graph_classes: need 3 <= min_nodes <= max_nodes, got {p['min_nodes']}, {p['max_nodes']}")
    rng = rng_for(p["seed"], "graph_classes")
    labels = rng.permutation(np.arange(p["n_graphs"]) % len(classes))
    graphs = []
    for y in labels:
        n = int(rng.integers(p["min_nodes"], p["max_nodes"] + 1))
        pairs = _rewire(_structure(classes[y], n, rng), n, p["noise"], rng)
        graphs.append((np.ones((n, 1), np.float32), _undirected(pairs) if pairs else np.zeros((2, 0), np.int64)))
    meta = {"name": p["name"], "generator": "graph_classes", "source": "generated", "classes": classes,
            "node_features": "constant", "noise": p["noise"], "node_range": [p["min_nodes"], p["max_nodes"]],
            "seed": p["seed"]}
    return save(out_dir, pack(graphs, labels), meta)



def build(spec: dict, out_dir: Path, resources_dir: Path) -> dict:
    """The generator entry point (:mod:`clbench.data.build`)."""
    return build_graph_classes(spec, out_dir, resources_dir)

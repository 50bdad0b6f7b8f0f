"""GraphCL's graph augmentations as ADNCE's graph code applies them (numpy, one graph at a time).

Official code: ``graph/aug.py`` (``drop_nodes``, ``subgraph``, ``permute_edges``, ``mask_nodes``,
the ``random2/3/4`` choices in ``TUDataset_aug.get``) and ``graph/gsimclr_robust.py`` (the training
loop, which then drops the nodes the augmentation left without edges). A training pair is the
original graph and one augmented view of it:

- every graph first gets a self-loop on each node (``get``); the original view keeps them;
- ``node_drop``: ``int(n * rate)`` nodes (rate 0.1) lose all their edges, self-loop included;
- ``subgraph``: a start node and up to ``int(n * keep)`` (keep 0.2) further nodes drawn from its
  neighbourhood; every edge leaving the kept set is removed. ``growth: seed`` draws from the start
  node's neighbours only, as the official ``subgraph`` does (its neighbourhood update discards the
  union it computes); ``growth: frontier`` from the neighbours of the whole kept set (GraphCL's intent);
- ``edge_perturb``: ``int(E / 10)`` edges (of the E, self-loops included) removed; the official
  function draws edges to add but never adds them, so none are added here either;
- ``attr_mask``: ``int(n / 10)`` nodes get features drawn from N(0.5, 0.5^2);
- ``random2`` picks one of {node_drop, subgraph} per graph, ``random3`` adds edge_perturb,
  ``random4`` adds attr_mask.

After the augmentation the view keeps only the nodes with an edge (a surviving self-loop counts),
renumbered, and its self-loops are removed (the training loop of ``gsimclr_robust.py``).

Rates: the official functions' defaults (``aug.py``); ``random2`` passes ``--noise_ratio`` to both
of its choices in the official code, whose default (None) would fail, so its rates are those defaults too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["RECIPES", "GraphAugment", "add_self_loops", "attr_mask", "edge_perturb", "finish_view", "node_drop",
           "subgraph"]

RECIPES = {
    "none": (),
    "node_drop": ("node_drop",),
    "subgraph": ("subgraph",),
    "edge_perturb": ("edge_perturb",),
    "attr_mask": ("attr_mask",),
    "random2": ("node_drop", "subgraph"),
    "random3": ("node_drop", "edge_perturb", "subgraph"),
    "random4": ("node_drop", "edge_perturb", "subgraph", "attr_mask"),
}


def add_self_loops(edge_index: np.ndarray, n: int) -> np.ndarray:
    loops = np.arange(n, dtype=np.int64)
    return np.concatenate([edge_index, np.stack([loops, loops])], axis=1)


def _without_nodes(edge_index: np.ndarray, dropped: np.ndarray, n: int) -> np.ndarray:
    gone = np.zeros(n, dtype=bool)
    gone[dropped] = True
    return edge_index[:, ~(gone[edge_index[0]] | gone[edge_index[1]])]


def node_drop(x, edge_index, rng, rate: float = 0.1):
    """``int(n * rate)`` nodes, drawn without replacement, lose every edge."""
    n = len(x)
    return x, _without_nodes(edge_index, rng.choice(n, int(n * rate), replace=False), n)


def subgraph(x, edge_index, rng, keep: float = 0.2, growth: str = "seed"):
    """A start node plus up to ``int(n * keep)`` nodes of its neighbourhood; the rest lose their edges."""
    n = len(x)
    target = int(n * keep)
    start = int(rng.integers(n))
    kept, kept_set = [start], {start}
    frontier = sorted(set(edge_index[1][edge_index[0] == start].tolist()))  # drawn from uniformly
    in_frontier = set(frontier)
    tries = 0
    while len(kept) <= target and frontier:
        tries += 1
        if tries > n:
            break
        node = frontier[int(rng.integers(len(frontier)))]
        if node in kept_set:
            continue
        kept.append(node)
        kept_set.add(node)
        if growth == "frontier":
            new = [v for v in edge_index[1][edge_index[0] == node].tolist() if v not in in_frontier]
            frontier += new
            in_frontier.update(new)
    dropped = np.setdiff1d(np.arange(n), np.asarray(kept))
    return x, _without_nodes(edge_index, dropped, n)


def edge_perturb(x, edge_index, rng, rate: float = 0.1):
    """``int(E * rate)`` of the E edges removed, drawn without replacement; none added."""
    e = edge_index.shape[1]
    keep = np.sort(rng.choice(e, e - int(e * rate), replace=False))
    return x, edge_index[:, keep]


def attr_mask(x, edge_index, rng, rate: float = 0.1):
    """``int(n * rate)`` nodes' features replaced by draws from N(0.5, 0.5^2)."""
    n = len(x)
    idx = rng.choice(n, int(n * rate), replace=False)
    x = x.copy()
    x[idx] = rng.normal(0.5, 0.5, size=(len(idx), x.shape[1])).astype(x.dtype)
    return x, edge_index


def finish_view(x, edge_index):
    """Keep the nodes with an edge (self-loops count), renumbered; then drop the self-loops."""
    n = len(x)
    present = np.zeros(n, dtype=bool)
    present[edge_index.reshape(-1)] = True
    new_id = np.cumsum(present) - 1
    e = new_id[edge_index]
    return x[present], e[:, e[0] != e[1]]


@dataclass(frozen=True)
class GraphAugment:
    """A recipe of :data:`RECIPES` with its rates: ``(x, edge_index) -> ((x, e) original, (x, e) view)``."""

    recipe: str = "random2"
    node_drop_rate: float = 0.1
    subgraph_keep: float = 0.2
    edge_perturb_rate: float = 0.1
    attr_mask_rate: float = 0.1
    subgraph_growth: str = "seed"

    def __post_init__(self):
        if self.recipe not in RECIPES:
            raise ValueError(f"unknown graph augmentation {self.recipe!r}; known: {', '.join(RECIPES)}")
        if self.subgraph_growth not in ("seed", "frontier"):
            raise ValueError(f"subgraph_growth must be seed or frontier, got {self.subgraph_growth!r}")

    def augment(self, name: str, x, edge_index, rng):
        if name == "node_drop":
            return node_drop(x, edge_index, rng, self.node_drop_rate)
        if name == "subgraph":
            return subgraph(x, edge_index, rng, self.subgraph_keep, self.subgraph_growth)
        if name == "edge_perturb":
            return edge_perturb(x, edge_index, rng, self.edge_perturb_rate)
        if name == "attr_mask":
            return attr_mask(x, edge_index, rng, self.attr_mask_rate)
        raise ValueError(f"unknown augmentation {name!r}")

    def pair(self, x, edge_index, rng: np.random.Generator):
        """The original graph (with self-loops) and one augmented view of it (see the module docstring)."""
        original = (x, add_self_loops(edge_index, len(x)))
        choices = RECIPES[self.recipe]
        if not choices:
            return original, original
        name = choices[int(rng.integers(len(choices)))]
        return original, finish_view(*self.augment(name, *original, rng))

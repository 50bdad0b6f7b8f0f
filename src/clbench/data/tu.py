"""TU datasets (Morris et al. 2020) as packed graph dataset directories (:mod:`clbench.data.graphs`).

Read from the TU text format (``<NAME>_A.txt``, ``_graph_indicator.txt``, ``_graph_labels.txt``,
optional ``_node_labels.txt``) with torch_geometric's reader. ``root:`` names a copy (the folder
holding those files, or ``NAME/`` or ``NAME/raw/`` under it); otherwise ``download: true`` fetches
it with torch_geometric's ``TUDataset`` into ``resources/tu``. Node features are the one-hot node
labels where the dataset has them (continuous node attributes are dropped), else the constant 1,
as the ADNCE / GraphCL code uses them (``node_features: auto``; ``constant`` forces the constant).

Spec keys: ``name`` (e.g. ``MUTAG``), ``root``, ``download``, ``node_features`` (``auto`` | ``constant``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from clbench.data.graphs import save
from clbench.errors import DatasetError

log = logging.getLogger(__name__)

# the ADNCE experiments' TU datasets (any TU name is accepted)
TU_NAMES = ("NCI1", "PROTEINS", "DD", "MUTAG", "COLLAB", "REDDIT-BINARY", "REDDIT-MULTI-5K", "IMDB-BINARY")
ACCEPTED = frozenset({"name", "node_features"})


def tu_raw_dir(root: str | Path, name: str) -> Path | None:
    """The folder under ``root`` that holds ``<name>_A.txt``: ``root``, ``root/name`` or ``root/name/raw``."""
    root = Path(root)
    for folder in (root / name / "raw", root / name, root):
        if (folder / f"{name}_A.txt").exists():
            return folder
    return None


def read_tu(raw_dir: str | Path, name: str, node_features: str = "auto") -> tuple[dict[str, np.ndarray], dict]:
    """Read a TU dataset's text files with torch_geometric's reader into one packed split, plus facts for meta."""
    from clbench.extras import require

    require("graphs", f"the TU dataset {name}")
    from torch_geometric.io import read_tu_data

    data, slices, sizes = read_tu_data(str(raw_dir), name)
    node_ptr = slices["x"].numpy() if "x" in slices and data.x is not None else None
    if node_ptr is None:  # no node labels or attributes: node counts from the graph indicator
        indicator = np.loadtxt(Path(raw_dir) / f"{name}_graph_indicator.txt", dtype=np.int64, ndmin=1)
        node_ptr = np.concatenate([[0], np.cumsum(np.bincount(indicator - indicator.min()))])
    n_labels = int(sizes.get("num_node_labels", 0))
    use_labels = node_features == "auto" and n_labels > 0
    total = int(node_ptr[-1])
    x = data.x[:, -n_labels:].numpy() if use_labels else np.ones((total, 1), np.float32)
    # the label values as the dataset writes them (torch_geometric renumbers them from 0)
    y_raw = np.loadtxt(Path(raw_dir) / f"{name}_graph_labels.txt", dtype=np.int64, ndmin=1)
    values = np.unique(y_raw)
    split = {"x": x.astype(np.float32), "y": np.searchsorted(values, y_raw).astype(np.int64),
             "edge_index": data.edge_index.numpy().astype(np.int64), "node_ptr": node_ptr.astype(np.int64),
             "edge_ptr": slices["edge_index"].numpy().astype(np.int64)}
    facts = {"classes": [str(v) for v in values.tolist()], "node_features": "labels" if use_labels else "constant",
             "num_node_labels": n_labels, "num_node_attributes": int(sizes.get("num_node_attributes", 0))}
    return split, facts


def build(spec: dict, out_dir: Path, resources_dir: Path) -> dict:
    """Read (or, with ``download: true``, fetch) TU dataset ``name`` and write it packed."""
    unknown = sorted(set(spec) - ACCEPTED - {"generator", "source", "root", "download", "seed", "options"})
    unknown += sorted(set(spec.get("options") or {}) - ACCEPTED)
    if unknown:
        raise ValueError(f"tu: unknown spec key(s) {unknown}")
    p = {"node_features": "auto", **{k: v for k, v in spec.items() if v is not None}, **(spec.get("options") or {})}
    name = p.get("name")
    if not name:
        raise ValueError("tu: name is required (e.g. MUTAG)")
    root = Path(p["root"]) if p.get("root") else Path(resources_dir) / "tu"
    raw = tu_raw_dir(root, name)
    if raw is None:
        if p.get("root") or not p.get("download"):
            raise DatasetError(f"TU dataset {name}: no {name}_A.txt under {root} (nor {root / name}, "
                               f"{root / name / 'raw'}); set download: true, or root: to a copy")
        from torch_geometric.datasets import TUDataset

        log.info("downloading TU dataset %s into %s", name, root)
        TUDataset(str(root), name)
        raw = tu_raw_dir(root, name)
        if raw is None:
            raise DatasetError(f"TU dataset {name}: the download left no {name}_A.txt under {root}")
    split, facts = read_tu(raw, name, p["node_features"])
    meta = {"name": name, "generator": "tu", "source": f"TU datasets ({raw})", **facts, "seed": p.get("seed", 0)}
    return save(out_dir, split, meta)


"""The on-disk format every dataset is materialised in.

A dataset directory holds one ``{split}.npz`` per split (``train``, ``val``, ``test``) and a
``meta.json``. Each split archive has:

- ``x``: uint8 images, shape ``[N, C, H, W]``;
- ``y``: int64 class labels, shape ``[N]``;
- ``factor_<name>``: int64 per-sample factors (e.g. ``factor_style``), shape ``[N]``;
- optionally ``x2`` (a paired second view, same shape as ``x``) and ``id`` (int64 sample ids).

``meta.json`` records: ``name``, ``generator``, ``source``, ``sizes`` (per split), ``image_shape``,
``classes`` (class names), ``factors`` (factor name -> value names), ``recipe`` (the split recipe),
``seed``, ``hash`` (sha256 over the split arrays) and anything generator-specific.
Files are written atomically, ``meta.json`` last, so a directory whose ``meta.json`` exists is complete.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from clbench.io import atomic_path, read_json, write_json

SPLITS = ("train", "val", "test")


class DatasetError(RuntimeError):
    """A dataset is missing, partial or corrupt; the message says where and how to fix it."""


def content_hash(splits: Mapping[str, Mapping[str, np.ndarray]]) -> str:
    h = hashlib.sha256()
    for split in sorted(splits):
        for key in sorted(splits[split]):
            arr = np.ascontiguousarray(splits[split][key])
            h.update(f"{split}/{key}/{arr.dtype}/{arr.shape}".encode())
            h.update(arr.tobytes())
    return h.hexdigest()


def save(path: str | os.PathLike, splits: Mapping[str, Mapping[str, np.ndarray]], meta: dict[str, Any]) -> dict:
    """Write ``splits`` (split -> arrays) and ``meta`` into ``path``; returns the full meta."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for split, arrays in splits.items():
        if "x" not in arrays or "y" not in arrays:
            raise ValueError(f"split {split!r} needs arrays 'x' and 'y', got {sorted(arrays)}")
        with atomic_path(path / f"{split}.npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
    first = next(iter(splits.values()))
    full = {
        **meta,
        "sizes": {s: int(len(a["y"])) for s, a in splits.items()},
        "image_shape": list(first["x"].shape[1:]),
        "hash": content_hash(splits),
    }
    write_json(path / "meta.json", full)
    return full


def load_meta(path: str | os.PathLike) -> dict:
    meta_path = Path(path) / "meta.json"
    if not meta_path.exists():
        raise DatasetError(
            f"dataset directory {Path(path)} has no meta.json: it was never generated or its "
            f"generation was interrupted. Run `snakemake {meta_path}` to (re)build it."
        )
    return read_json(meta_path)


def load(path: str | os.PathLike, split: str) -> dict[str, np.ndarray]:
    """Load one split as a dict of arrays; a missing or corrupt file raises :class:`DatasetError`."""
    file = Path(path) / f"{split}.npz"
    if not file.exists():
        raise DatasetError(
            f"{file} is missing; expected a dataset directory with {', '.join(s + '.npz' for s in SPLITS)} "
            f"and meta.json. Rebuild it with `snakemake {Path(path) / 'meta.json'}`."
        )
    try:
        with np.load(file, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as e:  # zipfile.BadZipFile, ValueError, EOFError ...
        raise DatasetError(f"{file} is unreadable or truncated ({e}); delete it and rebuild the dataset.") from e

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
import json
import os
import time
import zipfile
from zlib import error as zlib_error
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from clbench.errors import DatasetError
from clbench.io import atomic_path, read_json, write_json

__all__ = ["DatasetError", "LazyImages", "SPLITS", "content_hash", "load", "load_meta", "record_verified", "save",
           "verify"]

SPLITS = ("train", "val", "test")


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
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # zipfile.BadZipFile, ValueError, EOFError ...
        raise DatasetError(f"{file} is unreadable or truncated ({e}); delete it and rebuild the dataset.") from e
    if "x" not in arrays and "path" in arrays:
        arrays["x"] = LazyImages.from_meta(load_meta(path), arrays["path"])
    return arrays


class LazyImages:
    """The ``x`` of a path-index split (ImageNet, Camelyon17 with ``storage: paths``), decoded on demand.

    It indexes like the uint8 ``[N, C, H, W]`` array it stands for: ``len``, ``shape``, ``x[i]``,
    ``x[a:b]`` and ``x[index_array]`` decode just those images (centre crop, resize to the dataset's
    ``image_shape``), so batch-wise consumers (embedding, k-NN monitor, data loaders) stream a
    dataset that would not fit in memory. ``decode(i, size=None)`` gives the full-resolution image
    for augmentations that crop first (random resized crop). Picklable, for DataLoader workers.
    """

    def __init__(self, root: str | os.PathLike, paths, channels: int, size: int, workers: int = 4,
                 fit: str = "centre_square"):
        self.root = Path(root)
        self.paths = np.asarray(paths, dtype=np.str_)
        self.channels, self.size, self.workers = int(channels), int(size), int(workers)
        self.fit = fit  # clbench.data.images.FITS: how a file is fitted to the square (meta "image_fit")

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any], paths) -> "LazyImages":
        c, s = int(meta["image_shape"][0]), int(meta["image_shape"][-1])
        return cls(meta["image_root"], paths, c, s, fit=meta.get("image_fit", "centre_square"))

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.paths), self.channels, self.size, self.size)

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __len__(self) -> int:
        return len(self.paths)

    def decode(self, i: int, size: int | None | str = "dataset") -> np.ndarray:
        """One image as uint8 CHW; ``size=None`` keeps the file's resolution."""
        from clbench.data.images import load_image

        try:
            return load_image(self.root / self.paths[i], self.size if size == "dataset" else size, self.channels,
                              self.fit)
        except Exception as e:  # FileNotFoundError, PIL.UnidentifiedImageError, OSError (truncated)
            raise DatasetError(f"cannot read image {self.root / self.paths[i]}: {e}") from e

    def __getitem__(self, index) -> np.ndarray:
        from clbench.data.images import load_images

        if isinstance(index, (int, np.integer)):
            return self.decode(int(index))
        paths = self.paths[index]
        return load_images([self.root / p for p in paths], self.size, self.channels, self.workers,
                           fit=self.fit)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)


def _rebuild_hint(path: Path, broken: Path) -> str:
    return f"Delete {broken} (or the whole directory {path}) and run snakemake again to rebuild it."


def verify(path: str | os.PathLike, *, record: bool = True) -> list[Path]:
    """Check that an existing dataset directory is intact before any job reads it.

    Meant to run before any job (the workflow calls it for every dataset directory it uses), so that
    a truncated or damaged file fails once, clearly, instead of inside every job that reads it. Checks
    that ``meta.json`` parses, that each split archive it lists opens as a zip holding the expected
    members (``y`` and ``x``, or ``path`` for path-index datasets), and that every member's bytes match
    the CRC-32 checksum the zip records for it (:func:`_check_crcs`: damaged bytes inside an array are
    found here, not at load). Fast at paper scale: a file is read once, at the first check after it
    was written, and again only when its size or modification time changed (``.verified.json`` beside it).
    Files that are absent are not errors: the workflow rebuilds a directory with a missing output (a
    directory without ``meta.json`` is an interrupted build). Raises :class:`DatasetError` naming the
    file and how to fix it. Returns the files it read; they are recorded as verified (``record``), or left
    to :func:`record_verified`, so that a refused run writes nothing.
    """
    path = Path(path)
    meta_path = path / "meta.json"
    try:
        with open(meta_path) as f:
            meta = json.load(f)
        if not isinstance(meta, dict):
            raise ValueError(f"expected a JSON object, got {type(meta).__name__}")
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as e:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise DatasetError(f"{meta_path} is unreadable ({e}). {_rebuild_hint(path, meta_path)}") from e
    arrays = {"path", "y"} if meta.get("storage") == "paths" else {"x", "y"}
    read = []
    for split in meta.get("sizes") or SPLITS:
        file = path / f"{split}.npz"
        try:
            with zipfile.ZipFile(file) as z:
                members = {name.removesuffix(".npy") for name in z.namelist()}
        except FileNotFoundError:
            continue
        except (OSError, zipfile.BadZipFile, ValueError) as e:
            raise DatasetError(f"{file} is truncated or unreadable ({e}). {_rebuild_hint(path, file)}") from e
        if not arrays <= members:
            raise DatasetError(f"{file} lacks the arrays {sorted(arrays - members)} (it has {sorted(members)}). "
                               f"{_rebuild_hint(path, file)}")
        if _check_crcs(path, file):
            read.append(file)
    if record:
        record_verified(read)
    return read


VERIFIED = ".verified.json"  # file name -> [size, mtime_ns, when verified (ns)] of split archives found intact
# A file modified within this long of its verification may share its recorded modification time (file
# systems stamp times coarsely): only entries verified later than this after the file's mtime are trusted.
RACY_NS = 2 * 10**9


def _read_verified(path: Path) -> dict:
    try:
        verified = read_json(path / VERIFIED)
        return verified if isinstance(verified, dict) else {}
    except (OSError, ValueError):
        return {}


def _unchanged_since_verified(path: Path, file: Path) -> bool:
    entry = _read_verified(path).get(file.name)
    st = file.stat()
    return (isinstance(entry, list) and len(entry) == 3 and entry[:2] == [st.st_size, st.st_mtime_ns]
            and entry[2] - st.st_mtime_ns > RACY_NS)


def record_verified(files: list[Path]) -> None:
    """Remember ``files``, found intact by :func:`verify`, at their current size and modification time."""
    for file in files:
        st = file.stat()
        verified = _read_verified(file.parent)
        verified[file.name] = [st.st_size, st.st_mtime_ns, time.time_ns()]
        try:
            write_json(file.parent / VERIFIED, verified)
        except OSError:  # a read-only copy: checked again next time
            pass


def _check_crcs(path: Path, file: Path) -> bool:
    """Every member of zip ``file`` against its recorded CRC-32, unless the file is unchanged since last verified;
    whether it was read."""
    if _unchanged_since_verified(path, file):
        return False
    try:
        with zipfile.ZipFile(file) as z:
            bad = z.testzip()  # reads every member, comparing its CRC-32
    except (OSError, zipfile.BadZipFile, ValueError, EOFError, zlib_error) as e:
        raise DatasetError(f"{file} is damaged ({e}). {_rebuild_hint(path, file)}") from e
    if bad is not None:
        raise DatasetError(f"{file} is damaged: its array {bad.removesuffix('.npy')} does not match the checksum "
                           f"recorded when it was written. {_rebuild_hint(path, file)}")
    return True

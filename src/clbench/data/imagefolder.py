"""ImageNet-100 / ImageNet-1K (or any ImageFolder tree) as a dataset directory, plus the helpers
every *real* source shares (root resolution, atomic downloads, caps, image decoding, path indexes).

Source layout (torchvision ``ImageFolder`` / the usual ImageNet layout, validation images already
moved into class folders by the standard ``valprep.sh``)::

    <root>/train/<wnid>/<image>.JPEG      -> our train (and val, carved off with val_fraction)
    <root>/val/<wnid>/<image>.JPEG        -> our test (the official ImageNet validation set)

A *flat* tree ``<root>/<class>/<image>`` (no ``train``/``val`` folders) is also accepted; it is split
at random into train/val/test with ``val_fraction`` and ``test_fraction``. Image files are the
extensions torchvision's ``ImageFolder`` reads (.jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp).
Class indices follow ImageFolder: the selected class folder names, sorted.

ImageNet cannot be downloaded automatically (its licence requires a manual download from
image-net.org): ``download: true`` raises an error that says so; ``root`` is required.

Spec keys (``generator: imagefolder``; keys may also sit under ``options``):

- ``name``: ``imagenet100`` (default), ``imagenet1k``/``imagenet`` or any label for another tree.
- ``root`` (required): the folder above.
- ``classes``: ``imagenet100`` (the CMC list of 100 wnids shipped as ``imagenet100.txt``; the default
  when name is imagenet100), ``all`` (every class folder; the default otherwise), a list of folder
  names, or the path of a text file with one folder name per line.
- ``storage``: ``paths`` (default) or ``array``. See below.
- ``image_size``: side of the square images (default 224). ``array`` storage decodes every image,
  centre-crops it to a square and resizes it to this size; ``paths`` storage only records it in
  ``meta.json`` as the size consumers should produce.
- ``n_train``, ``n_val``, ``n_test``: caps (random, seeded subsets; ``n_val`` is the exact number of
  images carved off the training folder when given).
- ``val_fraction`` (default 0.1): share of the training folder held out as val when ``n_val`` is unset.
- ``test_fraction`` (default 0.2): flat layout only.
- ``seed`` (default 0), ``workers`` (decoding threads for ``array`` storage, default 4).

Path-index storage (``storage: paths``, the ImageNet default: 1.28M images do not fit in npz).
The dataset directory has the same file names as :mod:`clbench.data.dataset_dir` (``{split}.npz``
and ``meta.json``, written atomically, meta last) but each split archive holds, instead of ``x``:

- ``path``: unicode array of image paths relative to ``meta["image_root"]`` (an absolute path);
- ``y``, ``id`` and ``factor_*`` exactly as in the array format.

``meta.json`` then has ``"storage": "paths"``, ``image_root`` and ``image_shape`` ([3, S, S], the
intended decoded size); its ``hash`` covers the index arrays (paths, labels, ids), not the image
bytes. :func:`clbench.data.dataset_dir.load` gives such a split's ``x`` as lazily decoded
:class:`~clbench.data.dataset_dir.LazyImages` (what the training and evaluation loaders stream);
:func:`load_split` decodes it all at once.
Array-format directories carry ``"storage": "array"``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from clbench.data import dataset_dir
from clbench.data.dataset_dir import DatasetError
from clbench.data.images import load_image, load_images, resize_batch, to_channels  # noqa: F401  (shared helpers)
from clbench.io import atomic_path, write_json

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

# keys every dataset spec may carry (the config schema's common keys)
COMMON_KEYS = frozenset({"generator", "source", "name", "root", "download", "seed", "options"})

# ---------------------------------------------------------------------------------------------
# Shared helpers for the real sources (torchvision_sources, pacs, camelyon use them too)
# ---------------------------------------------------------------------------------------------


def merged_spec(spec: Mapping[str, Any], accepted: Iterable[str], generator: str) -> dict:
    """Return ``spec`` with its ``options`` folded in (top-level keys win); reject unknown keys."""
    spec = dict(spec)
    options = spec.pop("options", None) or {}
    if not isinstance(options, Mapping):
        raise ValueError(f"dataset spec for {generator!r}: 'options' must be a mapping, got {options!r}")
    out = {**options, **spec}
    allowed = set(accepted) | COMMON_KEYS
    unknown = sorted(set(out) - allowed)
    if unknown:
        raise ValueError(
            f"dataset spec for {generator!r}: unknown key(s) {unknown}; accepted keys are {sorted(allowed - {'options'})}"
        )
    return out


def dataset_error(
    what: str,
    path: str | os.PathLike,
    layout: str,
    download_hint: str,
    reason: str | None = None,
) -> DatasetError:
    """One clear error: which file, what layout was expected, and how to download."""
    head = f"{what}: {path} is {'missing' if reason is None else 'unreadable or corrupt (' + reason + ')'}."
    return DatasetError(f"{head}\nExpected layout:\n{layout.rstrip()}\n{download_hint}")


def download_hint(name: str, resources_dir: Path, downloadable: bool = True) -> str:
    target = Path(resources_dir) / name
    if not downloadable:
        return (
            "This dataset cannot be downloaded automatically; obtain it manually and set `root:` in the "
            "dataset spec to the folder with this layout."
        )
    return (
        f"Fix: set `download: true` (and no `root:`) in the dataset spec to download it into {target}, "
        f"or set `root:` to an existing copy in this layout (nothing is downloaded then). "
        f"Delete a corrupt copy before re-downloading."
    )


def download_atomically(target: Path, fetch: Callable[[Path], None]) -> Path:
    """Run ``fetch(tmp_dir)`` in a temporary sibling of ``target``, then rename it onto ``target``.

    A failed download leaves no ``target`` (its hidden ``.partial`` folder is removed; a job killed
    outright leaves only that hidden folder), so a later rule never trusts a half-written dataset.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial"))
    try:
        fetch(tmp)
        if target.exists():  # an incomplete copy (or a concurrent job's result): swap it out
            stale = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".stale"))
            os.replace(target, stale / "old")
            os.replace(tmp, target)
            shutil.rmtree(stale, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def resolve_root(
    spec: Mapping[str, Any],
    resources_dir: Path,
    name: str,
    check: Callable[[Path], DatasetError | None],
    fetch: Callable[[Path], None] | None,
) -> Path:
    """Where the data lives: ``spec['root']`` (never downloaded into), else ``resources_dir/name``,
    downloaded there atomically when ``spec['download']`` is true. ``check(root)`` returns the
    :class:`DatasetError` describing the first missing/corrupt file, or None when the copy is usable.
    """
    if spec.get("root"):
        root = Path(os.path.expanduser(str(spec["root"])))
        err = check(root)
        if err is not None:
            raise err
        return root
    root = Path(resources_dir) / name
    err = check(root)
    if err is None:
        return root
    if not spec.get("download", False):
        raise err
    if fetch is None:
        raise err
    download_atomically(root, fetch)
    err = check(root)
    if err is not None:
        raise DatasetError(f"the download into {root} finished but the result is unusable:\n{err}")
    return root


def rng_for(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *[int(s) for s in stream]])


def cap(indices: np.ndarray, n: int | None, rng: np.random.Generator) -> np.ndarray:
    """A random subset of at most ``n`` of ``indices``, kept in their original order."""
    indices = np.asarray(indices, dtype=np.int64)
    if n is None or n >= len(indices):
        return indices
    if n < 0:
        raise ValueError(f"caps must be >= 0, got {n}")
    pick = np.sort(rng.choice(len(indices), size=int(n), replace=False))
    return indices[pick]


def carve(
    indices: np.ndarray, n_val: int | None, val_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``indices`` into (rest, held-out): ``n_val`` items if given, else ``val_fraction`` of them."""
    indices = np.asarray(indices, dtype=np.int64)
    if n_val is None:
        if not 0.0 <= float(val_fraction) < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        n_val = int(round(float(val_fraction) * len(indices)))
    n_val = min(int(n_val), len(indices))
    perm = rng.permutation(len(indices))
    held = np.sort(indices[perm[:n_val]])
    rest = np.sort(indices[perm[n_val:]])
    return rest, held


def split_arrays(x: np.ndarray | None, y: np.ndarray, ids: np.ndarray, factors: Mapping[str, np.ndarray], idx) -> dict:
    out = {"y": np.asarray(y)[idx].astype(np.int64), "id": np.asarray(ids)[idx].astype(np.int64)}
    if x is not None:
        out["x"] = x[idx]
    for k, v in factors.items():
        out[f"factor_{k}"] = np.asarray(v)[idx].astype(np.int64)
    return out


def save_paths(path: str | os.PathLike, splits: Mapping[str, Mapping[str, np.ndarray]], meta: dict) -> dict:
    """Write a path-index dataset directory (see the module docstring); returns the full meta."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for split, arrays in splits.items():
        if "path" not in arrays or "y" not in arrays:
            raise ValueError(f"split {split!r} needs arrays 'path' and 'y', got {sorted(arrays)}")
        arrays = {k: (np.asarray(v, dtype=np.str_) if k == "path" else v) for k, v in arrays.items()}
        with atomic_path(path / f"{split}.npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
    full = {
        **meta,
        "storage": "paths",
        "sizes": {s: int(len(a["y"])) for s, a in splits.items()},
        "hash": dataset_dir.content_hash(
            {s: {k: np.asarray(v, dtype=np.str_) if k == "path" else v for k, v in a.items()} for s, a in splits.items()}
        ),
    }
    write_json(path / "meta.json", full)
    return full


def save(path: Path, splits: Mapping[str, Mapping[str, np.ndarray]], meta: dict) -> dict:
    """Save array splits (dataset_dir format) or path splits (index format), by what they hold."""
    first = next(iter(splits.values()))
    if "x" in first:
        return dataset_dir.save(path, splits, {**meta, "storage": "array"})
    return save_paths(path, splits, meta)


def load_split(path: str | os.PathLike, split: str, decode: bool = True, workers: int = 4) -> dict[str, np.ndarray]:
    """Load a split of either storage format; path-index splits get ``x`` decoded when ``decode``
    (else no ``x``; :func:`clbench.data.dataset_dir.load` gives it as lazily decoded images)."""
    arrays = dataset_dir.load(path, split)
    if isinstance(arrays.get("x"), dataset_dir.LazyImages):
        lazy = arrays.pop("x")
        if decode:
            lazy.workers = workers
            arrays["x"] = lazy[:]
    return arrays


# ---------------------------------------------------------------------------------------------
# ImageFolder / ImageNet
# ---------------------------------------------------------------------------------------------

ACCEPTED = {
    "classes", "storage", "image_size", "n_train", "n_val", "n_test",
    "val_fraction", "test_fraction", "workers",
}

IMAGENET_LAYOUT = """\
  <root>/train/<wnid>/*.JPEG   e.g. train/n01558993/n01558993_10006.JPEG
  <root>/val/<wnid>/*.JPEG     validation images sorted into class folders (ImageNet's valprep.sh)
  (or a flat <root>/<class>/<image> tree, split at random)"""


def imagenet100_classes() -> list[str]:
    """The standard ImageNet-100 class list (CMC, Tian et al. 2019): 100 wnids."""
    text = (Path(__file__).with_name("imagenet100.txt")).read_text()
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS)


def _class_dirs(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def _scan(folder: Path, classes: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Relative file paths (``<class>/<file>``, sorted) and class indices under ``folder``."""
    files: list[str] = []
    labels: list[int] = []
    for ci, cls in enumerate(classes):
        d = folder / cls
        names = sorted(
            os.path.relpath(os.path.join(dp, f), folder)
            for dp, _, fs in os.walk(d, followlinks=True)
            for f in fs
            if is_image_file(f)
        )
        files += names
        labels += [ci] * len(names)
    return files, np.asarray(labels, dtype=np.int64)


def _select_classes(spec: Mapping[str, Any], name: str, available: Sequence[str], where: Path, hint: str) -> list[str]:
    sel = spec.get("classes")
    if sel is None:
        sel = "imagenet100" if name == "imagenet100" else "all"
    if sel == "all":
        wanted = list(available)
    elif sel == "imagenet100":
        wanted = imagenet100_classes()
    elif isinstance(sel, str):
        p = Path(os.path.expanduser(sel))
        if not p.exists():
            raise ValueError(f"classes: {sel!r} is neither 'all', 'imagenet100' nor an existing class-list file")
        wanted = [ln.strip().split()[0] for ln in p.read_text().splitlines() if ln.strip()]
    else:
        wanted = [str(c) for c in sel]
    missing = [c for c in wanted if c not in set(available)]
    if missing:
        raise dataset_error(
            f"ImageFolder class folder(s) {missing[:5]}{'...' if len(missing) > 5 else ''} ({len(missing)} missing)",
            where / missing[0],
            IMAGENET_LAYOUT,
            hint,
        )
    return sorted(wanted)


def build(spec: dict, out_dir: Path, resources_dir: Path) -> dict:
    spec = merged_spec(spec, ACCEPTED, "imagefolder")
    name = str(spec.get("name") or "imagenet100").lower()
    seed = int(spec.get("seed", 0))
    hint = download_hint(name, resources_dir, downloadable=False)
    if spec.get("download"):
        raise DatasetError(
            f"{name}: ImageNet cannot be downloaded automatically (licence). Download ILSVRC2012 from "
            f"https://image-net.org, arrange it as\n{IMAGENET_LAYOUT}\nand set `root:` to that folder "
            f"(and `download: false`)."
        )
    if not spec.get("root"):
        raise DatasetError(f"{name}: `root:` is required for generator imagefolder.\nExpected layout:\n{IMAGENET_LAYOUT}\n{hint}")
    root = Path(os.path.expanduser(str(spec["root"]))).resolve()
    if not root.is_dir():
        raise dataset_error(f"{name} image folder", root, IMAGENET_LAYOUT, hint)

    storage = spec.get("storage", "paths")
    if storage not in ("paths", "array"):
        raise ValueError(f"storage must be 'paths' or 'array', got {storage!r}")
    size = int(spec.get("image_size", 224))
    val_fraction = float(spec.get("val_fraction", 0.1))

    split_layout = (root / "train").is_dir()
    if split_layout:
        test_dir = root / "val" if (root / "val").is_dir() else root / "test"
        if not test_dir.is_dir():
            raise dataset_error(f"{name} validation folder", root / "val", IMAGENET_LAYOUT, hint)
        classes = _select_classes(spec, name, _class_dirs(root / "train"), root / "train", hint)
        _select_classes({"classes": classes}, name, _class_dirs(test_dir), test_dir, hint)
        tr_files, tr_y = _scan(root / "train", classes)
        te_files, te_y = _scan(test_dir, classes)
        files = [f"train/{f}" for f in tr_files] + [f"{test_dir.name}/{f}" for f in te_files]
        y = np.concatenate([tr_y, te_y])
        train_pool = np.arange(len(tr_files))
        test_pool = np.arange(len(tr_files), len(files))
        rest, val_idx = carve(train_pool, spec.get("n_val"), val_fraction, rng_for(seed, 1))
        id_offsets = {"train": 0, "test": len(tr_files)}
    else:
        classes = _select_classes(spec, name, _class_dirs(root), root, hint)
        files, y = _scan(root, classes)
        pool = np.arange(len(files))
        rest0, test_pool = carve(pool, None, float(spec.get("test_fraction", 0.2)), rng_for(seed, 3))
        rest, val_idx = carve(rest0, spec.get("n_val"), val_fraction, rng_for(seed, 1))
        id_offsets = {"all": 0}
    for what, arr in (("train", rest), ("test", test_pool)):
        if len(arr) == 0:
            raise dataset_error(f"{name}: no images for the {what} split", root, IMAGENET_LAYOUT, hint)
    idx = {
        "train": cap(rest, spec.get("n_train"), rng_for(seed, 2)),
        "val": val_idx,
        "test": cap(test_pool, spec.get("n_test"), rng_for(seed, 4)),
    }
    ids = np.arange(len(files), dtype=np.int64)
    files_arr = np.asarray(files, dtype=np.str_)

    meta = {
        "name": name,
        "generator": "imagefolder",
        "source": f"imagefolder:{root}",
        "root": str(root),
        "classes": list(classes),
        "factors": {},
        "recipe": {
            "kind": "official_val_as_test" if split_layout else "random",
            "val_fraction": val_fraction if spec.get("n_val") is None else None,
            "n_val": spec.get("n_val"),
            "test_fraction": None if split_layout else float(spec.get("test_fraction", 0.2)),
            "caps": {k: spec.get(k) for k in ("n_train", "n_test")},
        },
        "seed": seed,
        "id_offsets": id_offsets,
    }
    if storage == "paths":
        splits = {}
        for s, ix in idx.items():
            d = split_arrays(None, y, ids, {}, ix)
            d["path"] = files_arr[ix]
            splits[s] = d
        return save_paths(out_dir, splits, {**meta, "image_root": str(root), "image_shape": [3, size, size]})

    def err(p: Path, e: Exception) -> DatasetError:
        return dataset_error(f"{name} image", p, IMAGENET_LAYOUT, hint, reason=str(e))

    workers = int(spec.get("workers", 4))
    splits = {}
    for s, ix in idx.items():
        splits[s] = split_arrays(None, y, ids, {}, ix)
        splits[s]["x"] = load_images([root / f for f in files_arr[ix]], size, 3, workers, err)
    return dataset_dir.save(out_dir, splits, {**meta, "storage": "array"})

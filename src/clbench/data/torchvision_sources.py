"""MNIST, CIFAR-10, CIFAR-100, STL-10 and CelebA in torchvision's on-disk layouts.

Loading reads torchvision's files directly with numpy/Pillow (IDX files, CIFAR pickle batches,
STL-10 binaries, CelebA's text lists and JPEGs), so building a dataset never imports torch and
tiny copies in the same layout (the tests' fixtures) go through exactly the same code. Downloading
uses torchvision's own dataset classes (``download=True``; they verify the archives' MD5 sums) in a
temporary folder that is renamed to ``<resources_dir>/<name>`` only once complete.

:func:`read_idx`, :func:`load_mnist` and :func:`load_stl10` are the project's only readers of the
MNIST and STL-10 files: the synthetic generators (:func:`clbench.data.embedded.load_mnist`,
:func:`clbench.data.mnist_on_stl.load_stl10`) call them too, with their own error hints.

Expected layout under ``root`` (torchvision's ``root`` argument)::

    mnist     MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]   (all four files;
              also accepted in <root>/raw/ or <root>/ itself)
    cifar10   cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}
    cifar100  cifar-100-python/{train, test, meta}
    stl10     stl10_binary/{train_X.bin, train_y.bin, test_X.bin, test_y.bin, class_names.txt}
              (+ unlabeled_X.bin with ``unlabeled: true``; ``root`` may be stl10_binary/ itself)
    celeba    celeba/{img_align_celeba/*.jpg, list_attr_celeba.txt, list_eval_partition.txt}

Splits and factors:

- mnist / cifar10 / cifar100 / stl10: ``test`` is the official test set; ``val`` is carved off the
  official training set (``n_val`` images, else ``val_fraction`` of it); ``train`` is the rest.
  cifar100 adds ``factor_coarse`` (the 20 superclasses). stl10 with ``unlabeled: true`` adds a
  fourth split ``unlabeled`` (the 100,000 unlabelled images, ``y = -1``) and
  ``meta["pretrain_splits"] = ["train", "unlabeled"]`` (STL-10's "train+unlabeled" for pretraining).
- celeba: the official train / valid / test partition (``list_eval_partition.txt``). Content label
  ``y`` = gender x smiling (``2 * Male + Smiling``: female_not_smiling, female_smiling,
  male_not_smiling, male_smiling), as CLEAR uses it; style ``factor_hair`` = hair colour (black,
  blond, brown, gray); also ``factor_gender`` and ``factor_smiling``. By default only images with
  exactly one of the four hair-colour attributes are kept (``hair: exclusive``); ``hair: official`` keeps,
  as the official CLEAR code, images with some hair colour that are not blurry (several: the first of
  black, blond, brown, gray); ``hair: all`` keeps every image and adds the value ``other`` (none or
  several). Images are centre-cropped to a square and resized to ``image_size`` (default 64).
  ``recipe: ood_k`` (``k`` 1..3, ``ood_design`` random | cyclic) is CLEAR's CelebA OOD-k: for each of
  the 4 classes ``k`` hair colours are seen; the official training partition's seen pairs give
  ``train`` and ``val`` (15%), its unseen pairs ``test``.

Every split carries ``id``: ``meta["id_offsets"][official_split] + index in that official split``,
so ids are unique across splits and map back to the source files (e.g. to CIFAR-10-C rows).

Spec keys (``generator: torchvision``; keys may also sit under ``options``):

- ``name`` (required): mnist, cifar10, cifar100, stl10, celeba.
- ``root``: an existing copy in the layout above; nothing is downloaded then.
- ``download`` (default false): without ``root``, download into ``<resources_dir>/<name>``
  (reused when already there).
- ``image_size``: square output size (default: native 28 / 32 / 32 / 96; celeba 64).
- ``channels``: 1 or 3 (default: native; MNIST is 1).
- ``n_train``, ``n_val``, ``n_test``: caps (seeded random subsets). For carved val, ``n_val`` is the
  number of held-out training images; for CelebA's official val it is a cap.
- ``val_fraction`` (default 0.1): share of the training set carved off as val when ``n_val`` is unset
  (ignored for celeba).
- ``unlabeled`` (stl10, default false), ``n_unlabeled`` (cap on it).
- ``hair`` (celeba): ``exclusive`` (default), ``official`` or ``all``; ``recipe`` (celeba):
  ``official_partition`` (default) or ``ood_k``, with ``k`` and ``ood_design``.
- ``seed`` (default 0), ``workers`` (celeba JPEG decoding threads, default 4).
"""

from __future__ import annotations

import gzip
import os
import pickle
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np

from clbench.data import dataset_dir
from clbench.data.dataset_dir import DatasetError
from clbench.data.ood_split import seen_styles
from clbench.data.imagefolder import (
    cap,
    carve,
    dataset_error,
    download_hint,
    load_images,
    merged_spec,
    resize_batch,
    resolve_root,
    rng_for,
    split_arrays,
    to_channels,
)

SOURCES = ("mnist", "cifar10", "cifar100", "stl10", "celeba")

ACCEPTED = {
    "image_size", "channels", "n_train", "n_val", "n_test", "val_fraction",
    "unlabeled", "n_unlabeled", "hair", "workers", "recipe", "k", "ood_design",
}

LAYOUTS = {
    "mnist": "  <root>/MNIST/raw/train-images-idx3-ubyte[.gz]\n"
    "  <root>/MNIST/raw/train-labels-idx1-ubyte[.gz]\n"
    "  <root>/MNIST/raw/t10k-images-idx3-ubyte[.gz]\n"
    "  <root>/MNIST/raw/t10k-labels-idx1-ubyte[.gz]   (torchvision.datasets.MNIST; all four files)",
    "cifar10": "  <root>/cifar-10-batches-py/{data_batch_1..data_batch_5, test_batch, batches.meta}"
    "   (torchvision.datasets.CIFAR10)",
    "cifar100": "  <root>/cifar-100-python/{train, test, meta}   (torchvision.datasets.CIFAR100)",
    "stl10": "  <root>/stl10_binary/{train_X.bin, train_y.bin, test_X.bin, test_y.bin, class_names.txt}\n"
    "  <root>/stl10_binary/unlabeled_X.bin   (only with `unlabeled: true`)   (torchvision.datasets.STL10)",
    "celeba": "  <root>/celeba/img_align_celeba/{000001.jpg, ...}\n"
    "  <root>/celeba/list_attr_celeba.txt\n"
    "  <root>/celeba/list_eval_partition.txt   (torchvision.datasets.CelebA)",
}

TITLES = {"mnist": "MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "stl10": "STL-10", "celeba": "CelebA"}

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CIFAR10_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
STL_SIDE = 96
HAIR = ("black", "blond", "brown", "gray")
HAIR_ATTRS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")
CELEBA_CLASSES = ("female_not_smiling", "female_smiling", "male_not_smiling", "male_smiling")


class _Ctx:
    """What an error message needs: the dataset, its layout and the download hint (by default the
    hint for ``download: true`` into ``<resources_dir>/<name>``; callers with other download
    semantics pass their own ``hint``, and ``layout`` to show a different expected layout)."""

    def __init__(self, name: str, resources_dir: Path = Path("resources"), hint: str | None = None,
                 layout: str | None = None):
        self.name = name
        self.hint = hint if hint is not None else download_hint(name, resources_dir)
        self.layout = layout if layout is not None else LAYOUTS[name]

    def missing(self, path: Path) -> DatasetError:
        return dataset_error(f"{TITLES[self.name]} not found", path, self.layout, self.hint)

    def corrupt(self, path: Path, reason: str) -> DatasetError:
        return dataset_error(f"{TITLES[self.name]} file", path, self.layout, self.hint, reason=reason)


# --------------------------------------------------------------------------------------------- MNIST


def _mnist_raw(root: Path) -> Path:
    """The folder holding the IDX files: ``<root>/MNIST/raw`` (torchvision), ``<root>/raw`` or ``root``."""
    for cand in (root / "MNIST" / "raw", root / "raw", root):
        if any((cand / f).exists() or (cand / (f + ".gz")).exists() for pair in MNIST_FILES.values() for f in pair):
            return cand
    return root / "MNIST" / "raw"


def _find(raw: Path, stem: str) -> Path | None:
    for p in (raw / stem, raw / (stem + ".gz")):
        if p.exists():
            return p
    return None


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX (LeCun "SN3") file of unsigned bytes, plain or gzipped, into a numpy array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError("not an IDX file (bad magic number)")
    dtype_code, ndim = data[2], data[3]
    if dtype_code != 0x08:
        raise ValueError(f"IDX element type 0x{dtype_code:02x} is not unsigned byte")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError("truncated IDX header")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    n = int(np.prod(dims)) if dims else 0
    if len(data) - header != n:
        raise ValueError(f"expected {n} bytes of data for shape {dims}, found {len(data) - header} (truncated?)")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _check_mnist(root: Path, ctx: _Ctx, splits: tuple[str, ...] = ("train", "test")) -> DatasetError | None:
    raw = _mnist_raw(root)
    for split in splits:
        for stem in MNIST_FILES[split]:
            if _find(raw, stem) is None:
                return ctx.missing(raw / (stem + ".gz"))
    return None


def load_mnist(root: str | os.PathLike, split: str, _ctx: _Ctx | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Official MNIST ``split`` ("train" or "test") as uint8 [N, 1, 28, 28] images and int64 labels."""
    ctx = _ctx or _Ctx("mnist", Path("resources"))
    raw = _mnist_raw(Path(root))
    out = []
    for stem in MNIST_FILES[split]:
        p = _find(raw, stem)
        if p is None:
            raise ctx.missing(raw / (stem + ".gz"))
        try:
            out.append(read_idx(p))
        except (OSError, ValueError, EOFError, zlib.error) as e:
            raise ctx.corrupt(p, str(e)) from e
    x, y = out
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise ctx.corrupt(raw, f"{split} images {x.shape} and labels {y.shape} do not match")
    if y.size and y.max() > 9:
        raise ctx.corrupt(_find(raw, MNIST_FILES[split][1]), "labels outside 0..9")
    return np.ascontiguousarray(x[:, None]), y.astype(np.int64)


# --------------------------------------------------------------------------------------------- CIFAR


def _cifar_files(name: str) -> tuple[str, list[str], list[str], str]:
    if name == "cifar10":
        return "cifar-10-batches-py", CIFAR10_TRAIN, ["test_batch"], "batches.meta"
    return "cifar-100-python", ["train"], ["test"], "meta"


def _check_cifar(root: Path, ctx: _Ctx) -> DatasetError | None:
    folder, train, test, meta = _cifar_files(ctx.name)
    for f in train + test + [meta]:
        if not (root / folder / f).is_file():
            return ctx.missing(root / folder / f)
    return None


def _unpickle(path: Path, ctx: _Ctx) -> dict:
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    except Exception as e:  # UnpicklingError, EOFError, ValueError ...
        raise ctx.corrupt(path, f"{type(e).__name__}: {e}") from e


def load_cifar(root: str | os.PathLike, name: str, split: str, _ctx: _Ctx | None = None) -> dict[str, Any]:
    """Official CIFAR-10/100 ``split`` ("train"/"test"): ``x`` uint8 [N,3,32,32], ``y`` int64,
    ``classes``; CIFAR-100 also ``coarse`` (int64) and ``coarse_classes``."""
    ctx = _ctx or _Ctx(name, Path("resources"))
    root = Path(root)
    folder, train, test, meta_file = _cifar_files(name)
    xs, ys, coarse = [], [], []
    label_key = "labels" if name == "cifar10" else "fine_labels"
    for f in train if split == "train" else test:
        path = root / folder / f
        if not path.is_file():
            raise ctx.missing(path)
        d = _unpickle(path, ctx)
        try:
            data = np.asarray(d["data"], dtype=np.uint8)
            labels = np.asarray(d[label_key], dtype=np.int64)
            if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
                raise ValueError(f"data {data.shape} / labels {labels.shape}, expected [N, 3072] / [N]")
            if name == "cifar100":
                coarse.append(np.asarray(d["coarse_labels"], dtype=np.int64))
        except (KeyError, ValueError, TypeError) as e:
            raise ctx.corrupt(path, f"unexpected content: {e}") from e
        xs.append(data.reshape(-1, 3, 32, 32))
        ys.append(labels)
    meta_path = root / folder / meta_file
    if not meta_path.is_file():
        raise ctx.missing(meta_path)
    m = _unpickle(meta_path, ctx)
    try:
        classes = list(m["label_names"] if name == "cifar10" else m["fine_label_names"])
        coarse_classes = None if name == "cifar10" else list(m["coarse_label_names"])
    except (KeyError, TypeError) as e:
        raise ctx.corrupt(meta_path, f"no label names: {e}") from e
    y = np.concatenate(ys)
    if y.size and (y.min() < 0 or y.max() >= len(classes)):
        raise ctx.corrupt(root / folder, f"labels outside 0..{len(classes) - 1}")
    out = {"x": np.concatenate(xs), "y": y, "classes": classes}
    if name == "cifar100":
        out["coarse"] = np.concatenate(coarse)
        out["coarse_classes"] = coarse_classes
    return out


# --------------------------------------------------------------------------------------------- STL-10


STL_FILES = {"train": ("train_X.bin", "train_y.bin"), "test": ("test_X.bin", "test_y.bin"),
             "unlabeled": ("unlabeled_X.bin",)}


def _stl_dir(root: Path) -> Path:
    """``<root>/stl10_binary`` (torchvision's layout), or ``root`` itself when it is that folder."""
    root = Path(root)
    if (root / "stl10_binary").is_dir():
        return root / "stl10_binary"
    if (root / STL_FILES["train"][0]).exists() or root.name == "stl10_binary":
        return root
    return root / "stl10_binary"


def _check_stl(root: Path, ctx: _Ctx, unlabeled: bool = False) -> DatasetError | None:
    files = [*STL_FILES["train"], *STL_FILES["test"], "class_names.txt"]
    if unlabeled:
        files.extend(STL_FILES["unlabeled"])
    folder = _stl_dir(root)
    for f in files:
        if not (folder / f).is_file():
            return ctx.missing(folder / f)
    return None


def _stl_images(path: Path, ctx: _Ctx) -> np.ndarray:
    if not path.is_file():
        raise ctx.missing(path)
    size = path.stat().st_size
    per = 3 * STL_SIDE * STL_SIDE
    if size == 0 or size % per:
        raise ctx.corrupt(path, f"size {size} bytes is not a multiple of {per} (3x96x96 images); truncated?")
    # column-major 3x96x96 per image, as torchvision reads it: transpose H and W
    return np.memmap(path, dtype=np.uint8, mode="r").reshape(-1, 3, STL_SIDE, STL_SIDE)


def load_stl10(root: str | os.PathLike, split: str, _ctx: _Ctx | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Official STL-10 ``split`` ("train", "test" or "unlabeled") as a lazily read uint8
    [N, 3, 96, 96] array view (index it to read) and int64 labels (-1 for unlabeled).
    ``root`` holds ``stl10_binary/`` or is that folder."""
    ctx = _ctx or _Ctx("stl10", Path("resources"))
    folder = _stl_dir(Path(root))
    x = _stl_images(folder / f"{split}_X.bin", ctx).transpose(0, 1, 3, 2)
    if split == "unlabeled":
        return x, np.full(len(x), -1, dtype=np.int64)
    ypath = folder / f"{split}_y.bin"
    if not ypath.is_file():
        raise ctx.missing(ypath)
    y = np.fromfile(ypath, dtype=np.uint8).astype(np.int64) - 1
    if len(y) != len(x) or (y.size and (y.min() < 0 or y.max() > 9)):
        raise ctx.corrupt(ypath, f"{len(y)} labels (values 1..10 expected) for {len(x)} images")
    return x, y


def _stl_classes(root: Path, ctx: _Ctx, required: bool = True) -> list[str]:
    """The 10 names of ``class_names.txt``; when it is absent, an error (``required``) or "0".."9"."""
    p = _stl_dir(Path(root)) / "class_names.txt"
    if not p.is_file():
        if required:
            raise ctx.missing(p)
        return [str(i) for i in range(10)]
    names = [ln.strip() for ln in p.read_text().splitlines() if ln.strip()]
    if len(names) != 10:
        raise ctx.corrupt(p, f"{len(names)} class names, expected 10")
    return names


# --------------------------------------------------------------------------------------------- CelebA


def _check_celeba(root: Path, ctx: _Ctx) -> DatasetError | None:
    base = root / "celeba"
    for f in ("list_attr_celeba.txt", "list_eval_partition.txt"):
        if not (base / f).is_file():
            return ctx.missing(base / f)
    if not (base / "img_align_celeba").is_dir():
        return ctx.missing(base / "img_align_celeba")
    return None


def load_celeba_lists(root: str | os.PathLike, _ctx: _Ctx | None = None) -> dict[str, Any]:
    """CelebA's attribute and partition lists: ``files`` (names), ``attr`` (int8 0/1 [N, 40]),
    ``attr_names`` and ``partition`` (0 train, 1 valid, 2 test)."""
    ctx = _ctx or _Ctx("celeba", Path("resources"))
    base = Path(root) / "celeba"
    apath, ppath = base / "list_attr_celeba.txt", base / "list_eval_partition.txt"
    for p in (apath, ppath):
        if not p.is_file():
            raise ctx.missing(p)
    try:
        lines = apath.read_text().splitlines()
        n = int(lines[0].strip())
        names = lines[1].split()
        rows = [ln.split() for ln in lines[2:] if ln.strip()]
        if len(rows) != n:
            raise ValueError(f"header says {n} images, found {len(rows)} rows")
        files = [r[0] for r in rows]
        attr = np.array([r[1:] for r in rows], dtype=np.int8)
        if attr.shape != (n, len(names)):
            raise ValueError(f"attribute table has shape {attr.shape}, expected ({n}, {len(names)})")
        attr = (attr > 0).astype(np.int8)  # {-1, 1} -> {0, 1}
        for a in ("Male", "Smiling", *HAIR_ATTRS):
            if a not in names:
                raise ValueError(f"attribute {a} is missing")
    except (ValueError, IndexError) as e:
        raise ctx.corrupt(apath, str(e)) from e
    try:
        part = {}
        for ln in ppath.read_text().splitlines():
            if ln.strip():
                f, s = ln.split()
                part[f] = int(s)
        partition = np.array([part[f] for f in files], dtype=np.int64)
    except (ValueError, KeyError) as e:
        raise ctx.corrupt(ppath, f"bad or incomplete partition list ({e})") from e
    return {"files": files, "attr": attr, "attr_names": names, "partition": partition}


# --------------------------------------------------------------------------------------------- downloads


def _fetch(name: str) -> Callable[[Path], None]:
    """torchvision's download (MD5-verified) into a temporary folder; see resolve_root."""

    def fetch(tmp: Path) -> None:
        import torchvision.datasets as tvd

        if name == "mnist":
            tvd.MNIST(str(tmp), train=True, download=True)
            tvd.MNIST(str(tmp), train=False, download=True)
        elif name == "cifar10":
            tvd.CIFAR10(str(tmp), train=True, download=True)
        elif name == "cifar100":
            tvd.CIFAR100(str(tmp), train=True, download=True)
        elif name == "stl10":
            # the download extracts the whole archive (unlabeled_X.bin included; torchvision checks
            # its MD5 too) whatever the split; "train" just keeps the load after it small
            tvd.STL10(str(tmp), split="train", download=True)
        elif name == "celeba":
            tvd.CelebA(str(tmp), split="all", target_type="attr", download=True)
        else:  # pragma: no cover
            raise ValueError(name)

    return fetch


# keeping the fetchers in a dict lets tests replace the network part
FETCHERS: dict[str, Callable[[str], Callable[[Path], None]]] = {n: _fetch for n in SOURCES}


# --------------------------------------------------------------------------------------------- build


def _finish(x: np.ndarray, size: int | None, channels: int | None) -> np.ndarray:
    return resize_batch(to_channels(np.ascontiguousarray(x), channels), size)


def build(spec: dict, out_dir: Path, resources_dir: Path) -> dict:
    spec = merged_spec(spec, ACCEPTED, "torchvision")
    name = str(spec.get("name") or "").lower()
    if name not in SOURCES:
        raise ValueError(f"torchvision dataset name must be one of {SOURCES}, got {spec.get('name')!r}")
    ctx = _Ctx(name, Path(resources_dir))
    unlabeled = bool(spec.get("unlabeled", False))
    if unlabeled and name != "stl10":
        raise ValueError("`unlabeled: true` exists only for stl10")
    if "hair" in spec and name != "celeba":
        raise ValueError("`hair` applies only to celeba")
    checks = {
        "mnist": lambda r: _check_mnist(r, ctx),
        "cifar10": lambda r: _check_cifar(r, ctx),
        "cifar100": lambda r: _check_cifar(r, ctx),
        "stl10": lambda r: _check_stl(r, ctx, unlabeled),
        "celeba": lambda r: _check_celeba(r, ctx),
    }
    root = resolve_root(spec, Path(resources_dir), name, checks[name], FETCHERS[name](name)).resolve()
    seed = int(spec.get("seed", 0))
    size = spec.get("image_size")
    size = int(size) if size is not None else None
    channels = spec.get("channels")
    channels = int(channels) if channels is not None else None
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    meta: dict[str, Any] = {
        "name": name,
        "generator": "torchvision",
        "source": f"torchvision:{name}",
        "root": str(root),
        "seed": seed,
    }
    if name == "celeba":
        return _build_celeba(spec, root, out_dir, ctx, meta, size or 64, channels)

    factors: dict[str, np.ndarray] = {}
    factor_names: dict[str, list[str]] = {}
    if name == "mnist":
        tr_x, tr_y = load_mnist(root, "train", ctx)
        te_x, te_y = load_mnist(root, "test", ctx)
        classes = [str(i) for i in range(10)]
    elif name in ("cifar10", "cifar100"):
        tr, te = load_cifar(root, name, "train", ctx), load_cifar(root, name, "test", ctx)
        tr_x, tr_y, te_x, te_y, classes = tr["x"], tr["y"], te["x"], te["y"], tr["classes"]
        if name == "cifar100":
            factors["coarse"] = np.concatenate([tr["coarse"], te["coarse"]])
            factor_names["coarse"] = tr["coarse_classes"]
    else:
        tr_x, tr_y = load_stl10(root, "train", ctx)
        te_x, te_y = load_stl10(root, "test", ctx)
        classes = _stl_classes(root, ctx)

    n_tr = len(tr_y)
    y = np.concatenate([tr_y, te_y])
    ids = np.arange(len(y), dtype=np.int64)
    val_fraction = float(spec.get("val_fraction", 0.1))
    rest, val_idx = carve(np.arange(n_tr), spec.get("n_val"), val_fraction, rng_for(seed, 1))
    idx = {
        "train": cap(rest, spec.get("n_train"), rng_for(seed, 2)),
        "val": val_idx,
        "test": cap(np.arange(n_tr, len(y)), spec.get("n_test"), rng_for(seed, 4)),
    }
    splits = {}
    for s, ix in idx.items():
        d = split_arrays(None, y, ids, factors, ix)
        src_tr, src_te = ix[ix < n_tr], ix[ix >= n_tr] - n_tr
        parts = [tr_x[src_tr]] if len(src_tr) else []
        if len(src_te):
            parts.append(te_x[src_te])
        x = np.concatenate(parts) if parts else tr_x[:0]
        d["x"] = _finish(x, size, channels)
        splits[s] = d
    meta["id_offsets"] = {"train": 0, "test": n_tr}
    if unlabeled:
        ux, uy = load_stl10(root, "unlabeled", ctx)
        uix = cap(np.arange(len(uy)), spec.get("n_unlabeled"), rng_for(seed, 5))
        n_all = len(y)
        splits["unlabeled"] = {
            "x": _finish(ux[uix], size, channels),
            "y": uy[uix],
            "id": (n_all + uix).astype(np.int64),
        }
        meta["id_offsets"]["unlabeled"] = n_all
        meta["pretrain_splits"] = ["train", "unlabeled"]
        meta["unlabeled_label"] = -1
    meta.update(
        {
            "classes": list(classes),
            "factors": factor_names,
            "recipe": {
                "kind": "official_test",
                "val": "carved from the official training set",
                "val_fraction": val_fraction if spec.get("n_val") is None else None,
                "n_val": spec.get("n_val"),
                "caps": {k: spec.get(k) for k in ("n_train", "n_test", "n_unlabeled") if spec.get(k) is not None},
            },
        }
    )
    return dataset_dir.save(out_dir, splits, {**meta, "storage": "array"})


def _build_celeba(
    spec: dict, root: Path, out_dir: Path, ctx: _Ctx, meta: dict, size: int, channels: int | None
) -> dict:
    lists = load_celeba_lists(root, ctx)
    attr, names = lists["attr"], lists["attr_names"]
    col = {n: i for i, n in enumerate(names)}
    male = attr[:, col["Male"]].astype(np.int64)
    smiling = attr[:, col["Smiling"]].astype(np.int64)
    hair_onehot = attr[:, [col[a] for a in HAIR_ATTRS]].astype(np.int64)
    n_hair = hair_onehot.sum(1)
    mode = spec.get("hair", "exclusive")
    if mode == "exclusive":
        keep = n_hair == 1
        hair = hair_onehot.argmax(1)
        hair_names = list(HAIR)
    elif mode == "official":
        # the official CLEAR code (get_process_celeba): some hair colour, not blurry; several -> the first
        keep = (n_hair >= 1) & (attr[:, col["Blurry"]] == 0)
        hair = hair_onehot.argmax(1)
        hair_names = list(HAIR)
    elif mode == "all":
        keep = np.ones(len(male), dtype=bool)
        hair = np.where(n_hair == 1, hair_onehot.argmax(1), len(HAIR))
        hair_names = [*HAIR, "other"]
    else:
        raise ValueError(f"hair must be 'exclusive', 'official' or 'all', got {mode!r}")
    y = 2 * male + smiling
    ids = np.arange(len(y), dtype=np.int64)
    seed = int(spec.get("seed", 0))
    part = lists["partition"]
    caps = {"train": spec.get("n_train"), "val": spec.get("n_val"), "test": spec.get("n_test")}
    recipe = spec.get("recipe") or "official_partition"
    if recipe == "ood_k":
        if mode == "all":
            raise ValueError("recipe ood_k splits by hair colour: hair must be 'exclusive' or 'official'")
        k, design = int(spec.get("k") or 2), spec.get("ood_design") or "random"
        seen = seen_styles(len(CELEBA_CLASSES), len(HAIR), k, seed, design)
        seen_row = np.zeros((len(CELEBA_CLASSES), len(HAIR)), dtype=bool)
        for c, styles in enumerate(seen):
            seen_row[c, styles] = True
        # the official kceleba_train_test_split: CelebA's training partition only; seen (class, hair colour)
        # pairs give train and, by random_split(0.85, 0.15), val; the unseen pairs are the test split
        pool = (part == 0) & keep
        is_seen = seen_row[y, np.minimum(hair, len(HAIR) - 1)]
        seen_ix = rng_for(seed, 20).permutation(np.flatnonzero(pool & is_seen))
        n_val = int(round(len(seen_ix) * 0.15))
        chosen = {"train": np.sort(seen_ix[n_val:]), "val": np.sort(seen_ix[:n_val]),
                  "test": np.flatnonzero(pool & ~is_seen)}
        recipe_meta = {"kind": "ood_k", "k": k, "design": design,
                       "seen": {CELEBA_CLASSES[c]: [HAIR[h] for h in styles] for c, styles in enumerate(seen)},
                       "val": "0.15 of the seen pairs (random_split)", "partition": "official train only"}
    elif recipe == "official_partition":
        chosen = {s: np.flatnonzero((part == k) & keep) for k, s in enumerate(("train", "val", "test"))}
        recipe_meta = {"kind": "official_partition"}
    else:
        raise ValueError(f"celeba recipe must be 'official_partition' or 'ood_k', got {recipe!r}")
    factors = {"gender": male, "smiling": smiling, "hair": hair}
    img_dir = root / "celeba" / "img_align_celeba"
    files = np.asarray(lists["files"])
    workers = int(spec.get("workers", 4))

    def err(p: Path, e: Exception) -> DatasetError:
        if isinstance(e, FileNotFoundError):
            return ctx.missing(p)
        return ctx.corrupt(p, str(e))

    splits = {}
    for k, s in enumerate(("train", "val", "test")):
        ix = cap(chosen[s], caps[s], rng_for(seed, 10 + k))
        d = split_arrays(None, y, ids, factors, ix)
        x = load_images([img_dir / f for f in files[ix]], size, 3, workers, err)
        d["x"] = to_channels(x, channels)
        splits[s] = d
    meta.update(
        {
            "classes": list(CELEBA_CLASSES),
            "factors": {"gender": ["female", "male"], "smiling": ["not_smiling", "smiling"], "hair": hair_names},
            "content_factors": ["gender", "smiling"],
            "style_factors": ["hair"],
            "recipe": {
                **recipe_meta,
                "hair": mode,
                "caps": {k: v for k, v in caps.items() if v is not None},
                "crop": "centre square, then resize",
            },
            "id_offsets": {"all": 0},
        }
    )
    return dataset_dir.save(out_dir, splits, {**meta, "storage": "array"})

"""Digit and background sources for the synthetic generators, plus helpers they share.

Sources
-------
- :func:`embedded_digits`: scikit-learn's bundled ``load_digits`` (1,797 images, 8x8), upsampled to
  a 20x20 digit in a 28x28 canvas (MNIST layout: centre of mass at the canvas centre). Works offline.
- :func:`mnist_digits`: the real MNIST IDX files in torchvision's layout (``<root>/MNIST/raw/``,
  ``.gz`` or unpacked); downloaded through ``torchvision.datasets.MNIST`` only when ``download`` is
  true (torchvision is imported lazily, only then).
- :func:`natural_backgrounds`: photographs bundled with scikit-image (``skimage.data``) and
  scikit-learn (``load_sample_images``), one background class per photograph.

A :class:`DigitSource` carries disjoint pools of *source images* per split (``train``/``val``/``test``),
so that generated train and test digits never share a source image (stratified by class for the
embedded digits; MNIST's official train file for train/val, its t10k file for test). Any number of
samples is drawn from a pool by :func:`draw_balanced` and rendered by :func:`render_digits`, which
applies a random affine jitter (rotation, scale, shift) with one vectorised
``scipy.ndimage.map_coordinates`` call per chunk of images.

Helpers shared by the generators: :func:`rng_for` (independent, named random streams from one
seed, so that e.g. changing ``n_test`` never changes the training images) and :func:`spec_params`
(merge a spec's ``options`` and defaults, reject unknown keys).

Nothing here imports torch unless a download is requested.
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import ndimage

from clbench.data import torchvision_sources as tv  # the MNIST reader (never imports torch itself)
from clbench.data.dataset_dir import DatasetError

CANVAS = 28  # MNIST canvas size
DIGIT_BOX = 20  # MNIST digits are normalised into a 20x20 box
CHUNK = 1024  # images per vectorised resampling call (bounds memory of coordinate arrays)

# keys the config schema may fill in for every dataset, whatever its generator
COMMON_KEYS = frozenset(
    {"generator", "name", "source", "root", "download", "recipe", "k", "n_train", "n_val", "n_test", "image_size",
     "seed", "options"}
)


# --------------------------------------------------------------------------------------------------
# shared helpers


def rng_for(seed: int, *tags: str | int) -> np.random.Generator:
    """An independent random stream for ``(seed, *tags)``; tags are hashed stably (crc32)."""
    words = [int(seed)] + [t if isinstance(t, int) else zlib.crc32(str(t).encode()) for t in tags]
    return np.random.default_rng(np.random.SeedSequence(words))


def spec_params(spec: Mapping[str, Any], defaults: Mapping[str, Any], generator: str) -> dict[str, Any]:
    """Resolve a dataset spec: ``defaults`` < spec keys < ``spec["options"]``.

    Keys the schema gives every dataset (:data:`COMMON_KEYS`) are accepted and, where a generator
    has no use for them, ignored; any other key not in ``defaults`` raises ``ValueError``.
    """
    spec = dict(spec)
    options = dict(spec.pop("options", None) or {})
    unknown = sorted((set(spec) - COMMON_KEYS - set(defaults)) | (set(options) - set(defaults)))
    if unknown:
        raise ValueError(f"{generator}: unknown spec key(s) {unknown}; allowed: {sorted(set(defaults) | COMMON_KEYS)}")
    out = dict(defaults)
    for key, value in {**spec, **options}.items():
        if value is None and key in defaults:
            continue  # the schema's null default means "use the generator's default"
        out[key] = value
    out["generator"] = generator
    return out


def split_sizes(params: Mapping[str, Any]) -> dict[str, int]:
    sizes = {"train": int(params["n_train"]), "val": int(params["n_val"]), "test": int(params["n_test"])}
    if sizes["train"] < 1 or sizes["test"] < 1 or sizes["val"] < 0:
        raise ValueError(f"need n_train >= 1, n_val >= 0, n_test >= 1; got {sizes}")
    return sizes


def draw_balanced(pool: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` items of ``pool``: without replacement when ``n <= len(pool)``, otherwise whole shuffled
    passes over the pool (each item used floor or ceil of ``n/len(pool)`` times)."""
    pool = np.asarray(pool)
    if len(pool) == 0:
        raise ValueError("cannot draw from an empty pool")
    reps = -(-n // len(pool))
    order = np.concatenate([rng.permutation(len(pool)) for _ in range(max(reps, 1))])[:n]
    return pool[order]


def draw_by_class(pool: np.ndarray, labels: np.ndarray, classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each entry of ``classes``, a random member of ``pool`` whose label is that class."""
    classes = np.asarray(classes)
    out = np.empty(len(classes), dtype=np.int64)
    pool_labels = labels[pool]
    for c in np.unique(classes):
        where = np.flatnonzero(classes == c)
        members = pool[pool_labels == c]
        if len(members) == 0:
            raise ValueError(f"no source image of class {c} in this pool")
        out[where] = draw_balanced(members, len(where), rng)
    return out


def stratified_split(labels: np.ndarray, fractions: Sequence[float], rng: np.random.Generator) -> list[np.ndarray]:
    """Partition ``arange(len(labels))`` into disjoint parts with the given fractions within every class."""
    labels = np.asarray(labels)
    fr = np.asarray(fractions, dtype=float)
    fr = fr / fr.sum()
    parts: list[list[np.ndarray]] = [[] for _ in fr]
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        cuts = np.round(np.cumsum(fr)[:-1] * len(members)).astype(int)
        for i, chunk in enumerate(np.split(members, cuts)):
            parts[i].append(chunk)
    return [np.sort(np.concatenate(p)) for p in parts]


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Float images in [0, 1] -> uint8 (rounded, clipped)."""
    return np.clip(np.rint(np.asarray(x, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def affine_resample(
    images: np.ndarray,
    out_size: int,
    *,
    index: np.ndarray | None = None,
    angle: np.ndarray | None = None,
    scale: np.ndarray | None = None,
    shift: np.ndarray | None = None,
    centre: np.ndarray | None = None,
    zoom: float = 1.0,
) -> np.ndarray:
    """Resample images of a stack ``[m, h, w]`` to ``[n, out_size, out_size]`` float32 (same value range).

    ``index`` ([n], default all) picks the input image of each output. Output pixel ``p`` (pixel
    centres; offset ``u = (p - (out_size-1)/2) * h/out_size/zoom`` from the output centre, in input
    pixels) reads the input at ``centre + (scale * R(angle))^-1 (u - shift)``: the image is rotated by
    ``angle`` (radians), scaled by ``scale`` and moved by ``shift`` (rows, cols; input pixels).
    ``angle``/``scale`` are [n], ``shift``/``centre`` [n, 2] (``centre`` defaults to the input centre).
    Bilinear, zero outside. Vectorised: one ``map_coordinates`` call per chunk of :data:`CHUNK`
    images, on the chunk's images stacked into one tall 2-D array (zero rows between them, so
    neighbouring images never mix). When shrinking by more than ~1.3x the chunk is first blurred
    (skimage's anti-aliasing rule, sigma = (factor - 1) / 2).
    """
    images = np.asarray(images)  # any real dtype; only the chunk being resampled is converted to float32
    index = np.arange(len(images)) if index is None else np.asarray(index, dtype=np.int64)
    n = len(index)
    h, w = images.shape[1:]
    out = np.empty((n, out_size, out_size), np.float32)
    if n == 0:
        return out
    angle = np.zeros(n) if angle is None else np.asarray(angle, dtype=np.float64)
    scale = np.ones(n) if scale is None else np.asarray(scale, dtype=np.float64)
    shift = np.zeros((n, 2)) if shift is None else np.asarray(shift, dtype=np.float64)
    centre = np.tile([(h - 1) / 2, (w - 1) / 2], (n, 1)) if centre is None else np.asarray(centre, dtype=np.float64)
    step = h / out_size / zoom  # input pixels per output pixel, before the per-image scale
    grid = (np.arange(out_size) - (out_size - 1) / 2) * step
    factor = step / np.maximum(scale, 1e-6)
    for s in range(0, n, CHUNK):
        e = min(n, s + CHUNK)
        m = e - s
        tall = np.zeros((m, h + 2, w), np.float32)  # one zero row above and below every image
        tall[:, 1:-1] = images[index[s:e]]
        sigma = (factor[s:e].max() - 1.0) / 2.0
        if sigma > 0.15:
            tall[:, 1:-1] = ndimage.gaussian_filter(tall[:, 1:-1], sigma=(0, sigma, sigma), mode="constant")
        cos, sin = np.cos(angle[s:e])[:, None, None], np.sin(angle[s:e])[:, None, None]
        inv = 1.0 / np.maximum(scale[s:e], 1e-6)[:, None, None]
        ur = grid[None, :, None] - shift[s:e, 0, None, None]
        uc = grid[None, None, :] - shift[s:e, 1, None, None]
        coords = np.empty((2, m, out_size, out_size))
        rr = (cos * ur + sin * uc) * inv + centre[s:e, 0, None, None]
        np.clip(rr, -1.0, h, out=rr)
        coords[0] = rr + 1.0 + (np.arange(m) * (h + 2))[:, None, None]
        coords[1] = (-sin * ur + cos * uc) * inv + centre[s:e, 1, None, None]
        ndimage.map_coordinates(tall.reshape(m * (h + 2), w), coords, output=out[s:e], order=1, mode="constant", cval=0.0)
    return out


# --------------------------------------------------------------------------------------------------
# digit sources


@dataclass
class DigitSource:
    """Digit source images in MNIST layout with disjoint per-split pools.

    ``images`` float32 [M, 28, 28] in [0, 1]; ``labels`` int64 [M]; ``ids`` int64 [M] (stable ids of the
    source images, unique across the whole source); ``centres`` float [M, 2] (where a rendered digit
    is centred); ``pools``: split -> indices into ``images`` (pairwise disjoint).
    """

    name: str
    images: np.ndarray
    labels: np.ndarray
    ids: np.ndarray
    centres: np.ndarray
    pools: dict[str, np.ndarray]
    jitter_default: bool = True
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in range(10)]


# default affine jitter: rotation (degrees), scale range, shift (pixels of the 28x28 canvas)
JITTER = {"rotation": 15.0, "scale": (0.9, 1.1), "shift": 2.0}


def jitter_params(n: int, rng: np.random.Generator, enabled: bool = True, **overrides: Any) -> dict[str, np.ndarray]:
    """Per-image affine jitter ``angle`` (radians), ``scale`` and ``shift`` ([n, 2]) drawn from ``rng``."""
    cfg = {**JITTER, **overrides}
    if not enabled:
        return {"angle": np.zeros(n), "scale": np.ones(n), "shift": np.zeros((n, 2))}
    angle = np.deg2rad(rng.uniform(-cfg["rotation"], cfg["rotation"], n))
    scale = rng.uniform(cfg["scale"][0], cfg["scale"][1], n)
    shift = rng.uniform(-cfg["shift"], cfg["shift"], (n, 2))
    return {"angle": angle, "scale": scale, "shift": shift}


def render_digits(source: DigitSource, idx: np.ndarray, jitter: Mapping[str, np.ndarray] | None = None,
                  size: int = CANVAS) -> np.ndarray:
    """Render source images ``idx`` at ``size x size`` (float32 in [0, 1]) with optional per-image jitter.

    ``size`` scales the whole 28x28 canvas (e.g. 16 gives a 16x16 digit patch). Without jitter, at
    size 28, real MNIST digits are reproduced exactly.
    """
    idx = np.asarray(idx, dtype=np.int64)
    jitter = dict(jitter or {})
    return affine_resample(source.images, size, index=idx, centre=source.centres[idx], **jitter)


def _centre_of_mass(images: np.ndarray) -> np.ndarray:
    h, w = images.shape[1:]
    mass = images.sum(axis=(1, 2)) + 1e-8
    r = (images.sum(axis=2) * np.arange(h)).sum(axis=1) / mass
    c = (images.sum(axis=1) * np.arange(w)).sum(axis=1) / mass
    return np.stack([r, c], axis=1)


def _sklearn_file(*parts: str) -> Path | None:
    """A data file shipped inside scikit-learn, located without importing it (``import sklearn``
    alone costs ~1 s of job start-up)."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        path = Path(loc, *parts)
        if path.exists():
            return path
    return None


def _load_sklearn_digits() -> np.ndarray:
    """``load_digits`` as an int array [1797, 65] (64 pixel counts 0..16, then the label)."""
    path = _sklearn_file("datasets", "data", "digits.csv.gz")
    if path is not None:
        return np.loadtxt(path, delimiter=",", dtype=np.int64)
    from sklearn.datasets import load_digits  # layout changed: use the public loader

    d = load_digits()
    return np.concatenate([d.data.astype(np.int64), d.target[:, None]], axis=1)


@functools.lru_cache(maxsize=1)
def _embedded_canvas() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    raw = _load_sklearn_digits()
    small = raw[:, :64].reshape(-1, 8, 8).astype(np.float32) / 16.0  # [1797, 8, 8]
    target = raw[:, 64].astype(np.int64)
    # 8x8 -> 20x20 cubic spline (pixels as areas), then a mild contrast stretch: the 8x8 counts are
    # blurry, MNIST strokes saturate
    # the 1-D zoom is a fixed linear map (20x8 matrix); apply it to rows and columns of every image
    up = np.stack([ndimage.zoom(e, DIGIT_BOX / 8, order=3, grid_mode=True, mode="grid-constant") for e in np.eye(8)], axis=1)
    big = np.einsum("ij,njk,lk->nil", up.astype(np.float32), small, up.astype(np.float32))
    big = np.clip((big - 0.05) * 1.4, 0.0, 1.0).astype(np.float32)
    canvas = np.zeros((len(big), CANVAS, CANVAS), np.float32)
    o = (CANVAS - DIGIT_BOX) // 2
    canvas[:, o:o + DIGIT_BOX, o:o + DIGIT_BOX] = big
    canvas.setflags(write=False)
    centres = _centre_of_mass(canvas)
    return canvas, target, centres


def embedded_digits(seed: int = 0, fractions: Sequence[float] = (0.7, 0.1, 0.2)) -> DigitSource:
    """scikit-learn's 1,797 digits in MNIST layout; source images split train/val/test by ``fractions``
    (stratified per class, seeded), so generated splits never share a source image."""
    canvas, labels, centres = _embedded_canvas()
    parts = stratified_split(labels, fractions, rng_for(seed, "embedded_digits", "split"))
    return DigitSource(
        name="embedded",
        images=canvas,
        labels=labels,
        ids=np.arange(len(labels), dtype=np.int64),
        centres=centres,
        pools=dict(zip(("train", "val", "test"), parts)),
        jitter_default=True,
        info={"source": "sklearn.datasets.load_digits", "fractions": list(fractions)},
    )


def load_mnist(root: str | Path, train: bool, download: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """MNIST images (uint8 [N, 28, 28]) and labels (int64 [N]) from torchvision's layout under ``root``.

    Reads ``<root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` (also accepted:
    ``<root>/raw/`` or ``<root>/`` itself) with :func:`clbench.data.torchvision_sources.load_mnist`.
    Missing files are downloaded with torchvision into ``root`` only when ``download`` is true;
    otherwise a :class:`DatasetError` names the path, the layout and the switch.
    """
    root = Path(root)
    split = "train" if train else "test"
    hint = (f"Fix: set `download: true` in the dataset spec to fetch the files into {root}, "
            f"or point `root:` at an existing copy in this layout (delete a corrupt file first).")
    ctx = tv._Ctx("mnist", hint=hint)
    if download and tv._check_mnist(root, ctx, (split,)) is not None:
        tv.FETCHERS["mnist"]("mnist")(root)  # torchvision, imported lazily: torch start-up is expensive
    images, labels = tv.load_mnist(root, split, ctx)
    if images.shape[1:] != (1, CANVAS, CANVAS):
        raise DatasetError(f"MNIST {split} files under {root}: images of shape {images.shape[2:]}, expected (28, 28)")
    return images[:, 0], labels


def mnist_digits(root: str | Path, download: bool = False, seed: int = 0, val_fraction: float = 1 / 12) -> DigitSource:
    """Real MNIST: train/val pools from the official training file (val a seeded stratified
    ``val_fraction``), test pool from t10k. ids: training file 0..59,999, t10k 60,000.. ."""
    xtr, ytr = load_mnist(root, train=True, download=download)
    xte, yte = load_mnist(root, train=False, download=download)
    val, train = stratified_split(ytr, (val_fraction, 1 - val_fraction), rng_for(seed, "mnist", "val"))
    images = np.concatenate([xtr, xte]).astype(np.float32) / 255.0
    labels = np.concatenate([ytr, yte])
    n = len(labels)
    return DigitSource(
        name="mnist",
        images=images,
        labels=labels,
        ids=np.arange(n, dtype=np.int64),
        centres=np.tile([(CANVAS - 1) / 2, (CANVAS - 1) / 2], (n, 1)),
        pools={"train": train, "val": val, "test": np.arange(len(ytr), n)},
        jitter_default=False,
        info={"source": "MNIST IDX files", "root": str(root), "val_fraction": val_fraction},
    )


def digit_source(source: str, root: str | Path | None, download: bool, seed: int, resources_dir: str | Path = "resources") -> DigitSource:
    """``"embedded"`` or ``"mnist"`` (root default ``<resources_dir>/mnist``)."""
    if source == "embedded":
        return embedded_digits(seed)
    if source == "mnist":
        return mnist_digits(Path(root) if root else Path(resources_dir) / "mnist", download=download, seed=seed)
    raise ValueError(f"unknown digit source {source!r}; expected 'embedded' or 'mnist'")


# --------------------------------------------------------------------------------------------------
# backgrounds

# one background class per photograph; colour photographs first, greyscale ones are replicated to RGB
BACKGROUND_PHOTOS = (
    "china", "flower", "astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
    "camera", "grass", "brick", "gravel", "coins", "moon", "clock", "page",
)
DEFAULT_BACKGROUNDS = BACKGROUND_PHOTOS[:10]


@functools.lru_cache(maxsize=4)
def _photo(name: str) -> np.ndarray | None:
    try:
        if name in ("china", "flower"):
            path = _sklearn_file("datasets", "images", f"{name}.jpg")
            if path is not None:
                from PIL import Image

                with Image.open(path) as im:
                    img = np.asarray(im.convert("RGB"))
            else:
                from sklearn.datasets import load_sample_image

                img = load_sample_image(f"{name}.jpg")
        else:
            import skimage.data

            img = getattr(skimage.data, name)()
    except Exception:  # not bundled in this version, or needs a download (pooch): skip it
        return None
    img = np.asarray(img)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    img = img[:, :, :3].astype(np.uint8)
    img.setflags(write=False)
    return img


def natural_backgrounds(names: Sequence[str] | None = None, min_classes: int = 8) -> dict[str, np.ndarray]:
    """Photographs bundled with scikit-image / scikit-learn, ``name -> uint8 [H, W, 3]``, in order.

    ``names`` defaults to :data:`DEFAULT_BACKGROUNDS` (10 photographs); photographs missing from the
    installed packages are replaced by the next ones of :data:`BACKGROUND_PHOTOS`. Raises if fewer
    than ``min_classes`` are available.
    """
    wanted = list(names) if names is not None else list(DEFAULT_BACKGROUNDS)
    extra = [n for n in BACKGROUND_PHOTOS if n not in wanted] if names is None else []
    out: dict[str, np.ndarray] = {}
    for name in wanted + extra:
        if len(out) >= len(wanted):
            break
        img = _photo(name)
        if img is not None:
            out[name] = img
        elif names is not None:
            raise DatasetError(f"background photograph {name!r} is not available in the installed scikit-image/scikit-learn")
    if len(out) < min_classes:
        raise DatasetError(f"only {len(out)} bundled photographs available ({sorted(out)}); need {min_classes}")
    return out

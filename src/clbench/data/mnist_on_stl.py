"""MNIST-on-STL (poster "Disentangle without VAEs"): a digit pasted onto a natural background.

Each image has three factors: digit class **DC** (``digit``, 0-9), digit location **DL**
(``location``, one cell of a ``grid x grid`` layout) and background class **BC** (``background``).
The white digit (values in [0, 1] used as opacity) is composited over the background. With
``pairs`` (default), every sample also has a second view ``x2`` that differs from ``x`` in exactly
one factor, chosen per pair uniformly among ``vary`` and stored in ``pair_varied`` (index into
:data:`FACTORS`); the varied factor takes a different value, the other two keep theirs. With
``share_nuisance`` (default) everything else is shared too: the same digit image and jitter unless
the digit varies, the same background crop unless the background varies, so the two views differ
only through the varied factor. Without it, the kept factors keep their *values* but get a fresh
digit image / background crop.

By default (``vary: [location]``) the pairs are the poster's: the two views show the same digit
image on the same background crop at two different locations. Digit class and background class,
the two factors the sub-embeddings should separate, are what a pair has in common; only the digit
location (DL) differs.

Backgrounds
-----------
- ``embedded``: the photographs bundled with scikit-image / scikit-learn
  (:func:`clbench.data.embedded.natural_backgrounds`, 10 by default), one class per photograph.
  Each photograph is cut into ``tiles x tiles`` tiles; a seeded per-photograph assignment gives
  about 70% of the tiles to train, 10% to val and 20% to test (at least one each), and every crop
  lies inside one tile, so train and test backgrounds never share a pixel. A crop is a random
  square of 60-100% of the tile's shorter side, resampled bilinearly to ``image_size``.
- ``stl10``: STL-10's labelled images (10 classes, 96x96) resized to ``image_size`` (anti-aliased):
  train/val from STL's train split (val a stratified 10%), test from STL's test split. Read from
  ``<background_root>/stl10_binary/`` (torchvision's layout); downloaded with torchvision (lazily)
  only when ``download`` is true.

Spec keys (extras may also sit under ``options:``)
--------------------------------------------------
``generator``        ``"mnist_on_stl"``
``source``           digits: ``"embedded"`` (default) or ``"mnist"``
``root``             MNIST root (torchvision layout), default ``<resources>/mnist``
``background``       ``"embedded"`` (default) or ``"stl10"``
``background_root``  STL-10 root (holding ``stl10_binary/``), default ``<resources>/stl10``
``backgrounds``      embedded photograph names (default: 10 of :data:`~clbench.data.embedded.BACKGROUND_PHOTOS`)
``download``         fetch MNIST / STL-10 with torchvision when missing (default false)
``image_size``       output side in pixels (default 32); images are colour, ``[N, 3, S, S]``
``grid``             locations per side (default 2: four locations)
``digit_size``       digit patch side in pixels (default ``image_size // grid``)
``tiles``            tiles per side of each embedded photograph (default 3)
``jitter``           affine jitter of the digits (default: true for embedded, false for mnist)
``pairs``            write the paired view ``x2`` (default true)
``vary``             factors a pair may vary (default ``[location]``, the poster's pairs)
``share_nuisance``   see above (default true)
``n_train``, ``n_val``, ``n_test``, ``seed``   as everywhere (defaults 10000, 1000, 2000, 0)

Arrays: ``x`` (and ``x2``) uint8 [N, 3, S, S]; ``y`` = digit class; ``factor_digit``,
``factor_location``, ``factor_background`` (and ``x2_factor_*`` for the second view);
``pair_varied``; ``source_id`` / ``x2_source_id`` (digit source image) and ``background_id`` /
``x2_background_id`` (embedded: ``photo * tiles**2 + tile``; STL-10: image index, test images offset
by the train split's size) — disjoint between train, val and test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from clbench.data import dataset_dir
from clbench.data import torchvision_sources as tv  # the STL-10 reader (never imports torch itself)
from clbench.data.embedded import (
    DigitSource,
    affine_resample,
    digit_source,
    draw_by_class,
    jitter_params,
    natural_backgrounds,
    render_digits,
    rng_for,
    spec_params,
    split_sizes,
    stratified_split,
    to_uint8,
)

FACTORS = ("digit", "location", "background")
ABBREV = {"DC": "digit", "DL": "location", "BC": "background"}
DEFAULTS: dict[str, Any] = {
    "source": "embedded",
    "root": None,
    "background": "embedded",
    "background_root": None,
    "backgrounds": None,
    "download": False,
    "image_size": 32,
    "grid": 2,
    "digit_size": None,
    "tiles": 3,
    "jitter": None,
    "pairs": True,
    "vary": ["location"],
    "share_nuisance": True,
    "n_train": 10000,
    "n_val": 1000,
    "n_test": 2000,
    "seed": 0,
    "name": "mnist_on_stl",
}
SPLIT_NAMES = ("train", "val", "test")


def location_names(grid: int) -> list[str]:
    if grid == 2:
        return ["top-left", "top-right", "bottom-left", "bottom-right"]
    if grid == 3:
        return [f"{v}-{h}" for v in ("top", "middle", "bottom") for h in ("left", "centre", "right")]
    return [f"r{r}c{c}" for r in range(grid) for c in range(grid)]


# --------------------------------------------------------------------------------------------------
# backgrounds


class PhotoBackgrounds:
    """Crops of bundled photographs, one class per photograph, tiles disjoint between splits."""

    def __init__(self, names: Sequence[str] | None, size: int, tiles: int, seed: int):
        from skimage.transform import resize

        photos = natural_backgrounds(names)
        self.classes = list(photos)
        self.size, self.tiles = int(size), int(tiles)
        if self.tiles < 2:
            raise ValueError("tiles must be >= 2 so that train, val and test get disjoint tiles")
        nt = self.tiles ** 2
        n_test = max(1, int(round(0.2 * nt)))
        n_val = max(1, int(round(0.1 * nt)))
        if nt - n_test - n_val < 1:
            raise ValueError(f"tiles={tiles} leaves no training tile")
        self.work: list[np.ndarray] = []  # photographs at working resolution, float32 [H, W, 3]
        self.planes: list[np.ndarray] = []  # the same, channel-major and flattened [3, H*W]
        self.tile_split: list[dict[str, np.ndarray]] = []
        short = int(round(self.tiles * self.size / 0.8))  # a tile's shorter side ~ 1.25 x image_size
        for c, (name, img) in enumerate(photos.items()):
            h, w = img.shape[:2]
            f = short / min(h, w)
            shape = (max(self.tiles, int(round(h * f))), max(self.tiles, int(round(w * f))), 3)
            self.work.append(resize(img, shape, order=1, anti_aliasing=True, preserve_range=False).astype(np.float32))
            self.planes.append(np.ascontiguousarray(self.work[-1].transpose(2, 0, 1)).reshape(3, -1))
            perm = rng_for(seed, "mnist_on_stl", "tiles", name).permutation(nt)
            self.tile_split.append({"test": perm[:n_test], "val": perm[n_test:n_test + n_val], "train": perm[n_test + n_val:]})
        self.info = {
            "kind": "embedded photographs",
            "photos": self.classes,
            "tiles": self.tiles,
            "tiles_per_split": {"train": nt - n_test - n_val, "val": n_val, "test": n_test},
        }

    def sample(self, split: str, classes: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Crop parameters for backgrounds of the given classes: tile id, top, left, side (work pixels)."""
        n = len(classes)
        tile = np.empty(n, np.int64)
        top, left, side = np.empty(n), np.empty(n), np.empty(n)
        u = rng.random((n, 4))
        for c in np.unique(classes):
            sel = np.flatnonzero(classes == c)
            allowed = self.tile_split[c][split]
            t = allowed[np.minimum((u[sel, 0] * len(allowed)).astype(int), len(allowed) - 1)]
            h, w = self.work[c].shape[:2]
            r, q = t // self.tiles, t % self.tiles
            y0, y1 = r * h // self.tiles, (r + 1) * h // self.tiles
            x0, x1 = q * w // self.tiles, (q + 1) * w // self.tiles
            s = (0.6 + 0.4 * u[sel, 1]) * np.minimum(y1 - y0, x1 - x0)
            tile[sel] = c * self.tiles ** 2 + t
            side[sel] = s
            top[sel] = y0 + u[sel, 2] * (y1 - y0 - s)
            left[sel] = x0 + u[sel, 3] * (x1 - x0 - s)
        return {"id": tile, "top": top, "left": left, "side": side}

    def render(self, classes: np.ndarray, params: Mapping[str, np.ndarray]) -> np.ndarray:
        """Backgrounds float32 [n, 3, S, S] in [0, 1]: bilinear crops, vectorised per photograph
        (the crop is axis-aligned, so rows and columns are separable; 1-D ``np.take`` gathers)."""
        S = self.size
        out = np.empty((len(classes), 3, S, S), np.float32)
        g = (np.arange(S) + 0.5) / S
        for c in np.unique(classes):
            sel = np.flatnonzero(classes == c)
            planes = self.planes[c]
            h, w = self.work[c].shape[:2]
            s = params["side"][sel, None]
            rr = np.clip(params["top"][sel, None] + g[None, :] * s - 0.5, 0, h - 1)  # [m, S]
            cc = np.clip(params["left"][sel, None] + g[None, :] * s - 0.5, 0, w - 1)
            r0 = np.minimum(rr.astype(np.int64), h - 2)
            c0 = np.minimum(cc.astype(np.int64), w - 2)
            fr = (rr - r0).astype(np.float32)[:, :, None]
            fc = (cc - c0).astype(np.float32)[:, None, :]
            i00 = r0[:, :, None] * w + c0[:, None, :]  # [m, S, S] flat index of the top-left neighbour
            w00, w01, w10, w11 = (1 - fr) * (1 - fc), (1 - fr) * fc, fr * (1 - fc), fr * fc
            for ch in range(3):
                pl = planes[ch]
                out[sel, ch] = (np.take(pl, i00) * w00 + np.take(pl, i00 + 1) * w01
                                + np.take(pl, i00 + w) * w10 + np.take(pl, i00 + w + 1) * w11)
        return out


STL_LAYOUT = ("  <root>/stl10_binary/{train_X.bin, train_y.bin, test_X.bin, test_y.bin, class_names.txt}"
              "   (torchvision.datasets.STL10; root may be stl10_binary/ itself)")


def load_stl10(root: str | Path, split: str, download: bool = False) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """STL-10 labelled images uint8 [N, 3, 96, 96], labels int64 [N] (0-9) and class names.

    Reads torchvision's layout ``<root>/stl10_binary/{train,test}_{X,y}.bin`` (+ ``class_names.txt``;
    "0".."9" without it) with :func:`clbench.data.torchvision_sources.load_stl10`: the images are a
    lazily read (memory-mapped) view, transposed from STL's column-major storage as torchvision
    does. ``root`` may also be the ``stl10_binary`` folder itself. Downloads with torchvision into
    ``root`` only when ``download`` is true; otherwise a missing or corrupt file raises :class:`~clbench.data.dataset_dir.DatasetError`.
    """
    root = Path(root)
    hint = (f"Fix: set `download: true` in the dataset spec to fetch STL-10 (2.6 GB) into {root}, "
            f"or point `background_root:` at an existing copy in this layout (delete a corrupt file first).")
    ctx = tv._Ctx("stl10", hint=hint, layout=STL_LAYOUT)
    if download and not all((tv._stl_dir(root) / f).is_file() for f in tv.STL_FILES[split]):
        tv.FETCHERS["stl10"]("stl10")(root)  # torchvision, imported lazily: torch start-up is expensive
    images, labels = tv.load_stl10(root, split, ctx)
    return images, labels, tv._stl_classes(root, ctx, required=False)


class STLBackgrounds:
    """STL-10 images as backgrounds; BC = the STL-10 class."""

    def __init__(self, root: str | Path, download: bool, size: int, seed: int):
        xtr, ytr, names = load_stl10(root, "train", download)
        xte, yte, _ = load_stl10(root, "test", download)
        self.images = np.concatenate([xtr, xte])
        self.labels = np.concatenate([ytr, yte])
        val, train = stratified_split(ytr, (0.1, 0.9), rng_for(seed, "mnist_on_stl", "stl_val"))
        self.pools = {"train": train, "val": val, "test": np.arange(len(ytr), len(self.labels))}
        self.classes = names[:10]
        self.size = int(size)
        self.info = {"kind": "STL-10", "root": str(root), "pool_sizes": {k: int(len(v)) for k, v in self.pools.items()}}

    def sample(self, split: str, classes: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {"id": draw_by_class(self.pools[split], self.labels, classes, rng)}

    def render(self, classes: np.ndarray, params: Mapping[str, np.ndarray]) -> np.ndarray:
        idx = params["id"]
        stack = self.images.reshape(-1, 96, 96)  # [N*3, 96, 96], channel-major per image
        chans = (idx[:, None] * 3 + np.arange(3)[None, :]).ravel()
        out = affine_resample(stack, self.size, index=chans) / 255.0
        return np.clip(out.reshape(len(idx), 3, self.size, self.size), 0.0, 1.0)


# --------------------------------------------------------------------------------------------------
# composition


def composite(backgrounds: np.ndarray, digits: np.ndarray, locations: np.ndarray, grid: int) -> np.ndarray:
    """Paste white digits (opacity = digit value) onto backgrounds [n, 3, S, S] at grid cells.

    The ``d x d`` digit patch is centred in its cell (clipped at the image border). Returns uint8 [n, 3, S, S].
    """
    n, _, S = backgrounds.shape[:3]
    d = digits.shape[-1]
    alpha = np.zeros((n, S, S), np.float32)
    for loc in np.unique(locations):
        sel = np.flatnonzero(locations == loc)
        r, c = divmod(int(loc), grid)
        top = int(round((r + 0.5) * S / grid - d / 2))
        left = int(round((c + 0.5) * S / grid - d / 2))
        t0, l0 = max(top, 0), max(left, 0)
        t1, l1 = min(top + d, S), min(left + d, S)
        alpha[sel, t0:t1, l0:l1] = digits[sel, t0 - top:t1 - top, l0 - left:l1 - left]
    a = alpha[:, None]
    return to_uint8(backgrounds * (1.0 - a) + a)


RENDER_CHUNK = 1024


def _render(src: DigitSource, bg, p: dict, digit_idx, jit, loc, bg_cls, bg_params) -> np.ndarray:
    """Render samples in chunks (bounded memory, cache-friendly): uint8 [n, 3, S, S]."""
    n, S = len(digit_idx), int(p["image_size"])
    out = np.empty((n, 3, S, S), np.uint8)
    for s in range(0, n, RENDER_CHUNK):
        sl = slice(s, min(n, s + RENDER_CHUNK))
        digits = render_digits(src, digit_idx[sl], {k: v[sl] for k, v in jit.items()}, size=p["digit_size"])
        backgrounds = bg.render(bg_cls[sl], {k: v[sl] for k, v in bg_params.items()})
        out[sl] = composite(backgrounds, np.clip(digits, 0.0, 1.0), loc[sl], p["grid"])
    return out


def _take(params: Mapping[str, np.ndarray], where: np.ndarray, other: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``params`` with the rows ``where`` replaced by ``other`` (same keys, len(where) rows)."""
    out = {k: np.array(v, copy=True) for k, v in params.items()}
    for k in out:
        out[k][where] = other[k]
    return out


def generate(spec: Mapping[str, Any], resources_dir: str | Path = "resources") -> tuple[dict, dict]:
    """The dataset in memory: ``(splits, meta)`` (see the module docstring for ``spec``)."""
    p = spec_params(spec, DEFAULTS, "mnist_on_stl")
    sizes = split_sizes(p)
    seed = int(p["seed"])
    S, grid = int(p["image_size"]), int(p["grid"])
    if grid < 1 or S < 8:
        raise ValueError(f"mnist_on_stl needs grid >= 1 and image_size >= 8, got grid={grid}, image_size={S}")
    p["digit_size"] = int(p["digit_size"] or max(4, S // grid))
    vary = [FACTORS.index(v) for v in p["vary"]] if all(v in FACTORS for v in p["vary"]) else None
    if not vary:
        raise ValueError(f"mnist_on_stl: vary must be a non-empty subset of {list(FACTORS)}, got {p['vary']!r}")
    src = digit_source(p["source"], p["root"], bool(p["download"]), seed, resources_dir)
    jitter = src.jitter_default if p["jitter"] is None else bool(p["jitter"])
    if p["background"] == "embedded":
        bg = PhotoBackgrounds(p["backgrounds"], S, int(p["tiles"]), seed)
    elif p["background"] == "stl10":
        root = Path(p["background_root"]) if p["background_root"] else Path(resources_dir) / "stl10"
        bg = STLBackgrounds(root, bool(p["download"]), S, seed)
    else:
        raise ValueError(f"mnist_on_stl: unknown background {p['background']!r}; expected 'embedded' or 'stl10'")
    n_values = (10, grid * grid, len(bg.classes))
    share = bool(p["share_nuisance"])

    splits: dict[str, dict[str, np.ndarray]] = {}
    for split, n in sizes.items():
        rng = rng_for(seed, "mnist_on_stl", split)
        f = np.stack([rng.integers(0, k, n) for k in n_values], axis=1).astype(np.int64)  # [n, 3]
        digit_idx = draw_by_class(src.pools[split], src.labels, f[:, 0], rng)
        jit = jitter_params(n, rng, enabled=jitter)
        bgp = bg.sample(split, f[:, 2], rng)
        arrays: dict[str, np.ndarray] = {}
        if p["pairs"]:
            varied = np.asarray(vary, np.int64)[rng.integers(0, len(vary), n)]
            f2 = f.copy()
            for j, k in enumerate(n_values):
                sel = varied == j
                f2[sel, j] = (f[sel, j] + rng.integers(1, max(k, 2), sel.sum())) % k
            # second view: new digit image where the digit varies (or everywhere without sharing)
            redraw_digit = (varied == 0) | (not share)
            digit_idx2 = digit_idx.copy()
            digit_idx2[redraw_digit] = draw_by_class(src.pools[split], src.labels, f2[redraw_digit, 0], rng)
            jit2 = jit if share else jitter_params(n, rng, enabled=jitter)
            redraw_bg = (varied == 2) | (not share)
            bgp2 = _take(bgp, np.flatnonzero(redraw_bg), bg.sample(split, f2[redraw_bg, 2], rng))
            both = _render(
                src, bg, p,
                np.concatenate([digit_idx, digit_idx2]),
                {k: np.concatenate([jit[k], jit2[k]]) for k in jit},
                np.concatenate([f[:, 1], f2[:, 1]]),
                np.concatenate([f[:, 2], f2[:, 2]]),
                {k: np.concatenate([bgp[k], bgp2[k]]) for k in bgp},
            )
            arrays["x"], arrays["x2"] = both[:n], both[n:]
        else:
            arrays["x"] = _render(src, bg, p, digit_idx, jit, f[:, 1], f[:, 2], bgp)
        arrays["y"] = f[:, 0].copy()
        for j, name in enumerate(FACTORS):
            arrays[f"factor_{name}"] = f[:, j].copy()
        arrays["source_id"] = src.ids[digit_idx]
        arrays["background_id"] = bgp["id"].astype(np.int64)
        if p["pairs"]:
            for j, name in enumerate(FACTORS):
                arrays[f"x2_factor_{name}"] = f2[:, j].copy()
            arrays["pair_varied"] = varied
            arrays["x2_source_id"] = src.ids[digit_idx2]
            arrays["x2_background_id"] = bgp2["id"].astype(np.int64)
        splits[split] = arrays
    meta = {
        "name": p["name"],
        "generator": "mnist_on_stl",
        "source": src.name,
        "classes": src.classes,
        "factors": {"digit": src.classes, "location": location_names(grid), "background": list(bg.classes)},
        "factor_abbrev": ABBREV,
        "pairs": bool(p["pairs"]) and {"view": "x2", "varied": "pair_varied", "factors_of_x2": "x2_factor_<name>",
                                       "vary": [FACTORS[v] for v in vary], "share_nuisance": share},
        "recipe": {"name": "random_factors", "note": "factors uniform and independent; disjoint source images and background tiles per split"},
        "seed": seed,
        "jitter": jitter,
        "backgrounds": bg.info,
        "source_images": {s: int(len(v)) for s, v in src.pools.items()},
        "spec": dict(p),
    }
    return splits, meta


def build(spec: dict, out_dir: Path, resources_dir: Path) -> dict:
    splits, meta = generate(spec, resources_dir)
    return dataset_dir.save(out_dir, splits, meta)

"""Trifeature (MCL; after Hermann & Lampinen 2020): 10 shapes x 10 colours x 10 textures.

One shape per image, at a random rotation, position and size, on a mid-grey background. The
texture is a binary pattern in the shape's own (rotated, scaled) coordinates: where it is on, the
pixel has the colour; where it is off, the colour half-way to the background grey, so every texture
(and black or white) stays visible. Rendering is vectorised over chunks of images (shape masks and
textures are closed-form functions of per-pixel local coordinates); images up to 64 px are
rendered at 2x and box-filtered (anti-aliasing). Drawn procedurally after the paper's description,
not with its original renderer: the shape/colour/texture names follow the paper (``fivesquare`` is
drawn as the five of a die).

Split recipe ``heldout_triplets``: a seeded ``holdout`` fraction (default 20%) of the 1,000
(shape, colour, texture) triplets appears only in test; train and val draw from the other
triplets (every shape, colour and texture value is still seen in training). ``y`` is the shape;
``factor_shape``, ``factor_colour``, ``factor_texture`` hold the three features and ``triplet``
their joint id ``shape*100 + colour*10 + texture``.

Spec keys (extras may also sit under ``options:``)
--------------------------------------------------
``generator``     ``"trifeature"``
``image_size``    side in pixels (default 32 "tiny"; the paper uses 224)
``recipe``        ``"heldout_triplets"`` (the only one)
``holdout``       fraction of triplets held out for test (default 0.2)
``supersample``   render at this factor and box-filter (default: 2 up to 64 px, else 1)
``n_train``, ``n_val``, ``n_test``, ``seed``   (defaults 10000, 1000, 2000, 0)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from clbench.data import dataset_dir
from clbench.data.embedded import draw_balanced, rng_for, spec_params, split_sizes, to_uint8

SHAPES = ("triangle", "square", "plus", "circle", "tee", "rhombus", "pentagon", "star", "fivesquare", "trapezoid")
COLOURS = ("red", "green", "blue", "yellow", "pink", "cyan", "purple", "ochre", "white", "black")
COLOUR_RGB = np.array(
    [[220, 30, 30], [40, 170, 50], [40, 70, 230], [245, 220, 40], [250, 140, 200],
     [40, 220, 230], [140, 50, 190], [200, 140, 40], [255, 255, 255], [0, 0, 0]], np.float32
) / 255.0
TEXTURES = ("solid", "stripes", "grid", "hexgrid", "dots", "noise", "triangles", "zigzags", "rain", "pluses")
BACKGROUND = 0.5
DEFAULTS: dict[str, Any] = {
    "image_size": 32,
    "recipe": "heldout_triplets",
    "holdout": 0.2,
    "supersample": None,
    "n_train": 10000,
    "n_val": 1000,
    "n_test": 2000,
    "seed": 0,
    "name": "trifeature",
    "source": None,
}
CHUNK = 256


# --------------------------------------------------------------------------------------------------
# shapes: boolean masks of local coordinates (u right, v up; the shape spans about [-1, 1])


def _polygon(u: np.ndarray, v: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon test, vectorised over all points (loop over the few edges)."""
    inside = np.zeros(u.shape, bool)
    for (x0, y0), (x1, y1) in zip(verts, np.roll(verts, -1, axis=0)):
        if y0 == y1:
            continue
        crosses = (y0 > v) != (y1 > v)
        xint = x0 + (v - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (u < xint)
    return inside


def _regular(n: int, r: float = 1.0, start: float = 90.0) -> np.ndarray:
    a = np.deg2rad(start + 360.0 * np.arange(n) / n)
    return np.stack([r * np.cos(a), r * np.sin(a)], 1)


def _star() -> np.ndarray:
    outer, inner = _regular(5, 1.0), _regular(5, 0.42, 90.0 + 36.0)
    return np.stack([outer, inner], 1).reshape(-1, 2)


_TRI, _PENT, _STAR = _regular(3, 1.0), _regular(5, 0.95), _star()
_TRAP = np.array([[-0.95, -0.6], [0.95, -0.6], [0.5, 0.6], [-0.5, 0.6]])


def _fivesquare(u, v):
    m = (np.abs(u) < 0.24) & (np.abs(v) < 0.24)
    for cu in (-0.55, 0.55):
        for cv in (-0.55, 0.55):
            m |= (np.abs(u - cu) < 0.24) & (np.abs(v - cv) < 0.24)
    return m


SHAPE_FNS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "triangle": lambda u, v: _polygon(u, v + 0.15, _TRI),
    "square": lambda u, v: (np.abs(u) < 0.72) & (np.abs(v) < 0.72),
    "plus": lambda u, v: ((np.abs(u) < 0.3) & (np.abs(v) < 0.95)) | ((np.abs(v) < 0.3) & (np.abs(u) < 0.95)),
    "circle": lambda u, v: u * u + v * v < 0.85 ** 2,
    "tee": lambda u, v: ((np.abs(u) < 0.85) & (v > 0.3) & (v < 0.9)) | ((np.abs(u) < 0.28) & (v > -0.95) & (v <= 0.3)),
    "rhombus": lambda u, v: np.abs(u) / 0.65 + np.abs(v) / 0.98 < 1.0,
    "pentagon": lambda u, v: _polygon(u, v + 0.05, _PENT),
    "star": lambda u, v: _polygon(u, v + 0.05, _STAR),
    "fivesquare": _fivesquare,
    "trapezoid": lambda u, v: _polygon(u, v, _TRAP),
}


# --------------------------------------------------------------------------------------------------
# textures: values in [0, 1] of local coordinates; period P in shape units

P = 0.5


def _frac(a):
    return a - np.floor(a)


def _hexgrid(u, v):
    """Honeycomb lines: distance to the nearest hexagon centre in the hexagonal norm."""
    R = P * 0.6
    q = (2.0 / 3.0 * u) / R
    r = (-1.0 / 3.0 * u + np.sqrt(3.0) / 3.0 * v) / R
    x, z = q, r
    y = -x - z
    rx, ry, rz = np.round(x), np.round(y), np.round(z)
    dx, dy, dz = np.abs(rx - x), np.abs(ry - y), np.abs(rz - z)
    fix_x = (dx > dy) & (dx > dz)
    fix_y = ~fix_x & (dy > dz)
    rx = np.where(fix_x, -ry - rz, rx)
    rz = np.where(~fix_x & ~fix_y, -rx - ry, rz)
    cu = R * 1.5 * rx
    cv = R * np.sqrt(3.0) * (rz + rx / 2.0)
    du, dv = u - cu, v - cv
    s3 = np.sqrt(3.0) / 2.0
    hexnorm = np.maximum(np.abs(dv), np.maximum(np.abs(s3 * du + 0.5 * dv), np.abs(s3 * du - 0.5 * dv)))
    return hexnorm > 0.7 * R * s3


_NOISE = np.random.default_rng(12345).random((97, 89)) < 0.5  # fixed table: the same "noise" texture family


def _noise(u, v, phase):
    cell = P / 2.5
    i = np.floor(u / cell).astype(np.int64) + phase[:, None, None]
    j = np.floor(v / cell).astype(np.int64) + 3 * phase[:, None, None]
    return _NOISE[i % _NOISE.shape[0], j % _NOISE.shape[1]]


def _rain(u, v):
    a, b = (u + v) / np.sqrt(2.0), (u - v) / np.sqrt(2.0)
    lane = np.floor(b / (0.6 * P))
    return (_frac(b / (0.6 * P)) < 0.35) & (_frac(a / P + 0.5 * lane) < 0.55)


TEXTURE_FNS: dict[str, Callable[..., np.ndarray]] = {
    "solid": lambda u, v: np.ones(u.shape, bool),
    "stripes": lambda u, v: _frac(u / P) < 0.5,
    "grid": lambda u, v: (_frac(u / P) < 0.3) | (_frac(v / P) < 0.3),
    "hexgrid": _hexgrid,
    "dots": lambda u, v: (_frac(u / P) - 0.5) ** 2 + (_frac(v / P) - 0.5) ** 2 < 0.3 ** 2,
    "noise": _noise,
    "triangles": lambda u, v: (_frac(v / P) > 0.1) & (_frac(v / P) < 0.9 - 1.6 * np.abs(_frac(u / P) - 0.5)),
    "zigzags": lambda u, v: _frac((v + P * np.abs(_frac(u / P) - 0.5)) / (0.7 * P)) < 0.45,
    "rain": _rain,
    "pluses": lambda u, v: (((np.abs(_frac(u / P) - 0.5) < 0.12) & (np.abs(_frac(v / P) - 0.5) < 0.38))
                            | ((np.abs(_frac(v / P) - 0.5) < 0.12) & (np.abs(_frac(u / P) - 0.5) < 0.38))),
}


def render(shape: np.ndarray, colour: np.ndarray, texture: np.ndarray, angle: np.ndarray, centre: np.ndarray,
           radius: np.ndarray, size: int, supersample: int | None = None, noise_phase: np.ndarray | None = None) -> np.ndarray:
    """Render images uint8 [n, 3, size, size]; ``centre`` [n, 2] (rows, cols) and ``radius`` in pixels."""
    n = len(shape)
    ss = int(supersample or (2 if size <= 64 else 1))
    fine = size * ss
    grid = (np.arange(fine) + 0.5) / ss - 0.5  # sub-pixel centres in pixel units
    noise_phase = np.zeros(n, np.int64) if noise_phase is None else np.asarray(noise_phase, np.int64)
    out = np.empty((n, 3, size, size), np.uint8)
    for s in range(0, n, CHUNK):
        e = min(n, s + CHUNK)
        cos, sin = np.cos(angle[s:e])[:, None, None], np.sin(angle[s:e])[:, None, None]
        dy = (centre[s:e, 0, None, None] - grid[None, :, None]) / radius[s:e, None, None]  # up is +v
        dx = (grid[None, None, :] - centre[s:e, 1, None, None]) / radius[s:e, None, None]
        u = (cos * dx + sin * dy).astype(np.float32)
        v = (-sin * dx + cos * dy).astype(np.float32)
        mask = np.zeros(u.shape, bool)
        on = np.zeros(u.shape, bool)
        for k in np.unique(shape[s:e]):
            sel = np.flatnonzero(shape[s:e] == k)
            mask[sel] = SHAPE_FNS[SHAPES[k]](u[sel], v[sel])
        for k in np.unique(texture[s:e]):
            sel = np.flatnonzero(texture[s:e] == k)
            name = TEXTURES[k]
            args = (u[sel], v[sel], noise_phase[s:e][sel]) if name == "noise" else (u[sel], v[sel])
            on[sel] = TEXTURE_FNS[name](*args)
        col = COLOUR_RGB[colour[s:e]][:, :, None, None]  # [m, 3, 1, 1]
        fill = np.where(on[:, None], col, 0.5 * col + 0.5 * BACKGROUND)
        img = np.where(mask[:, None], fill, np.float32(BACKGROUND)).astype(np.float32)
        if ss > 1:
            img = img.reshape(e - s, 3, size, ss, size, ss).mean(axis=(3, 5))
        out[s:e] = to_uint8(img)
    return out


def heldout_triplets(holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Triplet ids (``shape*100 + colour*10 + texture``) for train/val and for test; every single
    feature value keeps at least one training triplet."""
    if not 0.0 < holdout < 1.0:
        raise ValueError(f"holdout must be in (0, 1), got {holdout}")
    rng = rng_for(seed, "trifeature", "triplets")
    n_test = int(round(1000 * holdout))
    for _ in range(1000):
        perm = rng.permutation(1000)
        test, train = np.sort(perm[:n_test]), np.sort(perm[n_test:])
        if all(len(np.unique(f)) == 10 for f in (train // 100, train // 10 % 10, train % 10)):
            return train, test
    raise ValueError(f"holdout={holdout} leaves some feature value without a training triplet")


def generate(spec: Mapping[str, Any], resources_dir: str | Path = "resources") -> tuple[dict, dict]:
    """The dataset in memory: ``(splits, meta)`` (see the module docstring for ``spec``)."""
    p = spec_params(spec, DEFAULTS, "trifeature")
    if p["recipe"] != "heldout_triplets":
        raise ValueError(f"trifeature: unknown recipe {p['recipe']!r}; expected 'heldout_triplets'")
    if p["source"] not in (None, "embedded", "procedural"):
        raise ValueError(f"trifeature is procedural; source must be 'embedded' (or unset), got {p['source']!r}")
    sizes = split_sizes(p)
    seed, size = int(p["seed"]), int(p["image_size"])
    train_t, test_t = heldout_triplets(float(p["holdout"]), seed)
    splits = {}
    for split, n in sizes.items():
        rng = rng_for(seed, "trifeature", split)
        trip = draw_balanced(test_t if split == "test" else train_t, n, rng).astype(np.int64)
        shape, colour, texture = trip // 100, trip // 10 % 10, trip % 10
        radius = rng.uniform(0.24, 0.34, n) * size
        margin = 1.15 * radius[:, None]  # shapes reach ~1-1.3 radii from their centre when rotated
        centre = margin + rng.random((n, 2)) * (size - 2 * margin)
        angle = rng.uniform(0, 2 * np.pi, n)
        phase = rng.integers(0, 1 << 16, n)
        x = render(shape, colour, texture, angle, centre, radius, size, p["supersample"], phase)
        splits[split] = {"x": x, "y": shape.copy(), "factor_shape": shape, "factor_colour": colour,
                         "factor_texture": texture, "triplet": trip}
    meta = {
        "name": p["name"],
        "generator": "trifeature",
        "source": "procedural",
        "classes": list(SHAPES),
        "factors": {"shape": list(SHAPES), "colour": list(COLOURS), "texture": list(TEXTURES)},
        "recipe": {"name": "heldout_triplets", "holdout": float(p["holdout"]),
                   "test_triplets": test_t.tolist(), "n_train_triplets": int(len(train_t))},
        "seed": seed,
        "spec": dict(p),
    }
    return splits, meta


def build(spec: dict, out_dir: Path, resources_dir: Path) -> dict:
    splits, meta = generate(spec, resources_dir)
    return dataset_dir.save(out_dir, splits, meta)

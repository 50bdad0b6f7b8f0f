"""Styled-MNIST (CLEAR): 28x28 grey digits x six styles, with an independent and an OOD-k recipe.

Styles (applied to the digit image with values in [0, 1], then quantised to uint8):

==========  ===================================================================
identity    the digit as is
stripe      columns 0-6 and 21-27 inverted (``1 - v``)
zigzag      a thin, nearly horizontal zigzag line drawn in white over the digit
            (:func:`zigzag_lines`: columns 2-25, tilted by at most 5 rows, teeth 2 px high)
canny       the digit's Canny edges (``skimage.feature.canny``, sigma 1)
scale_down  the digit shrunk to half its size about the image centre (:func:`style_scale_down`:
            a digit spanning rows 5-22 spans rows 9-18 afterwards)
brightness  +0.5 on every value, clipped at 1
==========  ===================================================================

These are the official code's style functions (``code/corruption_utils/corruptions.py`` in
scotsun/clear-vae: ``identity``, ``stripe``, ``zigzag``, ``canny_edges``, ``scale(x, 5)``,
``brightness``), rewritten vectorised. Where they differ in detail it is said at the function.

Recipes
-------
- ``independent``: the style is drawn independently of the digit, identically in every split, with
  probabilities identity .15, stripe .2, zigzag .25, canny .1, scale_down .1, brightness .2.
- ``ood`` with ``k`` (1..5): for every digit ``k`` of the six styles are allowed in train and val
  (uniformly), the other ``6 - k`` appear only in test (uniformly), so every test (digit, style)
  pair is unseen in training. How the allowed sets are chosen is ``ood_design``:

  - ``random`` (default, the official code's ``generate_style_dict``): each digit's ``k`` styles are
    drawn at random, independently of the other digits. A style can then be missing from training
    altogether: at ``k = 1`` about one style in six is (the test samples of such a style show the
    model a style it never saw); at ``k = 3`` it happens for about one seed in 170.
  - ``cyclic``: a seeded cyclic design. With a random style order ``p`` and random digit offsets
    ``o`` (a permutation of 0..9 taken mod 6), digit ``d`` is allowed ``{p[(o[d] + j) % 6] : j < k}``,
    so every style is seen in training with some digits and held out for others.

  Both are nested in ``k`` for a fixed seed (the allowed sets at ``k`` contain those at ``k - 1``).
  ``meta["recipe"]`` records the design, the allowed and held-out styles per digit, and
  ``styles_never_in_training`` (empty under ``cyclic``).

Spec keys (one entry of the config's ``datasets:``; extras may also sit under ``options:``)
----------------------------------------------------------------------------------------------
``generator``   ``"styled_mnist"``
``source``      ``"embedded"`` (default: scikit-learn digits, see :mod:`clbench.data.embedded`) or ``"mnist"``
``root``        MNIST root in torchvision's layout (``<root>/MNIST/raw/...``); default ``<resources>/mnist``
``download``    fetch MNIST with torchvision when it is missing (default false)
``recipe``      ``"independent"`` (default) or ``"ood"``
``k``           styles per digit allowed in train/val for ``ood`` (1..5, default 3)
``ood_design``  ``"random"`` (default, the official draw) or ``"cyclic"`` (see Recipes)
``n_train``, ``n_val``, ``n_test``   samples per split (defaults 10000, 1000, 2000)
``seed``        integer seed (default 0): same seed, byte-identical arrays
``jitter``      random affine jitter of the digits (default: true for embedded, false for mnist)

Output: ``x`` uint8 [N, 1, 28, 28], ``y`` the digit, ``factor_style`` (index into
:data:`STYLES`), ``source_id`` the source image of each sample (train, val and test use disjoint
source images). Source images are drawn without replacement while they last, then in further
shuffled passes (with fresh jitter for the embedded source).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from clbench.data import dataset_dir
from clbench.data.embedded import (
    CANVAS,
    CHUNK,
    digit_source,
    draw_balanced,
    jitter_params,
    render_digits,
    rng_for,
    spec_params,
    split_sizes,
    to_uint8,
)

STYLES = ("identity", "stripe", "zigzag", "canny", "scale_down", "brightness")
OOD_DESIGNS = ("random", "cyclic")
STYLE_PROBS = (0.15, 0.2, 0.25, 0.1, 0.1, 0.2)
DEFAULTS: dict[str, Any] = {
    "source": "embedded",
    "root": None,
    "download": False,
    "recipe": "independent",
    "k": 3,
    "ood_design": "random",
    "n_train": 10000,
    "n_val": 1000,
    "n_test": 2000,
    "seed": 0,
    "jitter": None,
    "name": "styled_mnist",
    "image_size": CANVAS,
}


# --------------------------------------------------------------------------------------------------
# styles, each vectorised over a stack [n, 28, 28] of floats in [0, 1]


def style_stripe(x: np.ndarray) -> np.ndarray:
    out = x.copy()
    out[:, :, 0:7] = 1.0 - out[:, :, 0:7]
    out[:, :, 21:28] = 1.0 - out[:, :, 21:28]
    return out


ZIGZAG_COLUMNS = (2, 25)  # the zigzag's base line runs between these columns
ZIGZAG_TILT = 5  # the base line's end row differs from its start row by -5..4 rows
ZIGZAG_TOOTH = 2.0  # half-period along the line and height across it, in pixels
ZIGZAG_HALF_WIDTH = 2.3  # the intensity profile 1 + log(1 - d / 2.3) reaches 0 at d = 1.45 px


def zigzag_lines(n: int, rng: np.random.Generator, size: int = CANVAS) -> np.ndarray:
    """``n`` random thin zigzag lines [n, size, size] in [0, 1], nearly horizontal.

    As the official ``zigzag``: a base line from ``(r0, 2)`` to ``(r0 + t, 25)`` (``r0`` uniform in
    0..26, ``t`` in -5..4), and along it a zigzag with vertices every 2 px at ``+-2`` px across it
    (at distances 0, 2, 6, 10, ... along the line, offsets 0, +2, -2, ...), ending where the base
    line ends. A pixel's value is ``clip(1 + log(1 - d / 2.3), 0, 1)`` with ``d`` its distance to the
    polyline: 1 on the line, 0 beyond 1.45 px, so the line is about 3 px wide. (The official code
    measures ``d`` vertically to each segment's infinite line, cut to the segment's columns; the
    perpendicular distance used here draws the slanted teeth with the same width as the flat parts.)
    """
    c0, c1 = ZIGZAG_COLUMNS
    r0 = rng.integers(0, size - 1, n).astype(np.float64)
    r1 = r0 + rng.integers(-ZIGZAG_TILT, ZIGZAG_TILT, n)
    theta = np.arctan((r1 - r0) / (c1 - c0))
    length = (c1 - c0) / np.cos(theta)  # [n]
    a = ZIGZAG_TOOTH
    teeth = int((c1 - c0) / np.cos(np.arctan(ZIGZAG_TILT / (c1 - c0))) // (2 * a)) + 1
    along = np.concatenate([[0.0], (2 * np.arange(teeth) + 1) * a])  # vertex positions along the line
    across = np.concatenate([[0.0], a * (-1.0) ** np.arange(teeth)])
    along = np.broadcast_to(along, (n, len(along))).copy()
    across = np.broadcast_to(across, (n, len(across))).copy()
    # the last vertex: where the zigzag (a triangle wave) is at the line's end; vertices past it are
    # moved onto it, which leaves the polyline unchanged
    wave = a * (1.0 - np.abs(((length / a + 1.0) % 4.0) - 2.0))
    past = along >= length[:, None]
    along = np.where(past, length[:, None], along)
    across = np.where(past, wave[:, None], across)
    along = np.concatenate([along, length[:, None]], 1)
    across = np.concatenate([across, wave[:, None]], 1)
    cos, sin = np.cos(theta)[:, None], np.sin(theta)[:, None]
    cols = (c0 + along * cos - across * sin).astype(np.float32)
    rows = (r0[:, None] + along * sin + across * cos).astype(np.float32)
    d = polyline_distance(rows, cols, size)
    profile = 1.0 + np.log(1.0 - np.minimum(d, ZIGZAG_HALF_WIDTH - 1e-6) / ZIGZAG_HALF_WIDTH)
    return np.clip(profile, 0.0, 1.0).astype(np.float32)


def polyline_distance(rows: np.ndarray, cols: np.ndarray, size: int) -> np.ndarray:
    """Distance [n, size, size] from every pixel centre to the polyline of vertices ``(rows, cols)`` [n, V]."""
    n = len(rows)
    out = np.empty((n, size, size), np.float32)
    pr = np.repeat(np.arange(size, dtype=np.float32), size)[None, None, :]  # [1, 1, P]
    pc = np.tile(np.arange(size, dtype=np.float32), size)[None, None, :]
    for s in range(0, n, CHUNK):
        e = min(n, s + CHUNK)
        ar, ac = rows[s:e, :-1, None], cols[s:e, :-1, None]  # [m, S, 1]
        br, bc = rows[s:e, 1:, None] - ar, cols[s:e, 1:, None] - ac
        inv = 1.0 / np.maximum(br * br + bc * bc, 1e-6)
        dr, dc = pr - ar, pc - ac  # [m, S, P]
        t = np.clip((dr * br + dc * bc) * inv, 0.0, 1.0)
        dr -= t * br
        dc -= t * bc
        out[s:e] = np.sqrt((dr * dr + dc * dc).min(axis=1)).reshape(-1, size, size)
    return out


def style_zigzag(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The digit with a zigzag line added (:func:`zigzag_lines`), clipped at 1, as the official code."""
    return np.minimum(x + zigzag_lines(len(x), rng, x.shape[-1]), 1.0)


def style_canny(x: np.ndarray, sigma: float = 1.0, per_mosaic: int = 1024) -> np.ndarray:
    """Canny edges (``skimage.feature.canny``, default thresholds) of every image, vectorised.

    The edges are those of the image on its black surround: per image this is
    ``canny(np.pad(x[i], g), sigma, mask=<the image's pixels>)[g:-g, g:-g]`` with ``g = 4*sigma + 2``,
    which differs from plain ``canny(x[i])`` only within ~2 px of the border (where plain canny's
    Sobel reflects the image). skimage's canny is 2-D only, so the images are tiled into large
    mosaics with zero gaps of ``g`` pixels and that mask: the Gaussian (truncated at 4 sigma), Sobel,
    mask erosion, absolute thresholds and hysteresis never reach across a gap, so one call per
    mosaic gives exactly the per-image result (the tests check this) about 4x faster.
    """
    from skimage.feature import canny

    n, h, w = x.shape
    out = np.zeros((n, h, w), np.float32)
    gap = int(np.ceil(4 * sigma)) + 2
    side = int(np.ceil(np.sqrt(min(n, per_mosaic)))) or 1
    ch, cw = h + gap, w + gap
    for s in range(0, n, side * side):
        m = min(n, s + side * side) - s
        rows = -(-m // side)
        mosaic = np.zeros((rows * ch + gap, side * cw + gap), np.float32)
        mask = np.zeros(mosaic.shape, bool)
        tiles = np.zeros((rows * side, h, w), np.float32)
        tiles[:m] = x[s:s + m]
        view = mosaic[gap:gap + rows * ch, gap:gap + side * cw].reshape(rows, ch, side, cw)
        view[:, :h, :, :w] = tiles.reshape(rows, side, h, w).transpose(0, 2, 1, 3)
        mview = mask[gap:gap + rows * ch, gap:gap + side * cw].reshape(rows, ch, side, cw)
        mview[:, :h, :, :w] = True
        edges = canny(mosaic, sigma=sigma, mask=mask)
        eview = edges[gap:gap + rows * ch, gap:gap + side * cw].reshape(rows, ch, side, cw)
        out[s:s + m] = eview[:, :h, :, :w].transpose(0, 2, 1, 3).reshape(rows * side, h, w)[:m]
    return out


def style_scale_down(x: np.ndarray, factor: float = 2.0) -> np.ndarray:
    """Shrink every image by ``factor`` about its centre; the border fills with 0.

    Output pixel ``p`` reads the input at ``c + factor * (p - c)``, ``c = (size - 1) / 2`` (bilinear,
    zero outside): the official ``scale(x, 5)`` (skimage ``warp`` with an inverse map of scale 2 about
    pixel 13.5, no anti-aliasing). A digit spanning rows 5-22 spans rows 9-18 afterwards.
    """
    from scipy import ndimage

    size = x.shape[-1]
    centre = (size - 1) / 2.0
    matrix = np.array([1.0, factor, factor])  # the stack axis maps to itself: images never mix
    offset = np.array([0.0, centre * (1.0 - factor), centre * (1.0 - factor)])
    return ndimage.affine_transform(np.asarray(x, np.float32), matrix, offset=offset, order=1, mode="constant",
                                    cval=0.0)


def style_brightness(x: np.ndarray) -> np.ndarray:
    return np.minimum(x + 0.5, 1.0)


def apply_styles(images: np.ndarray, styles: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Apply ``STYLES[styles[i]]`` to ``images[i]`` (float [n, 28, 28] in [0, 1]); one vectorised call per style."""
    out = np.array(images, dtype=np.float32, copy=True)
    styles = np.asarray(styles)
    for s, name in enumerate(STYLES):
        where = np.flatnonzero(styles == s)
        if len(where) == 0 or name == "identity":
            continue
        sub = out[where]
        if name == "stripe":
            sub = style_stripe(sub)
        elif name == "zigzag":
            sub = style_zigzag(sub, rng)
        elif name == "canny":
            sub = style_canny(sub)
        elif name == "scale_down":
            sub = style_scale_down(sub)
        elif name == "brightness":
            sub = style_brightness(sub)
        out[where] = sub
    return out


# --------------------------------------------------------------------------------------------------
# recipes


def ood_allowed_styles(k: int, seed: int, design: str = "random") -> np.ndarray:
    """Boolean [10 digits, 6 styles]: which (digit, style) pairs train/val may contain (``k`` per digit).

    ``design``: ``random`` (each digit's styles drawn at random, the official code's draw) or
    ``cyclic`` (see the module docstring). Both are nested in ``k`` for a fixed seed.
    """
    if not 1 <= k <= len(STYLES) - 1:
        raise ValueError(f"ood recipe needs 1 <= k <= {len(STYLES) - 1}, got k={k}")
    if design == "random":
        # one random order of the styles per digit; its first k are allowed
        ranks = rng_for(seed, "styled_mnist", "ood_design", "random").random((10, len(STYLES)))
        order = np.argsort(ranks, axis=1)
        allowed = np.zeros((10, len(STYLES)), bool)
        np.put_along_axis(allowed, order[:, :k], True, axis=1)
        return allowed
    if design != "cyclic":
        raise ValueError(f"styled_mnist: unknown ood_design {design!r}; expected one of {list(OOD_DESIGNS)}")
    rng = rng_for(seed, "styled_mnist", "ood_design")
    order = rng.permutation(len(STYLES))
    offset = rng.permutation(10) % len(STYLES)
    allowed = np.zeros((10, len(STYLES)), bool)
    for d in range(10):
        allowed[d, order[(offset[d] + np.arange(k)) % len(STYLES)]] = True
    return allowed


def sample_styles(digits: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each digit, a style drawn uniformly among ``mask[digit]`` (vectorised)."""
    weights = mask[digits].astype(np.float64)
    cum = np.cumsum(weights, axis=1)
    u = rng.random(len(digits)) * cum[:, -1]
    return (cum <= u[:, None]).sum(axis=1).astype(np.int64)


def generate(spec: Mapping[str, Any], resources_dir: str | Path = "resources") -> tuple[dict, dict]:
    """The dataset in memory: ``(splits, meta)`` (see the module docstring for ``spec``)."""
    p = spec_params(spec, DEFAULTS, "styled_mnist")
    if int(p["image_size"]) != CANVAS:
        raise ValueError(f"styled_mnist images are {CANVAS}x{CANVAS}; got image_size={p['image_size']}")
    sizes = split_sizes(p)
    seed = int(p["seed"])
    src = digit_source(p["source"], p["root"], bool(p["download"]), seed, resources_dir)
    jitter = src.jitter_default if p["jitter"] is None else bool(p["jitter"])
    recipe = p["recipe"]
    if recipe == "independent":
        recipe_meta: dict[str, Any] = {"name": "independent", "style_probs": dict(zip(STYLES, STYLE_PROBS))}
        allowed = None
    elif recipe == "ood":
        k = int(p["k"])
        allowed = ood_allowed_styles(k, seed, p["ood_design"])
        recipe_meta = {
            "name": "ood",
            "k": k,
            "design": p["ood_design"],
            "styles_never_in_training": [STYLES[s] for s in np.flatnonzero(~allowed.any(axis=0))],
            "allowed": {str(d): [STYLES[s] for s in np.flatnonzero(allowed[d])] for d in range(10)},
            "held_out": {str(d): [STYLES[s] for s in np.flatnonzero(~allowed[d])] for d in range(10)},
        }
    else:
        raise ValueError(f"styled_mnist: unknown recipe {recipe!r}; expected 'independent' or 'ood'")

    splits: dict[str, dict[str, np.ndarray]] = {}
    for split, n in sizes.items():
        idx = draw_balanced(src.pools[split], n, rng_for(seed, "styled_mnist", split, "digits"))
        y = src.labels[idx]
        rs = rng_for(seed, "styled_mnist", split, "styles")
        if allowed is None:
            style = rs.choice(len(STYLES), size=n, p=STYLE_PROBS).astype(np.int64)
        else:
            style = sample_styles(y, allowed if split != "test" else ~allowed, rs)
        jit = jitter_params(n, rng_for(seed, "styled_mnist", split, "jitter"), enabled=jitter)
        images = apply_styles(render_digits(src, idx, jit), style, rng_for(seed, "styled_mnist", split, "zigzag"))
        splits[split] = {
            "x": to_uint8(images)[:, None],
            "y": y.astype(np.int64),
            "factor_style": style,
            "source_id": src.ids[idx].astype(np.int64),
        }
    meta = {
        "name": p["name"],
        "generator": "styled_mnist",
        "source": src.name,
        "classes": src.classes,
        "factors": {"style": list(STYLES)},
        "recipe": recipe_meta,
        "seed": seed,
        "jitter": jitter,
        "source_images": {s: int(len(v)) for s, v in src.pools.items()},
        "spec": {k: v for k, v in p.items()},
    }
    return splits, meta


def build(spec: dict, out_dir: Path, resources_dir: Path) -> dict:
    splits, meta = generate(spec, resources_dir)
    return dataset_dir.save(out_dir, splits, meta)

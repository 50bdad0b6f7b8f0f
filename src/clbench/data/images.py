"""Decoding image files into uint8 NCHW arrays (Pillow): one image, many in threads, resizing and channels.

Used by the ImageFolder-style sources when they build a dataset and by
:class:`~clbench.data.dataset_dir.LazyImages` when a path-index split is read.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from clbench.errors import DatasetError

__all__ = ["load_image", "load_images", "resize_batch", "to_channels"]


def to_channels(x: np.ndarray, channels: int | None) -> np.ndarray:
    """Convert uint8 NCHW between 1 (ITU-R 601-2 luma, as PIL's "L") and 3 channels."""
    if channels is None or x.shape[1] == channels:
        return x
    if channels == 3 and x.shape[1] == 1:
        return np.repeat(x, 3, axis=1)
    if channels == 1 and x.shape[1] == 3:
        w = np.array([299, 587, 114], dtype=np.uint32).reshape(1, 3, 1, 1)
        return (((x.astype(np.uint32) * w).sum(1, keepdims=True) + 500) // 1000).astype(np.uint8)
    raise ValueError(f"channels must be 1 or 3, got {channels}")


def _pil_resize(img, size: int):
    from PIL import Image

    w, h = img.size
    if w != h:  # centre crop to a square first
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        img = img.crop((left, top, left + s, top + s))
    if img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    return img


# how a file's image is fitted to a square of ``size``: a centre square then a bilinear resize (the default,
# JPEG draft decoding), or open_clip's eval transform (Resize(size, bicubic) of the short side, CenterCrop)
FITS = ("centre_square", "shortest_side")


def _shortest_side(img, size: int):
    """open_clip's eval transform on a PIL image (torchvision's Resize(size, BICUBIC) then CenterCrop(size))."""
    from PIL import Image

    w, h = img.size
    if w <= h:
        new = (size, int(size * h / w))
    else:
        new = (int(size * w / h), size)
    if new != (w, h):
        img = img.resize(new, Image.BICUBIC)
    w, h = img.size
    left, top = int(round((w - size) / 2.0)), int(round((h - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def resize_batch(x: np.ndarray, size: int | None) -> np.ndarray:
    """Centre-crop to square and resize uint8 NCHW images to ``size`` x ``size`` (Pillow, bilinear)."""
    if size is None or (x.shape[2] == size and x.shape[3] == size):
        return x
    from PIL import Image

    n, c = x.shape[:2]
    out = np.empty((n, c, size, size), dtype=np.uint8)
    for i in range(n):
        arr = x[i, 0] if c == 1 else np.moveaxis(x[i], 0, -1)
        img = _pil_resize(Image.fromarray(np.ascontiguousarray(arr)), size)
        a = np.asarray(img)
        out[i] = a[None] if c == 1 else np.moveaxis(a, -1, 0)
    return out


def load_image(path: str | os.PathLike, size: int | None, channels: int = 3, fit: str = "centre_square") -> np.ndarray:
    """Decode one image file to uint8 CHW (fitted to ``size`` x ``size`` as ``fit`` says, when given)."""
    from PIL import Image

    if fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}, got {fit!r}")
    mode = "L" if channels == 1 else "RGB"
    with Image.open(path) as img:
        if fit == "shortest_side":
            img = img.convert(mode)
            if size is not None:
                img = _shortest_side(img, size)
        else:
            if size is not None and img.format == "JPEG":
                img.draft(mode, (size, size))  # fast DCT-domain downscaling, never below `size`
            img = img.convert(mode)
            if size is not None:
                img = _pil_resize(img, size)
        a = np.asarray(img, dtype=np.uint8)
    return a[None] if channels == 1 else np.ascontiguousarray(np.moveaxis(a, -1, 0))


def load_images(
    paths: Sequence[str | os.PathLike],
    size: int | None,
    channels: int = 3,
    workers: int = 4,
    error: Callable[[Path, Exception], DatasetError] | None = None,
    fit: str = "centre_square",
) -> np.ndarray:
    """Decode many image files into one uint8 NCHW array (threads: Pillow releases the GIL)."""
    paths = [Path(p) for p in paths]

    def one(p: Path) -> np.ndarray:
        try:
            return load_image(p, size, channels, fit)
        except Exception as e:  # FileNotFoundError, PIL.UnidentifiedImageError, OSError (truncated)
            if error is not None:
                raise error(p, e) from e
            raise DatasetError(f"cannot read image {p}: {e}") from e

    if not paths:
        s = size or 0
        return np.zeros((0, channels, s, s), dtype=np.uint8)
    if workers and workers > 1 and len(paths) > 64:
        with ThreadPoolExecutor(max_workers=int(workers)) as ex:
            imgs = list(ex.map(one, paths))
    else:
        imgs = [one(p) for p in paths]
    shapes = {im.shape for im in imgs}
    if len(shapes) > 1:
        raise DatasetError(
            f"images under {paths[0].parent} have different sizes {sorted(shapes)[:4]}...; set `image_size:`"
        )
    return np.stack(imgs)

"""The augmentation recipes, by name, as batched operations on the device: what training views and
the augmented linear evaluation apply.

The loader hands the training loop (and the augmented probe) uint8 batches; a recipe then runs on
the whole batch, on the device the model runs on (CPU or CUDA), with kornia's augmentation module. Every view of every
sample draws its own parameters. One call per batch instead of one per image is what makes the
SimCLR-style recipes cheap: per-image torchvision calls cost more than the small encoders they
feed, and on a GPU they starve the device.

A recipe is data (:data:`RECIPES`), so tests and protocol cards read the same definition the ops
are built from. The recipes are torchvision's (the per-image v2 transforms this module replaces):

- ``digits``: small random affine (rotation 10 deg, shift 10%, scale 0.9-1.1), nearest-neighbour,
  zero fill; keeps a digit a digit and keeps the CLEAR styles (stripes, zoom, edges) recognisable.
- ``simclr``: random resized crop (scale 0.08-1, ratio 3/4-4/3), horizontal flip p=0.5, colour
  jitter (brightness 0.4, contrast 0.4, saturation 0.4, hue 0.1) with p=0.8, greyscale p=0.2.
- ``supcon``: as ``simclr`` with crop scale 0.2-1, the SupCon paper's CIFAR recipe.
- ``crop_flip``: random resized crop (scale 0.2-1, ratio 3/4-4/3) and horizontal flip p=0.5 only,
  the SupCon linear evaluation's training transform (``main_linear.py``), which VarCon's linear
  evaluation follows.

Colour jitter and greyscale apply to 3-channel images only.

Path-indexed datasets (ImageNet) keep the first op in the loader workers: each image is decoded at
its file's resolution and random-resized-cropped to the training size there (:func:`pipeline`), so
only small tensors travel; the rest of the recipe runs on the device.

Randomness. kornia draws its parameters from torch's global CPU generator (it samples on the CPU
even for CUDA inputs, as long as its modules are not moved with ``.to``; these never are). Every
call of :class:`DeviceAugment` therefore runs inside :func:`torch.random.fork_rng` with the CPU
generator seeded by :func:`step_seed` of ``(seed, epoch, step, rank)``:

- a step's views depend on those four numbers only, so a resumed run draws them again bit for bit;
- data-parallel ranks draw different streams;
- the global stream the model draws from (noise, dropout) is left as if augmentation drew nothing;
- a CUDA run draws the same parameters as a CPU run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from clbench.models.inputs import to_float


@dataclass(frozen=True)
class Recipe:
    """One augmentation recipe's definition; a field left at its default switches that op off."""

    crop_scale: tuple[float, float] | None = None  # random resized crop: area fraction range
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # ... and width / height range (log-uniform)
    flip_p: float = 0.0  # horizontal flip
    jitter: tuple[float, float, float, float] | None = None  # brightness, contrast, saturation, hue strengths
    jitter_p: float = 0.0
    grayscale_p: float = 0.0
    affine_degrees: float = 0.0  # random affine: rotation in [-d, d] degrees
    affine_translate: float = 0.0  # shift up to this fraction of the size, per axis
    affine_scale: tuple[float, float] | None = None

    @property
    def crops_first(self) -> bool:
        return self.crop_scale is not None


SIMCLR_JITTER = (0.4, 0.4, 0.4, 0.1)
RECIPES: dict[str, Recipe] = {
    "none": Recipe(),
    "digits": Recipe(affine_degrees=10.0, affine_translate=0.1, affine_scale=(0.9, 1.1)),
    "simclr": Recipe(crop_scale=(0.08, 1.0), flip_p=0.5, jitter=SIMCLR_JITTER, jitter_p=0.8, grayscale_p=0.2),
    "supcon": Recipe(crop_scale=(0.2, 1.0), flip_p=0.5, jitter=SIMCLR_JITTER, jitter_p=0.8, grayscale_p=0.2),
    "crop_flip": Recipe(crop_scale=(0.2, 1.0), flip_p=0.5),
}


def recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown augmentation {name!r}; choose one of {sorted(RECIPES)}")
    return RECIPES[name]


def step_seed(seed: int, epoch: int, step: int, rank: int = 0) -> int:
    """The seed of one step's augmentation parameters (numpy's SeedSequence mixes the four numbers)."""
    state = np.random.SeedSequence([int(seed), int(epoch), int(step), int(rank)]).generate_state(2, np.uint32)
    return (int(state[0]) << 31 | int(state[1]) >> 1) % 2**63


def _kornia():
    import kornia.augmentation as K  # imported on first use: ~1 s that jobs without augmentation skip

    return K


def _resized_crop(size: int, scale, ratio):
    K = _kornia()

    class ResizedCrop(K.RandomResizedCrop):
        """kornia's RandomResizedCrop (torchvision's box sampling), applied as one batched resample with
        torchvision's geometry: output pixel j samples the box at ``x0 + (j + 0.5) * w / S - 0.5``,
        clamped to the box, exactly ``resize(crop(img))`` with bilinear, align_corners=False. kornia's
        "slice" mode computes the same pixels with a loop over the batch; its "resample" mode maps
        corner pixel to corner pixel, a slightly tighter crop. Boxes are never larger than the image,
        so the resize only upsamples and antialiasing has nothing to do."""

        def apply_transform(self, input, params, flags, transform=None):
            n, c, height, width = input.shape
            out_h, out_w = flags["size"]
            box = params["src"].to(torch.float64)  # [n, 4, 2] (x, y): top-left, top-right, bottom-right, bottom-left
            x0, y0 = box[:, 0, 0], box[:, 0, 1]
            w, h = box[:, 1, 0] - x0 + 1, box[:, 3, 1] - y0 + 1
            theta = torch.zeros(n, 2, 3, dtype=torch.float64)
            theta[:, 0, 0], theta[:, 0, 2] = w / width, (2 * x0 + w) / width - 1
            theta[:, 1, 1], theta[:, 1, 2] = h / height, (2 * y0 + h) / height - 1
            # the normalised centres of the box's first and last pixels: resize clamps to the crop's edge
            lo = torch.stack([(2 * x0 + 1) / width - 1, (2 * y0 + 1) / height - 1], 1)
            hi = torch.stack([(2 * (x0 + w - 1) + 1) / width - 1, (2 * (y0 + h - 1) + 1) / height - 1], 1)
            dev, dtype = input.device, input.dtype
            grid = F.affine_grid(theta.to(dev, dtype, non_blocking=True), [n, c, out_h, out_w], align_corners=False)
            grid = torch.clamp(grid, lo.to(dev, dtype, non_blocking=True)[:, None, None],
                               hi.to(dev, dtype, non_blocking=True)[:, None, None])
            return F.grid_sample(input, grid, mode="bilinear", padding_mode="border", align_corners=False)

    return ResizedCrop((size, size), scale=scale, ratio=ratio, align_corners=False, cropping_mode="slice")


def _color_jitter(strengths, p: float):
    K = _kornia()
    from kornia.enhance import (adjust_brightness_accumulative, adjust_contrast_with_mean_subtraction,
                                adjust_saturation_with_gray_subtraction)

    steps = (adjust_brightness_accumulative, adjust_contrast_with_mean_subtraction,
             adjust_saturation_with_gray_subtraction, adjust_hue)
    keys = ("brightness_factor", "contrast_factor", "saturation_factor", "hue_factor")

    class ColorJitter(K.ColorJitter):
        """kornia's ColorJitter (torchvision's formulas and ranges) with a random order of the four
        adjustments per image, as torchvision draws one per call; kornia draws one per batch."""

        def generate_parameters(self, batch_shape):
            params = super().generate_parameters(batch_shape)
            params["order"] = torch.rand(batch_shape[0], 4).argsort(dim=1)
            return params

        def apply_transform(self, input, params, flags, transform=None):
            x = input.clamp(0.0, 1.0)  # a copy, adjusted in place below
            order = params["order"]
            # rows the p-gate leaves out are blended back by kornia: skip computing them
            gated = params["batch_prob"].cpu() > 0.5
            for slot in range(4):
                for op in range(4):
                    rows = torch.nonzero(gated & (order[:, slot] == op)).flatten()
                    if rows.numel() == 0:
                        continue
                    factor = params[keys[op]].to(torch.float32)[rows].to(x.device, non_blocking=True)
                    at = rows.to(x.device, non_blocking=True)
                    x.index_copy_(0, at, steps[op](x.index_select(0, at), factor))
            return x.clamp_(0.0, 1.0)

    return ColorJitter(*strengths, p=p)


def adjust_hue(img: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue of RGB images [N, 3, H, W] in [0, 1] by ``shift`` [N] turns (torchvision's adjust_hue).

    The HSV round trip of torchvision and kornia, written for speed: a hue rotation keeps each
    pixel's max and min channel, so only the hue is computed and the channels are rebuilt from it
    (the standard hsv->rgb formula ``v - (v - min) * clamp(min(k, 4 - k), 0, 1)``). It is the
    costliest op of the SimCLR recipe; this form takes about half of kornia's time.
    """
    mx, mn = img.amax(1), img.amin(1)
    d = mx - mn
    r, g, b = img.unbind(1)
    safe = torch.where(d == 0, torch.ones_like(d), d)
    sextant = torch.where((r >= g) & (r >= b), (g - b) / safe,
                          torch.where(g >= b, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
    sextant = sextant + 6.0 * shift.view(-1, 1, 1)
    k = torch.remainder(torch.tensor([5.0, 3.0, 1.0], device=img.device, dtype=img.dtype).view(1, 3, 1, 1)
                        + sextant.unsqueeze(1), 6.0)
    return mx.unsqueeze(1) - d.unsqueeze(1) * torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)


def _affine(r: Recipe):
    K = _kornia()

    class Affine(K.RandomAffine):
        """kornia's RandomAffine with whole-pixel shifts, as torchvision's RandomAffine rounds them."""

        def generate_parameters(self, batch_shape):
            params = super().generate_parameters(batch_shape)
            params["translations"] = params["translations"].round()
            return params

    t = r.affine_translate
    return Affine(degrees=r.affine_degrees, translate=(t, t) if t else None, scale=r.affine_scale,
                  resample="nearest", padding_mode="zeros", align_corners=False, p=1.0)


def build_ops(r: Recipe, image_size: int, channels: int, *, crop: bool = True) -> list[torch.nn.Module]:
    """The recipe's ops in torchvision's order; ``crop=False`` leaves out a crop done in the loader."""
    K = _kornia() if r != Recipe() else None
    ops: list[torch.nn.Module] = []
    if r.affine_degrees or r.affine_translate or r.affine_scale:
        ops.append(_affine(r))
    if r.crop_scale is not None and crop:
        ops.append(_resized_crop(image_size, r.crop_scale, r.crop_ratio))
    if r.flip_p:
        ops.append(K.RandomHorizontalFlip(p=r.flip_p))
    if channels == 3 and r.jitter is not None and r.jitter_p:
        ops.append(_color_jitter(r.jitter, r.jitter_p))
    if channels == 3 and r.grayscale_p:
        ops.append(K.RandomGrayscale(p=r.grayscale_p))
    return ops


class DeviceAugment:
    """A recipe as batched ops: uint8 views ``[..., C, H, W]`` -> float in [0, 1] on ``device``.

    Every image of the flattened batch (each view of each sample) gets its own parameters. On CUDA
    the uint8 batch (pinned by the loader) is copied without blocking, converted and augmented on
    the GPU, and returned channels_last; it runs outside autocast, in float32.
    """

    def __init__(self, name: str, image_size: int, channels: int, *, crop: bool = True):
        self.name = name
        self.recipe = recipe(name)
        self.ops = build_ops(self.recipe, image_size, channels, crop=crop)

    def __call__(self, views: torch.Tensor, device: torch.device | str, seed: int) -> torch.Tensor:
        device = torch.device(device)
        lead = views.shape[:-3]
        x = to_float(views.reshape(-1, *views.shape[-3:]), device)
        if self.ops:
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(seed)
                for op in self.ops:
                    x = op(x)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        return x.view(*lead, *x.shape[-3:])


def pipeline(name: str, image_size: int, channels: int, *, path_indexed: bool = False):
    """``(loader_transform, device_augment)`` for the images a model trains on (pretraining, or the
    augmented linear evaluation's probe).

    In-memory datasets: no loader transform (the loader hands over uint8 batches), the whole
    recipe on the device. Path-indexed datasets with a crop-first recipe: the random resized crop
    runs per image in the loader workers on the full-resolution decode (torchvision, antialiased),
    the rest on the device; ``loader_transform is not None`` tells the dataset to decode at full
    resolution.
    """
    r = recipe(name)
    if path_indexed and r.crops_first:
        from torchvision.transforms import v2

        crop = v2.RandomResizedCrop(image_size, scale=r.crop_scale, ratio=r.crop_ratio, antialias=True)
        return crop, DeviceAugment(name, image_size, channels, crop=False)
    return None, DeviceAugment(name, image_size, channels)


def preview_grid(images, out_png: str | Path, recipes: Sequence[str] = ("digits", "simclr", "supcon"), *,
                 views: int = 8, seed: int = 0, title: str = "") -> Path:
    """Write a PNG of augmented views: one row per (recipe, image), the original first, then ``views`` draws.

    ``images`` is uint8 ``[N, C, H, W]`` (an array, or LazyImages at the dataset's size). Draws use
    :class:`DeviceAugment` on the CPU with ``seed``, so the grid shows what training sees.
    """
    from matplotlib.figure import Figure

    from clbench.data.show import write_png

    x = torch.from_numpy(np.ascontiguousarray(np.asarray(images, dtype=np.uint8)))
    if x.ndim != 4 or len(x) == 0:
        raise ValueError(f"expected uint8 images [N, C, H, W], got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    pad = 2
    rows = [(name, i) for name in recipes for i in range(n)]
    mosaic = np.empty((len(rows) * (h + pad) + pad, (views + 1) * (w + pad) + pad + pad, 3), np.float32)
    mosaic[:] = (0.72, 0.82, 1.0)  # pale blue gaps, distinct from white and black images
    for k, name in enumerate(recipes):
        out = DeviceAugment(name, h, c)(x[:, None].expand(n, views, c, h, w), "cpu", step_seed(seed, 0, k))
        for i in range(n):
            cells = [x[i].float() / 255.0] + list(out[i])
            top = pad + (k * n + i) * (h + pad)
            for j, cell in enumerate(cells):
                left = pad + j * (w + pad) + (pad if j else 0)  # a wider gap after the original
                mosaic[top:top + h, left:left + w] = cell.expand(3, h, w).permute(1, 2, 0).numpy()
    scale = max(0.35, min(1.0, 48 / max(h, 1)))
    fig = Figure(figsize=(max(4.0, mosaic.shape[1] / 48 * scale + 1.6), max(1.5, mosaic.shape[0] / 48 * scale + 0.6)))
    ax = fig.add_subplot()
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_yticks([pad + r * (h + pad) + h / 2 for r in range(len(rows))])
    ax.set_yticklabels([f"{name} #{i}" for name, i in rows], fontsize=7)
    ax.set_xticks([pad + w / 2, pad * 2 + (w + pad) * (views + 1) / 2])
    ax.set_xticklabels(["original", f"{views} augmented views"], fontsize=7)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(title or "augmented views per recipe", fontsize=9)
    return write_png(fig, out_png)


def preview_dataset(dataset_dir_path: str | Path, out_png: str | Path, recipes: Sequence[str], *, split: str = "train",
                    images: int = 3, views: int = 8, seed: int = 0) -> Path:
    """:func:`preview_grid` of the first ``images`` images of a dataset directory's ``split``, titled by the
    dataset (the report's dataset section shows it beside the samples)."""
    from clbench.data import dataset_dir

    for name in recipes:
        recipe(name)  # an unknown name fails here, naming the valid ones
    meta = dataset_dir.load_meta(dataset_dir_path)
    x = dataset_dir.load(dataset_dir_path, split)["x"]
    first = np.stack([np.asarray(x[i], dtype=np.uint8) for i in range(min(images, len(x)))])
    name = meta.get("name", Path(dataset_dir_path).name)
    return preview_grid(first, out_png, recipes, views=views, seed=seed,
                        title=f"{name}: augmented views ({', '.join(recipes)})")

"""The augmentation recipes, by name: what training views and the augmented linear evaluation apply."""

from __future__ import annotations

from torchvision.transforms import v2

CROPS_FIRST = ("simclr", "supcon", "crop_flip")  # recipes whose first op is a random resized crop to the output size


def augmentation(name: str, image_size: int, channels: int) -> v2.Transform | None:
    """The augmentation recipes, on uint8 tensors [C, H, W].

    - ``digits``: small random affine (rotation 10 deg, shift 10%, scale 0.9-1.1) — keeps a digit a digit
      and keeps the CLEAR styles (stripes, scale-down, edges) recognisable.
    - ``simclr``: random resized crop (0.08-1), flip, colour jitter (0.4, 0.4, 0.4, 0.1) with p=0.8, greyscale p=0.2.
    - ``supcon``: as simclr with crop scale (0.2-1), the SupCon paper's CIFAR recipe.
    - ``crop_flip``: random resized crop (0.2-1) and flip only, the SupCon linear evaluation's training
      transform (``main_linear.py``), which VarCon's linear evaluation follows.
    """
    if name == "none":
        return None
    if name == "digits":
        return v2.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1))
    if name == "crop_flip":
        return v2.Compose([v2.RandomResizedCrop(image_size, scale=(0.2, 1.0), antialias=True), v2.RandomHorizontalFlip()])
    if name in ("simclr", "supcon"):
        lo = 0.08 if name == "simclr" else 0.2
        ops: list = [v2.RandomResizedCrop(image_size, scale=(lo, 1.0), antialias=True), v2.RandomHorizontalFlip()]
        if channels == 3:
            ops += [v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), v2.RandomGrayscale(p=0.2)]
        return v2.Compose(ops)
    raise ValueError(f"unknown augmentation {name!r}")

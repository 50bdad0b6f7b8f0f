"""A trained method on disk: ``model.pt`` holds its spec, the image shape and the weights.

Training writes it, evaluation and MCL's clustering read it; both go through here, so neither
needs the other to rebuild a model.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from clbench.models.methods import build_method

__all__ = ["load_model", "save_model"]


def save_model(path: str | Path, model: nn.Module, spec: dict, shape: dict) -> None:
    """Write ``model``'s weights with its ``spec`` and ``shape`` (in_channels, num_classes, image_size), atomically."""
    from clbench.io import atomic_path

    with atomic_path(path) as tmp:
        torch.save({"spec": spec, "shape": shape, "state_dict": model.state_dict()}, tmp)


def load_model(path: str | Path, device: torch.device | str = "cpu") -> nn.Module:
    """Rebuild a trained method from its ``model.pt`` (spec + shape + weights), in eval mode."""
    blob = torch.load(path, map_location=device, weights_only=True)
    shape = blob["shape"]
    model = build_method(blob["spec"], shape["in_channels"], shape["num_classes"], shape.get("image_size", 28))
    model.load_state_dict(blob["state_dict"])
    return model.to(device).eval()

"""The models' input convention: images are stored as uint8 and fed as float in [0, 1]."""

from __future__ import annotations

import torch


def to_float(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 [.., C, H, W] -> float in [0, 1] on ``device`` (channels_last on CUDA)."""
    x = x.to(device, non_blocking=True).float().div_(255.0)
    if device.type == "cuda" and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x

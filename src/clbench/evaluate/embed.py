"""Frozen features of a trained model for a whole split."""

from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def embed(model: torch.nn.Module, x: np.ndarray | torch.Tensor, device: torch.device | str = "cpu",
          batch_size: int = 512) -> torch.Tensor:
    """``model.features`` of uint8 images ``x`` [N, C, H, W] in eval mode, as float32 on the CPU."""
    from clbench.train.data import to_float

    device = torch.device(device)
    was_training = model.training
    model.eval()
    x = torch.as_tensor(x)
    out = []
    for i in range(0, len(x), batch_size):
        out.append(model.features(to_float(x[i : i + batch_size], device)).float().cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)

"""Frozen features of a trained model for a whole split."""

from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def embed(model: torch.nn.Module, x: np.ndarray | torch.Tensor, device: torch.device | str = "cpu",
          batch_size: int = 512, fn=None):
    """``model.features`` of uint8 images ``x`` [N, C, H, W] in eval mode, as float32 on the CPU.

    ``x`` is an array, a tensor or anything that slices into uint8 batches (``LazyImages``).

    ``fn(model, x_float)`` replaces ``model.features``; when it returns a tuple or list of tensors
    (e.g. CLEAR's (mu_c, mu_s), the sub-embedding slices), a list of concatenated tensors comes back.
    """
    from clbench.models.inputs import to_float

    device = torch.device(device)
    was_training = model.training
    model.eval()
    fn = fn or (lambda m, xb: m.features(xb))
    out = []
    for i in range(0, len(x), batch_size):
        # batch-wise conversion: ``x`` may be lazily decoded images (path-index datasets)
        y = fn(model, to_float(torch.as_tensor(x[i : i + batch_size]), device))
        out.append([t.float().cpu() for t in y] if isinstance(y, (tuple, list)) else y.float().cpu())
    model.train(was_training)
    if not out:
        return torch.empty(0)
    if isinstance(out[0], list):
        return [torch.cat([o[k] for o in out]) for k in range(len(out[0]))]
    return torch.cat(out)

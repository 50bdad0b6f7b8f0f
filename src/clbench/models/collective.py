"""Collective tensor operations a method's loss needs when it is trained data-parallel.

Under ``torchrun`` each process holds a share of the global batch; the in-batch objectives must
see all of it. :func:`gather` concatenates every rank's embeddings with
``torch.distributed.nn.all_gather``, whose backward sums the gradients flowing to each rank's own
rows; in a single process both functions return their input unchanged. The process group itself
is set up by :mod:`clbench.train.distributed`.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["gather", "gather_labels", "world_size"]


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gather(z: torch.Tensor) -> torch.Tensor:
    """All ranks' ``z`` concatenated along dim 0 in rank order, differentiable; ``z`` when alone."""
    if world_size() == 1:
        return z
    import torch.distributed.nn.functional as dist_fn

    return torch.cat(dist_fn.all_gather(z.contiguous()), dim=0)


def gather_labels(y: torch.Tensor) -> torch.Tensor:
    """All ranks' labels (no gradient), in the order of :func:`gather`."""
    if world_size() == 1:
        return y
    parts = [torch.empty_like(y) for _ in range(world_size())]
    dist.all_gather(parts, y.contiguous())
    return torch.cat(parts, dim=0)

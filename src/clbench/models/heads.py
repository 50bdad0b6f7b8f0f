"""Projection heads."""

from __future__ import annotations

from torch import nn


def projection_head(in_dim: int, out_dim: int = 128, hidden_dim: int | None = None) -> nn.Module:
    """SimCLR's projector: Linear - BN - ReLU - Linear."""
    hidden_dim = hidden_dim or in_dim
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim, bias=False),
        nn.BatchNorm1d(hidden_dim),
        nn.ReLU(inplace=True),
        nn.Linear(hidden_dim, out_dim),
    )

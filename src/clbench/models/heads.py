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


def classifier_head(in_dim: int, num_classes: int, kind: str = "linear", hidden_dim: int = 256) -> nn.Module:
    """A classifier on features: ``linear`` (one layer) or ``mlp`` (Linear - BN - ReLU - Linear, the
    head of CLEAR's official CNN baseline and of its MLP probe, 256 hidden units there)."""
    if kind == "linear":
        return nn.Linear(in_dim, num_classes)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(),
                             nn.Linear(hidden_dim, num_classes))
    raise ValueError(f"unknown classifier kind {kind!r}; expected 'linear' or 'mlp'")

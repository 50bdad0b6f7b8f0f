"""Projection heads, and the classifier heads of the plain CNN baseline and the probes."""

from __future__ import annotations

from torch import nn


def projection_head(in_dim: int, out_dim: int = 128, hidden_dim: int | None = None,
                    batch_norm: bool = True) -> nn.Module:
    """A two-layer projector ``Linear - [BN] - ReLU - Linear`` (hidden size ``hidden_dim``, default ``in_dim``).

    ``batch_norm=True`` is SimCLR's projector (the first Linear has no bias, BN supplies it; ADNCE's
    2048 -> 512 -> 128 is this with ``hidden_dim=512``); ``batch_norm=False`` is SupCon's and VarCon's
    ``Linear - ReLU - Linear``.
    """
    hidden_dim = hidden_dim or in_dim
    if not batch_norm:
        return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim))
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim, bias=False),
        nn.BatchNorm1d(hidden_dim),
        nn.ReLU(inplace=True),
        nn.Linear(hidden_dim, out_dim),
    )


def method_projection_head(spec: dict, in_dim: int) -> nn.Module:
    """The projector a method's settings describe: ``projection_dim`` (default 128), ``projection_hidden_dim``
    (default: the encoder's feature size) and ``projection_batch_norm`` (default true)."""
    return projection_head(in_dim, spec.get("projection_dim", 128), spec.get("projection_hidden_dim"),
                           spec.get("projection_batch_norm", True))


def classifier_head(in_dim: int, num_classes: int, kind: str = "linear", hidden_dim: int = 256) -> nn.Module:
    """A classifier on features: ``linear`` (one layer) or ``mlp`` (Linear - BN - ReLU - Linear, the
    head of CLEAR's official CNN baseline and of its MLP probe, 256 hidden units there)."""
    if kind == "linear":
        return nn.Linear(in_dim, num_classes)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(),
                             nn.Linear(hidden_dim, num_classes))
    raise ValueError(f"unknown classifier kind {kind!r}; expected 'linear' or 'mlp'")

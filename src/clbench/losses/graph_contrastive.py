"""The one-directional cross-view loss of ADNCE's graph experiments (GraphCL-style).

Paper: Wu et al., "Understanding Contrastive Learning via Distributionally Robust Optimization"
(CL-DRO / ADNCE, NeurIPS 2023), graph classification on TU datasets; official code
``graph/gsimclr_robust.py`` (``simclr.loss_cal``, modes ``easy`` and ``adnce``), whose graph
pipeline follows GraphCL (You et al. 2020).

Unlike the image losses of :mod:`clbench.losses.contrastive` (both directions, 2N - 2 negatives per
anchor, the positive in the denominator), the graph code compares each original graph ``i`` only
with the augmented views of the batch: the anchor is ``z[i]`` (original), the positive ``z_aug[i]``,
the negatives the other B - 1 augmented views ``z_aug[j]``, j != i, and the positive is *not* in
the denominator. With cosine similarities ``s_ij = cos(z_i, z_aug_j)``, temperature ``t`` and
weights ``w_ij`` that have mean 1 over each anchor's negatives::

    loss = 1/B * sum_i  -log( exp(s_ii/t) / mean_{j != i} w_ij exp(s_ij/t) )

- GraphCL / InfoNCE (mode ``easy``): ``w_ij = 1``.
- ADNCE: ``w_ij = g(s_ij) / mean_{k != i} g(s_ik)``, ``g(s) = exp(-(s - mu)^2 / (2 sigma^2))``,
  detached. The Gaussian is over the cosine similarity itself (the code takes ``log(exp(s/t)) * t``),
  and its normalising constant cancels.

Usage::

    z, z_aug = model(graphs), model(augmented_graphs)        # [B, D] each
    loss = graph_adnce(z, z_aug, temperature=0.05, mu=0.7, sigma=1.0)

The objectives ``graph_info_nce`` and ``graph_adnce`` (:mod:`clbench.objectives`, domain ``graph``)
train with these.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from clbench.losses._common import as_compute, check_embeddings, check_positive

__all__ = ["graph_adnce", "graph_info_nce", "graph_cross_view_loss"]


def graph_cross_view_loss(z: Tensor, z_aug: Tensor, temperature: float, log_weights: Tensor | None = None) -> Tensor:
    r"""``1/B sum_i -log(exp(s_ii/t) / mean_{j != i} w_ij exp(s_ij/t))`` with ``log w`` given (None: w = 1).

    Computed in the log domain: ``-s_ii/t + logsumexp_{j != i}(log w_ij + s_ij/t) - log(B - 1)``,
    so a small ``t`` cannot overflow. ``log_weights``: ``[B, B]``, only its off-diagonal entries are read.
    """
    check_embeddings(z, "z")
    check_embeddings(z_aug, "z_aug")
    if z.shape != z_aug.shape:
        raise ValueError(f"z and z_aug must have the same shape, got {tuple(z.shape)} and {tuple(z_aug.shape)}")
    n = z.shape[0]
    if n < 2:
        raise ValueError(f"the loss needs at least 2 graphs per batch (B - 1 negatives), got {n}")
    t = check_positive(temperature, "temperature")
    a, b = F.normalize(as_compute(z), dim=1), F.normalize(as_compute(z_aug), dim=1)
    logits = a @ b.T / t
    positive = logits.diagonal()
    off = ~torch.eye(n, dtype=torch.bool, device=z.device)
    scores = logits if log_weights is None else logits + log_weights
    negatives = scores.masked_fill(~off, float("-inf"))
    loss = -positive + torch.logsumexp(negatives, dim=1) - math.log(n - 1)
    return loss.mean().to(z.dtype)


def graph_info_nce(z: Tensor, z_aug: Tensor, temperature: float = 0.2) -> Tensor:
    """GraphCL's loss (the official mode ``easy``): :func:`graph_cross_view_loss` with w = 1."""
    return graph_cross_view_loss(z, z_aug, temperature)


def graph_adnce(z: Tensor, z_aug: Tensor, temperature: float = 0.2, mu: float = 0.7, sigma: float = 1.0) -> Tensor:
    """ADNCE on graphs: the negatives weighted by a detached Gaussian of their cosine similarity
    (centre ``mu``, width ``sigma``), normalised to mean 1 per anchor (see the module docstring)."""
    t = check_positive(temperature, "temperature")
    sigma = check_positive(sigma, "sigma")
    mu = float(mu)
    if not math.isfinite(mu):
        raise ValueError(f"mu must be finite, got {mu}")
    check_embeddings(z, "z")
    check_embeddings(z_aug, "z_aug")
    n = z.shape[0]
    with torch.no_grad():
        s = F.normalize(as_compute(z), dim=1) @ F.normalize(as_compute(z_aug), dim=1).T
        log_g = -((s - mu) ** 2) / (2.0 * sigma**2)
        off = ~torch.eye(n, dtype=torch.bool, device=z.device)
        # log of the mean of g over each row's negatives
        negatives = log_g.masked_fill(~off, float("-inf"))
        log_mean = torch.logsumexp(negatives, dim=1, keepdim=True) - math.log(max(n - 1, 1))
        log_w = log_g - log_mean
    return graph_cross_view_loss(z, z_aug, t, log_weights=log_w)

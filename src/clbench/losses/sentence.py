"""Contrastive objectives of unsupervised sentence embeddings (SimCSE-style, one direction).

Each sentence passes the encoder twice with different dropout masks, giving ``z1`` and ``z2``
(``[B, D]``). The logits are the ``B x B`` cosine similarities ``s_ij = cos(z1_i, z2_j)`` divided
by the temperature ``t``; row i's positive is column i and every other column a negative. Only
the rows of ``z1`` are anchors (no symmetric term, no ``z1``-``z1`` similarities), as in SimCSE.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from clbench.losses._common import as_compute, check_embeddings, check_positive, normalize

__all__ = ["simcse", "adnce_sentence"]


def _cross_logits(z1: Tensor, z2: Tensor, t: float) -> Tensor:
    check_embeddings(z1, "z1")
    check_embeddings(z2, "z2")
    if z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must have the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    return (normalize(as_compute(z1)) / t) @ normalize(as_compute(z2)).T


def simcse(z1: Tensor, z2: Tensor, temperature: float = 0.05) -> Tensor:
    r"""Unsupervised SimCSE's InfoNCE: ``mean_i -log( exp(s_ii/t) / sum_j exp(s_ij/t) )``.

    Args:
        z1, z2: ``[B, D]`` embeddings of the two dropout passes (row i of each is sentence i).
        temperature: ``t > 0``.
    """
    t = check_positive(temperature, "temperature")
    logits = _cross_logits(z1, z2, t)
    targets = torch.arange(logits.shape[0], device=logits.device)
    return F.cross_entropy(logits, targets).to(z1.dtype)


def adnce_sentence(z1: Tensor, z2: Tensor, temperature: float = 0.07, mu: float = 0.4, sigma: float = 1.0) -> Tensor:
    r"""ADNCE in the sentence form: Gaussian weights over the whole row, the positive included.

    With ``g(s) = exp(-(s - mu)^2 / (2 sigma^2))`` and ``w_ij = g(s_ij) / mean_{k=1..B} g(s_ik)``
    (detached; the mean runs over all B columns, the diagonal included)::

        loss = mean_i -log( exp(s_ii/t) / sum_{j=1..B} w_ij exp(s_ij/t) )

    so the positive ``j = i`` sits inside the weighted denominator with its own weight ``w_ii``,
    unlike the image form (:func:`clbench.losses.contrastive.adnce`), which leaves it unweighted.
    Computed in the log domain: ``lse_j(s_ij/t + log w_ij) - s_ii/t``.

    Args:
        z1, z2: ``[B, D]`` embeddings of the two dropout passes.
        temperature: ``t > 0``. mu: centre of the weighting Gaussian. sigma: its width, ``> 0``.
    """
    t = check_positive(temperature, "temperature")
    sigma = check_positive(sigma, "sigma")
    mu = float(mu)
    if not math.isfinite(mu):
        raise ValueError(f"mu must be finite, got {mu}")
    logits = _cross_logits(z1, z2, t)
    b = logits.shape[0]
    with torch.no_grad():
        log_g = -((logits * t - mu) ** 2) / (2.0 * sigma**2)
        log_w = log_g - (torch.logsumexp(log_g, dim=1, keepdim=True) - math.log(b))
    positive = logits.diagonal()
    loss = torch.logsumexp(logits + log_w, dim=1) - positive
    return loss.mean().to(z1.dtype)

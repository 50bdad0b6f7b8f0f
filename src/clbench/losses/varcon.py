"""VarCon: variational supervised contrastive learning (Wang et al. 2025), O(B*C) per batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from clbench.losses._common import (
    as_compute,
    flatten_views,
    check_positive,
    normalize,
)

__all__ = ["varcon", "varcon_temperature"]


def varcon(z: Tensor, labels: Tensor, temperature: float = 0.1, epsilon: float = 0.02) -> Tensor:
    r"""VarCon loss: KL(q || p) + NLL against per-batch class centroids.

    With ``z_i`` L2-normalised, ``R`` the classes present in the batch and ``y_i`` the class of
    row i::

        w_r      = normalise( mean_{i : y_i = r} z_i )             (detached, r in R)
        p(r|z_i) = softmax_r( z_i . w_r / t )                      (over r in R)
        t2_i     = max( (t - epsilon) + 2 * epsilon * p(y_i|z_i), 1e-6 )
        q(r|z_i) = softmax_r( [r = y_i] / t2_i )                   (logit 1/t2 on y_i, 0 elsewhere)
        loss     = 1/B sum_i KL(q(.|z_i) || p(.|z_i))  -  1/B sum_i log p(y_i|z_i)

    The confidence ``p(y|z)`` inside ``t2`` is not detached (as in the official code), so
    gradients also flow through the target ``q``. ``q`` is built with a log-softmax, so a tiny
    ``t2`` cannot overflow ``exp(1/t2)``. Cost O(B*C*D) time and O(B*C + C*D) memory: no B x B
    tensor is ever built.

    Args:
        z: ``[B, D]`` embeddings, or ``[B, V, D]`` with V views per sample (flattened, labels
            repeated per view).
        labels: ``[B]`` integer class ids (any values; only the classes present are used).
        temperature: ``t > 0`` (0.1 in the paper).
        epsilon: adaptation range of ``t2``, ``>= 0``.

    Returns:
        A scalar in the dtype of ``z``. A batch with a single class gives an exact 0.
    """
    t = check_positive(temperature, "temperature")
    epsilon = float(epsilon)
    if not (epsilon >= 0 and epsilon < float("inf")):
        raise ValueError(f"epsilon must be a finite number >= 0, got {epsilon}")
    out_dtype = z.dtype
    log_p, inverse = _class_log_posterior(z, labels, t)
    c = log_p.shape[1]
    log_p_true = log_p.gather(1, inverse[:, None])[:, 0]  # [B]
    t2 = _adaptive_temperature(log_p_true, t, epsilon)
    q_logits = F.one_hot(inverse, c).to(log_p.dtype) / t2[:, None]
    log_q = F.log_softmax(q_logits, dim=1)
    kl = (log_q.exp() * (log_q - log_p)).sum() / log_p.shape[0]
    nll = -log_p_true.mean()
    return (kl + nll).to(out_dtype)


@torch.no_grad()
def varcon_temperature(z: Tensor, labels: Tensor, temperature: float = 0.1, epsilon: float = 0.02) -> Tensor:
    """The per-sample adaptive temperature ``t2_i`` of :func:`varcon` (detached, float32, ``[B*V]``).

    ``t2 = (t - epsilon) + 2 epsilon p(y|z)``: confident samples get a higher ``t2`` (softer
    targets), so its distribution over training shows how the objective adapts.
    """
    t = check_positive(temperature, "temperature")
    log_p, inverse = _class_log_posterior(z.detach(), labels, t)
    return _adaptive_temperature(log_p.gather(1, inverse[:, None])[:, 0], t, float(epsilon)).float()


def _class_log_posterior(z: Tensor, labels: Tensor, t: float) -> tuple[Tensor, Tensor]:
    """``log p(r|z_i)`` over the batch's classes ``[B, C]`` and each row's class index ``[B]``."""
    z, labels = flatten_views(z, labels)
    z = normalize(as_compute(z))
    classes, inverse = torch.unique(labels, return_inverse=True)  # O(B log B)
    with torch.no_grad():
        sums = torch.zeros(classes.shape[0], z.shape[1], dtype=z.dtype, device=z.device)
        sums.index_add_(0, inverse, z)
        centroids = normalize(sums)  # normalise(mean) == normalise(sum); detached
    logits = z @ (centroids * (1.0 / t)).T  # [B, C]; 1/t folded into the C x D operand
    return F.log_softmax(logits, dim=1), inverse


def _adaptive_temperature(log_p_true: Tensor, t: float, epsilon: float) -> Tensor:
    return ((t - epsilon) + 2.0 * epsilon * log_p_true.exp()).clamp(min=1e-6)

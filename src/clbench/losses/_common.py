"""Shared helpers of the objective library: input checks, precision handling and similarities.

Every public loss follows the same conventions:

- inputs are checked up front and bad input raises :class:`ValueError` with a clear message;
- half-precision inputs (``float16``/``bfloat16``) are computed in ``float32`` and the scalar is
  cast back to the input dtype (``float32``/``float64`` are computed as they come);
- the returned scalar lives on the input's device and stays connected to the graph even when no
  anchor contributes (then it is an exact zero with zero gradients, never NaN).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

SIMILARITIES = ("cosine", "dot", "l2")
_LOW_PRECISION = (torch.float16, torch.bfloat16)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a loss computes in: float32 for half precision, the input dtype otherwise."""
    return torch.float32 if dtype in _LOW_PRECISION else dtype


def as_compute(z: Tensor) -> Tensor:
    """``z`` in its compute dtype (a differentiable cast, a no-op for float32/float64)."""
    return z.to(compute_dtype(z.dtype))


def check_embeddings(z: Tensor, name: str = "z", ndims: tuple[int, ...] = (2,)) -> None:
    if not isinstance(z, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(z).__name__}")
    if not z.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {z.dtype}")
    if z.dim() not in ndims:
        want = " or ".join(f"{d}-D" for d in ndims)
        raise ValueError(f"{name} must be {want} (batch first), got shape {tuple(z.shape)}")
    if z.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {tuple(z.shape)})")
    if z.shape[-1] == 0:
        raise ValueError(f"{name} has zero embedding dimensions (shape {tuple(z.shape)})")


def check_labels(labels: Tensor, batch: int, device: torch.device) -> Tensor:
    """Labels as a 1-D tensor of length ``batch`` on ``device``."""
    if not isinstance(labels, Tensor):
        labels = torch.as_tensor(labels)
    if labels.dim() == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.dim() != 1 or labels.shape[0] != batch:
        raise ValueError(
            f"labels must be 1-D with one label per embedding ({batch}), got shape {tuple(labels.shape)}"
        )
    if labels.is_floating_point() and not torch.equal(labels, labels.round()):
        raise ValueError("labels must be integer class ids")
    return labels.to(device)


def check_positive(value: float, name: str) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value}")
    return value


def check_similarity(similarity: str) -> str:
    if similarity not in SIMILARITIES:
        raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
    return similarity


def normalize(z: Tensor) -> Tensor:
    """Row-wise L2 normalisation ``z / |z|``; an all-zero row stays zero, with a bounded gradient.

    Equal to ``F.normalize(z, dim=-1)`` for every row with ``|z|^2 > 0`` (in the compute dtype).
    ``F.normalize`` gives a zero row a gradient of ``1/eps = 1e12``, which overflows in products
    of gradients (``r_hess``) and in float16; here a zero row is divided by 1 instead (its gradient
    is the incoming one), so first and second derivatives are finite everywhere.
    """
    sq = (z * z).sum(-1, keepdim=True)
    return z / torch.sqrt(torch.where(sq > 0, sq, torch.ones_like(sq)))


def pairwise_similarity(a: Tensor, b: Tensor | None = None, similarity: str = "cosine") -> Tensor:
    """Similarity matrix ``S[i, j] = s(a_i, b_j)`` (``b = a`` when omitted), one matmul.

    - ``"cosine"``: ``<a_i/|a_i|, b_j/|b_j|>``;
    - ``"dot"``: ``<a_i, b_j>``;
    - ``"l2"``: ``-|a_i - b_j|^2`` (negative squared Euclidean distance, via
      ``2<a_i, b_j> - |a_i|^2 - |b_j|^2`` clamped at 0 from above; no square root, so the gradient
      is finite even for identical rows).
    """
    same = b is None
    if similarity == "cosine":
        a = normalize(a)
        b = a if same else normalize(b)
        return a @ b.T
    if b is None:
        b = a
    if similarity == "dot":
        return a @ b.T
    if similarity == "l2":
        sq_a = (a * a).sum(-1)
        sq_b = sq_a if same else (b * b).sum(-1)
        return (2.0 * (a @ b.T) - sq_a[:, None] - sq_b[None, :]).clamp(max=0.0)
    raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")


def embed_for(z: Tensor, similarity: str) -> Tensor:
    """The rows the similarity is an inner product of: normalised for cosine, raw otherwise."""
    return normalize(z) if similarity == "cosine" else z


def scaled_logits(z: Tensor, temperature: float, similarity: str = "cosine") -> Tensor:
    """``S[i, j] / t`` for the rows of ``z``, as a *fresh* B x B tensor.

    The temperature is folded into one ``[B, D]`` operand before the single matmul (no B x B
    division), and the result is not saved by autograd, so callers may mask its diagonal in place
    (``logits.diagonal().fill_(-inf)``), which costs B writes instead of a B x B copy.
    """
    inv_t = 1.0 / temperature
    if similarity in ("cosine", "dot"):
        e = embed_for(z, similarity)
        return (e * inv_t) @ e.T
    if similarity == "l2":
        sq = (z * z).sum(-1) * inv_t
        # -|z_i - z_j|^2 / t, clamped at 0 from above against rounding (clamp saves its input,
        # not its output, so the output may still be modified in place)
        return ((z * (2.0 * inv_t)) @ z.T - sq[:, None] - sq[None, :]).clamp(max=0.0)
    raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")


def zero_loss(*tensors: Tensor, dtype: torch.dtype) -> Tensor:
    """An exact zero connected to the inputs' graphs (zero gradients, backward still works)."""
    out = None
    for t in tensors:
        term = t.sum() * 0.0
        out = term if out is None else out + term
    return out.to(dtype)


def eye_mask(n: int, device: torch.device) -> Tensor:
    return torch.eye(n, dtype=torch.bool, device=device)


def flatten_views(z: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """``[B, V, D]`` -> ``[B*V, D]`` with each label repeated V times (row b*V + v has labels[b])."""
    check_embeddings(z, "z", ndims=(2, 3))
    labels = check_labels(labels, z.shape[0], z.device)
    if z.dim() == 3:
        v = z.shape[1]
        if v == 0:
            raise ValueError(f"z has zero views (shape {tuple(z.shape)})")
        z = z.reshape(z.shape[0] * v, z.shape[2])
        labels = labels.repeat_interleave(v)
    return z, labels

"""Weighted k-nearest-neighbour classification on frozen features (InstDisc / ADNCE / VarCon monitor).

For a test feature q (L2-normalised, like every bank feature f_i):

    s_i     = <q, f_i>                              (cosine similarity)
    N_k(q)  = the k bank entries with the largest s_i
    score_c = sum_{i in N_k(q), y_i = c} exp(s_i / t)
    y_hat   = argmax_c score_c

as in ``test()`` of junkangwu/ADNCE ``image/main.py`` (itself from InstDisc / leftthomas/SimCLR).
Top-1 (and top-5 when there are at least 5 classes) are returned as fractions in [0, 1].
Test features are processed in chunks of ``batch_size``, so memory is O(batch_size * N_train).
"""

from __future__ import annotations

from typing import Any

__all__ = ["weighted_knn", "knn_predict"]


def _to_tensor(x: Any, device, dtype=None):
    import numpy as np
    import torch

    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        t = torch.from_numpy(np.ascontiguousarray(np.asarray(x)))
    t = t.to(device)
    if dtype is not None:
        t = t.to(dtype)
    return t


def knn_predict(
    train_feats: Any,
    train_labels: Any,
    test_feats: Any,
    k: int = 200,
    temperature: float = 0.1,
    num_classes: int | None = None,
    batch_size: int = 1024,
    device: Any = None,
):
    """Class scores (n_test, C) of the weighted kNN vote; see the module docstring.

    Labels must be integers in [0, num_classes). Returns a float32 CPU tensor.
    """
    import torch
    import torch.nn.functional as F

    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    if k < 1:
        raise ValueError("k must be >= 1")
    if device is None:
        device = train_feats.device if isinstance(train_feats, torch.Tensor) else "cpu"
    bank = _to_tensor(train_feats, device, torch.float32)
    bank_labels = _to_tensor(train_labels, device).long().reshape(-1)
    query = _to_tensor(test_feats, device, torch.float32)
    if bank.ndim != 2 or query.ndim != 2 or bank.shape[1] != query.shape[1]:
        raise ValueError(
            f"features must be 2-D with the same width; got {tuple(bank.shape)} and {tuple(query.shape)}"
        )
    if bank_labels.numel() != bank.shape[0]:
        raise ValueError(f"{bank_labels.numel()} train labels for {bank.shape[0]} train features")
    if bank.shape[0] == 0:
        raise ValueError("empty training bank")
    if bank_labels.min() < 0:
        raise ValueError("labels must be non-negative integers")
    if num_classes is None:
        num_classes = int(bank_labels.max().item()) + 1
    elif int(bank_labels.max().item()) >= num_classes:
        raise ValueError("a train label is >= num_classes")
    k_eff = min(int(k), bank.shape[0])
    bank = F.normalize(bank, dim=1)
    bank_t = bank.t().contiguous()
    out = []
    with torch.no_grad():
        for start in range(0, query.shape[0], batch_size):
            q = F.normalize(query[start : start + batch_size], dim=1)
            sim = q @ bank_t  # [B, N]
            sim_w, sim_idx = sim.topk(k=k_eff, dim=-1)  # [B, k]
            sim_lab = bank_labels[sim_idx]  # [B, k]
            w = (sim_w / temperature).exp()
            scores = torch.zeros(q.shape[0], num_classes, device=q.device, dtype=w.dtype)
            scores.scatter_add_(1, sim_lab, w)
            out.append(scores.cpu())
    if not out:
        return torch.zeros(0, num_classes)
    return torch.cat(out)


def weighted_knn(
    train_feats: Any,
    train_labels: Any,
    test_feats: Any,
    test_labels: Any,
    k: int = 200,
    temperature: float = 0.1,
    num_classes: int | None = None,
    batch_size: int = 1024,
    device: Any = None,
    return_predictions: bool = False,
) -> dict:
    """Weighted kNN accuracy of ``test_feats`` against the bank ``train_feats``.

    Cosine similarity on L2-normalised features; the ``k`` nearest bank entries vote for their
    class with weight exp(sim / temperature); ``k`` is clipped to the bank size. Inputs are torch
    tensors (any device; computed there unless ``device`` says otherwise) or NumPy arrays (CPU).
    Returns ``{"top1": float, "top5": float (only if num_classes >= 5), "k": k_used,
    "temperature": t, "n_train": N, "n_test": M}`` with accuracies as fractions in [0, 1];
    ``"predictions"`` (a list of ints) too when ``return_predictions``.
    """
    import torch

    if device is None:
        device = train_feats.device if isinstance(train_feats, torch.Tensor) else "cpu"
    train_l = _to_tensor(train_labels, device).long().reshape(-1)
    test_l = _to_tensor(test_labels, "cpu").long().reshape(-1)
    if num_classes is None:
        hi = int(train_l.max().item()) if train_l.numel() else 0
        if test_l.numel():
            hi = max(hi, int(test_l.max().item()))
        num_classes = hi + 1
    scores = knn_predict(
        train_feats,
        train_l,
        test_feats,
        k=k,
        temperature=temperature,
        num_classes=num_classes,
        batch_size=batch_size,
        device=device,
    )
    if scores.shape[0] != test_l.numel():
        raise ValueError(f"{test_l.numel()} test labels for {scores.shape[0]} test features")
    n_test = int(test_l.numel())
    n_train = int(train_l.numel())
    result: dict = {
        "k": min(int(k), n_train),
        "temperature": float(temperature),
        "n_train": n_train,
        "n_test": n_test,
    }
    if n_test == 0:
        result["top1"] = float("nan")
        return result
    pred = scores.argmax(dim=1)
    result["top1"] = float((pred == test_l).float().mean().item())
    if num_classes >= 5:
        top5 = scores.topk(5, dim=1).indices
        result["top5"] = float((top5 == test_l[:, None]).any(dim=1).float().mean().item())
    if return_predictions:
        result["predictions"] = pred.tolist()
    return result

"""Linear and MLP probes on frozen features: top-1, macro AUROC and macro AUPR."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def probe_head(kind: str, in_dim: int, num_classes: int, hidden_dim: int = 512) -> nn.Module:
    """``linear``: one logistic layer; ``mlp``: CLEAR's probe, Linear - BN - ReLU - Linear."""
    if kind == "linear":
        return nn.Linear(in_dim, num_classes)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, num_classes))
    raise ValueError(f"unknown probe kind {kind!r}; expected 'linear' or 'mlp'")


# the probe settings of the config (evaluation.probe) that fit_probe takes besides kind, epochs, lr,
# weight_decay and batch_size; unset, each keeps fit_probe's default
PROBE_OPTIONS = ("optimizer", "momentum", "schedule", "milestones", "gamma", "standardize")


def probe_optimizer(params, optimizer: str, lr: float, weight_decay: float,
                    momentum: float) -> torch.optim.Optimizer:
    """``adam``, or ``sgd`` with plain (not Nesterov) momentum, as the SupCon / VarCon linear evaluation."""
    if optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=momentum)
    raise ValueError(f"unknown probe optimizer {optimizer!r}; expected 'adam' or 'sgd'")


def probe_schedule(opt: torch.optim.Optimizer, schedule: str, epochs: int, milestones=(), gamma: float = 0.1):
    """The learning rate over the probe's epochs (stepped once per epoch): ``constant``, ``cosine`` (to 0)
    or ``step`` (times ``gamma`` after each epoch of ``milestones``)."""
    if schedule == "constant":
        return None
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
    if schedule == "step":
        return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=sorted(milestones), gamma=gamma)
    raise ValueError(f"unknown probe schedule {schedule!r}; expected constant, cosine or step")


def fit_probe(train_feats, train_labels, test_feats, test_labels, *, kind: str = "linear", epochs: int = 100,
              lr: float = 0.01, weight_decay: float = 1e-4, batch_size: int = 0, optimizer: str = "adam",
              momentum: float = 0.9, schedule: str = "constant", milestones=(), gamma: float = 0.1,
              standardize: bool = True, num_classes: int | None = None, seed: int = 0,
              device: str | torch.device = "cpu", return_predictor: bool = False):
    """Train a probe on frozen features with cross-entropy; score it on the test features.

    ``optimizer`` ``adam`` or ``sgd`` (with ``momentum``), at ``lr`` with ``weight_decay``, following
    ``schedule`` (:func:`probe_schedule`) over ``epochs``. ``batch_size=0`` trains full-batch. With
    ``standardize`` the features are standardised with the training mean and std; without, they are
    fed as the encoder gives them.

    Returns ``top1`` (accuracy), ``auroc`` (one-vs-rest, macro) and ``aupr`` (average precision, macro),
    each over the classes present in the test labels. With ``return_predictor`` it returns
    ``(result, predict)`` where ``predict`` is the :class:`FittedProbe` (``predict(features) -> class
    probabilities``), to reuse the trained probe (e.g. on corrupted test images, also from another job).
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    xtr, xte = torch.as_tensor(train_feats).float(), torch.as_tensor(test_feats).float()
    ytr, yte = torch.as_tensor(train_labels).long(), torch.as_tensor(test_labels).long()
    if standardize:
        mean, std = xtr.mean(0), xtr.std(0).clamp_min(1e-6)
    else:
        mean, std = torch.zeros(xtr.shape[1]), torch.ones(xtr.shape[1])
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
    c = num_classes or int(max(ytr.max(), yte.max())) + 1
    head = probe_head(kind, xtr.shape[1], c).to(device)
    opt = probe_optimizer(head.parameters(), optimizer, lr, weight_decay, momentum)
    scheduler = probe_schedule(opt, schedule, epochs, milestones, gamma)
    xtr, ytr = xtr.to(device), ytr.to(device)
    n = len(ytr)
    bs = n if batch_size <= 0 else batch_size
    head.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=g).to(device) if bs < n else torch.arange(n, device=device)
        for i in range(0, n, bs):
            idx = order[i : i + bs]
            if len(idx) < 2 and kind == "mlp":
                continue
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(head(xtr[idx]), ytr[idx]).backward()
            opt.step()
        if scheduler is not None:
            scheduler.step()
    predict = FittedProbe(head.eval(), kind, mean, std)
    probs = predict(test_feats)
    y = yte.numpy()
    present = np.unique(y)
    result = {"top1": float((probs.argmax(1) == y).mean()), "n_test": int(len(y)), "n_train": int(n),
              "num_classes": c}
    if len(present) > 1:
        p = probs[:, present] / probs[:, present].sum(1, keepdims=True)
        onehot = (y[:, None] == present[None, :]).astype(int)
        result["auroc"] = float(roc_auc_score(onehot, p, average="macro"))
        result["aupr"] = float(average_precision_score(onehot, p, average="macro"))
    return (result, predict) if return_predictor else result


class FittedProbe:
    """A trained probe head together with the feature standardisation it was trained with.

    ``probe(features) -> class probabilities`` (float64 numpy). :meth:`save` / :meth:`load` carry it
    to another process, so that e.g. every corruption cell at paper scale (one job each) is scored by
    the very probe the clean evaluation trained, instead of re-training one per cell.
    """

    def __init__(self, head: nn.Module, kind: str, mean: torch.Tensor, std: torch.Tensor):
        self.head, self.kind = head.eval(), kind
        self.mean, self.std = mean.cpu(), std.cpu()

    @property
    def device(self) -> torch.device:
        return next(self.head.parameters()).device

    @torch.no_grad()
    def __call__(self, feats) -> np.ndarray:
        f = (torch.as_tensor(feats).float().cpu() - self.mean) / self.std
        return self.head(f.to(self.device)).softmax(1).cpu().double().numpy()

    def save(self, path) -> None:
        """Write the probe atomically (a half-written probe must never be trusted by a later job)."""
        from clbench.io import atomic_path

        linears = [m for m in self.head.modules() if isinstance(m, nn.Linear)]
        first, last = linears[0], linears[-1]
        blob = {"kind": self.kind, "in_dim": first.in_features, "num_classes": last.out_features,
                "hidden_dim": first.out_features if self.kind == "mlp" else None,
                "mean": self.mean, "std": self.std, "state_dict": {k: v.cpu() for k, v in self.head.state_dict().items()}}
        with atomic_path(path) as tmp:
            torch.save(blob, tmp)

    @classmethod
    def load(cls, path, device: str | torch.device = "cpu") -> "FittedProbe":
        blob = torch.load(path, map_location="cpu", weights_only=True)
        extra = {"hidden_dim": blob["hidden_dim"]} if blob["hidden_dim"] else {}
        head = probe_head(blob["kind"], blob["in_dim"], blob["num_classes"], **extra)
        head.load_state_dict(blob["state_dict"])
        return cls(head.to(device), blob["kind"], blob["mean"], blob["std"])

"""Linear and MLP probes on frozen representations: top-1, macro AUROC and macro AUPR.

Two linear-evaluation protocols (``evaluation.probe.protocol``, chosen per experiment):

- ``features`` (:func:`fit_probe`): the frozen encoder embeds the training images once, and the
  probe trains on those cached features. Fast; what the tiny scale uses.
- ``augmented`` (:func:`fit_probe_on_images`): every epoch the probe sees freshly augmented training
  images through the frozen encoder (in eval mode, no gradient), as the papers' linear evaluations
  do (ADNCE: the training transform; VarCon / SupCon: random resized crop and flip), with the
  batched recipes of :mod:`clbench.data.augment` on the probe's device. Test images are not augmented.

Either way the features are standardised with the mean and std of the plain (not augmented)
training features (unless ``standardize`` is false), and the probe is scored on the plain test
features.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

MLP_HIDDEN = 256  # CLEAR's MLP probe on mu_c: Linear(z, 256) - BN - ReLU - Linear(256, C)

# the probe settings of the config (evaluation.probe) that fit_probe and fit_probe_on_images take besides
# kind, epochs, lr, weight_decay and batch_size; unset, each keeps the function's default
PROBE_OPTIONS = ("optimizer", "momentum", "schedule", "milestones", "gamma", "standardize", "hidden_dim")


def probe_head(kind: str, in_dim: int, num_classes: int, hidden_dim: int = MLP_HIDDEN) -> nn.Module:
    """``linear``: one logistic layer; ``mlp``: CLEAR's probe, Linear - BN - ReLU - Linear (256 hidden units)."""
    from clbench.models.heads import classifier_head

    if kind not in ("linear", "mlp"):
        raise ValueError(f"unknown probe kind {kind!r}; expected 'linear' or 'mlp'")
    return classifier_head(in_dim, num_classes, kind, hidden_dim)


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


def score(probs: np.ndarray, labels) -> dict:
    """``top1``, and where the labels hold two classes or more macro ``auroc`` and ``aupr`` (one vs
    rest, over the classes present in ``labels``) of class probabilities ``probs`` [N, C]."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = np.asarray(labels)
    present = np.unique(y)
    result = {"top1": float((probs.argmax(1) == y).mean()), "n_test": int(len(y))}
    if len(present) > 1:
        p = probs[:, present] / probs[:, present].sum(1, keepdims=True)
        onehot = (y[:, None] == present[None, :]).astype(int)
        result["auroc"] = float(roc_auc_score(onehot, p, average="macro"))
        result["aupr"] = float(average_precision_score(onehot, p, average="macro"))
    return result


def _standardiser(train_feats, standardize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The training features' mean and std (or 0 and 1 without ``standardize``)."""
    x = torch.as_tensor(train_feats).float()
    if not standardize:
        return torch.zeros(x.shape[1]), torch.ones(x.shape[1])
    return x.mean(0), x.std(0).clamp_min(1e-6)


def fit_probe(train_feats, train_labels, test_feats, test_labels, *, kind: str = "linear", epochs: int = 100,
              lr: float = 0.01, weight_decay: float = 1e-4, batch_size: int = 0, optimizer: str = "adam",
              momentum: float = 0.9, schedule: str = "constant", milestones=(), gamma: float = 0.1,
              standardize: bool = True, hidden_dim: int = MLP_HIDDEN, num_classes: int | None = None, seed: int = 0,
              device: str | torch.device = "cpu", return_predictor: bool = False):
    """Train a probe on frozen features with cross-entropy; score it on the test features.

    ``optimizer`` ``adam`` or ``sgd`` (with ``momentum``), at ``lr`` with ``weight_decay`` (its L2
    term), following ``schedule`` (:func:`probe_schedule`) over ``epochs``. ``batch_size=0`` trains
    full-batch. With ``standardize`` the features are standardised with the training mean and std;
    without, they are fed as the encoder gives them. ``hidden_dim``: the MLP probe's hidden units.

    Returns ``top1`` (accuracy), ``auroc`` (one-vs-rest, macro) and ``aupr`` (average precision, macro),
    each over the classes present in the test labels. With ``return_predictor`` it returns
    ``(result, predict)`` where ``predict`` is the :class:`FittedProbe` (``predict(features) -> class
    probabilities``), to reuse the trained probe (e.g. on corrupted test images, also from another job).
    """
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    mean, std = _standardiser(train_feats, standardize)
    xtr = (torch.as_tensor(train_feats).float() - mean) / std
    ytr, yte = torch.as_tensor(train_labels).long(), torch.as_tensor(test_labels).long()
    c = num_classes or int(max(ytr.max(), yte.max())) + 1
    head = probe_head(kind, xtr.shape[1], c, hidden_dim).to(device)
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
    result = {**score(predict(test_feats), yte.numpy()), "n_train": int(n), "num_classes": c}
    return (result, predict) if return_predictor else result


def fit_probe_on_images(model: nn.Module, train_x, train_labels, test_feats, test_labels, *, augment,
                        train_feats, kind: str = "linear", epochs: int = 100, lr: float = 0.01,
                        weight_decay: float = 1e-4, batch_size: int = 512, optimizer: str = "adam",
                        momentum: float = 0.9, schedule: str = "constant", milestones=(), gamma: float = 0.1,
                        standardize: bool = True, hidden_dim: int = MLP_HIDDEN, num_classes: int | None = None,
                        num_workers: int = 0, crop_size: int | None = None, seed: int = 0,
                        device: str | torch.device = "cpu", return_predictor: bool = False):
    """Train a probe on augmented training images through the frozen ``model``; score it on ``test_feats``.

    Every epoch each training image (uint8 ``train_x`` [N, C, H, W], or lazily decoded images) is
    augmented by ``augment``, embedded by ``model.features`` in eval mode without gradient,
    standardised with the mean and std of ``train_feats`` (the plain training features; not with
    ``standardize=False``) and fed to the probe. ``augment`` is the name of a recipe of
    :mod:`clbench.data.augment` (the same batched ops that augment training views, run on
    ``device`` with parameters drawn per image from :func:`~clbench.data.augment.step_seed` of
    ``(seed, epoch, step)``; lazily decoded images are random-resized-cropped per image in the loader,
    at full resolution), None (no augmentation), or a callable ``(uint8 batch, device, seed) ->
    float batch in [0, 1] on device``. ``batch_size=0`` means one batch of all images. The optimiser
    and schedule settings are :func:`fit_probe`'s. The test split is scored on its plain features
    ``test_feats``. ``crop_size``: the output size of a cropping recipe's random resized crops (None:
    the images' size); the encoder's global pooling takes either size, and the test images keep theirs.
    Returns what :func:`fit_probe` returns; the :class:`FittedProbe` applies to plain features like any other.
    """
    from torch.utils.data import DataLoader

    from clbench.data.augment import pipeline, step_seed
    from clbench.data.dataset_dir import LazyImages

    device = torch.device(device)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # loader-side crops of lazily decoded images draw from torch's global stream
    in_loader = None
    if augment is None or isinstance(augment, str):
        in_loader, augment = pipeline(augment or "none", int(crop_size or train_x.shape[-1]), int(train_x.shape[1]),
                                      path_indexed=isinstance(train_x, LazyImages))
    mean, std = _standardiser(train_feats, standardize)
    ytr, yte = torch.as_tensor(np.asarray(train_labels)).long(), torch.as_tensor(np.asarray(test_labels)).long()
    c = num_classes or int(max(ytr.max(), yte.max())) + 1
    head = probe_head(kind, mean.numel(), c, hidden_dim).to(device)
    opt = probe_optimizer(head.parameters(), optimizer, lr, weight_decay, momentum)
    scheduler = probe_schedule(opt, schedule, epochs, milestones, gamma)
    n = len(ytr)
    bs = n if batch_size <= 0 else min(batch_size, n)
    loader = DataLoader(_Images(train_x, ytr, in_loader), batch_size=bs, shuffle=True, generator=g,
                        num_workers=num_workers, pin_memory=device.type == "cuda")
    was_training = model.training
    model.eval()
    mu, sd = mean.to(device), std.to(device)
    head.train()
    for epoch in range(epochs):
        for step, (images, labels) in enumerate(loader):
            if len(labels) < 2 and kind == "mlp":
                continue
            with torch.no_grad():
                feats = model.features(augment(images, device, step_seed(seed, epoch, step))).float()
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(head((feats - mu) / sd), labels.to(device)).backward()
            opt.step()
        if scheduler is not None:
            scheduler.step()
    model.train(was_training)
    predict = FittedProbe(head.eval(), kind, mean, std)
    result = {**score(predict(test_feats), yte.numpy()), "n_train": int(n), "num_classes": c}
    return (result, predict) if return_predictor else result


class _Images(torch.utils.data.Dataset):
    """``(image, label)`` per item, uint8: an array's image, or a lazily decoded one, at the dataset's size
    or, for a loader-side ``crop``, at the file's resolution and then cropped."""

    def __init__(self, x, labels: torch.Tensor, crop=None):
        self.x, self.labels, self.crop = x, labels, crop

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        if self.crop is not None:
            return self.crop(torch.from_numpy(self.x.decode(i, None))), self.labels[i]
        return torch.as_tensor(np.ascontiguousarray(self.x[i:i + 1]))[0], self.labels[i]


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

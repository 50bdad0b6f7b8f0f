"""Method families as modules with one interface the training loop drives.

A method module has
- ``loss_terms(views, labels) -> dict[str, Tensor]``: every loss term of one step, ``"loss"`` being
  the total that is back-propagated (views: float ``[B, V, C, H, W]``);
- ``features(x) -> Tensor``: the frozen representation used by every evaluation.

Which family, objective, encoder and head a method uses is configuration (see the config schema);
there is one loop and no per-method copy of it.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from clbench.models import build_encoder, projection_head

CONTRASTIVE_OBJECTIVES = {
    # objective -> (loss function name in clbench.losses, uses labels, needs two views)
    "info_nce": ("info_nce", False, True),
    "adnce": ("adnce", False, True),
    "supcon": ("supcon", True, False),
    "varcon": ("varcon", True, False),
}


class Classifier(nn.Module):
    """Encoder + linear classifier trained with cross-entropy (the plain CNN baseline)."""

    def __init__(self, spec: dict, in_channels: int, num_classes: int):
        super().__init__()
        self.encoder = build_encoder(spec.get("encoder", {}), in_channels)
        self.classifier = nn.Linear(self.encoder.out_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def loss_terms(self, views: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        b, v = views.shape[:2]
        logits = self.classifier(self.encoder(views.flatten(0, 1)))
        targets = labels.repeat_interleave(v)
        ce = F.cross_entropy(logits, targets)
        acc = (logits.argmax(1) == targets).float().mean()
        return {"loss": ce, "cross_entropy": ce, "train_acc": acc.detach()}


class Contrastive(nn.Module):
    """Encoder + SimCLR projector, trained with one contrastive objective of :mod:`clbench.losses`."""

    def __init__(self, spec: dict, in_channels: int, num_classes: int):
        super().__init__()
        import clbench.losses as losses

        fn_name, self.uses_labels, self.needs_pair = CONTRASTIVE_OBJECTIVES[spec["objective"]]
        if self.needs_pair and spec.get("views", 1) != 2:
            raise ValueError(f"objective {spec['objective']!r} needs views: 2")
        self.objective = spec["objective"]
        self.loss_fn = getattr(losses, fn_name)
        self.loss_kwargs = dict(spec.get("loss", {}))
        self.encoder = build_encoder(spec.get("encoder", {}), in_channels)
        self.projector = projection_head(self.encoder.out_dim, spec.get("projection_dim", 128))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def loss_terms(self, views: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        b, v = views.shape[:2]
        z = self.projector(self.encoder(views.flatten(0, 1))).view(b, v, -1)
        if self.needs_pair:
            loss = self.loss_fn(z[:, 0], z[:, 1], **self.loss_kwargs)
        elif self.objective == "supcon":
            loss = self.loss_fn(z, labels, **self.loss_kwargs)
        else:
            loss = self.loss_fn(z.flatten(0, 1), labels.repeat_interleave(v), **self.loss_kwargs)
        return {"loss": loss, self.objective: loss}


def build_method(spec: dict, in_channels: int, num_classes: int) -> nn.Module:
    objective = spec["objective"]
    if objective == "cross_entropy":
        return Classifier(spec, in_channels, num_classes)
    if objective in CONTRASTIVE_OBJECTIVES:
        return Contrastive(spec, in_channels, num_classes)
    raise ValueError(f"unknown objective {objective!r}")


def save_model(path: str | Path, model: nn.Module, spec: dict, shape: dict) -> None:
    from clbench.io import atomic_path

    with atomic_path(path) as tmp:
        torch.save({"spec": spec, "shape": shape, "state_dict": model.state_dict()}, tmp)


def load_model(path: str | Path, device: torch.device | str = "cpu") -> nn.Module:
    """Rebuild a trained method from its ``model.pt`` (spec + shape + weights), in eval mode."""
    blob = torch.load(path, map_location=device, weights_only=True)
    model = build_method(blob["spec"], blob["shape"]["in_channels"], blob["shape"]["num_classes"])
    model.load_state_dict(blob["state_dict"])
    return model.to(device).eval()

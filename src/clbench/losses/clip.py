"""CLIP's symmetric contrastive loss (Radford et al. 2021) over a batch of image-caption pairs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def clip_loss(image_features: Tensor, text_features: Tensor, logit_scale: Tensor) -> Tensor:
    """Mean of the image->text and text->image cross-entropies, pair i matching caption i.

    Features are L2-normalised here; the logits are ``exp(logit_scale) * cos`` (``logit_scale`` is
    the log of the inverse temperature, as in open_clip).
    """
    img = F.normalize(image_features.float(), dim=1)
    txt = F.normalize(text_features.float(), dim=1)
    logits = logit_scale.float().exp() * img @ txt.T
    target = torch.arange(len(img), device=img.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))

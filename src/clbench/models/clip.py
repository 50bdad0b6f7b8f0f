"""CLIP as a method family (``clip``): an open_clip image-text model, its freezing and its inputs.

The method's ``clip:`` block names an open_clip architecture (``model``), optionally its own
architecture config (``config``: an open_clip model config with ``embed_dim``, ``vision_cfg`` and
``text_cfg``, registered under ``model``; the tiny models are built this way) and the pretrained
weights to start from (``pretrained``, e.g. ``openai``). One code path serves both: the
architecture is built from its config with random weights, and :meth:`ClipMethod.load_pretrained`
copies open_clip's pretrained weights of the same name into it when ``pretrained`` is set.

Freezing follows open_clip's locking (as MCL's official runs use it, ``--lock-text`` and
``--lock-image-unlocked-groups 6``): ``lock_text`` freezes the whole text tower (token and
positional embeddings, transformer, final LayerNorm, text projection); ``unlocked_image_groups: n``
freezes the image tower except its last n groups, where the groups are [patch embedding, class and
positional embeddings, ln_pre], every residual block but the last, [last block, ln_post] and
``proj`` (for ViT-L-14, n = 6 leaves blocks 19-23, ln_post and proj trainable). ``logit_scale``
always trains and is clamped to ``[0, ln max_logit_scale]`` after each step.

Images come in as float in [0, 1] (:mod:`clbench.models.inputs`); :meth:`ClipMethod.preprocess`
resizes them to the model's input size (bicubic) and normalises them with CLIP's mean and std.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from clbench.models.collective import gather
from clbench.models.methods import Method
from clbench.objectives import OBJECTIVES, resolved_params

__all__ = ["CLIP_DEFAULTS", "ClipMethod", "clip_settings", "register_model_config", "weight_decay_groups"]

CLIP_DEFAULTS = {"model": None, "config": None, "pretrained": None, "quick_gelu": False,
                 "lock_text": False, "unlocked_image_groups": None}


def clip_settings(spec: dict) -> dict:
    """The method's ``clip:`` block over :data:`CLIP_DEFAULTS` (``model`` is required)."""
    cfg = {**CLIP_DEFAULTS, **(spec.get("clip") or {})}
    if not cfg["model"]:
        raise ValueError("a clip method names its open_clip architecture in clip.model")
    return cfg


def register_model_config(name: str, config: dict) -> None:
    """Make architecture ``config`` known to open_clip as ``name`` (through its public config-file loader)."""
    import open_clip

    with tempfile.TemporaryDirectory() as d:
        (Path(d) / f"{name}.json").write_text(json.dumps(config))
        open_clip.add_model_config(d)


def _create(cfg: dict, pretrained: str | None) -> nn.Module:
    import open_clip

    if cfg["config"] is not None:
        register_model_config(cfg["model"], cfg["config"])
    return open_clip.create_model(cfg["model"], pretrained=pretrained, force_quick_gelu=bool(cfg["quick_gelu"]))


def weight_decay_groups(named_parameters, weight_decay: float) -> list[dict]:
    """AdamW groups of the trainable parameters: no decay on gains, biases, other 1-D parameters and
    ``logit_scale`` (open_clip's rule, which MCL's training uses); ``weight_decay`` on the rest."""
    decay, plain = [], []
    for name, p in named_parameters:
        if not p.requires_grad:
            continue
        exempt = p.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name
        (plain if exempt else decay).append(p)
    return [{"params": plain, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]


class ClipMethod(Method):
    """An open_clip CLIP: ``features`` = the image tower's raw embedding, ``text_features`` the text
    tower's; ``loss_terms(images, tokens)`` is the symmetric CLIP loss over the (global) batch."""

    capabilities = frozenset({"text"})

    def __init__(self, spec: dict, in_channels: int, num_classes: int, image_size: int = 28):
        super().__init__()
        from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

        self.settings = clip_settings(spec)
        self.clip = _create(self.settings, None)
        self.max_logit_scale = float(resolved_params(spec)["max_logit_scale"])
        self.loss = OBJECTIVES[spec["objective"]].loss_fn()
        size = self.clip.visual.image_size
        self.input_size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
        self.register_buffer("mean", torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1), persistent=False)
        self._tokenizer = None
        self.freeze()

    def load_pretrained(self) -> None:
        """Copy open_clip's ``pretrained`` weights of this architecture into the model (no-op without)."""
        if self.settings["pretrained"]:
            self.clip.load_state_dict(_create(self.settings, self.settings["pretrained"]).state_dict())
            self.freeze()

    def freeze(self) -> None:
        """Apply ``lock_text`` and ``unlocked_image_groups`` (see the module docstring)."""
        for p in self.clip.parameters():
            p.requires_grad = True
        groups = self.settings["unlocked_image_groups"]
        if groups is not None:
            self.clip.lock_image_tower(unlocked_groups=int(groups))
        if self.settings["lock_text"]:
            self.clip.lock_text_tower(unlocked_layers=0)
        self.clip.logit_scale.requires_grad = True

    def clamp_logit_scale(self) -> None:
        with torch.no_grad():
            self.clip.logit_scale.clamp_(0, math.log(self.max_logit_scale))

    @property
    def tokenizer(self):
        """open_clip's tokenizer of the architecture (texts -> token ids [N, context_length])."""
        if self._tokenizer is None:
            import open_clip

            self._tokenizer = open_clip.get_tokenizer(self.settings["model"])
        return self._tokenizer

    def tokenize(self, texts) -> torch.Tensor:
        return self.tokenizer(list(texts))

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bicubic", align_corners=False, antialias=True)
        return (x.clamp(0, 1) - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_image(self.preprocess(x))

    def text_features(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_text(tokens)

    def loss_terms(self, images: torch.Tensor, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        """``images`` [B, 3, H, W] in [0, 1], ``tokens`` [B, L]: this process's share of the batch."""
        img, txt = gather(self.features(images)), gather(self.text_features(tokens))
        loss = self.loss(img, txt, self.clip.logit_scale)
        return {"loss": loss, "clip": loss.detach(), "logit_scale": self.clip.logit_scale.detach().exp()}

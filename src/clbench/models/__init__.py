"""Encoders, heads, the method families' models (:mod:`clbench.models.methods`) and their checkpoints
(:mod:`clbench.models.checkpoint`)."""

from clbench.models.encoders import build_encoder, SmallCNN
from clbench.models.heads import classifier_head, projection_head

__all__ = ["build_encoder", "SmallCNN", "classifier_head", "projection_head"]

"""Encoders, heads and the models each method family trains."""

from clbench.models.encoders import build_encoder, SmallCNN
from clbench.models.heads import classifier_head, projection_head

__all__ = ["build_encoder", "SmallCNN", "classifier_head", "projection_head"]

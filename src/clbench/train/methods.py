"""The former home of the method families and checkpoints, kept as an import path for older code.

New code imports :mod:`clbench.models.methods` (families, :func:`build_method`) and
:mod:`clbench.models.checkpoint` (:func:`load_model`, :func:`save_model`).
"""

from clbench.models.checkpoint import load_model, save_model
from clbench.models.methods import ClearVAEMethod, Classifier, Contrastive, SubEmbedding, build_method

__all__ = ["ClearVAEMethod", "Classifier", "Contrastive", "SubEmbedding", "build_method", "load_model", "save_model"]

"""Generator ``trifeature_captions``: captioned Trifeature and its MMVP-style pair benchmark (see
:mod:`clbench.data.image_text`)."""

from clbench.data.image_text import TRIFEATURE_CAPTIONS_DEFAULTS as DEFAULTS  # noqa: F401
from clbench.data.image_text import build_trifeature_captions as build  # noqa: F401

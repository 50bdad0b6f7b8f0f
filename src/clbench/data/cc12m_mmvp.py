"""Generator ``cc12m_mmvp``: CC12M (img2dataset files) for training, MMVP-VLM as the pair benchmark
(see :mod:`clbench.data.image_text`)."""

from clbench.data.image_text import CC12M_DEFAULTS as DEFAULTS  # noqa: F401
from clbench.data.image_text import build_cc12m_mmvp as build  # noqa: F401

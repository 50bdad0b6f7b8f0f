"""Dispatch a dataset spec (one entry of the config's ``datasets:``) to its builder.

Every builder is a function ``build(spec: dict, out_dir: Path, resources_dir: Path) -> dict``
that writes a dataset directory (:mod:`clbench.data.dataset_dir`) and returns its meta.
Modules are imported lazily so that building a synthetic dataset never imports torch.
"""

from __future__ import annotations

import importlib
from pathlib import Path

BUILDERS = {
    "styled_mnist": "clbench.data.styled_mnist",
    "mnist_on_stl": "clbench.data.mnist_on_stl",
    "trifeature": "clbench.data.trifeature",
    "gaussian_mixture": "clbench.data.gaussian_mixture",
    "torchvision": "clbench.data.torchvision_sources",
    "pacs": "clbench.data.pacs",
    "camelyon17": "clbench.data.camelyon",
    "imagefolder": "clbench.data.imagefolder",
}


def build_dataset(spec: dict, out_dir: str | Path, resources_dir: str | Path = "resources") -> dict:
    generator = spec.get("generator")
    if generator not in BUILDERS:
        raise ValueError(f"unknown dataset generator {generator!r}; expected one of {sorted(BUILDERS)}")
    module = importlib.import_module(BUILDERS[generator])
    return module.build(dict(spec), Path(out_dir), Path(resources_dir))

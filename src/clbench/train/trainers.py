"""Which training function runs a method: one per data domain, looked up by its objective's domain.

Images (every method of the image experiments) train through :func:`clbench.train.loop.train`; a
domain with other data (image and caption pairs, graphs, sentences) registers its own trainer here
by reference, imported only when a job trains such a method. Every trainer takes the same
arguments as :func:`clbench.train.loop.train` and writes the same files (``model.pt``,
``metrics.csv``, ``run.json``) to ``out_dir``.
"""

from __future__ import annotations

from typing import Callable

from clbench import code_hash
from clbench.objectives import OBJECTIVES, register_by_domain, resolve_ref

# domain -> "module:function"
TRAINERS: dict[str, str] = {
    "image": "clbench.train.loop:train",
}


def register_trainer(domain: str, ref: str) -> None:
    """Train methods of ``domain`` with the function ``ref`` (``"module:function"``)."""
    register_by_domain(TRAINERS, domain, ref, "trainer")


def trainer_for(spec: dict) -> Callable:
    """The training function of method ``spec`` (by its objective's domain)."""
    domain = OBJECTIVES[spec["objective"]].domain
    if domain not in TRAINERS:
        raise ValueError(f"objective {spec['objective']} trains on {domain!r} data, which no trainer handles; "
                         f"registered: {sorted(TRAINERS)}")
    return resolve_ref(TRAINERS[domain])


def training_code(spec: dict) -> str:
    """The hash of the package code training ``spec`` runs (:mod:`clbench.code_hash`): the train command,
    its objective's loss (and per-sample statistic) and its domain's trainer. A rule's ``params.code``
    and the run's ``run.json`` carry it."""
    objective = OBJECTIVES[spec["objective"]]
    statistic = objective.statistic.fn if objective.statistic is not None else None
    return code_hash.job_hash("train", [code_hash.module_of(ref) for ref in
                                        (objective.loss, statistic, TRAINERS.get(objective.domain))])


# graphs (GraphCL-style, ADNCE's TU experiments)
register_trainer("graph", "clbench.train.graph:train")

# sentences (objectives simcse, adnce_sentence): a transformer encoder trained on two dropout passes
register_trainer("text", "clbench.train.sentence:train")

# image-caption pairs (CLIP): open_clip models, captions tokenised per batch
register_trainer("image_text", "clbench.train.clip_loop:train")

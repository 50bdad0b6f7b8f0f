"""Semantic textual similarity (STS) of a sentence encoder, as SimCSE scores it with SentEval.

Each pair's system score is the cosine of the two sentences' embeddings (the method's
``sentence.pooler``: [CLS] before the training-only MLP by default, or through it;
:meth:`clbench.models.sentence.SentenceEncoder.embed`); a task's score is the
Spearman correlation of the system scores with the gold scores. STS12-16 use SentEval's "all"
setting: one correlation over the concatenation of the year's sources. STS-B and SICK-R use their
test split (STS-B dev selects the checkpoint during training). ``sts_avg`` is the average of the
seven, the number SimCSE and ADNCE report (there x 100).

Metric names: ``sts_avg``, ``sts12`` .. ``sts16``, ``stsb``, ``sickr`` (of the method's pooler), and
``sts_avg_cls_before_pooler`` / ``sts_avg_cls``, the average under each test embedding, so that both
readings of the official evaluation stand side by side; table ``sts`` has one row per task and source
with its Spearman correlation and number of pairs (the method's pooler).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from clbench.data.sentences import sentences

METRIC_OF_TASK = {"STS12": "sts12", "STS13": "sts13", "STS14": "sts14", "STS15": "sts15", "STS16": "sts16",
                  "STSBenchmark": "stsb", "SICKRelatedness": "sickr"}


def spearman(a, b) -> float:
    """Spearman's rank correlation: the Pearson correlation of the ranks (ties get their mean rank)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"spearman needs two 1-D arrays of the same length >= 2, got {a.shape} and {b.shape}")
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    # first index of each run of equal values, and the run lengths
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    lengths = np.diff(np.r_[starts, len(x)])
    mean_rank = starts + (lengths + 1) / 2.0  # 1-based mean rank of each run
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(mean_rank, lengths)
    return ranks


def pair_cosines(model, split: Mapping[str, np.ndarray], device: torch.device | str = "cpu",
                 pooler: str = "cls_before_pooler") -> np.ndarray:
    """The cosine of each pair's two sentence embeddings (``pooler``: which embedding, see the module docstring)."""
    e1 = model.embed(sentences(split, "x"), device, pooler=pooler)
    e2 = model.embed(sentences(split, "x2"), device, pooler=pooler)
    return torch.nn.functional.cosine_similarity(e1.double(), e2.double(), dim=1).numpy()


def task_scores(cosines: np.ndarray, split: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> tuple[dict, list]:
    """Per task, the Spearman correlation over all its pairs ({task: rho}); and the table rows per source."""
    tasks, subsets = meta["factors"]["task"], meta.get("subsets", [])
    gold, task_id, subset_id = np.asarray(split["y"]), np.asarray(split["factor_task"]), split.get("factor_subset")
    scores, rows = {}, []
    for t in np.unique(task_id):
        mask = task_id == t
        scores[tasks[t]] = spearman(cosines[mask], gold[mask])
        rows.append({"task": tasks[t], "source": "all", "spearman": scores[tasks[t]], "pairs": int(mask.sum())})
        if subset_id is not None:
            for s in np.unique(np.asarray(subset_id)[mask]):
                sub = mask & (np.asarray(subset_id) == s)
                rows.append({"task": tasks[t], "source": subsets[s].split("/", 1)[1],
                             "spearman": spearman(cosines[sub], gold[sub]), "pairs": int(sub.sum())})
    return scores, rows


def dev_spearman(model, split: Mapping[str, np.ndarray], device: torch.device | str = "cpu") -> float:
    """The Spearman correlation over every pair of a split (STS-B dev: model selection)."""
    return spearman(pair_cosines(model, split, device), split["y"])


def sts_metrics(run) -> dict:
    """``sts_avg`` and the seven tasks' Spearman correlations on the test split, with table ``sts``.

    ``run``: a :class:`clbench.evaluate.sentence_runner.SentenceRun` (``model``, ``test``, ``meta``, ``device``).
    The average under every pooler of :data:`~clbench.models.sentence.POOLERS` is reported too."""
    from clbench.models.sentence import POOLERS

    chosen = run.model.settings["pooler"]
    metrics, rows = {}, []
    for pooler in (chosen, *(p for p in POOLERS if p != chosen)):
        scores, pooler_rows = task_scores(pair_cosines(run.model, run.test, run.device, pooler), run.test, run.meta)
        metrics[f"sts_avg_{pooler}"] = float(np.mean(list(scores.values())))
        if pooler == chosen:
            metrics.update({METRIC_OF_TASK.get(task, task.lower()): rho for task, rho in scores.items()})
            metrics["sts_avg"] = metrics[f"sts_avg_{pooler}"]
            rows = pooler_rows
    return {"metrics": metrics, "tables": {"sts": rows}}

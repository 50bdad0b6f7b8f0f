"""MMVP-VLM's pair test of an image-text model (Tong et al. 2024), as MCL's official ``MMVP.ipynb`` scores it.

The test split holds pairs of images (rows ``2i, 2i+1``), each with a statement true of its own
image. For each statement, the softmax over the pair's two images of ``100 * cos(image, "<prompt>" +
statement)`` gives p(image 1); the prediction is image 1 when p > 0.5, the truth image 1 when the
row's qid is odd. A pair counts as correct only when both of its statements pick the right image.
The score of a visual pattern is the share of its pairs that are correct; ``mmvp`` is the mean over
patterns.

A multistage model (``stages``) is scored on the concatenation of its stages' raw image features and
of their raw text features, each then L2-normalised (the notebook's ``torch.cat`` of the models'
``encode_image`` / ``encode_text``), and on each stage alone.

Metrics: ``mmvp`` and ``mmvp_<pattern>`` (the concatenation for a multistage model), and for a
multistage model ``mmvp_stage<s>`` per stage; table ``mmvp_patterns``: one row per representation
and pattern (pairs, correct, score).
"""

from __future__ import annotations

import re

import numpy as np

from clbench.evaluate.registry import register_evaluation


def pattern_slug(name: str) -> str:
    """``"Orientation and Direction"`` -> ``"orientation_and_direction"`` (metric names)."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def pair_correct(image_features, text_features, qid) -> np.ndarray:
    """Whether each pair is right (both statements pick their image). Row ``r`` of ``image_features``
    and ``text_features`` are image ``r`` and statement ``r``; pairs are rows ``(2i, 2i+1)``."""
    import torch

    img = torch.nn.functional.normalize(torch.as_tensor(image_features).float(), dim=1)
    txt = torch.nn.functional.normalize(torch.as_tensor(text_features).float(), dim=1)
    if len(img) % 2 or len(img) != len(txt) or len(img) != len(qid):
        raise ValueError(f"need whole pairs of images and statements, got {len(img)} images, {len(txt)} statements, "
                         f"{len(qid)} qids")
    pairs = len(img) // 2
    logits = 100.0 * torch.einsum("psd,pid->psi", txt.view(pairs, 2, -1), img.view(pairs, 2, -1))
    picks_first = logits.softmax(dim=-1)[..., 0] > 0.5  # [pair, statement]
    truth_first = torch.as_tensor(np.asarray(qid) % 2 == 1).view(pairs, 2)
    return (picks_first == truth_first).all(dim=1).numpy()


def pattern_scores(correct: np.ndarray, pair_pattern: np.ndarray, patterns) -> dict[str, dict]:
    """Per pattern name: pairs, correct pairs and their share (patterns without pairs are left out)."""
    out = {}
    for k, name in enumerate(patterns):
        sel = pair_pattern == k
        if sel.any():
            out[name] = {"pairs": int(sel.sum()), "correct": int(correct[sel].sum()), "score": float(correct[sel].mean())}
    return out


def score_representation(image_features, text_features, qid, y, patterns) -> tuple[float, dict[str, dict]]:
    """(mean over patterns, per-pattern scores) of one representation."""
    correct = pair_correct(image_features, text_features, qid)
    scores = pattern_scores(correct, np.asarray(y)[::2], patterns)
    return float(np.mean([s["score"] for s in scores.values()])), scores


def _text_features(model, texts, device, batch: int = 256):
    import torch

    out = []
    with torch.no_grad():
        for s in range(0, len(texts), batch):
            out.append(model.text_features(model.tokenize(texts[s:s + batch]).to(device)).float().cpu())
    return torch.cat(out)


@register_evaluation("mmvp_pairs", requires=("text",))
def mmvp_pairs(run) -> dict:
    """MMVP-VLM's pair score per visual pattern and its mean (see the module docstring)."""
    import torch

    test = run.test
    prompt = str(test["prompt"]) if "prompt" in test else ""
    texts = [prompt + str(s) for s in test["statement"]]
    names = [str(p) for p in test["pattern_names"]] if "pattern_names" in test else [str(v) for v in np.unique(test["y"])]
    models = list(run.model.stages) if "stages" in run.capabilities else [run.model]
    images = run.embed(test["x"], fn=lambda m, xb: [s.features(xb) for s in models])
    texts_f = [_text_features(m, texts, run.device) for m in models]
    reps = {"concat": (torch.cat(images, 1), torch.cat(texts_f, 1))} if len(models) > 1 else {}
    if len(models) > 1:
        reps |= {f"stage{s}": (images[s], texts_f[s]) for s in range(len(models))}
    else:
        reps["model"] = (images[0], texts_f[0])
    metrics, rows = {}, []
    for rep, (img, txt) in reps.items():
        mean, scores = score_representation(img, txt, test["qid"], test["y"], names)
        rows += [{"representation": rep, "pattern": name, **s} for name, s in scores.items()]
        if rep in ("concat", "model"):
            metrics["mmvp"] = mean
            metrics |= {f"mmvp_{pattern_slug(name)}": s["score"] for name, s in scores.items()}
        else:
            metrics[f"mmvp_{rep}"] = mean
    return {"metrics": metrics, "tables": {"mmvp_patterns": rows}}

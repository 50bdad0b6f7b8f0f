"""Multistage contrastive learning (MCL): clustering between stages and the concatenated representation.

Stage 0 trains the method as it is. After stage s, its L2-normalised features of the training
split are clustered with K-means into K clusters; stage s+1 trains a fresh model whose batches are
each drawn from one cluster: of the combined ids of stages 0..s (``mcl.labels: joint``, as the paper
describes) or of stage s alone (``previous``, as the official ``cluster.py`` computes them; see
:mod:`clbench.data.samplers`), so its negatives share the features the earlier stages already
learned. The final representation is the concatenation of every stage's features, then
L2-normalised (as the official evaluation, ``MMVP.ipynb``: ``torch.cat`` of the stages'
``encode_image`` outputs, then divided by its norm).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from clbench.models.methods import StageConcat

log = logging.getLogger(__name__)


# the official cluster.py's K-means (lines 60-66, scikit-learn 1.3.2 of environment.yml): MiniBatchKMeans with
# batches of 1,000,000, max_iter 100, tol 1e-5 and that version's n_init of 3, on L2-normalised features
KMEANS = {"batch_size": 1_000_000, "max_iter": 100, "tol": 1e-5, "n_init": 3}


def kmeans(features: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Cluster ids of L2-normalised ``features``: scikit-learn's MiniBatchKMeans at :data:`KMEANS` (seeded,
    where the official run is not)."""
    from sklearn.cluster import MiniBatchKMeans

    x = np.asarray(features, dtype=np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    if k > len(x):
        raise ValueError(f"cannot make {k} clusters of {len(x)} samples")
    km = MiniBatchKMeans(n_clusters=k, random_state=seed, **KMEANS)
    return km.fit(x).predict(x).astype(np.int64)


def combine_stages(stage_dirs: list, out_dir) -> dict:
    """Write the MCL run's ``model.pt`` (all stages), ``metrics.csv`` (every stage's epochs) and ``run.json``."""
    import pandas as pd
    from pathlib import Path

    from clbench.health import stage_health
    from clbench.io import read_json, write_json, write_text
    from clbench.models.checkpoint import load_model, save_model

    stage_dirs = [Path(d) for d in stage_dirs]
    models, specs, frames, infos = [], [], [], []
    shape = None
    for s, d in enumerate(stage_dirs):
        blob = torch.load(d / "model.pt", map_location="cpu", weights_only=True)
        shape = blob["shape"]
        specs.append(blob["spec"])
        models.append(load_model(d / "model.pt"))
        df = pd.read_csv(d / "metrics.csv")
        df.insert(0, "stage", s)
        frames.append(df)
        infos.append(read_json(d / "run.json"))
    metrics = pd.concat(frames, ignore_index=True)
    metrics["epoch"] = range(1, len(metrics) + 1)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_model(out / "model.pt", StageConcat(models), {"objective": "mcl_concat", "stage_specs": specs}, shape)
    write_text(out / "metrics.csv", metrics.to_csv(index=False))
    # per stage, the clusters and samples its batches came from (stage 0: plain shuffled batches)
    samplers = [i.get("batch_sampler") for i in infos]
    info = {"stages": len(stage_dirs), "stage_batch_samplers": samplers, "stage_runs": infos,
            # every stage's training health, each stage's checks named by it; "stages" keeps each one
            "health": stage_health([i.get("health") for i in infos]),
            "device": infos[-1].get("device"),
            "seed": infos[-1].get("seed"), "wall_seconds": sum(i.get("wall_seconds", 0) for i in infos),
            "provenance": stages_provenance(infos)}
    write_json(out / "run.json", info)
    return info


def stages_provenance(stage_runs: list[dict]) -> dict:
    """The combined run's provenance: this checkout's commit, and one code hash over its stages' code."""
    import hashlib

    from clbench import provenance

    codes = [str((i.get("provenance") or {}).get("code_hash")) for i in stage_runs]
    return provenance.record(hashlib.sha256(" ".join(codes).encode()).hexdigest()[:16])

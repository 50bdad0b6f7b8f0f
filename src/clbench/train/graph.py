"""The training loop of the graph methods (domain ``graph``; GraphCL-style, ADNCE's TU experiments).

Official code: ``graph/gsimclr_robust.py``. Each step embeds a batch of graphs and one augmented view
of each (:class:`clbench.data.graph_augment.GraphAugment`, the method's ``graph.augment`` recipe) and
minimises the objective (``graph_info_nce`` / ``graph_adnce``). As in the official loop, the graphs
are shuffled once per run and then visited in that order every epoch, in batches of ``batch_size``
(the last one smaller; a last batch of a single graph, which has no negative, is skipped). The
encoder's weights at each epoch of ``graph.eval_epochs`` before the last are kept inside the model
(:meth:`clbench.models.graph.GraphContrastive.snapshot`), so the evaluation scores every such epoch.

Resumable like :func:`clbench.train.loop.train`: a checkpoint after every epoch, and each epoch's
augmentations drawn from ``(seed, epoch)``, so a resumed run ends where an uninterrupted one does.
Writes ``model.pt``, ``metrics.csv`` (epoch, loss, lr, seconds, graphs per second) and ``run.json``.
"""

from __future__ import annotations

import logging
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from clbench import health as run_health
from clbench.data import dataset_dir
from clbench.data.embedded import rng_for
from clbench.data.graph_augment import GraphAugment
from clbench.data.graphs import graph, graph_batch, num_graphs
from clbench.io import write_json, write_text
from clbench.models.checkpoint import save_model
from clbench.models.graph import graph_settings
from clbench.models.methods import build_method
from clbench.train import device as devices
from clbench.train.loop import (build_optimizer, build_schedule, restore_state, rows_to_csv, run_provenance, save_state,
                                spec_hash)
from clbench.train.progress import ProgressRecorder

log = logging.getLogger(__name__)

__all__ = ["augmenter", "train"]


def augmenter(spec: dict) -> GraphAugment:
    s = graph_settings(spec)
    return GraphAugment(recipe=s["augment"], node_drop_rate=s["node_drop_rate"], subgraph_keep=s["subgraph_keep"],
                        edge_perturb_rate=s["edge_perturb_rate"], attr_mask_rate=s["attr_mask_rate"],
                        subgraph_growth=s["subgraph_growth"])


def train(spec: dict, data_dir: str | Path, out_dir: str | Path, checkpoint_dir: str | Path, *, seed: int = 0,
          device: str = "auto", threads: int = 1, batch_sampler=None, health: dict | None = None,
          logger: str = "none") -> dict:
    """Train graph method ``spec`` on every graph of ``data_dir``; write model.pt, metrics.csv and run.json
    to ``out_dir`` (metrics.csv after every epoch: :mod:`clbench.train.progress`). ``health``: the config's
    thresholds (see :func:`clbench.train.loop.train`)."""
    with ProgressRecorder(out_dir, int(spec.get("epochs", 10)), logger=logger) as progress:
        return _train(spec, data_dir, out_dir, checkpoint_dir, seed=seed, device=device, threads=threads,
                      batch_sampler=batch_sampler, health=health, progress=progress)


def _train(spec: dict, data_dir, out_dir, checkpoint_dir, *, seed: int, device: str, threads: int, batch_sampler,
           health: dict | None, progress: ProgressRecorder) -> dict:
    started = time.time()
    if batch_sampler is not None:
        raise ValueError("graph methods train on the dataset's own order; a batch sampler (MCL) is not supported")
    dev = devices.setup(device, threads, seed)
    meta = dataset_dir.load_meta(data_dir)
    if meta.get("domain") != "graph":
        raise ValueError(f"{data_dir} is not a graph dataset (meta.json domain: {meta.get('domain')!r}); "
                         f"objective {spec['objective']} trains on graphs")
    split = dataset_dir.load(data_dir, "train")
    graphs = [graph(split, i) for i in range(num_graphs(split))]
    features = int(split["x"].shape[1])
    shape = {"in_channels": features, "num_classes": len(meta.get("classes") or np.unique(split["y"])), "image_size": 0}
    model = build_method(spec, features, shape["num_classes"]).to(dev)
    augment = augmenter(spec)
    batch_size, epochs = spec.get("batch_size", 128), spec.get("epochs", 10)
    order = rng_for(seed, "graph_order").permutation(len(graphs))
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    batches = [b for b in batches if len(b) >= 2]
    if not batches:
        raise ValueError(f"{data_dir} has {len(graphs)} graph(s): a batch needs at least 2")
    optimizer = build_optimizer([p for p in model.parameters() if p.requires_grad], spec)
    schedule = build_schedule(optimizer, spec, len(batches))
    run_hash = spec_hash(spec, seed, meta.get("hash", ""))
    checkpoint = Path(checkpoint_dir) / "last.pt"
    rows, start = [], 0
    stateful = {"model": model, "optimizer": optimizer, "schedule": schedule}
    state = restore_state(checkpoint, run_hash, dev, stateful)
    if state is not None:
        rows, start = state["rows"], state["epoch"] + 1
        log.info("resuming from %s after epoch %d", checkpoint, state["epoch"] + 1)
    for epoch in range(start, epochs):
        rows.append(_epoch(model, graphs, batches, augment, optimizer, schedule, rng_for(seed, "graph_epoch", epoch),
                           epoch, dev))
        run_health.stop_if_diverged([r["loss"] for r in rows], health, at=f"epoch {epoch + 1}", logger=log)
        model.snapshot(epoch + 1)
        log.info("epoch %d/%d loss=%.4g (%.1f s)", epoch + 1, epochs, rows[-1]["loss"], rows[-1]["seconds"])
        save_state(checkpoint, run_hash, stateful, epoch=epoch, rows=rows)
        progress.record(rows)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_model(out / "model.pt", model, spec, shape)
    write_text(out / "metrics.csv", rows_to_csv(rows))
    info = {"spec": spec, "seed": seed, "device": str(dev), "threads": threads, "processes": 1,
            "dataset": str(data_dir), "dataset_hash": meta.get("hash"), "run_hash": run_hash, "epochs": epochs,
            "resumed_from_epoch": start, "wall_seconds": time.time() - started, "final": rows[-1] if rows else {},
            "graphs": len(graphs), "batches_per_epoch": len(batches), "graph": graph_settings(spec),
            "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
                         "clbench": __import__("clbench").__version__},
            "provenance": run_provenance(spec)}
    info["health"] = run_health.training_health_of(spec, rows, health, batch_size=batch_size)
    run_health.log_health(info["health"], log)
    write_json(out / "run.json", info)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    log.info("finished in %.1f s on %s (seed %d)", info["wall_seconds"], dev, seed)
    return info


def _epoch(model, graphs, batches, augment: GraphAugment, optimizer, schedule, rng: np.random.Generator, epoch: int,
           dev: torch.device) -> dict:
    t0 = time.time()
    model.train()
    total, seen = 0.0, 0
    for ids in batches:
        pairs = [augment.pair(*graphs[i], rng) for i in ids]
        terms = model.loss_terms(graph_batch([p[0] for p in pairs], dev), graph_batch([p[1] for p in pairs], dev))
        if not torch.isfinite(terms["loss"]).item():
            raise run_health.TrainingDiverged(f"training stopped at epoch {epoch + 1}: the loss is "
                                              f"{float(terms['loss'])} (not finite)")
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
        schedule.step()
        total += float(terms["loss"].detach()) * len(ids)
        seen += len(ids)
    seconds = time.time() - t0
    return {"epoch": epoch + 1, "loss": total / seen, model.objective: total / seen,
            "lr": optimizer.param_groups[0]["lr"], "seconds": seconds, "graphs_per_s": seen / max(seconds, 1e-9)}

"""The one training loop every method family runs through.

It is resumable: after every epoch a checkpoint (model, optimiser, scheduler, scaler, metrics so far,
RNG states) is written atomically to ``checkpoint_dir``, which lies outside the rule's declared
outputs. Each epoch's randomness (shuffling, loader-side crops) is seeded from ``(seed, epoch)`` and
each step's on-device augmentation from ``(seed, epoch, step, rank)``, so a run killed after epoch e
and started again ends with exactly the metrics of an uninterrupted run on the CPU.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from clbench import health as run_health
from clbench.data import augment, dataset_dir
from clbench.io import atomic_path, write_json, write_text
from clbench.models.checkpoint import save_model
from clbench.models.methods import Method, build_method
from clbench.objectives import OBJECTIVES
from clbench.train import device as devices
from clbench.train import distributed
from clbench.train.data import ViewDataset, make_loader
from clbench.train.progress import ProgressRecorder, rows_to_csv  # noqa: F401 (the trainers' CSV)

log = logging.getLogger(__name__)


class CheckpointMismatch(RuntimeError):
    """A checkpoint in the run's checkpoint directory was written for another configuration."""


def run_provenance(spec: dict) -> dict:
    """run.json's ``provenance``: the commit, dirty flag and the hash of the code training ``spec`` runs."""
    from clbench import provenance
    from clbench.train.trainers import training_code

    return provenance.record(training_code(spec))


def spec_hash(spec: dict, seed: int, data_hash: str) -> str:
    blob = json.dumps({"spec": spec, "seed": seed, "data": data_hash}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build_optimizer(params, spec: dict) -> torch.optim.Optimizer:
    opt = spec.get("optimizer", {})
    name, lr, wd = opt.get("name", "adam"), opt.get("lr", 1e-3), opt.get("weight_decay", 0.0)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=wd, momentum=opt.get("momentum", 0.9),
                               nesterov=opt.get("nesterov", True))
    raise ValueError(f"unknown optimizer {name!r}")


def build_schedule(optimizer, spec: dict, steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The learning rate per step, as a factor of the optimiser's: a linear warm-up over ``warmup_epochs``
    (from ``warmup_start_lr``, absolute, when set, else from one step's share), then constant or a cosine
    over the remaining steps down to ``lr_floor`` (a fraction of the rate; SupCon's and VarCon's code
    decays to lr x 0.1**3 and warms up from 0.01)."""
    total = spec.get("epochs", 1) * steps_per_epoch
    warmup = spec.get("warmup_epochs", 0) * steps_per_epoch
    cosine = spec.get("schedule", "cosine") == "cosine"
    floor = spec.get("lr_floor", 0.0)
    start = spec.get("warmup_start_lr")
    base_lr = spec.get("optimizer", {}).get("lr", 1e-3)

    def factor(step: int) -> float:
        if step < warmup:
            if start is None:
                return (step + 1) / warmup
            return start / base_lr + (step / warmup) * (1.0 - start / base_lr)
        if not cosine:
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def knn_accuracy(model, train_x, train_y, val_x, val_y, device, k: int = 20) -> float:
    """Cosine k-NN top-1 of the frozen features: a cheap per-epoch convergence signal."""
    from clbench.evaluate.embed import embed
    from clbench.evaluate.knn import weighted_knn

    ftr, fva = embed(model, train_x, device), embed(model, val_x, device)
    return float(weighted_knn(ftr, torch.as_tensor(train_y), fva, torch.as_tensor(val_y), k=k)["top1"])


def pretraining_split(spec: dict, data_dir: str | Path, meta: dict, train_split: dict, clustered: bool) -> dict:
    """What a method pretrains on: the ``train`` split, joined by the dataset's further ``pretrain_splits``
    (STL-10's unlabelled images: ``train+unlabeled``, as the ADNCE code pretrains) when its objective reads
    no labels; a supervised objective keeps to the labelled ``train`` split."""
    extra = [s for s in meta.get("pretrain_splits", ["train"]) if s != "train"]
    if not extra or OBJECTIVES[spec["objective"]].uses_labels:
        return train_split
    if clustered:
        raise ValueError(f"{data_dir} pretrains on {['train', *extra]}, but MCL's clusters cover the train split only")
    parts = [train_split] + [dataset_dir.load(data_dir, s) for s in extra]
    log.info("pretraining on %s: %d images", "+".join(["train", *extra]), sum(len(p["y"]) for p in parts))
    return {"x": np.concatenate([np.asarray(p["x"]) for p in parts]), "y": np.concatenate([p["y"] for p in parts])}


def check_finite(terms: dict, step: int, views: torch.Tensor, labels: torch.Tensor, epoch: int | None = None) -> None:
    if torch.isfinite(terms["loss"]).item():
        return
    values = {k: float(v.detach()) for k, v in terms.items()}
    stats = dict(mean=float(views.mean()), std=float(views.std()), min=float(views.min()), max=float(views.max()),
                 classes=int(labels.unique().numel()), batch=int(labels.numel()))
    at = f"epoch {epoch}, step {step}" if epoch is not None else f"step {step}"
    msg = f"training stopped at {at}: the loss is {values['loss']} (not finite): terms={values} batch={stats}"
    log.error(msg)
    raise run_health.TrainingDiverged(msg)


@dataclass
class Run:
    """One training run between its stages: what :func:`setup` builds and the epochs advance."""

    spec: dict
    data_dir: str | Path
    seed: int
    threads: int
    ctx: distributed.Context
    device: torch.device
    meta: dict
    shape: dict
    model: Method
    step_model: torch.nn.Module
    dataset: ViewDataset
    device_augment: augment.DeviceAugment  # the recipe's on-device part, applied to each uint8 batch
    batch_size: int
    batch_sampler: object
    steps_per_epoch: int
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    aux_optimizer: torch.optim.Optimizer | None
    aux_steps: int
    monitor: tuple | None  # (bank x, bank y, query x, query y): train and val samples; None without a val split
    run_hash: str
    checkpoint_dir: Path
    epochs: int
    started: float
    rows: list[dict] = field(default_factory=list)
    start_epoch: int = 0
    step: int = 0
    health: dict = field(default_factory=dict)  # the config's health: thresholds

    @property
    def checkpoint_path(self) -> Path:
        return self.checkpoint_dir / "last.pt"


def train(spec: dict, data_dir: str | Path, out_dir: str | Path, checkpoint_dir: str | Path, *, seed: int = 0,
          device: str = "auto", threads: int = 1, batch_sampler=None, health: dict | None = None,
          logger: str = "none") -> dict:
    """Train the method ``spec`` on ``data_dir``'s train split; write model.pt, metrics.csv, run.json to ``out_dir``
    (metrics.csv after every epoch, with ``progress.json`` and the ``logger``'s events: :mod:`clbench.train.progress`).

    ``health``: the config's ``health:`` thresholds; an epoch whose loss is non-finite or diverges stops
    the run (:func:`clbench.health.stop_if_diverged`), and run.json records the training-side health."""
    run = setup(spec, data_dir, checkpoint_dir, seed=seed, device=device, threads=threads, batch_sampler=batch_sampler)
    run.health = health or {}
    resume(run)
    with ProgressRecorder(out_dir, run.epochs, logger=logger, start=run.start_epoch, rows=run.rows,
                          enabled=run.ctx.is_main) as progress:
        for epoch in tqdm(range(run.start_epoch, run.epochs), desc="epochs", initial=run.start_epoch,
                          total=run.epochs, disable=not run.ctx.is_main, mininterval=1.0):
            run.rows.append(train_epoch(run, epoch))
            if run.ctx.is_main:
                log.info("epoch %d/%d %s", epoch + 1, run.epochs,
                         " ".join(f"{k}={v:.4g}" for k, v in run.rows[-1].items() if k != "epoch"))
                progress.record(run.rows)  # metrics.csv shows a diverging epoch before the run stops on it
            run_health.stop_if_diverged([r["loss"] for r in run.rows if "loss" in r], run.health,
                                        at=f"epoch {epoch + 1}", logger=log)
            if run.ctx.is_main:
                save_checkpoint(run.checkpoint_path, epoch, run.run_hash, run.model, run.optimizer, run.schedule,
                                run.scaler, run.rows, run.aux_optimizer)
            distributed.barrier()  # no rank runs ahead of the checkpoint it would resume from
        return finish(run, out_dir)


def setup(spec: dict, data_dir: str | Path, checkpoint_dir: str | Path, *, seed: int = 0, device: str = "auto",
          threads: int = 1, batch_sampler=None) -> Run:
    """Seed, load the data, build the model, its optimisers and the k-NN monitor: a run at epoch 0."""
    t0 = time.time()
    ctx = distributed.from_environment()
    dev = distributed.init(ctx, devices.setup(device, threads, seed))
    meta = dataset_dir.load_meta(data_dir)
    train_split = dataset_dir.load(data_dir, "train")
    val_split = dataset_dir.load(data_dir, "val")
    # "x" is an array, or LazyImages for a path-index split (decoded by the loader, per item)
    channels, size = int(train_split["x"].shape[1]), int(train_split["x"].shape[-1])
    num_classes = len(meta.get("classes") or np.unique(train_split["y"]))
    shape = {"in_channels": channels, "num_classes": num_classes, "image_size": size}

    model = distributed.prepare(build_method(spec, channels, num_classes, size), ctx, dev).to(dev)
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    # one forward = one step's loss terms, so torch.compile and DDP both see the whole step
    step_model = distributed.wrap(distributed.LossTerms(model), ctx, dev)
    if spec.get("compile") and dev.type == "cuda":  # compiling the DDP module lets it split graphs at buckets
        step_model = torch.compile(step_model)
    views = spec.get("views", 1)
    paired = train_split.get("x2") if spec.get("paired_views") else None
    if spec.get("paired_views") and paired is None:
        raise ValueError(f"method asks for paired_views but {data_dir} has no paired second view (x2)")
    pretrain = pretraining_split(spec, data_dir, meta, train_split, batch_sampler is not None)
    in_loader, on_device = augment.pipeline(spec.get("augment", "none"), spec.get("crop_size", size), channels,
                                            path_indexed=isinstance(pretrain["x"], dataset_dir.LazyImages))
    ds = ViewDataset(pretrain["x"], pretrain["y"], in_loader, views, second=paired,
                     full_resolution=in_loader is not None)
    batch_size = spec.get("batch_size", 128)
    if batch_size % ctx.world:
        raise ValueError(f"batch_size {batch_size} is the global batch; it must be divisible by the "
                         f"{ctx.world} processes")
    steps_per_epoch = len(batch_sampler) if batch_sampler is not None else max(1, len(ds) // batch_size)
    if hasattr(batch_sampler, "summary"):
        used = batch_sampler.summary()
        log.info("batches from %d of %d clusters, %d of %d samples per epoch (%d batches of %d)",
                 used["clusters_used"], used["clusters"], used["samples_used"], used["samples"], used["batches"],
                 used["batch_size"])
    if steps_per_epoch == 0:
        raise ValueError(f"no batch to train on: the batch sampler gives no batch of {batch_size} "
                         f"(every cluster is smaller than one batch); lower batch_size or the number of clusters")
    aux_params = model.auxiliary_parameters()
    aux_ids = {id(p) for p in aux_params}
    optimizer = build_optimizer([p for p in model.parameters() if id(p) not in aux_ids], spec)
    aux_optimizer, aux_steps = None, 0
    if aux_params:
        aux = model.auxiliary_optimizer_settings()
        aux_optimizer, aux_steps = torch.optim.Adam(aux_params, lr=aux["lr"]), aux["steps"]
    schedule = build_schedule(optimizer, spec, steps_per_epoch)
    amp_dtype = devices.autocast_dtype(dev)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

    # k-NN monitor on a fixed subset keeps per-epoch evaluation cheap at every scale. Its queries are val
    # samples, never test ones: without a val split there is no val_knn_top1.
    rng = np.random.default_rng(seed)
    mon_train = rng.permutation(len(train_split["y"]))[:5000]
    mon_val = rng.permutation(len(val_split["y"]))[:2000]
    # decoded once: for a path-index dataset this is the only full decode of these images
    monitor = (np.asarray(train_split["x"][np.sort(mon_train)]), train_split["y"][np.sort(mon_train)],
               np.asarray(val_split["x"][np.sort(mon_val)]), val_split["y"][np.sort(mon_val)]) if len(mon_val) else None

    # A checkpoint is only resumed by the same spec, seed, data and (MCL) previous-stage clusters.
    clusters = getattr(batch_sampler, "cluster_ids", None)
    clusters_hash = hashlib.sha256(np.ascontiguousarray(clusters).tobytes()).hexdigest() if clusters is not None else ""
    return Run(spec=spec, data_dir=data_dir, seed=seed, threads=threads, ctx=ctx, device=dev, meta=meta,
               shape=shape, model=model, step_model=step_model, dataset=ds, device_augment=on_device,
               batch_size=batch_size, batch_sampler=batch_sampler, steps_per_epoch=steps_per_epoch, optimizer=optimizer, schedule=schedule,
               scaler=scaler, amp_dtype=amp_dtype, aux_optimizer=aux_optimizer, aux_steps=aux_steps, monitor=monitor,
               run_hash=spec_hash(spec, seed, meta.get("hash", "") + clusters_hash),
               checkpoint_dir=Path(checkpoint_dir), epochs=spec.get("epochs", 10), started=t0)


def restore_state(path: Path, run_hash: str, device, objects: dict) -> dict | None:
    """The checkpoint at ``path``, if there is one, loaded into ``objects`` (name -> an object with a state dict,
    or None), refusing a checkpoint another configuration wrote; returns the whole checkpoint (epoch, rows, ...)."""
    if not path.exists():
        return None
    state = torch.load(path, map_location=device, weights_only=False)
    if state.get("run_hash") != run_hash:
        raise CheckpointMismatch(f"{path} was written for another configuration (hash {state.get('run_hash')} != "
                                 f"{run_hash}); delete {path.parent} to start this run afresh")
    for name, obj in objects.items():
        if obj is not None:
            obj.load_state_dict(state[name])
    return state


def save_state(path: Path, run_hash: str, objects: dict, **extra) -> None:
    """Write ``objects``' state dicts and ``extra`` (epoch, rows, ...) atomically: what :func:`restore_state` reads."""
    state = {"run_hash": run_hash, **extra,
             **{name: obj.state_dict() if obj is not None else None for name, obj in objects.items()}}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def resume(run: Run) -> None:
    """Continue from the run's last epoch checkpoint, if there is one (refusing another configuration's)."""
    state = restore_state(run.checkpoint_path, run.run_hash, run.device, _stateful(run.model, run.optimizer,
                          run.schedule, run.scaler, run.aux_optimizer))
    if state is not None:
        run.rows, run.start_epoch = state["rows"], state["epoch"] + 1
        log.info("resuming from %s after epoch %d", run.checkpoint_path, state["epoch"])
    run.step = run.start_epoch * run.steps_per_epoch


def _stateful(model, optimizer, schedule, scaler=None, aux_optimizer=None) -> dict:
    return {"model": model, "optimizer": optimizer, "schedule": schedule, "scaler": scaler,
            "aux_optimizer": aux_optimizer}


def train_epoch(run: Run, epoch: int) -> dict:
    """One epoch of optimiser steps; returns its metrics row (term means, per-sample distributions, k-NN)."""
    ctx, dev, model = run.ctx, run.device, run.model
    e0 = time.time()
    # loader-side crops and the model's own draws differ per rank; rank 0 of 1 is the single-process stream
    devices.seed_everything((run.seed * 100_003 + epoch) * ctx.world + ctx.rank)
    loader = make_loader(run.dataset, run.batch_size, seed=run.seed, epoch=epoch, device=dev,
                         num_workers=run.spec.get("num_workers", 0), batch_sampler=run.batch_sampler,
                         rank=ctx.rank, world=ctx.world)
    model.train()
    sums: dict[str, float] = {}
    spreads: dict[str, list[torch.Tensor]] = {}
    n_batches, n_images = 0, 0
    for batch_views, labels, _ in tqdm(loader, desc=f"epoch {epoch}", leave=False, disable=not ctx.is_main,
                                       mininterval=5.0):
        x = run.device_augment(batch_views, dev, augment.step_seed(run.seed, epoch, run.step, ctx.rank))
        labels = labels.to(dev, non_blocking=True)
        with torch.autocast(dev.type, dtype=run.amp_dtype, enabled=run.amp_dtype is not None):
            terms = run.step_model(x, labels)
        check_finite(terms, run.step, x, labels, epoch=epoch + 1)
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(terms["loss"]).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
        run.schedule.step()
        if run.aux_optimizer is not None:
            for _ in range(run.aux_steps):
                run.aux_optimizer.zero_grad(set_to_none=True)
                model.auxiliary_loss().backward()
                run.aux_optimizer.step()
        run.step += 1
        n_batches += 1
        n_images += labels.numel()
        for k, v in terms.items():
            if v.numel() > 1:  # a per-sample quantity (e.g. VarCon's t2): its distribution is logged
                spreads.setdefault(k, []).append(v.detach().float().cpu())
            else:
                sums[k] = sums.get(k, 0.0) + float(v.detach())
    means = distributed.mean_over_ranks({k: v / max(1, n_batches) for k, v in sums.items()})
    n_images = distributed.sum_over_ranks(n_images)
    row = {"epoch": epoch + 1, **means, **distribution_columns(spreads),
           "lr": run.optimizer.param_groups[0]["lr"], "seconds": time.time() - e0,
           "images_per_s": n_images / max(1e-9, time.time() - e0)}
    every = run.spec.get("val_every", 1)
    if ctx.is_main and every and run.monitor is not None and ((epoch + 1) % every == 0 or epoch + 1 == run.epochs):
        row["val_knn_top1"] = knn_accuracy(model, *run.monitor, dev)
    return row


def finish(run: Run, out_dir: str | Path) -> dict:
    """Write model.pt, metrics.csv and run.json (rank 0), remove the epoch checkpoints, leave the process group."""
    ctx = run.ctx
    if not ctx.is_main:
        distributed.barrier()
        distributed.shutdown()
        return {"rank": ctx.rank, "run_hash": run.run_hash}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_model(out / "model.pt", run.model, run.spec, run.shape)
    write_text(out / "metrics.csv", rows_to_csv(run.rows))
    info = {
        "spec": run.spec, "seed": run.seed, "device": str(run.device), "threads": run.threads, "processes": ctx.world,
        "dataset": str(run.data_dir), "dataset_hash": run.meta.get("hash"), "run_hash": run.run_hash,
        "epochs": run.epochs, "resumed_from_epoch": run.start_epoch, "wall_seconds": time.time() - run.started,
        "final": run.rows[-1] if run.rows else {},
        # MCL stages: the clusters and samples the batches came from
        **({"batch_sampler": run.batch_sampler.summary()} if hasattr(run.batch_sampler, "summary") else {}),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
                     "clbench": __import__("clbench").__version__},
        "provenance": run_provenance(run.spec),
    }
    info["health"] = run_health.training_health_of(run.spec, run.rows, run.health, batch_size=run.batch_size)
    run_health.log_health(info["health"], log)
    write_json(out / "run.json", info)
    shutil.rmtree(run.checkpoint_dir, ignore_errors=True)
    log.info("finished in %.1f s on %s (seed %d)", info["wall_seconds"], run.device, run.seed)
    if ctx.distributed:
        distributed.barrier()
        distributed.shutdown()
    return info


QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def distribution_columns(spreads: dict[str, list[torch.Tensor]]) -> dict[str, float]:
    """Per-epoch summary of per-sample terms: mean, std, min, p05, p25, p50, p75, p95, max."""
    out: dict[str, float] = {}
    for name, parts in spreads.items():
        v = torch.cat(parts).double().numpy()
        q = np.quantile(v, QUANTILES)  # numpy: torch.quantile stops at 2**24 values
        out |= {f"{name}_mean": float(v.mean()), f"{name}_std": float(v.std()), f"{name}_min": float(v.min())}
        out |= {f"{name}_p{round(p * 100):02d}": float(x) for p, x in zip(QUANTILES, q)}
        out[f"{name}_max"] = float(v.max())
    return out


def save_checkpoint(path: Path, epoch: int, run_hash: str, model, optimizer, schedule, scaler, rows,
                    aux_optimizer=None) -> None:
    save_state(path, run_hash, _stateful(model, optimizer, schedule, scaler, aux_optimizer), epoch=epoch, rows=rows)

"""The training loop of image-caption methods (domain ``image_text``): CLIP on captioned images.

Same arguments and outputs as :func:`clbench.train.loop.train` (``model.pt``, ``metrics.csv``,
``run.json``; resumable from per-epoch checkpoints; ``torchrun`` data-parallel with the global
batch split over processes and a gradient-keeping all-gather in the loss). What differs from the
image loop is the data (a caption per image, tokenised with the model's tokenizer) and the
optimisation MCL's CLIP runs use (``my_training`` of MajorDavidZhang/MCL, an open_clip fork):

- AdamW over the trainable parameters, no weight decay on gains, biases and ``logit_scale``
  (:func:`clbench.models.clip.weight_decay_groups`), betas and eps from the ``clip:`` block;
- ``clip.warmup_steps`` of linear warm-up, then the method's ``schedule`` (``constant`` or cosine);
- ``logit_scale`` clamped to ``[0, ln max_logit_scale]`` after every step;
- training images randomly resized-cropped (``clip.crop_scale``, aspect ratio 3/4..4/3, bicubic, to the
  dataset's size): the whole image file of a path index, as open_clip's training transform crops it
  (:func:`clbench.data.image_text.clip_train_view`, in the loader workers), an array dataset's images
  on the training device;
- mixed precision on a GPU: ``clip.precision`` ``fp16`` (float16 autocast with a GradScaler, open_clip's
  ``--precision amp``), ``bf16``, or ``auto`` (bf16 where the GPU has it, else fp16).

A method can start from another run's weights (``init_from``: a ``model.pt``, which MCL's stages
use with ``mcl.init: previous``); ``epochs: 0`` writes the starting model as it is (MCL's vanilla
stage). Per epoch the loop logs the loss, the temperature and the image-to-caption retrieval top-1
on (up to 1,000 of) the validation pairs.
"""

from __future__ import annotations

import logging
import math
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from clbench import health as run_health
from clbench.data import dataset_dir
from clbench.data.image_text import captions_of, clip_train_view
from clbench.io import write_json, write_text
from clbench.models.checkpoint import save_model
from clbench.models.inputs import to_float
from clbench.models.methods import build_method
from clbench.train import device as devices
from clbench.train import distributed
from clbench.train.data import make_loader
from clbench.train.loop import restore_state, rows_to_csv, run_provenance, save_checkpoint, spec_hash
from clbench.train.progress import ProgressRecorder

log = logging.getLogger(__name__)

TRAINING_DEFAULTS = {"warmup_steps": 0, "betas": [0.9, 0.999], "eps": 1e-8, "crop_scale": None, "precision": "auto"}
PRECISIONS = {"fp16": torch.float16, "bf16": torch.bfloat16}


def training_settings(spec: dict) -> dict:
    clip = spec.get("clip") or {}
    return {k: clip.get(k, v) for k, v in TRAINING_DEFAULTS.items()}


def autocast_dtype(settings: dict, dev: torch.device) -> torch.dtype | None:
    """The training's autocast dtype: ``clip.precision`` on a GPU, none on a CPU."""
    if dev.type != "cuda":
        return None
    return devices.autocast_dtype(dev) if settings["precision"] == "auto" else PRECISIONS[settings["precision"]]


class FullImageViews:
    """Training views of a path index: :func:`clip_train_view` of each whole image file (picklable)."""

    def __init__(self, images, size: int, scale):
        self.images, self.size, self.scale = images, int(size), tuple(scale)

    def __call__(self, i: int) -> np.ndarray:
        return clip_train_view(self.images.decode(i, size=None), self.size, self.scale)


class ImageCaptionDataset(Dataset):
    """(uint8 image [C, H, W], caption tokens [L], index) per item; ``x`` an array or a lazy path index.
    ``view``: the image of item i, where it is not ``x[i]`` (:class:`FullImageViews`)."""

    def __init__(self, x, captions, tokenize, view=None):
        self.x, self.captions, self.tokenize, self.view = x, captions, tokenize, view
        # an in-memory caption array is tokenised once; caption files are read and tokenised per item
        self.tokens = tokenize([str(c) for c in captions]) if isinstance(captions, np.ndarray) else None

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        tokens = self.tokens[i] if self.tokens is not None else self.tokenize([self.captions[i]])[0]
        image = self.view(i) if self.view is not None else np.asarray(self.x[i])
        return torch.as_tensor(image), tokens, i


def build_schedule(optimizer, spec: dict, steps_per_epoch: int, warmup: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup`` steps, then constant or cosine to the last step."""
    total = spec.get("epochs", 1) * steps_per_epoch
    cosine = spec.get("schedule", "cosine") == "cosine"

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if not cosine:
            return 1.0
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def random_resized_crop(x: torch.Tensor, scale, generator: torch.Generator | None = None) -> torch.Tensor:
    """One random resized crop per image (area share in ``scale``, aspect ratio 3/4..4/3), back to
    the input size, bicubic. ``x`` float [B, C, H, W]."""
    import kornia.augmentation as K

    crop = K.RandomResizedCrop(tuple(x.shape[-2:]), scale=tuple(scale), resample="bicubic")
    return crop(x).clamp(0, 1)


@torch.no_grad()
def retrieval_top1(model, x, captions, device, limit: int = 1000) -> float:
    """Image-to-caption top-1 among the first ``limit`` pairs: the caption of each image ranks first."""
    n = min(limit, len(captions))
    if n == 0:
        return float("nan")
    was = model.training
    model.eval()
    img, txt = [], []
    for s in range(0, n, 256):
        e = min(n, s + 256)
        img.append(model.features(to_float(torch.as_tensor(np.asarray(x[s:e])), device)).float())
        txt.append(model.text_features(model.tokenize([captions[i] for i in range(s, e)]).to(device)).float())
    model.train(was)
    sim = torch.nn.functional.normalize(torch.cat(img), dim=1) @ torch.nn.functional.normalize(torch.cat(txt), dim=1).T
    return float((sim.argmax(1) == torch.arange(n, device=sim.device)).float().mean())


def train(spec: dict, data_dir: str | Path, out_dir: str | Path, checkpoint_dir: str | Path, *, seed: int = 0,
          device: str = "auto", threads: int = 1, batch_sampler=None, health: dict | None = None,
          logger: str = "none") -> dict:
    """Train the image-caption method ``spec`` on ``data_dir``'s train split; write model.pt, metrics.csv
    and run.json to ``out_dir`` (metrics.csv after every epoch: :mod:`clbench.train.progress`). ``health``: the
    config's thresholds (see :func:`clbench.train.loop.train`)."""
    with ProgressRecorder(out_dir, int(spec.get("epochs", 10)), logger=logger,
                          enabled=distributed.from_environment().is_main) as progress:
        return _train(spec, data_dir, out_dir, checkpoint_dir, seed=seed, device=device, threads=threads,
                      batch_sampler=batch_sampler, health=health, progress=progress)


def _train(spec: dict, data_dir, out_dir, checkpoint_dir, *, seed: int, device: str, threads: int, batch_sampler,
           health: dict | None, progress: ProgressRecorder) -> dict:
    t0 = time.time()
    ctx = distributed.from_environment()
    dev = distributed.init(ctx, devices.setup(device, threads, seed))
    meta = dataset_dir.load_meta(data_dir)
    train_split, val_split = dataset_dir.load(data_dir, "train"), dataset_dir.load(data_dir, "val")
    size = int(train_split["x"].shape[-1])
    shape = {"in_channels": 3, "num_classes": len(meta.get("classes") or [0]), "image_size": size}
    settings = training_settings(spec)

    model = build_method(spec, 3, shape["num_classes"], size)
    model.load_pretrained()
    if spec.get("init_from"):
        blob = torch.load(spec["init_from"], map_location="cpu", weights_only=True)
        model.load_state_dict(blob["state_dict"])
        log.info("starting from %s", spec["init_from"])
    model = distributed.prepare(model, ctx, dev).to(dev)
    step_model = distributed.wrap(distributed.LossTerms(model), ctx, dev)
    # the tokenizer itself, not the model's method: loader workers get a copy of the dataset
    # a path index is cropped from its whole files in the loader workers; arrays on the device below
    full_views = bool(settings["crop_scale"]) and hasattr(train_split["x"], "decode")
    view = FullImageViews(train_split["x"], size, settings["crop_scale"]) if full_views else None
    ds = ImageCaptionDataset(train_split["x"], captions_of(train_split, meta), model.tokenizer, view)
    batch_size = spec.get("batch_size", 128)
    if batch_size % ctx.world:
        raise ValueError(f"batch_size {batch_size} is the global batch; it must be divisible by the "
                         f"{ctx.world} processes")
    steps_per_epoch = len(batch_sampler) if batch_sampler is not None else max(1, len(ds) // batch_size)
    if steps_per_epoch == 0:
        raise ValueError(f"no batch to train on: every cluster is smaller than one batch of {batch_size}")
    opt = spec.get("optimizer", {})
    optimizer = torch.optim.AdamW(weight_decay_groups(model, opt.get("weight_decay", 0.0)), lr=opt.get("lr", 1e-3),
                                  betas=tuple(settings["betas"]), eps=settings["eps"])
    schedule = build_schedule(optimizer, spec, steps_per_epoch, int(settings["warmup_steps"]))
    amp_dtype = autocast_dtype(settings, dev)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    val_captions = captions_of(val_split, meta)

    clusters = getattr(batch_sampler, "cluster_ids", None)
    import hashlib

    clusters_hash = hashlib.sha256(np.ascontiguousarray(clusters).tobytes()).hexdigest() if clusters is not None else ""
    run_hash = spec_hash(spec, seed, meta.get("hash", "") + clusters_hash)
    checkpoint = Path(checkpoint_dir) / "last.pt"
    rows, start = [], 0
    epochs = int(spec.get("epochs", 10))
    state = restore_state(checkpoint, run_hash, dev, {"model": model, "optimizer": optimizer, "schedule": schedule,
                                                      "scaler": scaler})
    if state is not None:
        rows, start = state["rows"], state["epoch"] + 1
        log.info("resuming from %s after epoch %d", checkpoint, state["epoch"])
    step = start * steps_per_epoch

    for epoch in tqdm(range(start, epochs), desc="epochs", initial=start, total=epochs, disable=not ctx.is_main):
        e0 = time.time()
        devices.seed_everything((seed * 100_003 + epoch) * ctx.world + ctx.rank)
        loader = make_loader(ds, batch_size, seed=seed, epoch=epoch, device=dev,
                             num_workers=spec.get("num_workers", 0), batch_sampler=batch_sampler,
                             rank=ctx.rank, world=ctx.world)
        model.train()
        sums, n_batches, n_images = {}, 0, 0
        for images, tokens, _ in loader:
            x = to_float(images, dev)
            if settings["crop_scale"] and not full_views:
                x = random_resized_crop(x, settings["crop_scale"])
            with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                terms = step_model(x, tokens.to(dev, non_blocking=True))
            if not torch.isfinite(terms["loss"]).item():
                raise run_health.TrainingDiverged(f"training stopped at epoch {epoch + 1}, step {step}: the CLIP "
                                                  f"loss is {float(terms['loss'])} (not finite)")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(terms["loss"]).backward()
            scaler.step(optimizer)
            scaler.update()
            schedule.step()
            model.clamp_logit_scale()
            step += 1
            n_batches += 1
            n_images += len(images)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
        means = distributed.mean_over_ranks({k: v / max(1, n_batches) for k, v in sums.items()})
        n_images = distributed.sum_over_ranks(n_images)
        row = {"epoch": epoch + 1, **means, "lr": optimizer.param_groups[0]["lr"], "seconds": time.time() - e0,
               "images_per_s": n_images / max(1e-9, time.time() - e0)}
        every = spec.get("val_every", 1)
        if ctx.is_main and every and ((epoch + 1) % every == 0 or epoch + 1 == epochs):
            row["val_i2t_top1"] = retrieval_top1(model, val_split["x"], val_captions, dev)
        rows.append(row)
        run_health.stop_if_diverged([r["loss"] for r in rows if "loss" in r], health, at=f"epoch {epoch + 1}",
                                    logger=log)
        if ctx.is_main:
            log.info("epoch %d/%d %s", epoch + 1, epochs, " ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch"))
            save_checkpoint(checkpoint, epoch, run_hash, model, optimizer, schedule, scaler, rows)
            progress.record(rows)
        distributed.barrier()

    if not ctx.is_main:
        distributed.barrier()
        distributed.shutdown()
        return {"rank": ctx.rank, "run_hash": run_hash}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_model(out / "model.pt", model, spec, shape)
    if not rows:  # epochs: 0, the starting model as it is: its validation retrieval is the only row
        rows = [{"epoch": 0, "val_i2t_top1": retrieval_top1(model, val_split["x"], val_captions, dev)}]
    write_text(out / "metrics.csv", rows_to_csv(rows))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    info = {
        "spec": spec, "seed": seed, "device": str(dev), "threads": threads, "processes": ctx.world,
        "dataset": str(data_dir), "dataset_hash": meta.get("hash"), "run_hash": run_hash, "epochs": epochs,
        "resumed_from_epoch": start, "wall_seconds": time.time() - t0, "final": rows[-1],
        "parameters": {"total": sum(p.numel() for p in model.parameters()), "trainable": trainable},
        "training": settings,
        **({"batch_sampler": batch_sampler.summary()} if hasattr(batch_sampler, "summary") else {}),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
                     "open_clip": _open_clip_version(), "clbench": __import__("clbench").__version__},
        "provenance": run_provenance(spec),
    }
    info["health"] = run_health.training_health_of(spec, rows, health, batch_size=batch_size)
    run_health.log_health(info["health"], log)
    write_json(out / "run.json", info)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    log.info("finished in %.1f s on %s (seed %d)", info["wall_seconds"], dev, seed)
    if ctx.distributed:
        distributed.barrier()
        distributed.shutdown()
    return info


def weight_decay_groups(model, weight_decay: float) -> list[dict]:
    from clbench.models.clip import weight_decay_groups as groups

    return groups(model.named_parameters(), weight_decay)


def _open_clip_version() -> str:
    import open_clip

    return open_clip.__version__

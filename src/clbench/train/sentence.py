"""The trainer of the ``text`` domain: unsupervised SimCSE-style training of a sentence encoder.

Each step encodes a batch of training sentences twice in one forward pass (the batch stacked on
itself; dropout makes the two halves differ), projects the [CLS] states through the training-only
MLP and applies the method's objective to the two halves. Settings as SimCSE's Trainer: AdamW
(``optimizer``), a linear decay to 0 over the run without warm-up (``sentence.schedule``), fp16
autocast on a GPU (``sentence.fp16``), the gradient's norm clipped at ``sentence.max_grad_norm``
(the Trainer's default 1; 0: no clipping), inputs truncated to ``sentence.max_length`` tokens. Every
``sentence.eval_steps`` steps the STS-B dev Spearman correlation is measured and the best
checkpoint is kept; ``model.pt`` is that checkpoint (when no evaluation step was reached, or no dev
score was defined, the last model). The order of the sentences is one permutation per epoch seeded by the run's seed.

A checkpoint at each evaluation (in ``checkpoint_dir``, outside the declared outputs) lets a killed
run resume there. Writes ``model.pt``, ``metrics.csv`` (one row per evaluation: step, epoch, mean
loss since the previous row, learning rate, ``val_stsb_spearman``) and ``run.json``.
"""

from __future__ import annotations

import json
import logging
import math
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from clbench import health as run_health
from clbench.data import dataset_dir
from clbench.data.sentences import sentences
from clbench.evaluate.sts import dev_spearman
from clbench.io import write_json, write_text
from clbench.models.methods import build_method
from clbench.models.sentence import SentenceEncoder, save_sentence_model, sentence_settings
from clbench.objectives import OBJECTIVES, resolved_params
from clbench.train import device as devices
from clbench.extras import require
from clbench.train.loop import build_optimizer, restore_state, rows_to_csv, run_provenance, save_state, spec_hash
from clbench.train.progress import ProgressRecorder

log = logging.getLogger(__name__)


def linear_decay(total_steps: int, schedule: str):
    """The learning-rate factor of step s: ``(total - s) / total`` (linear) or 1 (constant)."""
    if schedule == "constant":
        return lambda step: 1.0
    if schedule != "linear":
        raise ValueError(f"sentence.schedule must be linear or constant, got {schedule!r}")
    return lambda step: max(0.0, (total_steps - step) / max(1, total_steps))


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def train(spec: dict, data_dir: str | Path, out_dir: str | Path, checkpoint_dir: str | Path, *, seed: int = 0,
          device: str = "auto", threads: int = 1, batch_sampler=None, health: dict | None = None,
          logger: str = "none") -> dict:
    """Train sentence method ``spec`` on ``data_dir`` (a ``sentences`` dataset); write model.pt, metrics.csv,
    run.json to ``out_dir`` (metrics.csv after every evaluation step: :mod:`clbench.train.progress`). ``health``:
    the config's thresholds (see :func:`clbench.train.loop.train`); here the guard runs at every evaluation
    step, on the mean loss since the previous one."""
    require("sentences", f"objective {spec['objective']} (a transformer sentence encoder)")
    with ProgressRecorder(out_dir, 0, unit="step", logger=logger) as progress:
        return _train(spec, data_dir, out_dir, checkpoint_dir, seed=seed, device=device, threads=threads,
                      batch_sampler=batch_sampler, health=health, progress=progress)


def _train(spec: dict, data_dir, out_dir, checkpoint_dir, *, seed: int, device: str, threads: int, batch_sampler,
           health: dict | None, progress: ProgressRecorder) -> dict:
    if batch_sampler is not None:
        raise ValueError("a sentence method draws its own batches; MCL's cluster sampler does not apply")
    started = time.time()
    dev = devices.setup(device, threads, seed)
    settings = sentence_settings(spec)
    meta = dataset_dir.load_meta(data_dir)
    texts = sentences(dataset_dir.load(data_dir, "train"))
    val = dataset_dir.load(data_dir, "val")
    objective = OBJECTIVES[spec["objective"]]
    loss_fn, params = objective.loss_fn(), resolved_params(spec)

    # the build job's local copy of the pretrained model when it fetched one (no download in a training job)
    local = (meta.get("models") or {}).get(settings["model"])
    model = (SentenceEncoder.pretrained(spec, local) if local else build_method(spec, 0, 0)).to(dev)
    optimizer = build_optimizer(model.parameters(), spec)
    batch_size, epochs = spec.get("batch_size", 64), spec.get("epochs", 1)
    steps_per_epoch = math.ceil(len(texts) / batch_size)
    total = epochs * steps_per_epoch
    if settings["max_steps"] is not None:
        total = min(total, settings["max_steps"])
    progress.epochs = total
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_decay(total, settings["schedule"]))
    amp = dev.type == "cuda" and settings["fp16"]
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    eval_steps = settings["eval_steps"]

    run_hash = spec_hash(spec, seed, meta.get("hash", ""))
    checkpoint = Path(checkpoint_dir) / "last.pt"
    state = {"step": 0, "rows": [], "best": -math.inf, "best_step": None, "best_state": None}
    stateful = {"model": model, "optimizer": optimizer, "schedule": schedule, "scaler": scaler}
    saved = restore_state(checkpoint, run_hash, "cpu", stateful)
    if saved is not None:
        torch.set_rng_state(saved["rng"])
        if dev.type == "cuda" and saved.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(saved["cuda_rng"], dev)
        state = {k: saved[k] for k in state}
        log.info("resumed at step %d of %d", state["step"], total)
    resumed_from = state["step"]

    def evaluate_and_keep(step: int, losses: list[float], t0: float) -> None:
        rho = dev_spearman(model, val, dev)
        state["rows"].append({"step": step, "epoch": step / steps_per_epoch,
                              "loss": float(np.mean(losses)) if losses else float("nan"),
                              "lr": optimizer.param_groups[0]["lr"], "val_stsb_spearman": rho,
                              "seconds": time.time() - t0})
        if rho > state["best"]:
            state["best"], state["best_step"] = rho, step
            state["best_state"] = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        log.info("step %d/%d loss %.4f STS-B dev spearman %.4f (best %.4f at step %s)", step, total,
                 state["rows"][-1]["loss"], rho, state["best"], state["best_step"])

    losses: list[float] = []
    t0 = time.time()
    model.train()
    step = state["step"]
    order_epoch, order = -1, None
    while step < total:
        epoch, within = divmod(step, steps_per_epoch)
        if epoch != order_epoch:
            order_epoch, order = epoch, epoch_order(len(texts), seed, epoch)
        batch_texts = [texts[i] for i in order[within * batch_size:(within + 1) * batch_size]]
        tokens = model.tokenize(batch_texts, settings["max_length"], dev)
        doubled = {k: torch.cat([v, v]) for k, v in tokens.items()}
        with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            z = model(doubled)
        z1, z2 = z.float().chunk(2)
        loss = loss_fn(z1, z2, **params)
        if not torch.isfinite(loss):
            raise run_health.TrainingDiverged(f"training stopped at step {step} (epoch {step // steps_per_epoch + 1}): "
                                              f"the loss is {float(loss)} (not finite)")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if settings["max_grad_norm"]:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings["max_grad_norm"])
        scaler.step(optimizer)
        scaler.update()
        schedule.step()
        losses.append(float(loss.detach()))
        step += 1
        if step % eval_steps == 0:
            evaluate_and_keep(step, losses, t0)
            run_health.stop_if_diverged([r["loss"] for r in state["rows"]], health, at=f"step {step}", logger=log)
            model.train()
            losses, t0 = [], time.time()
            state["step"] = step
            save_state(checkpoint, run_hash, stateful, **state, rng=torch.get_rng_state(),
                       cuda_rng=torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None)
            progress.record(state["rows"])
    if not state["rows"]:  # no evaluation step reached: the last model, scored once
        evaluate_and_keep(step, losses, t0)
    if state["best_state"] is not None:
        model.load_state_dict(state["best_state"])
    else:  # every dev score undefined (constant embeddings): nothing to select by
        log.warning("no finite STS-B dev Spearman correlation; keeping the last model")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_sentence_model(out / "model.pt", model)
    write_text(out / "metrics.csv", rows_to_csv(state["rows"]))
    info = {
        "spec": spec, "seed": seed, "device": str(dev), "threads": threads, "processes": 1,
        "dataset": str(data_dir), "dataset_hash": meta.get("hash"), "run_hash": run_hash, "epochs": epochs,
        "steps": total, "steps_per_epoch": steps_per_epoch, "sentence": settings, "fp16": amp,
        "best_step": state["best_step"], "best_val_stsb_spearman": state["best"], "resumed_from_step": resumed_from,
        "wall_seconds": time.time() - started, "final": state["rows"][-1] if state["rows"] else {},
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
                     "transformers": __import__("transformers").__version__,
                     "clbench": __import__("clbench").__version__},
        "provenance": run_provenance(spec),
    }
    info["health"] = run_health.training_health_of(spec, state["rows"], health, batch_size=batch_size)
    run_health.log_health(info["health"], log)
    write_json(out / "run.json", json.loads(json.dumps(info, default=float)))
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    log.info("finished in %.1f s: best STS-B dev spearman %.4f at step %s", info["wall_seconds"], state["best"],
             state["best_step"])
    return info

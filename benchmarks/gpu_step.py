"""The training step of each image family at the papers' shapes on one GPU, and a 2-process DDP step.

    python benchmarks/gpu_step.py [--steps 20] [--warmup 5] [--workers 8] [--only varcon_imagenet adnce_cifar]
    python benchmarks/gpu_step.py --small            # the same code path on the CPU at small shapes (the tests)
    python benchmarks/gpu_step.py --json out.json    # also write the rows as JSON

Each family runs the real training loop (:func:`clbench.train.loop.setup` and ``train_epoch``) on a
synthetic dataset of the paper's image shape, with the method settings of ``configs/paper.yaml`` and the
per-GPU batch (the paper's global batch over its GPUs): on CUDA with mixed precision (bf16 where the GPU
has it, else fp16 with loss scaling), channels_last and the augmentation on the device; the loader's
``num_workers`` as ``--workers``. A warm-up epoch (cuDNN autotuning, allocator) is not timed; then one
epoch of ``--steps`` steps gives images/s, milliseconds per step, the share of the step the loop spent
waiting for the loader (time blocked in ``next(loader)``), and the peak GPU memory. With two or more GPUs
it also runs each family (or ``--ddp-families``) as a 2-process DDP job (``torchrun``, NCCL) and reports
its images/s and scaling over one GPU.

Covers the families the image loop trains (CLEAR-VAE, sub-embeddings, SimCLR/MCL with InfoNCE, ADNCE,
VarCon, SupCon) and MCL's CLIP (its own loop, :func:`clbench.train.clip_loop.train`: ViT-L-14 with the
paper's locked text tower and partly locked image tower, random weights in place of OpenAI's, which cost
the same per step; ``--small`` uses the default config's tiny CLIP). Graphs and sentences are not measured
here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

# name -> (experiment and method in configs/paper.yaml, channels, image size, classes, paper GPUs)
FAMILIES = {
    "clear_vae_styled_mnist": ("clear_styled", "clear_beta2", 3, 28, 10, 1),
    "clear_vae_celeba64": ("clear_celeba", "clear_club", 3, 64, 2, 1),
    "subembed_digits_on_photos": ("subembed_digits_on_photos", "subembed_hess", 3, 64, 10, 1),
    "mcl_infonce_trifeature224": ("trifeature_ssl", "mcl", 3, 224, 10, 1),
    "adnce_cifar": ("adnce_cifar10", "adnce", 3, 32, 10, 1),
    "supcon_cifar": ("varcon_cifar100", "supcon", 3, 32, 100, 1),
    "varcon_cifar": ("varcon_cifar100", "varcon", 3, 32, 100, 1),
    "varcon_imagenet": ("varcon_imagenet1k", "varcon", 3, 224, 1000, 8),
    "clip_mcl_cc12m": ("mcl_mmvp", "mcl_clip", 3, 224, 10, 8),
}
SMALL = {"batch": 8, "size": 32, "steps": 2, "warmup": 1}


def paper_config() -> dict:
    from clbench import workflow as wf

    cfg = wf.deep_merge(yaml.safe_load((REPO / "config.yaml").read_text()),
                        yaml.safe_load((REPO / "configs" / "paper.yaml").read_text()))
    return wf.validate(cfg, wf.load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml"))


def family_spec(cfg: dict, name: str, small: bool, workers: int | None, world: int = 1) -> tuple[dict, dict]:
    """The method spec at one GPU's share of the paper's batch, and the data shape."""
    from clbench import workflow as wf

    experiment, method, channels, size, classes, gpus = FAMILIES[name]
    spec = dict(wf.method_spec(cfg, experiment, method))
    spec.pop("mcl", None)  # one stage's step: the objective itself
    spec.pop("gpus", None)
    per_gpu = max(1, int(spec.get("batch_size", 128)) // gpus)
    spec.update(epochs=2, val_every=0, warmup_epochs=0, compile=False,
                batch_size=SMALL["batch"] * world if small else per_gpu * world)
    if workers is not None:
        spec["num_workers"] = workers
    if small:
        spec["num_workers"] = 0
        size = size if size <= 64 else SMALL["size"]  # the CIFAR, MNIST and 64 px shapes as they are
        spec.pop("crop_size", None)
        if "clip" in spec:  # the default config's tiny CLIP (a 32 px ResNet image tower)
            spec["clip"] = yaml.safe_load((REPO / "config.yaml").read_text())["methods"][method]["clip"]
    if "clip" in spec:
        spec["clip"] = {**spec["clip"], "warmup_steps": 0}
    return spec, {"channels": channels, "size": size, "classes": classes}


def synthetic_dataset(path: Path, shape: dict, n: int, paired: bool = False, captions: bool = False,
                      seed: int = 0) -> Path:
    """Random uint8 images of the family's shape in the dataset-directory format (with a second view
    of each image when the method trains on ``paired`` views)."""
    from clbench.data import dataset_dir

    rng = np.random.default_rng(seed)
    c, s, k = shape["channels"], shape["size"], shape["classes"]
    splits = {}
    for split, count in (("train", n), ("val", 64), ("test", 64)):
        y = np.arange(count) % k
        rng.shuffle(y)
        splits[split] = {"x": rng.integers(0, 256, (count, c, s, s), dtype=np.uint8), "y": y.astype(np.int64),
                         "factor_style": rng.integers(0, 2, count)}
        if paired:
            splits[split]["x2"] = rng.integers(0, 256, (count, c, s, s), dtype=np.uint8)
        if captions:
            splits[split]["caption"] = np.array([f"a photo of shape {k} in colour {k % 7}" for k in y])
    dataset_dir.save(path, splits, {"name": "synthetic", "classes": [str(i) for i in range(k)],
                                    "factors": {"style": ["a", "b"]}, "seed": seed})
    return path


def measure(name: str, spec: dict, shape: dict, steps: int, warmup: int, device: str, tmp: Path,
            threads: int = 1) -> dict:
    """Warm-up epoch, then one timed epoch of ``steps`` steps, through the training loop itself."""
    import torch

    from clbench.objectives import OBJECTIVES

    if OBJECTIVES[spec["objective"]].domain == "image_text":
        return measure_clip(name, spec, shape, steps, device, tmp, threads)

    from clbench.train import distributed, loop
    from train import LoaderTimer  # benchmarks/train.py: time spent in next(loader)

    ctx = distributed.from_environment()
    batch = spec["batch_size"]
    data = synthetic_dataset(tmp / f"{name}-data-{ctx.rank}", shape, n=batch * max(steps, warmup),
                             paired=bool(spec.get("paired_views")))
    run = loop.setup(spec, data, tmp / f"{name}-ckpt-{ctx.rank}", seed=0, device=device, threads=threads)
    timer = LoaderTimer()
    cuda = run.device.type == "cuda"
    loop.train_epoch(run, 0)  # warm-up: cuDNN autotuning, allocator, loader workers
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    timer.seconds = 0.0
    t0 = time.perf_counter()
    row = loop.train_epoch(run, 1)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    measured = run.steps_per_epoch
    out = {"family": name, "device": torch.cuda.get_device_name(run.device) if cuda else "cpu",
           "processes": ctx.world, "image": f"{shape['channels']}x{shape['size']}x{shape['size']}",
           "encoder": (spec.get("encoder") or {}).get("name"), "batch": batch, "steps": measured,
           "amp": str(run.amp_dtype).replace("torch.", "") if run.amp_dtype else "off",
           "channels_last": cuda, "augment": f"{spec.get('augment', 'none')} on {run.device.type}",
           "workers": spec.get("num_workers", 0), "images/s": round(row["images_per_s"], 1),
           "ms/step": round(1000 * seconds / measured, 1),
           "data wait": round(timer.seconds / seconds, 3),
           "peak GiB": round(torch.cuda.max_memory_allocated(run.device) / 2**30, 2) if cuda else None,
           "loss": round(float(row.get("loss", float("nan"))), 4)}
    if ctx.distributed:
        distributed.barrier()
        distributed.shutdown()
    return out


def measure_clip(name: str, spec: dict, shape: dict, steps: int, device: str, tmp: Path, threads: int) -> dict:
    """CLIP's loop runs whole: two epochs of ``steps`` steps; the second is the timed one (its metrics row),
    the data wait is over both."""
    import torch

    from clbench.models.clip import ClipMethod
    from clbench.train import clip_loop, distributed
    from train import LoaderTimer

    ctx = distributed.from_environment()
    batch = spec["batch_size"]
    paper_weights = (spec.get("clip") or {}).get("pretrained")
    spec = {**spec, "clip": {**spec["clip"], "pretrained": None}}  # no download: random weights, same cost
    data = synthetic_dataset(tmp / f"{name}-data-{ctx.rank}", shape, n=batch * steps, captions=True)
    timer = LoaderTimer()
    if torch.cuda.is_available() and device != "cpu":
        torch.cuda.reset_peak_memory_stats()
    run = tmp / f"{name}-run-{ctx.rank}"
    loading = ClipMethod.load_pretrained
    if paper_weights:  # the paper's locked towers, as loading the pretrained weights would set them
        ClipMethod.load_pretrained = ClipMethod.freeze
    try:
        info = clip_loop.train(spec, data, run, tmp / f"{name}-ckpt-{ctx.rank}", seed=0, device=device,
                               threads=threads)
    finally:
        ClipMethod.load_pretrained = loading
    row, cuda = info["final"], info["device"].startswith("cuda")
    both_epochs = float(np.loadtxt(run / "metrics.csv", delimiter=",", skiprows=1, ndmin=2,
                                   usecols=_column(run / "metrics.csv", "seconds")).sum())
    seconds = row["seconds"]
    return {"family": name, "device": torch.cuda.get_device_name() if cuda else "cpu", "processes": ctx.world,
            "image": f"{shape['channels']}x{shape['size']}x{shape['size']}",
            "encoder": spec["clip"]["model"], "batch": batch, "steps": steps,
            "amp": "bf16" if cuda and torch.cuda.is_bf16_supported() else ("fp16" if cuda else "off"),
            "channels_last": False, "augment": f"crop {spec['clip'].get('crop_scale')} on {info['device']}",
            "workers": spec.get("num_workers", 0), "images/s": round(row["images_per_s"], 1),
            "ms/step": round(1000 * seconds / steps, 1),
            "data wait": round(timer.seconds / max(1e-9, both_epochs), 3),
            "peak GiB": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
            "loss": round(float(row.get("loss", float("nan"))), 4)}


def _column(csv_path: Path, name: str) -> int:
    return csv_path.read_text().splitlines()[0].split(",").index(name)


def ddp_rows(names: list[str], a) -> list[dict]:
    """Each family as a 2-process torchrun job (one process per GPU)."""
    rows = []
    for name in names:
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", __file__,
                   "--ddp-worker", name, "--steps", str(a.steps), "--warmup", str(a.warmup), "--out", out.name,
                   "--device", a.device, "--threads", str(a.threads)] + (["--workers", str(a.workers)] if a.workers is not None else []) + \
                  (["--small"] if a.small else [])
            subprocess.run(cmd, check=True, cwd=REPO)
            rows.append(json.loads(Path(out.name).read_text()))
    return rows


def print_table(rows: list[dict]) -> None:
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join("---" for _ in cols) + "|")
    for r in rows:
        print("| " + " | ".join("—" if r.get(c) is None else str(r.get(c)) for c in cols) + " |")


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="*", choices=sorted(FAMILIES), help="these families (default: all)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per family")
    p.add_argument("--warmup", type=int, default=5, help="untimed warm-up steps")
    p.add_argument("--workers", type=int, default=None, help="loader workers (default: the paper config's)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=1, help="torch's CPU threads per process")
    p.add_argument("--small", action="store_true", help="small shapes (the CPU test of this script)")
    p.add_argument("--ddp", choices=["auto", "on", "off"], default="auto",
                   help="the 2-process DDP step: auto = when two GPUs are there")
    p.add_argument("--ddp-families", nargs="*", default=None, help="families for the DDP step (default: --only)")
    p.add_argument("--json", default=None, help="also write the rows to this file")
    p.add_argument("--ddp-worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.small:
        a.steps, a.warmup = min(a.steps, SMALL["steps"]), min(a.warmup, SMALL["warmup"])
    cfg = paper_config()

    if a.ddp_worker:  # one rank of the DDP step; rank 0 writes the row
        from clbench.train import distributed

        world = distributed.from_environment().world
        spec, shape = family_spec(cfg, a.ddp_worker, a.small, a.workers, world=world)
        with tempfile.TemporaryDirectory() as tmp:
            row = measure(a.ddp_worker, spec, shape, a.steps, a.warmup, a.device, Path(tmp), a.threads)
        if int(os.environ.get("RANK", "0")) == 0:
            Path(a.out).write_text(json.dumps(row))
        return [row]

    import torch

    names = a.only or list(FAMILIES)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            spec, shape = family_spec(cfg, name, a.small, a.workers)
            rows.append(measure(name, spec, shape, a.steps, a.warmup, a.device, Path(tmp), a.threads))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    two_gpus = torch.cuda.is_available() and torch.cuda.device_count() >= 2
    if a.ddp == "on" or (a.ddp == "auto" and two_gpus):
        single = {r["family"]: r["images/s"] for r in rows}
        for row in ddp_rows(a.ddp_families or names, a):
            row["scaling"] = round(row["images/s"] / single[row["family"]], 2) if single.get(row["family"]) else None
            rows.append(row)
    elif not two_gpus:
        print("DDP step: skipped (fewer than two GPUs)", file=sys.stderr)
    print_table(rows)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()

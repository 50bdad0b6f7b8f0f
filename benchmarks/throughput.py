"""Write the cost table the plan reads (src/clbench/ops/throughput.json): MACs per image of every model the
shipped configs train, at its shape, and this machine's measured CPU throughput.

    PYTHONPATH=src python benchmarks/throughput.py [--threads 1] [--out src/clbench/ops/throughput.json]

What it does:

- counts the forward multiply-accumulates (MACs) of every image workload of config.yaml and
  configs/paper.yaml (clbench.ops.cost.workloads) with torch's FLOP counter, one image at the config's shape;
  graph, sentence and CLIP workloads get an analytic count, stated beside it;
- measures, on this CPU with ``--threads`` threads (1: as the default run's jobs; on a shared machine more
  threads contend), training (forward, backward, SGD step; batch 256, 16 for the ResNets) and
  forward images per core-second (the process's CPU time, so that other load on the machine does not count) of every workload of config.yaml (the tiny default) at its own shape, and of ResNet-18
  and ResNet-50 (CIFAR stem) at 32 px, whose MAC rates the plan uses for the paper shapes on a CPU;
- measures the corruption suite's images per core-second at 32 px (all 15 corruptions, severity 3);
- records the GPU figures it cannot measure here as **not measured**: NVIDIA's published ResNet-50 v1.5
  training throughput on one A100 80GB with mixed precision (2,470 images/s; 16,621 on 8 GPUs), from
  NVIDIA/DeepLearningExamples PyTorch/Classification/ConvNets/resnet50v1.5/README.md ("Training
  performance: NVIDIA DGX A100 (8x A100 80GB)"), as a MAC rate.

Re-run it after adding a model or changing a shape in a config; clbench plan refuses a workload the
table lacks only when no size of its model is in it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

# ResNet-50 v1.5, 224 px, one A100 80GB, AMP: NVIDIA/DeepLearningExamples (see the docstring)
A100_RN50_IMAGES_PER_S = 2470
A100_RN50_8GPU_IMAGES_PER_S = 16621
GPU_SOURCE = ("NVIDIA A100 80GB, not measured: NVIDIA/DeepLearningExamples PyTorch ResNet-50 v1.5 README, training "
              "performance on DGX A100, mixed precision: 2,470 images/s on 1 GPU, 16,621 on 8; as a MAC rate "
              "(x the counted MACs of ResNet-50 at 224 px), forward-only 3x the training rate (assumed)")
# small models are bound by the data path, not by MACs (assumed)
GPU_MAX_IMAGES_PER_S = 20_000
# analytic MACs per sample where no image model is built here
ANALYTIC = {
    "gin-": (3 * 2 * 32 * 32 * 300, "analytic: 3 GIN layers x 2-layer MLP of width 32 x 300 nodes per graph (assumed)"),
    "sentence-": (2 * 32 * 110e6, "analytic: 2 dropout views x 32 tokens x 110 M parameters (BERT/RoBERTa-base)"),
    "clip-ViT-L-14@224": (81e9 + 6.6e9, "analytic: ViT-L/14 image tower at 224 px (257 tokens, width 1024, 24 "
                                        "layers) + the text tower (77 tokens, width 768, 12 layers)"),
    "clip-clbench-tiny-clip@": (0.05e9, "assumed: a small ResNet image tower at 32 px and a small text tower"),
}


def resolved(*files):
    from clbench.config import composition
    from clbench import workflow as wf

    schema = wf.load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")
    layers = composition.config_layers([REPO / "config.yaml"], [REPO / f for f in files])
    return composition.resolve(layers, schema)[0]


def build(w):
    """The torch module of an image workload (encoder or VAE), or None."""
    kind, settings = w.model
    if kind == "vae":
        from clbench.models.clear_vae import ClearVAE

        return ClearVAE(w.channels, w.image_size, width=settings[1], architecture=settings[0])
    if kind == "encoder":
        from clbench.models.encoders import build_encoder

        name = settings[0]
        spec = {"name": name, **({"width": settings[1], "layers": settings[2], "pool": settings[3]}
                                 if name == "small_cnn" else {"stem": settings[1]})}
        return build_encoder(spec, w.channels, w.image_size)
    return None


def count_macs(model, w) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    x = torch.zeros(1, w.channels, w.image_size, w.image_size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() / 2


def _output_loss(out):
    import torch

    if isinstance(out, torch.Tensor):
        return out.float().pow(2).mean()
    if isinstance(out, dict):
        out = list(out.values())
    return sum(_output_loss(o) for o in out if isinstance(o, (torch.Tensor, tuple, list, dict)))


def measure(model, w, batch: int = 256, seconds: float = 1.5) -> tuple[float, float]:
    """(training, forward) images per core-second on the CPU: at least ``seconds`` of this process's CPU
    time each, after one warm-up step. CPU time, not wall time: on a shared machine the wall clock
    counts the other processes too; a job with ``t`` threads runs at about ``t`` times this rate."""
    import torch

    x = torch.rand(batch, w.channels, w.image_size, w.image_size)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    model.train()

    def step():
        opt.zero_grad()
        _output_loss(model(x)).backward()
        opt.step()

    def rate(fn):
        fn()
        n, t0 = 0, time.process_time()
        while time.process_time() - t0 < seconds or n < 2:
            fn()
            n += 1
        return n * batch / (time.process_time() - t0)

    train = rate(step)
    model.eval()
    with torch.no_grad():
        forward = rate(lambda: model(x))
    return train, forward


def corruption_rate(n: int = 64) -> float:
    import numpy as np

    from clbench.data.corruptions import CORRUPTIONS, corrupt

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (n, 3, 32, 32), dtype=np.uint8)
    t0 = time.process_time()
    for name in CORRUPTIONS:
        corrupt(images, name, 3, seed=0)
    return len(CORRUPTIONS) * n / (time.process_time() - t0)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(REPO / "src" / "clbench" / "throughput.json"))
    a = ap.parse_args(argv)

    import torch

    from clbench.ops import cost
    from clbench.io import write_text
    from clbench.models.encoders import build_encoder  # noqa: F401 (fails early without torchvision)

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    tiny = cost.workloads(resolved())
    every = {**cost.workloads(resolved("configs/paper.yaml")), **tiny}
    reference = {f"{name}-cifar@32": cost.Workload(f"{name}-cifar@32", "contrastive", ("encoder", (name, "cifar")), 32, 3)
                 for name in ("resnet18", "resnet50")}
    every.update(reference)
    imagenet = cost.Workload("resnet50-imagenet@224", "contrastive", ("encoder", ("resnet50", "imagenet")), 224, 3)
    every[imagenet.key] = imagenet

    table: dict = {}
    for key, w in sorted(every.items()):
        analytic = next(((m, why) for prefix, (m, why) in ANALYTIC.items() if key.startswith(prefix)), None)
        model = None if analytic else build(w)
        if model is None:
            if analytic is None:
                print(f"skipped {key}: no model to build and no analytic count", file=sys.stderr)
                continue
            table[key] = {"macs": analytic[0], "macs_source": analytic[1]}
            continue
        entry = {"macs": count_macs(model, w), "macs_source": "counted (torch.utils.flop_counter, forward, 1 image)",
                 "params": sum(p.numel() for p in model.parameters())}
        if key in tiny or key in reference:
            entry["cpu_train_per_s"], entry["cpu_forward_per_s"] = measure(model, w, 16 if key in reference else 256)
        table[key] = entry
        print(f"{key}: {entry['macs'] / 1e9:.3f} GMACs" + (f", CPU {entry['cpu_train_per_s']:.0f} train / "
              f"{entry['cpu_forward_per_s']:.0f} forward images/s" if "cpu_train_per_s" in entry else ""),
              file=sys.stderr)

    ref = [table[k] for k in reference]
    rn50 = table[imagenet.key]["macs"]
    gpu_train = A100_RN50_IMAGES_PER_S * rn50
    out = {
        "generated_by": "benchmarks/throughput.py",
        "date": dt.date.today().isoformat(),
        "cpu": {
            "device": f"{cpu_name()}, {a.threads} thread{'s' if a.threads > 1 else ''}, torch {torch.__version__}",
            "measured": True,
            "train_macs_per_s": statistics.median(e["macs"] * e["cpu_train_per_s"] for e in ref),
            "forward_macs_per_s": statistics.median(e["macs"] * e["cpu_forward_per_s"] for e in ref),
            "rates_from": sorted(reference),
            "unit": "per core-second (process CPU time)",
            "corrupt_images_per_s_32px": corruption_rate(),
        },
        "gpu": {
            "device": "NVIDIA A100 80GB",
            "measured": False,
            "source": GPU_SOURCE,
            "train_macs_per_s": gpu_train,
            "forward_macs_per_s": 3 * gpu_train,
            "max_images_per_s": GPU_MAX_IMAGES_PER_S,
            "multi_gpu_efficiency": {"8": round(A100_RN50_8GPU_IMAGES_PER_S / (8 * A100_RN50_IMAGES_PER_S), 3)},
        },
        "workloads": table,
    }
    write_text(a.out, json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"wrote {a.out}: {len(table)} workloads; CPU {out['cpu']['device']}", file=sys.stderr)


if __name__ == "__main__":
    main()

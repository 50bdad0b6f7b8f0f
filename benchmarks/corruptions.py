"""Time the corruption suite: milliseconds per 1,000 images for every corruption and severity.

    PYTHONPATH=src python benchmarks/corruptions.py [--n 1000] [--size 32] [--repeat 3] [--cifar ROOT]

Prints a Markdown table (best of ``--repeat`` runs per cell). Images are smooth synthetic
photographs-like arrays by default, or the first ``--n`` CIFAR-10 test images when ``--cifar`` points
at a torchvision CIFAR-10 root. One warm-up call per corruption is excluded (it builds caches such
as the synthetic frost textures).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from clbench.data.corruptions import CORRUPTIONS, SEVERITIES, corrupt  # noqa: E402


def synthetic_images(n: int, size: int, seed: int = 0) -> np.ndarray:
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n, 3, size, size)).astype(np.float32)
    img = ndimage.gaussian_filter(noise, (0, 0, size / 16, size / 16)) * 6 + 0.5
    img += ndimage.gaussian_filter(noise, (0, 0, 0.7, 0.7)) * 0.15
    return np.clip(img * 255, 0, 255).astype(np.uint8)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cifar", type=str, default=None, help="torchvision CIFAR-10 root (uses its test images)")
    args = ap.parse_args(argv)
    if args.cifar:
        from clbench.data.torchvision_sources import load_cifar

        x = load_cifar(args.cifar, "cifar10", "test")["x"][: args.n]
        source = f"CIFAR-10 test[:{len(x)}]"
    else:
        x = synthetic_images(args.n, args.size)
        source = f"synthetic {args.size}x{args.size}"
    scale = 1000 / len(x)
    print(f"Corruption cost, ms per 1,000 images ({source}, best of {args.repeat}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__})\n")
    print("| corruption | " + " | ".join(f"s{s}" for s in SEVERITIES) + " | mean |")
    print("|---|" + "---:|" * (len(SEVERITIES) + 1))
    total = 0.0
    for name in CORRUPTIONS:
        corrupt(x[:8], name, 1)  # warm-up (caches)
        cells = []
        for s in SEVERITIES:
            best = float("inf")
            for r in range(args.repeat):
                t = time.perf_counter()
                corrupt(x, name, s, seed=r)
                best = min(best, time.perf_counter() - t)
            cells.append(best * 1000 * scale)
        total += float(np.mean(cells))
        print(f"| {name} | " + " | ".join(f"{c:.0f}" for c in cells) + f" | {np.mean(cells):.0f} |")
    print(f"\nAll 15 corruptions x 5 severities: {total * 5 / 1000:.1f} s per 1,000 images.")


if __name__ == "__main__":
    main()

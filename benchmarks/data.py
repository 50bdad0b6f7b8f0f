"""Generation times of the synthetic datasets (clbench.data generators).

Run ``python benchmarks/data.py`` (``--quick`` for smaller sizes, ``--repeat N`` for the best of N);
prints a Markdown table. Each row times one ``build()`` in this process: generating every split
and writing the dataset directory (npz + meta.json) to a temporary folder. Python and library
import times are not included (a job's start-up cost is measured by the workflow's ``benchmark:``
files). The bar from issue 4: 60,000 Styled-MNIST images in under 30 s on a 2-core machine.
This is a benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from clbench.data.build import build_dataset  # noqa: E402

CASES = [
    ("Styled-MNIST, independent (embedded digits)", {"generator": "styled_mnist", "recipe": "independent",
                                                     "n_train": 60000, "n_val": 0, "n_test": 1}),
    ("Styled-MNIST, OOD k=3 (embedded digits)", {"generator": "styled_mnist", "recipe": "ood", "k": 3,
                                                 "n_train": 50000, "n_val": 0, "n_test": 10000}),
    ("MNIST-on-STL, 32 px, view pairs (embedded photographs)", {"generator": "mnist_on_stl", "n_train": 10000,
                                                                "n_val": 0, "n_test": 1}),
    ("Trifeature, 32 px", {"generator": "trifeature", "n_train": 10000, "n_val": 0, "n_test": 1}),
    ("Trifeature, 224 px", {"generator": "trifeature", "image_size": 224, "n_train": 1000, "n_val": 0, "n_test": 1}),
    ("Gaussian mixture, 1000 steps x 128, d=2", {"generator": "gaussian_mixture", "n_steps": 1000, "batch_size": 128,
                                                 "n_val": 2000, "n_test": 2000}),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one tenth of the sizes")
    ap.add_argument("--repeat", type=int, default=1, help="report the best of N builds")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print()
    print("| dataset | samples | image shape | seconds | samples / s |")
    print("|---|---:|---|---:|---:|")
    for title, spec in CASES:
        spec = dict(spec, seed=a.seed)
        if a.quick:
            for key in ("n_train", "n_test", "n_val", "n_steps"):
                if key in spec and spec[key] > 10:
                    spec[key] = spec[key] // 10
        best, meta = float("inf"), None
        for _ in range(max(1, a.repeat)):
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                meta = build_dataset(spec, Path(tmp) / "ds", Path(tmp) / "resources")
                best = min(best, time.perf_counter() - t0)
        n = sum(meta["sizes"].values())
        shape = "x".join(str(s) for s in meta["image_shape"])
        print(f"| {title} | {n:,} | {shape} | {best:.2f} | {n / best:,.0f} |", flush=True)


if __name__ == "__main__":
    main()

"""Training throughput of every method family at tiny scale (one epoch each, CPU or GPU).

    python benchmarks/train.py [--device auto] [--threads 2] [--n 2000] [--epochs 1] [--only infonce clear]
    python benchmarks/train.py --against REV [--rounds 3] [...]

Prints a Markdown table: family, method, dataset, images/s of a pretraining epoch (views counted
once per sample, as in ``metrics.csv``), seconds per epoch, and the share of the epoch the loop
spent waiting for the loader (``data wait``). Methods and datasets are those of ``config.yaml``
(the embedded default), so the numbers describe the default run.

With ``--against REV`` (a git revision of this repository) the same benchmark runs for REV's
``src/`` and for this working tree's, alternating A B B A A B ... for ``--rounds`` rounds, each
run a fresh process; the table gives the median images/s of each side and their ratio, so a busy
machine's drift hits both sides alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
# family label -> (method in config.yaml, dataset in config.yaml)
FAMILIES = {
    "plain CNN (cross-entropy)": ("cnn", "styled_digits"),
    "CLEAR-VAE (SNN + PS-SNN)": ("clear", "styled_digits"),
    "CLEAR-TC (discriminator)": ("clear_tc", "styled_digits"),
    "sub-embeddings (P-Ortho)": ("subembed", "digits_on_photos"),
    "SimCLR (InfoNCE)": ("infonce", "trifeature"),
    "SimCLR (ADNCE)": ("adnce", "trifeature"),
    "SupCon": ("supcon", "styled_digits"),
    "VarCon": ("varcon", "styled_digits"),
}


class LoaderTimer:
    """Wraps DataLoader.__iter__ so that the time spent in next(loader) is summed."""

    def __init__(self):
        from torch.utils.data import DataLoader

        self.seconds = 0.0
        self._orig = DataLoader.__iter__
        timer = self

        def timed_iter(loader):
            it = timer._orig(loader)

            class Timed:
                def __iter__(self):
                    return self

                def __next__(self):
                    t0 = time.perf_counter()
                    try:
                        return next(it)
                    finally:
                        timer.seconds += time.perf_counter() - t0

                def __len__(self):
                    return len(it)

            return Timed()

        DataLoader.__iter__ = timed_iter


def measure(a) -> list[dict]:
    """One benchmark pass in this process, with whichever clbench is importable."""
    from clbench.data.build import build_dataset
    from clbench.train.loop import train

    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    families = {k: v for k, v in FAMILIES.items() if not a.only or v[0] in a.only}
    timer = LoaderTimer()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        built = {}
        for label, (method, dataset) in families.items():
            if dataset not in built:
                spec = {**cfg["datasets"][dataset], "n_train": a.n, "n_val": 200, "n_test": 200}
                build_dataset(spec, tmp / dataset, tmp / "resources")
                built[dataset] = tmp / dataset
            spec = {**cfg["methods"][method], "epochs": a.epochs, "val_every": 0}
            spec.pop("mcl", None)
            t0, timer.seconds = time.time(), 0.0
            info = train(spec, built[dataset], tmp / "runs" / method, tmp / "ckpt" / method, seed=0,
                         device=a.device, threads=a.threads)
            seconds = info["final"]["seconds"] * a.epochs
            rows.append({"family": label, "method": method, "dataset": dataset, "device": info["device"],
                         "images/s": round(info["final"]["images_per_s"]), "s/epoch": round(info["final"]["seconds"], 2),
                         "data wait": f"{100 * timer.seconds / max(seconds, 1e-9):.0f}%",
                         "job s": round(time.time() - t0, 1)})
    return rows


def print_table(rows: list[dict]) -> None:
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join("---" for _ in cols) + "|")
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")


def interleaved(a) -> None:
    """Alternating runs of REV's src/ (before) and the working tree's (after), medians per family."""
    passthrough = ["--device", a.device, "--threads", str(a.threads), "--n", str(a.n), "--epochs", str(a.epochs)]
    if a.only:
        passthrough += ["--only", *a.only]
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "before.tar"
        subprocess.run(["git", "-C", str(REPO), "archive", "-o", str(archive), a.against, "src"], check=True)
        with tarfile.open(archive) as t:
            t.extractall(Path(tmp) / "before", filter="data")
        sides = {"before": Path(tmp) / "before" / "src", "after": REPO / "src"}
        runs: dict[str, list[list[dict]]] = {"before": [], "after": []}
        for r in range(a.rounds):
            for side in list(sides)[:: 1 if r % 2 == 0 else -1]:  # A B, B A, A B ...: no side always goes first
                src = sides[side]
                env = {**os.environ, "PYTHONPATH": str(src)}
                out = subprocess.run([sys.executable, __file__, "--json", *passthrough], env=env, check=True,
                                     capture_output=True, text=True).stdout
                runs[side].append(json.loads(out.strip().splitlines()[-1]))
                print(f"round {r + 1} {side}: " + ", ".join(f"{x['method']} {x['images/s']}" for x in runs[side][-1]),
                      file=sys.stderr, flush=True)
    rows = []
    for i, first in enumerate(runs["after"][0]):
        med = {side: statistics.median(run[i]["images/s"] for run in runs[side]) for side in sides}
        spread = {side: [run[i]["images/s"] for run in runs[side]] for side in sides}
        wait = statistics.median(float(run[i]["data wait"].rstrip("%")) for run in runs["after"])
        rows.append({"family": first["family"], "method": first["method"], "dataset": first["dataset"],
                     f"before ({a.against})": f"{med['before']:.0f} ({min(spread['before'])}-{max(spread['before'])})",
                     "after": f"{med['after']:.0f} ({min(spread['after'])}-{max(spread['after'])})",
                     "after / before": f"{med['after'] / med['before']:.2f}x", "data wait (after)": f"{wait:.0f}%"})
    print(f"median images/s of {a.rounds} interleaved rounds (min-max), {a.threads} threads, n={a.n}, "
          f"device {runs['after'][0][0]['device']}")
    print_table(rows)
    by_method = {r["method"]: i for i, r in enumerate(runs["after"][0])}
    if "infonce" in by_method and "clear" in by_method:
        for side in sides:
            ratios = [run[by_method["infonce"]]["images/s"] / run[by_method["clear"]]["images/s"] for run in runs[side]]
            print(f"SimCLR / CLEAR-VAE images/s, {side}: median {statistics.median(ratios):.2f} "
                  f"({min(ratios):.2f}-{max(ratios):.2f})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n", type=int, default=2000, help="training images per dataset")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--only", nargs="+", metavar="METHOD", help="only these methods of config.yaml")
    p.add_argument("--against", metavar="REV", help="also run REV's src/, interleaved, and compare")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds with --against")
    p.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.against:
        interleaved(a)
        return
    rows = measure(a)
    if a.json:
        print(json.dumps(rows))
    else:
        print_table(rows)


if __name__ == "__main__":
    main()

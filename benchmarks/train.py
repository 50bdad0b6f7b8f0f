"""Training throughput of every method family at tiny scale (one epoch each, CPU or GPU).

    python benchmarks/train.py [--device auto] [--threads 2] [--n 2000] [--epochs 1]

Prints a Markdown table: family, method, dataset, images/s of a pretraining epoch (views counted
once per sample, as in ``metrics.csv``), and seconds per epoch. Methods and datasets are those of
``config.yaml`` (the embedded default), so the numbers describe the default run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from clbench.data.build import build_dataset
from clbench.train.loop import train

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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n", type=int, default=2000, help="training images per dataset")
    p.add_argument("--epochs", type=int, default=1)
    a = p.parse_args()
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        built = {}
        for label, (method, dataset) in FAMILIES.items():
            if dataset not in built:
                spec = {**cfg["datasets"][dataset], "n_train": a.n, "n_val": 200, "n_test": 200}
                build_dataset(spec, tmp / dataset, tmp / "resources")
                built[dataset] = tmp / dataset
            spec = {**cfg["methods"][method], "epochs": a.epochs, "val_every": 0}
            spec.pop("mcl", None)
            t0 = time.time()
            info = train(spec, built[dataset], tmp / "runs" / method, tmp / "ckpt" / method, seed=0,
                         device=a.device, threads=a.threads)
            rows.append({"family": label, "method": method, "dataset": dataset, "device": info["device"],
                         "images/s": round(info["final"]["images_per_s"]), "s/epoch": round(info["final"]["seconds"], 2),
                         "job s": round(time.time() - t0, 1)})
    df = pd.DataFrame(rows)
    cols = list(df.columns)
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join("---" for _ in cols) + "|")
    for _, r in df.iterrows():
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")


if __name__ == "__main__":
    main()

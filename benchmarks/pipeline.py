"""Whole-pipeline timings: the default run, Snakemake's own share, and the paper config's DAG build.

    python benchmarks/pipeline.py [--cores 2] [--skip-run]

Prints a Markdown table: the run's wall time, job time per rule, and each method's pretraining
images/s in that run (SimCLR's as a share of CLEAR-VAE's). The default run goes to a fresh temporary directory. "Job time" is the sum
of every job's wall time from Snakemake's ``benchmark:`` files; with C cores, the run could not be
shorter than job time / C, so ``wall - job time / C`` bounds what Snakemake itself (scheduling,
DAG, file checks) plus idle cores on the critical path cost. The DAG build time is a dry run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def timed(cmd: list[str]) -> float:
    t0 = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.time() - t0


def job_seconds(results: Path) -> tuple[float, int]:
    total, n = 0.0, 0
    for tsv in results.rglob("benchmarks/**/*.tsv"):
        total += float(pd.read_csv(tsv, sep="\t")["s"].iloc[0])
        n += 1
    return total, n


def rule_seconds(results: Path) -> pd.DataFrame:
    """Summed job wall time and job count per rule (where the time went)."""
    rows = [(tsv.relative_to(results / "benchmarks").parts[0], float(pd.read_csv(tsv, sep="\t")["s"].iloc[0]))
            for tsv in results.rglob("benchmarks/**/*.tsv")]
    df = pd.DataFrame(rows, columns=["rule", "s"])
    return df.groupby("rule")["s"].agg(["sum", "count"]).sort_values("sum", ascending=False)


def images_per_second(results: Path) -> pd.Series:
    """Median images/s of each method's pretraining epochs over all its runs (every stage for MCL)."""
    rates = {}
    for csv in results.glob("runs/*/*/seed*/**/metrics.csv"):
        method = csv.relative_to(results / "runs").parts[1]
        frame = pd.read_csv(csv)
        if "images_per_s" in frame:
            rates.setdefault(method, []).extend(frame["images_per_s"].dropna().tolist())
    return pd.Series({m: float(pd.Series(v).median()) for m, v in rates.items()}).sort_index()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--skip-run", action="store_true", help="only the dry-run timings")
    a = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = [*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", tmp]
        dag_default = timed([*base, "-n", "--configfile", str(REPO / "config.yaml")])
        dag_paper = timed([*base, "-n", "--configfile", str(REPO / "config.yaml"), str(REPO / "configs/paper.yaml")])
        rows.append(("dry run (DAG build), default config", f"{dag_default:.1f} s"))
        rows.append(("dry run (DAG build), paper config", f"{dag_paper:.1f} s"))
        if not a.skip_run:
            wall = timed([*base, "--cores", str(a.cores), "--configfile", str(REPO / "config.yaml")])
            jobs, n = job_seconds(Path(tmp) / "results")
            bound = max(0.0, wall - jobs / a.cores)
            rows.append((f"default run, --cores {a.cores}", f"{wall:.0f} s ({wall / 60:.1f} min)"))
            rows.append(("jobs with a benchmark file / their summed wall time", f"{n} / {jobs:.0f} s"))
            rows.append(("wall - job time / cores (Snakemake + idle cores)", f"{bound:.0f} s ({100 * bound / wall:.0f}%)"))
            results = Path(tmp) / "results"
            for rule, (seconds, count) in rule_seconds(results).iterrows():
                rows.append((f"job time of rule {rule} ({int(count)} jobs)", f"{seconds:.0f} s"))
            rates = images_per_second(results)
            for method, rate in rates.items():
                rows.append((f"pretraining images/s, {method} (median over its epochs)", f"{rate:.0f}"))
            if {"infonce", "clear"} <= set(rates.index):
                rows.append(("SimCLR (infonce) / CLEAR-VAE (clear) images/s, same run",
                             f"{rates['infonce'] / rates['clear']:.2f}"))
    print("| measurement | value |\n|---|---|")
    for k, v in rows:
        print(f"| {k} | {v} |")


if __name__ == "__main__":
    main()

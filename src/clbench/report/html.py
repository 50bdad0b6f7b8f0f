"""The self-contained HTML report: tables, figures (embedded as base64 PNG) and a run summary."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import json
import subprocess
from pathlib import Path

import pandas as pd

from clbench.io import write_text

SCALE_WORDS = {
    "smoke": "smoke scale (a few hundred samples, one or two epochs: checks the machinery, not the numbers)",
    "tiny": "tiny scale (embedded data shipped with the installed packages, small CNNs, a few epochs on a CPU)",
    "paper": "paper scale (the papers' datasets, architectures and schedules)",
}

STYLE = """
body{font-family:system-ui,-apple-system,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #444}h2{border-bottom:1px solid #bbb;margin-top:2em}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f2f2f2}td:first-child,th:first-child,td:nth-child(2){text-align:left}
figure{margin:1em 0}figcaption{font-size:0.85em;color:#555}img{max-width:100%}
.note{background:#f8f8e8;border-left:4px solid #cc4;padding:0.5em 1em}code{background:#f2f2f2;padding:0 3px}
"""


def img_tag(path: str | Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def figure(path: str | Path, caption: str) -> str:
    return f"<figure>{img_tag(path, caption)}<figcaption>{html.escape(caption)}</figcaption></figure>"


def table_html(df: pd.DataFrame) -> str:
    return df.to_html(index=False, na_rep="—", float_format=lambda v: f"{v:.4g}", border=0, escape=True)


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def benchmark_summary(results: Path) -> pd.DataFrame:
    """Wall seconds per rule from Snakemake's ``benchmark:`` files (sum and count of jobs)."""
    rows = []
    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        rule = tsv.relative_to(results / "benchmarks").parts[0].removesuffix(".tsv")
        try:
            s = float(pd.read_csv(tsv, sep="\t")["s"].iloc[0])
        except (KeyError, IndexError, ValueError, pd.errors.ParserError):
            continue
        rows.append({"rule": rule, "seconds": s})
    if not rows:
        return pd.DataFrame(columns=["rule", "jobs", "total seconds", "max seconds"])
    df = pd.DataFrame(rows).groupby("rule", sort=False)["seconds"].agg(["count", "sum", "max"]).reset_index()
    df.columns = ["rule", "jobs", "total seconds", "max seconds"]
    return df.sort_values("total seconds", ascending=False)


def run_devices(results: Path) -> list[str]:
    devices = set()
    for run_json in (results / "runs").rglob("run.json"):
        devices.add(json.loads(run_json.read_text()).get("device", "?"))
    return sorted(devices)


def build_report(results: str | Path, config: dict, out: str | Path) -> None:
    results = Path(results)
    scale = config.get("scale", "tiny")
    config_hash = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>clbench report</title><style>{STYLE}</style>"
             "</head><body>", "<h1>clbench: five contrastive-learning papers, reproduced</h1>",
             f"<p class='note'>These numbers were computed at <b>{html.escape(SCALE_WORDS.get(scale, scale))}</b>. "
             "Where the papers report a number, it stands beside ours with its source.</p>"]

    parts.append("<h2 id='linear-probe'>Linear evaluation of frozen encoders</h2>")
    probe_csv = results / "tables" / "linear_probe.csv"
    if probe_csv.exists():
        md = results / "tables" / "linear_probe.md"
        df = pd.read_csv(probe_csv)
        parts.append("<p>Top-1 accuracy, macro AUROC and macro AUPR (%) of a logistic-regression probe on frozen "
                     "features; mean ± std over seeds.</p>")
        parts.append(_markdown_table_html(md) if md.exists() else table_html(df))
    curves = results / "figures" / "training_curves.png"
    if curves.exists():
        parts.append(figure(curves, "Training loss and k-NN validation accuracy per epoch."))

    previews = sorted((results / "data").glob("*/samples.png"))
    if previews:
        parts.append("<h2 id='data'>Datasets</h2>")
        for p in previews:
            parts.append(figure(p, f"Samples of {p.parent.name}, one row per class."))

    parts.append("<h2 id='run-summary'>Run summary</h2>")
    parts.append("<ul>" + "".join(f"<li>{html.escape(k)}: <code>{html.escape(str(v))}</code></li>" for k, v in [
        ("git commit", git_commit()), ("config hash", config_hash), ("scale", scale),
        ("devices", ", ".join(run_devices(results)) or "—"),
        ("generated", dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))]) + "</ul>")
    bench = benchmark_summary(results)
    parts.append("<p>Wall time per rule, from Snakemake's benchmark files:</p>" + table_html(bench))
    parts.append("</body></html>")
    write_text(out, "\n".join(parts))


def _markdown_table_html(md_path: Path) -> str:
    lines = [l for l in md_path.read_text().splitlines() if l.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    body = [[c.strip() for c in l.strip("|").split("|")] for l in lines[2:]]
    th = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in body)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"

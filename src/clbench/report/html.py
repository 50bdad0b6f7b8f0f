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
# The tables' shape lives in paper_tables: one implementation for the HTML and the table files.
from clbench.report.paper_tables import CLAIM_NAMES, NOTE, PAPERS, paper_tables

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


def _claims_frame(tables: Path) -> pd.DataFrame:
    metrics = pd.read_csv(tables / "metrics.csv")
    frames = [metrics]
    stage = tables / "stage_probes.csv"
    if stage.exists() and stage.stat().st_size > 1:
        sp = pd.read_csv(stage)
        if len(sp):
            frames.append(sp.rename(columns={"top1": "value"}).assign(metric="stage_probe_top1"))
    temperature = tables / f"{TEMPERATURE_FIGURE}.csv"
    if temperature.exists():
        from clbench.report.paper_figures import varcon_t2_endpoints

        endpoints = varcon_t2_endpoints(temperature)
        if len(endpoints):
            frames.append(endpoints)
    return pd.concat(frames, ignore_index=True)


def paper_numbers_html(paper: str, summary: pd.DataFrame) -> str:
    from clbench.report.claims import load_paper_results

    ref = load_paper_results()
    ref = ref[ref["paper"] == paper]
    if ref.empty:
        return ""
    rows = []
    for _, r in ref.iterrows():
        ours = summary[(summary["method"] == r["method_key"]) & (summary["metric"] == CLAIM_NAMES.get(r["metric"], r["metric"]))
                       & summary["experiment"].str.startswith(r["experiment"] if isinstance(r.get("experiment"), str) else "")]
        scale = 100.0 if r["unit"] == "%" else 1.0
        our_txt = "; ".join(f"{e}: {m * scale:.{1 if scale == 100 else 3}f}" + (f" ± {sd * scale:.1f}" if pd.notna(sd) and scale == 100 else "")
                            for e, m, sd in zip(ours["experiment"], ours["mean"], ours["std"])) or "not run at this scale"
        value = f"{r['value']:g}" if pd.notna(r["value"]) else f"{r['low']:g}–{r['high']:g}"
        if pd.notna(r.get("std")):
            value += f" ± {r['std']:g}"
        rows.append({"dataset": r["dataset"], "method": r["method"], "metric": r["metric"],
                     "paper": f"{value} {r['unit']}", "source": r["source"], "ours": our_txt})
    return "<h3>The paper's numbers beside ours</h3>" + table_html(pd.DataFrame(rows))


def claims_html(paper: str, claims: pd.DataFrame) -> str:
    sub = claims[claims["paper"] == paper]
    if sub.empty:
        return ""
    show = sub[["id", "experiment", "text", "verdict", "summary"]].fillna("—")
    return "<h3>Claims</h3>" + table_html(show)


TEMPERATURE_FIGURE = "varcon_temperature"


def temperature_note(results: Path, config: dict) -> str:
    """Why the VarCon temperature figure is left out, in words; "" when some run logged t2."""
    table = results / "tables" / f"{TEMPERATURE_FIGURE}.csv"
    if table.exists() and len(pd.read_csv(table)):
        return ""
    methods = config.get("methods", {})
    varcon = sorted({m for e in config.get("experiments", {}).values() for m in e.get("methods", [])
                     if methods.get(m, {}).get("objective") == "varcon"})
    if not varcon:
        why = ("it needs a method with objective <code>varcon</code> in an experiment, as in "
               "<code>config.yaml</code>'s experiment <code>varcon_digits</code> or <code>configs/paper.yaml</code>")
    else:
        why = (f"the runs of {', '.join(f'<code>{html.escape(m)}</code>' for m in varcon)} have no "
               "<code>varcon_t2_*</code> columns in their <code>metrics.csv</code> (trained by a clbench that did not "
               "log t2 yet); <code>snakemake --cores 2 -R pretrain</code> retrains them")
    return f"<p class='note'>The figure of VarCon's adaptive temperature t2 per epoch is not drawn: {why}.</p>"


def build_report(results: str | Path, config: dict, out: str | Path) -> None:
    from clbench.report.claims import evaluate_claims
    from clbench.report.tables import summary_table

    results = Path(results)
    tables = results / "tables"
    figures = results / "figures"
    scale = config.get("scale", "tiny")
    config_hash = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    metrics = pd.read_csv(tables / "metrics.csv")
    summary = summary_table(metrics)
    seeds = sorted({s for e in config.get("experiments", {}).values() for s in e.get("seeds", [0])})
    claims = evaluate_claims(_claims_frame(tables), seeds=seeds or None, names=CLAIM_NAMES)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>clbench report</title><style>{STYLE}</style>"
             "</head><body>", "<h1>clbench: five contrastive-learning papers, reproduced</h1>",
             f"<p class='note'>These numbers were computed at <b>{html.escape(SCALE_WORDS.get(scale, scale))}</b>. "
             "Where the papers report a number, it stands beside ours with its source; at tiny scale the "
             "comparison is of direction (the claims), not of magnitude.</p>"]
    experiments = config.get("experiments", {})
    toc = []
    skipped = {TEMPERATURE_FIGURE: temperature_note(results, config)}
    for paper, (title, _) in PAPERS.items():
        blocks = paper_tables(summary, experiments, paper)
        if not blocks and paper == "baseline":
            continue
        toc.append(f"<li><a href='#{paper}'>{html.escape(title)}</a></li>")
        parts.append(f"<h2 id='{paper}'>{html.escape(title)}</h2>")
        if not blocks:
            parts.append(f"<p class='note'>No experiment of this paper is in this configuration; "
                         f"<code>configs/paper.yaml</code> runs it at paper scale.</p>")
        for b in blocks:
            parts.append(f"<h3>{html.escape(b.title)} <small>(experiment <code>{html.escape(b.experiment)}</code>, "
                         f"dataset <code>{html.escape(b.dataset)}</code>, seeds {b.seeds})</small></h3>")
            parts.append(f"<p>{html.escape(NOTE)} Also in <code>tables/paper_{paper}.csv</code> (.md, .tex).</p>"
                         + table_html(b.table))
        parts.append(paper_numbers_html(paper, summary))
        parts.append(claims_html(paper, claims))
        for fig in sorted(figures.glob(f"{paper}_*.png")):
            if skipped.get(fig.stem):  # a placeholder image: the note says why and which config draws it
                continue
            parts.append(figure(fig, FIGURE_CAPTIONS.get(fig.stem.split("__")[0], fig.stem.replace("_", " "))))
        if blocks:  # without the paper's experiments the note above already says where it runs
            parts += [note for name, note in skipped.items() if name.startswith(f"{paper}_")]
    curves = figures / "training_curves.png"
    if curves.exists():
        toc.append("<li><a href='#training'>Training curves</a></li>")
        parts.append("<h2 id='training'>Training curves</h2>")
        parts.append(figure(curves, "Training loss and k-NN validation accuracy per epoch, every run."))
    previews = sorted((results / "data").glob("*/samples.png"))
    if previews:
        toc.append("<li><a href='#data'>Datasets</a></li>")
        parts.append("<h2 id='data'>Datasets</h2>")
        for p in previews:
            parts.append(figure(p, f"Samples of {p.parent.name}, one row per class."))
    toc.append("<li><a href='#run-summary'>Run summary</a></li>")
    parts.append("<h2 id='run-summary'>Run summary</h2>")
    parts.append("<ul>" + "".join(f"<li>{html.escape(k)}: <code>{html.escape(str(v))}</code></li>" for k, v in [
        ("git commit", git_commit()), ("config hash", config_hash), ("scale", scale),
        ("devices", ", ".join(run_devices(results)) or "—"),
        ("generated", dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))]) + "</ul>")
    bench = benchmark_summary(results)
    parts.append("<p>Wall time per rule, from Snakemake's benchmark files:</p>" + table_html(bench))
    parts.append("</body></html>")
    parts.insert(3, "<h2>Contents</h2><ul>" + "".join(toc) + "</ul>")
    write_text(out, "\n".join(p for p in parts if p))


FIGURE_CAPTIONS = {
    "clear_swap": "CLEAR content/style swap: column = content source, row = style source.",
    "clear_interpolation": "CLEAR latent interpolation: content (top) and style (bottom).",
    "clear_tsne": "t-SNE of z_c and z_s coloured by label and by style.",
    "clear_mi_simulation": "MI simulation: KNN mutual information vs SNN and PS-SNN over steps.",
    "clear_ood": "Relative OOD accuracy vs the plain CNN.",
    "clear_ood_k": "Relative OOD accuracy vs the plain CNN over k (styles per digit seen in training).",
    "mcl_stage_probes": "MCL: probe accuracy of each attribute per stage.",
    "varcon_corruptions": "Corruption robustness: top-1 per corruption and severity.",
    "varcon_convergence": "Convergence: k-NN validation accuracy per epoch.",
    "varcon_temperature": "VarCon's adaptive temperature t2 = (t − ε) + 2ε·p(y|z) over each epoch's training samples: "
                          "median (line), 25–75% (dark band) and 5–95% (light band), mean over seeds; dashed, the "
                          "nominal t and t ± ε. Confident samples get a higher t2 (softer targets), so t2 rises as "
                          "training raises p(y|z).",
}


def _markdown_table_html(md_path: Path) -> str:
    lines = [l for l in md_path.read_text().splitlines() if l.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    body = [[c.strip() for c in l.strip("|").split("|")] for l in lines[2:]]
    th = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in body)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"

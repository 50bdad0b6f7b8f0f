"""The self-contained HTML report: one section per paper (its tables, the paper's numbers beside ours,
its claims and figures), the training curves, dataset previews and a run summary; figures embedded as
base64 PNG.

It reads result files only and renders whichever papers it is given (key ->
:class:`clbench.report.paper.Paper`, in report order); it names none.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import json
from pathlib import Path
from typing import Mapping

import pandas as pd

from clbench.io import write_text
# The tables' shape lives in paper_tables: one implementation for the HTML and the table files.
from clbench.report.paper_tables import NOTE, paper_tables
from clbench.report.reported import reported_frame

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
details.card{margin:0.5em 0 1.5em 0}details.card summary{cursor:pointer;color:#335}
details.card td{text-align:left}
"""

_NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine"}


def img_tag(path: str | Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def figure(path: str | Path, caption: str) -> str:
    return f"<figure>{img_tag(path, caption)}<figcaption>{html.escape(caption)}</figcaption></figure>"


def table_html(df: pd.DataFrame) -> str:
    return df.to_html(index=False, na_rep="—", float_format=lambda v: f"{v:.4g}", border=0, escape=True)


def git_commit() -> str:
    from clbench.provenance import describe

    return describe()


def code_provenance_html(results: Path) -> str:
    """A note when the runs were made by different code (commits, or code hashes across a method's seeds)."""
    from clbench.provenance import mixed_code

    runs = []
    for run_json in sorted((results / "runs").rglob("run.json")):
        if run_json.parent.name.startswith("seed"):
            info = json.loads(run_json.read_text())
            runs.append((str(run_json.parent.relative_to(results / "runs")), info.get("provenance")))
    notes = mixed_code(runs)
    if not notes:
        return ""
    return ("<p class='note'>Results made by different code:</p><ul>"
            + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")


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


def claims_frame(results: Path, paper) -> pd.DataFrame:
    """``tables/metrics.csv`` plus the rows the paper's claims read from its other result files."""
    frames = [pd.read_csv(results / "tables" / "metrics.csv")]
    extra = paper.claim_data(results) if paper.claim_data is not None else None
    if extra is not None and len(extra):
        frames.append(extra)
    return pd.concat(frames, ignore_index=True)


def paper_claims(results: Path, paper, seeds=None, scale: str | None = None) -> pd.DataFrame:
    """The paper's claims checked against the results: one row per claim and experiment."""
    from clbench.report.claims import CLAIM_COLUMNS, evaluate_claims

    if not paper.claims:
        return pd.DataFrame(columns=CLAIM_COLUMNS)
    return evaluate_claims(claims_frame(results, paper), paper.claims, seeds=seeds, names=paper.metric_names,
                           scale=scale)


def paper_numbers_html(paper, summary: pd.DataFrame) -> str:
    ref = reported_frame([paper])
    if ref.empty:
        return ""
    names = paper.metric_names
    rows = []
    for _, r in ref.iterrows():
        ours = summary[(summary["method"] == r["method_key"]) & (summary["metric"] == names.get(r["metric"], r["metric"]))
                       & summary["experiment"].str.startswith(r["experiment"] if isinstance(r.get("experiment"), str) else "")]
        scale = 100.0 if r["unit"] == "%" else 1.0
        our_txt = "; ".join(f"{e}: {m * scale:.{1 if scale == 100 else 3}f}" + (f" ± {sd * scale:.1f}" if pd.notna(sd) and scale == 100 else "")
                            for e, m, sd in zip(ours["experiment"], ours["mean"], ours["std"])) or "not run at this scale"
        if not isinstance(r["method_key"], str):  # a reference (e.g. an ideal), not a method's result
            our_txt = "a reference, not a method's result: compare each method's row above"
        value = f"{r['value']:g}" if pd.notna(r["value"]) else f"{r['low']:g}–{r['high']:g}"
        if pd.notna(r.get("std")):
            value += f" ± {r['std']:g}"
        rows.append({"dataset": r["dataset"], "method": r["method"], "metric": r["metric"],
                     "paper": f"{value} {r['unit']}", "source": r["source"], "ours": our_txt,
                     "note": r["note"] if isinstance(r.get("note"), str) else ""})
    table = pd.DataFrame(rows)
    if not table["note"].astype(bool).any():
        table = table.drop(columns="note")
    return "<h3>The paper's numbers beside ours</h3>" + table_html(table)


def claims_html(claims: pd.DataFrame) -> str:
    """The claims with their verdicts, the evidence (numbers, seeds, p) and the rule that decided each."""
    from clbench.report.claims import ALPHA, RULES

    if claims.empty:
        return ""
    show = claims[["id", "experiment", "text", "verdict", "summary", "rule", "note"]].rename(
        columns={"summary": "evidence"}).fillna("—")
    if not claims["note"].fillna("").astype(bool).any():
        show = show.drop(columns="note")
    rules = "".join(f"<li>{html.escape(text)}</li>" for text in RULES.values())
    legend = (f"<div><small>How a verdict is reached (one-sided tests at alpha = {ALPHA:g}, seeds paired):"
              f"<ul>{rules}</ul>A verdict of <i>direction only (n=1)</i> says which way one seed went, "
              f"not whether the claim holds; <i>not comparable at this scale</i> marks a magnitude the paper "
              f"states at its own scale.</small></div>")
    return "<h3>Claims</h3>" + table_html(show) + legend


def protocol_card_html(results: Path, experiment: str) -> str:
    """The experiment's protocol card, folded under the table it shapes; "" when the card is absent."""
    from clbench.report.protocol import card_counts, read_card

    path = results / "tables" / f"protocol_{experiment}.csv"
    if not path.exists():
        return ""
    rows = read_card(path)
    counts = card_counts(rows)
    summary = (f"Protocol card: {counts['settings']} settings, {counts['sourced']} from the paper or its official "
               f"code, {counts['assumed']} assumed" + (f", {counts['not set']} not set" if counts["not set"] else ""))
    body = table_html(pd.DataFrame(rows, columns=["scope", "category", "setting", "value", "source"]))
    return (f"<details class='card'><summary>{html.escape(summary)} (<code>tables/protocol_{html.escape(experiment)}"
            f".csv</code>)</summary>{body}</details>")


def citation_html(paper) -> str:
    """What the paper adds, its citation and links."""
    links = []
    if paper.arxiv:
        links.append(f"<a href='https://arxiv.org/abs/{html.escape(paper.arxiv)}'>arXiv {html.escape(paper.arxiv)}</a>")
    if paper.code:
        links.append(f"<a href='{html.escape(paper.code)}'>official code</a>")
    text = f"<p>{html.escape(paper.summary)}</p>" if paper.summary else ""
    if paper.citation:
        text += f"<p><small>{html.escape(paper.citation)}" + "".join(f" · {link}" for link in links) + "</small></p>"
    return text


def paper_section(key: str, paper, summary: pd.DataFrame, results: Path, config: Mapping, seeds,
                  scale: str | None = None) -> tuple[str, str]:
    """One paper's section (its table of contents entry, its HTML); ("", "") when it has none."""
    experiments = config.get("experiments", {})
    blocks = paper_tables(summary, experiments, paper)
    if not blocks and not paper.section_without_experiments:
        return "", ""
    parts = [f"<h2 id='{key}'>{html.escape(paper.heading)}</h2>", citation_html(paper)]
    if not blocks:
        parts.append("<p class='note'>No experiment of this paper is in this configuration; "
                     "<code>configs/paper.yaml</code> runs it at paper scale.</p>")
    for b in blocks:
        parts.append(f"<h3>{html.escape(b.title)} <small>(experiment <code>{html.escape(b.experiment)}</code>, "
                     f"dataset <code>{html.escape(b.dataset)}</code>, seeds {b.seeds})</small></h3>")
        parts.append(f"<p>{html.escape(NOTE)} Also in <code>tables/paper_{key}.csv</code> (.md, .tex).</p>"
                     + table_html(b.table) + protocol_card_html(results, b.experiment))
    parts.append(paper_numbers_html(paper, summary))
    parts.append(claims_html(paper_claims(results, paper, seeds, scale)))
    notes = []
    for fig in paper.figures:
        note = fig.note(results, config) if fig.note is not None else ""
        png = results / "figures" / f"{fig.name}.png"
        if note:  # the image is a placeholder: the note says why and which config draws it
            notes.append(note)
        elif png.exists():
            parts.append(figure(png, fig.caption))
    if blocks:  # without the paper's experiments the note above already says where it runs
        parts += notes
    return f"<li><a href='#{key}'>{html.escape(paper.heading)}</a></li>", "\n".join(p for p in parts if p)


def build_report(results: str | Path, config: dict, out: str | Path, papers: Mapping[str, object]) -> None:
    """The report of ``results`` for ``config``, one section per paper of ``papers``."""
    from clbench.report.tables import summary_table

    results = Path(results)
    figures = results / "figures"
    scale = config.get("scale", "tiny")
    config_hash = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    summary = summary_table(pd.read_csv(results / "tables" / "metrics.csv"))
    seeds = sorted({s for e in config.get("experiments", {}).values() for s in e.get("seeds", [0])})
    reproduced = sum(bool(p.section_without_experiments) for p in papers.values())
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>clbench report</title><style>{STYLE}</style>"
             "</head><body>",
             f"<h1>clbench: {_NUMBER_WORDS.get(reproduced, reproduced)} contrastive-learning papers, reproduced</h1>",
             f"<p class='note'>These numbers were computed at <b>{html.escape(SCALE_WORDS.get(scale, scale))}</b>. "
             "Where the papers report a number, it stands beside ours with its source; at tiny scale the "
             "comparison is of direction (the claims), not of magnitude.</p>"]
    toc = []
    for key, paper in papers.items():
        entry, section = paper_section(key, paper, summary, results, config, seeds or None, scale)
        if section:
            toc.append(entry)
            parts.append(section)
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
            views = p.parent / "augmented_views.png"
            if views.exists():
                parts.append(figure(views, f"Augmented views of {p.parent.name}: per recipe its methods train with, "
                                           f"a few training images (first column) and eight draws of the recipe, as "
                                           f"the training device applies it."))
    toc.append("<li><a href='#run-summary'>Run summary</a></li>")
    parts.append("<h2 id='run-summary'>Run summary</h2>")
    parts.append("<ul>" + "".join(f"<li>{html.escape(k)}: <code>{html.escape(str(v))}</code></li>" for k, v in [
        ("git commit", git_commit()), ("config hash", config_hash), ("scale", scale),
        ("devices", ", ".join(run_devices(results)) or "—"),
        ("generated", dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))]) + "</ul>")
    parts.append(code_provenance_html(results))
    bench = benchmark_summary(results)
    parts.append("<p>Wall time per rule, from Snakemake's benchmark files:</p>" + table_html(bench))
    parts.append("</body></html>")
    parts.insert(3, "<h2>Contents</h2><ul>" + "".join(toc) + "</ul>")
    write_text(out, "\n".join(p for p in parts if p))

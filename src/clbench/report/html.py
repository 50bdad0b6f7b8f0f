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
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd

from clbench.io import write_text
# The tables' shape lives in paper_tables: one implementation for the HTML and the table files.
from clbench.report.paper_tables import NOTE, paper_tables
from clbench.report.html_table import table_html
from clbench.report.reported import reported_frame

SCALE_WORDS = {
    "smoke": "smoke scale (a few hundred samples, one or two epochs: checks the machinery, not the numbers)",
    "tiny": "tiny scale (embedded data shipped with the installed packages, small CNNs, a few epochs on a CPU)",
    "paper": "paper scale (the papers' datasets, architectures and schedules)",
}

STYLE = """
body{font-family:system-ui,-apple-system,sans-serif;max-width:1180px;margin:2em auto;padding:0 1em;color:#222;
line-height:1.4}
h1{border-bottom:2px solid #444}h2{border-bottom:1px solid #bbb;margin-top:2.2em}h3{margin-top:1.6em}
.scroll{overflow-x:auto;max-width:100%;margin:0.8em 0}
table{border-collapse:collapse;font-size:0.88em}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;
vertical-align:top}th{background:#f2f2f2}td.num,th.num{text-align:right;white-space:nowrap}
td.wide{min-width:16em}td small code{font-size:0.95em}td>code{overflow-wrap:normal;white-space:nowrap}
.nw{white-space:nowrap}
figure{margin:1em 0}figcaption{font-size:0.85em;color:#555}img{max-width:100%;height:auto}
.note{background:#f8f8e8;border-left:4px solid #cc4;padding:0.5em 1em}code{background:#f2f2f2;padding:0 3px;
overflow-wrap:anywhere}
.rule{font-size:0.9em;color:#333;margin:0.3em 0}.rule ul{margin:0.2em 0}
.summary{background:#f4f7fb;border:1px solid #c9d6e6;border-radius:4px;padding:0.6em 1em;margin:1em 0}
.summary p{margin:0.3em 0}
.v{display:inline-block;padding:0 6px;border-radius:3px;white-space:nowrap}
.v-holds,.h-ok{background:#d9f0d9}.v-fails,.h-failed{background:#f6d0d0}.v-inconclusive{background:#eee}
.v-undecided,.h-warn{background:#fbe6c2}.v-not-comparable,.v-not-run,.v-direction-only{background:#e4e8f0}
details.card{margin:0.5em 0 1.5em 0}details.card summary{cursor:pointer;color:#335}
"""

_NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine"}


def img_tag(path: str | Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def figure(path: str | Path, caption: str) -> str:
    return f"<figure>{img_tag(path, caption)}<figcaption>{html.escape(caption)}</figcaption></figure>"


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
    from clbench.report.tables import health_table

    if not paper.claims:
        return pd.DataFrame(columns=CLAIM_COLUMNS)
    return evaluate_claims(claims_frame(results, paper), paper.claims, seeds=seeds, names=paper.metric_names,
                           scale=scale, health=health_table(results))


def _ours_text(summary: pd.DataFrame, ref_row, names: Mapping[str, str], experiment: str | None = None) -> str:
    """Our mean (± std) of a reported number's method and metric, in its unit, per experiment it applies
    to (``experiment``: a name prefix; default the number's own)."""
    if experiment is None:
        experiment = ref_row["experiment"] if isinstance(ref_row.get("experiment"), str) else ""
    ours = summary[(summary["method"] == ref_row["method_key"])
                   & (summary["metric"] == names.get(ref_row["metric"], ref_row["metric"]))
                   & summary["experiment"].str.startswith(experiment)]
    percent = ref_row["unit"] in ("%", "fraction")  # a fraction is shown in % (accuracies are in % everywhere)
    scale, digits = (100.0, 1) if percent else (1.0, 3)
    return "; ".join(f"{e}: {m * scale:.{digits}f}" + (f" ± {sd * scale:.{digits}f}" if pd.notna(sd) else "")
                     for e, m, sd in zip(ours["experiment"], ours["mean"], ours["std"]))


def paper_numbers_frame(paper, summary: pd.DataFrame) -> pd.DataFrame:
    """The paper's reported numbers, each with what it was checked against and ours beside it
    (``measured``: whether this configuration has our number)."""
    ref = reported_frame([paper])
    own = summary[summary["paper"].map(lambda p: paper.key in str(p).split("+")).astype(bool)]  # its experiments
    rows = []
    for _, r in ref.iterrows():
        ours = _ours_text(summary, r, paper.metric_names) if isinstance(r["method_key"], str) else ""
        # the same method and metric on another of the paper's experiments (e.g. a tiny-scale stand-in)
        elsewhere = "" if ours or not isinstance(r["method_key"], str) else _ours_text(own, r, paper.metric_names, "")
        if not isinstance(r["method_key"], str):  # a reference (e.g. an ideal), not a method's result
            our_txt = "a reference, not a method's result: compare each method's row above"
        else:
            our_txt = ours or "not run at this scale" + (f" (on another dataset: {elsewhere})" if elsewhere else "")
        factor, unit = (100.0, "%") if r["unit"] == "fraction" else (1.0, r["unit"])

        def num(v: float) -> str:
            return f"{round(v * factor, 6):g}"

        value = num(r["value"]) if pd.notna(r["value"]) else f"{num(r['low'])}–{num(r['high'])}"
        if pd.notna(r.get("std")):
            value += f" ± {num(r['std'])}"
        rows.append({"dataset": r["dataset"], "method": r["method"], "metric": r["metric"],
                     "paper": ("≈" if r["approx"] else "") + f"{value} {unit}".strip(),
                     "checked": r["checked"] if isinstance(r.get("checked"), str) else "not stated",
                     "source": r["source"], "ours": our_txt,
                     "note": r["note"] if isinstance(r.get("note"), str) else "", "measured": bool(ours),
                     "elsewhere": elsewhere})
    return pd.DataFrame(rows, columns=NUMBER_COLUMNS)


NUMBER_COLUMNS = ["dataset", "method", "metric", "paper", "checked", "source", "ours", "note", "measured", "elsewhere"]


def _number_cell(row) -> str:
    """A reported number's method, metric and dataset in one cell."""
    return (f"{html.escape(str(row['method']))}<br><small><code>{html.escape(str(row['metric']))}</code> · "
            f"{html.escape(str(row['dataset']))}</small>")


def paper_numbers_html(key: str, numbers: pd.DataFrame) -> str:
    """Every number the paper reports, with what it was checked against, beside ours."""
    if numbers.empty:
        return ""
    table = pd.DataFrame({"number": [_number_cell(r) for _, r in numbers.iterrows()],
                          "paper": [f"<span class='nw'>{html.escape(str(v))}</span>" for v in numbers["paper"]],
                          **{c: [html.escape(str(v)) for v in numbers[c]] for c in ("ours", "checked", "source", "note")}})
    if not numbers["note"].astype(bool).any():
        table = table.drop(columns="note")
    return (f"<h3 id='{key}-numbers'>The paper's numbers beside ours</h3>"
            "<p class='rule'>Each number the paper reports, ours beside it, what it was checked against beyond "
            "its source (<i>checked</i>) and where in the paper it is.</p>"
            + table_html(table, html_columns=table.columns, wide=("number", "checked")))


# The verdicts as the summaries count them, in this order. A verdict is matched by its first words, so
# "not comparable at this scale" counts as "not comparable" and "undecided: ..." as "undecided".
VERDICT_GROUPS = ("holds", "fails", "inconclusive", "undecided", "not comparable", "not run", "direction only")
_ALWAYS_COUNTED = VERDICT_GROUPS[:6]


def verdict_group(verdict: str) -> str:
    text = str(verdict).strip().lower()
    return next((label for label in VERDICT_GROUPS if text.startswith(label)), text)


def verdict_counts(claims: pd.DataFrame) -> dict[str, int]:
    """Claim rows per verdict: holds, fails, inconclusive, undecided, not comparable, not run (always),
    then direction only and any other verdict (when present)."""
    groups = [verdict_group(v) for v in claims["verdict"]] if len(claims) else []
    counts = {label: groups.count(label) for label in _ALWAYS_COUNTED}
    for g in groups:
        counts.setdefault(g, groups.count(g))
    return counts


def verdict_badge(verdict: str) -> str:
    slug = re.sub(r"[^a-z]+", "-", verdict_group(verdict)).strip("-")
    return f"<span class='v v-{slug}'>{html.escape(str(verdict))}</span>"


def counts_text(counts: Mapping[str, int]) -> str:
    return " · ".join(f"<span class='v v-{re.sub(r'[^a-z]+', '-', k).strip('-')}'>{n} {html.escape(k)}</span>"
                      for k, n in counts.items())


# Short names of the claims engine's rules, for the column that says which rule decided a claim.
RULE_NAMES = {"n=1": "one seed", "paired": "paired t-test", "pairs": "every pair", "band": "band",
              "scale": "paper scale"}


def claims_html(claims: pd.DataFrame) -> str:
    """The claims with their verdicts and evidence (numbers, seeds, p); the rules that decided them are
    stated once, above the table, and each row names its rule in a word."""
    from clbench.report.claims import ALPHA, RULES

    if claims.empty:
        return ""
    claims = claims.fillna({"rule": "", "note": "", "summary": "", "experiment": ""})
    names = {text: RULE_NAMES.get(k, k) for k, text in RULES.items()}
    for text in claims["rule"]:  # a rule this module has no short name for keeps a numbered one
        if text and text not in names:
            names[text] = f"rule {len(names) - len(RULES) + 1}"
    used = list(dict.fromkeys(t for t in claims["rule"] if t))
    show = pd.DataFrame({
        "claim": [f"{html.escape(t)}<br><small><code>{html.escape(i)}</code></small>"
                  for t, i in zip(claims["text"], claims["id"])],
        "experiment": [html.escape(e).replace("_", "_<wbr>") if e else "—" for e in claims["experiment"]],
        "verdict": [verdict_badge(v) for v in claims["verdict"]],
        "evidence": [html.escape(e) for e in claims["summary"]],
        "rule": [html.escape(names.get(t, "—")) if t else "—" for t in claims["rule"]],
        "note": [html.escape(n) for n in claims["note"]],
    })
    if len(used) <= 1:
        show = show.drop(columns="rule")
    if not claims["note"].astype(bool).any():
        show = show.drop(columns="note")
    if not used:
        rules = " "
    elif len(used) == 1:
        rules = f" Every claim here is decided by one rule: {html.escape(used[0])}. "
    else:
        rules = "<ul>" + "".join(f"<li><b>{html.escape(names[t])}</b>: {html.escape(t)}</li>" for t in used) + "</ul>"
    legend = (f"<div class='rule'>How a verdict is reached (one-sided tests at alpha = {ALPHA:g}, seeds paired)."
              f"{rules}A verdict of <i>direction only (n=1)</i> says which way one seed went, not whether the claim "
              f"holds; <i>not comparable at this scale</i> marks a magnitude the paper states at its own scale. The "
              f"evidence gives each side's mean ± std over seeds as the results store it (accuracies as fractions "
              f"of 1, where the tables show %).</div>")
    return ("<h3>Claims</h3>" + legend
            + table_html(show, html_columns=show.columns, wide=("claim", "evidence", "note")))


HEALTH_STATUSES = ("ok", "warn", "failed")
HEALTH_FILE = "tables/health.csv"


def read_health(results: Path) -> pd.DataFrame | None:
    """``tables/health.csv`` (one row per run, or per stage of a multistage run) without the runs whose
    evaluation recorded no health (status ``unknown``); None when no run recorded one."""
    from clbench.report.tables import health_table

    df = health_table(results)
    if df is None:
        return None
    missing = {"experiment", "method", "seed", "status"} - set(df.columns)
    if missing:
        raise ValueError(f"{Path(results) / HEALTH_FILE} lacks columns {sorted(missing)}")
    df = df[df["status"] != "unknown"].astype({"reasons": str, "stage": str})
    return df if len(df) else None


def _worst(statuses) -> str:
    statuses = set(statuses)
    return next((s for s in reversed(HEALTH_STATUSES) if s in statuses), "ok")


def health_by_method(health: pd.DataFrame, experiments: Iterable[str] | None = None) -> pd.DataFrame:
    """Per (experiment, method): runs and how many are ok / warn / failed (a run counts at the worst
    status of its rows, its stages' included) and the reasons of those not ok, per seed."""
    if experiments is not None:
        health = health[health["experiment"].isin(list(experiments))]
    rows = []
    for (exp, method), g in health.groupby(["experiment", "method"], sort=False):
        per_seed = {seed: _worst(r["status"]) for seed, r in g.groupby("seed", sort=True)}
        reasons: dict[str, list[str]] = {}  # reason -> the runs (seed, stage) that give it
        for r in g.itertuples():
            text = str(getattr(r, "reasons", "") or "").strip()
            if r.status != "ok" and text:
                stage = str(getattr(r, "stage", "") or "").strip()
                reasons.setdefault(text, []).append(f"{r.seed}" + (f" stage {stage}" if stage else ""))
        statuses = list(per_seed.values())
        rows.append({"experiment": exp, "method": method, "runs": len(per_seed),
                     **{s: statuses.count(s) for s in HEALTH_STATUSES}, "status": _worst(statuses),
                     "reasons": "; ".join(f"seed{'s' * (len(runs) > 1)} {', '.join(runs)}: {text}"
                                          for text, runs in reasons.items())})
    return pd.DataFrame(rows, columns=["experiment", "method", "runs", *HEALTH_STATUSES, "status", "reasons"])


def health_counts(by_method: pd.DataFrame) -> dict[str, int]:
    return {s: int(by_method[s].sum()) for s in HEALTH_STATUSES}


def health_badge(status: str) -> str:
    return f"<span class='v h-{html.escape(status)}'>{html.escape(status)}</span>"


def health_text(by_method: pd.DataFrame | None) -> str:
    """One line: how many runs are ok, warn and failed, and which methods did not pass."""
    if by_method is None:
        return "health not recorded (no <code>tables/health.csv</code> in these results)"
    if by_method.empty:
        return "no run of these experiments in <code>tables/health.csv</code>"
    counts = health_counts(by_method)
    text = " · ".join(f"<span class='v h-{s}'>{n} {s}</span>" for s, n in counts.items())
    bad = by_method[by_method["status"] != "ok"]
    if len(bad):
        text += " — not ok: " + ", ".join(f"<code>{html.escape(r.method)}</code> in <code>{html.escape(r.experiment)}"
                                          f"</code> ({r.failed} failed, {r.warn} warn of {r.runs})"
                                          for r in bad.itertuples())
    return f"{sum(counts.values())} runs: {text}"


def health_html(by_method: pd.DataFrame | None) -> str:
    """The per-method health table of a paper's experiments."""
    if by_method is None or by_method.empty:
        return ""
    show = by_method.assign(status=[health_badge(s) for s in by_method["status"]],
                            reasons=[html.escape(r) or "—" for r in by_method["reasons"]],
                            experiment=[html.escape(e) for e in by_method["experiment"]],
                            method=[f"<code>{html.escape(m)}</code>" for m in by_method["method"]])
    show = show[["experiment", "method", "status", "runs", *HEALTH_STATUSES, "reasons"]]
    return ("<h3>Run health</h3><p class='rule'>Each run's training and evaluation checks (finite, non-diverging, "
            "moving loss; no collapse; above-chance probes): a method's status is that of its worst run.</p>"
            + table_html(show, html_columns=("experiment", "method", "status", "reasons"), wide=("reasons",)))


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


HEADLINE_NUMBERS = 4  # how many of the paper's numbers its summary sets beside ours


@dataclass
class PaperSection:
    """One paper's part of the report: its table-of-contents entry, its HTML and what the overview counts."""

    key: str
    heading: str
    html: str
    verdicts: dict[str, int]
    health: pd.DataFrame | None  # per method (:func:`health_by_method`), None when health is not recorded


def headline_html(key: str, numbers: pd.DataFrame) -> str:
    """The first of the paper's numbers with ours beside each: from the same experiment where this
    configuration runs it, else the same method and metric on another of the paper's experiments (named)."""
    if numbers.empty:
        return ""
    measured = numbers[numbers["measured"]]
    stand_in = numbers[~numbers["measured"] & numbers["elsewhere"].astype(bool)]
    stand_in = stand_in.assign(ours=[f"{t} (another dataset)" for t in stand_in["elsewhere"]])
    shown = pd.concat([measured, stand_in]).head(HEADLINE_NUMBERS)
    if shown.empty:
        return (f"<p><b>Ours beside the paper's:</b> none of its {len(numbers)} reported numbers is measured in this "
                f"configuration (<a href='#{key}-numbers'>the paper's numbers</a>).</p>")
    more = f", {len(numbers) - len(shown)} more" if len(numbers) > len(shown) else ""
    caveat = (" Where ours come from another dataset, at another scale, compare the direction, not the magnitude."
              if len(stand_in) and len(shown) > len(measured) else "")
    table = pd.DataFrame({"number": [_number_cell(r) for _, r in shown.iterrows()],
                          "paper": [f"<span class='nw'>{html.escape(str(v))}</span>" for v in shown["paper"]],
                          **{c: [html.escape(str(v)) for v in shown[c]] for c in ("ours", "checked")}})
    return (f"<p><b>Ours beside the paper's</b> (<a href='#{key}-numbers'>all of its numbers</a>{more}).{caveat}</p>"
            + table_html(table, html_columns=table.columns, wide=("checked",)))


def paper_summary_html(key: str, verdicts: Mapping[str, int], health: pd.DataFrame | None,
                       numbers: pd.DataFrame) -> str:
    """The box that opens a paper's section: its verdicts, its runs' health, ours beside its numbers."""
    claims = f"<p><b>Claims:</b> {counts_text(verdicts)}</p>" if sum(verdicts.values()) else \
        "<p><b>Claims:</b> none checked in this configuration.</p>"
    return (f"<div class='summary'>{claims}<p><b>Run health:</b> {health_text(health)}</p>"
            f"{headline_html(key, numbers)}</div>")


def paper_section(key: str, paper, summary: pd.DataFrame, results: Path, config: Mapping, seeds,
                  scale: str | None = None, health: pd.DataFrame | None = None) -> PaperSection | None:
    """One paper's section; None when it has none. ``health``: ``tables/health.csv`` (None: not recorded)."""
    experiments = config.get("experiments", {})
    blocks = paper_tables(summary, experiments, paper)
    if not blocks and not paper.section_without_experiments:
        return None
    claims = paper_claims(results, paper, seeds, scale)
    verdicts = verdict_counts(claims)
    numbers = paper_numbers_frame(paper, summary)
    by_method = None if health is None else health_by_method(health, [b.experiment for b in blocks])
    selection = selection_html(config, key)
    parts = [f"<h2 id='{key}'>{html.escape(paper.heading)}</h2>", citation_html(paper), selection]
    if blocks:
        parts.append(paper_summary_html(key, verdicts, by_method, numbers))
    elif not selection:  # else the note above names what was not selected
        parts.append("<p class='note'>No experiment of this paper is in this configuration; "
                     "<code>configs/paper.yaml</code> runs it at paper scale.</p>")
    for b in blocks:
        parts.append(f"<h3>{html.escape(b.title)} <small>(experiment <code>{html.escape(b.experiment)}</code>, "
                     f"dataset <code>{html.escape(b.dataset)}</code>, seeds {b.seeds})</small></h3>")
        note = experiments.get(b.experiment, {}).get("note")
        if note:
            parts.append(f"<p class='note'>{html.escape(note)}</p>")
        checks = (f" Each paper number's source and what it was checked against: <a href='#{key}-numbers'>the "
                  "paper's numbers</a>." if any(c.endswith(" (paper)") for c in b.table.columns) else "")
        table = table_html(b.table) if len(b.table) else \
            "<p class='note'>No results of this experiment in <code>tables/metrics.csv</code>.</p>"
        parts.append(f"<p class='rule'>{html.escape(NOTE)}{checks} Also in <code>tables/paper_{key}.csv</code> "
                     "(.md, .tex).</p>" + table + protocol_card_html(results, b.experiment))
    if blocks:
        parts.append(health_html(by_method))
    parts.append(paper_numbers_html(key, numbers))
    parts.append(claims_html(claims))
    notes = []
    for fig in paper.figures:
        note = fig.note(results, config) if fig.note is not None else ""
        png = results / "figures" / f"{fig.name}.png"
        if note:  # the image is a placeholder: the note says why and which config draws it
            notes.append(note)
        elif blocks and png.exists():  # a paper with no experiment here draws none (an older run's would be stale)
            parts.append(figure(png, fig.caption))
    if blocks:  # without the paper's experiments the note above already says where it runs
        parts += notes
    return PaperSection(key, paper.heading, "\n".join(p for p in parts if p), verdicts if blocks else {}, by_method)


def report_title(scale: str, papers: int) -> str:
    """Only results at the papers' scale are called a reproduction."""
    count = _NUMBER_WORDS.get(papers, papers)
    if scale == "paper":
        return f"clbench: {count} contrastive-learning papers, reproduced"
    if scale == "smoke":
        return "clbench at smoke scale: a check of the machinery, not of the papers"
    return f"clbench at {scale} scale: the machinery and the direction of each claim of {count} papers"


def overview_html(sections: list[PaperSection], health_recorded: bool) -> str:
    """Near the top: per paper its verdicts and its runs' health, and one line on every run's health."""
    rows = []
    for sec in sections:
        if not sec.verdicts:
            continue
        row = {"paper": f"<a href='#{sec.key}'>{html.escape(sec.heading)}</a>",
               **{k: str(n) for k, n in sec.verdicts.items()}}
        if sec.health is not None:
            row |= {f"runs {s}": str(n) for s, n in health_counts(sec.health).items()}
        rows.append(row)
    if not rows:
        return ""
    table = pd.DataFrame(rows).fillna("0")
    everything = [sec.health for sec in sections if sec.health is not None and len(sec.health)]
    overall = pd.concat(everything, ignore_index=True).drop_duplicates(["experiment", "method"]) if everything \
        else (pd.DataFrame(columns=["experiment", "method", "runs", *HEALTH_STATUSES, "status", "reasons"])
              if health_recorded else None)
    return ("<h2 id='glance'>At a glance</h2>"
            f"<p><b>Run health:</b> {health_text(overall)}.</p>"
            f"<p>Claims per verdict{' and runs per health status' if health_recorded else ''}, per paper:</p>"
            + table_html(table, html_columns=("paper",)))


def _not_selected_words(record: Mapping) -> str:
    parts = []
    if record.get("experiments"):
        parts.append("experiments " + ", ".join(f"<code>{html.escape(e)}</code>" for e in record["experiments"]))
    for experiment, methods in record.get("methods", {}).items():
        parts.append(f"in <code>{html.escape(experiment)}</code> the methods "
                     + ", ".join(f"<code>{html.escape(m)}</code>" for m in methods))
    return "; ".join(parts)


def selection_html(config: Mapping, paper: str | None = None) -> str:
    """What a selected run (``--config papers=... experiments=... methods=...``) left out: per paper, or of
    one ``paper``; "" when the run is not a selection or left nothing of it out."""
    selection = config.get("selection")
    if not selection:
        return ""
    left_out = selection.get("not_selected", {})
    if paper is not None:
        words = _not_selected_words(left_out.get(paper, {}))
        return f"<p class='note'>Not selected in this run: {words}.</p>" if words else ""
    given = " ".join(f"{k}=[{','.join(v)}]" for k, v in selection.items() if k != "not_selected")
    items = "".join(f"<li>{html.escape(p)}: {_not_selected_words(r)}</li>" for p, r in left_out.items())
    return (f"<p class='note'>This run is a selection (<code>--config {html.escape(given)}</code>): its tables and "
            f"claims cover what ran. Not selected:</p><ul>{items}</ul>")


def _mean_std(metric: str, mean, std) -> str:
    """A sweep's number as the papers' tables show it: accuracies in %, other scores as they are."""
    from clbench.report.tables import format_mean_std, is_percent_metric

    percent = is_percent_metric(metric)
    return format_mean_std(float(mean), float(std) if std not in ("", None) else float("nan"),
                           scale=100.0 if percent else 1.0, digits=1 if percent else 3)


def _trials_frame(trials: pd.DataFrame, metric: str) -> pd.DataFrame:
    """trials.csv with its validation mean and std as one column named after the selection metric."""
    shown = trials.drop(columns=["val_mean", "val_std"])
    scores = [_mean_std(metric, m, s) if m != "" else "—" for m, s in zip(trials["val_mean"], trials["val_std"])]
    shown.insert(list(trials.columns).index("val_mean"), f"validation {metric}", scores)
    return shown


def sweeps_html(results: Path) -> str:
    """Each sweep (``sweeps/<name>/selection.json`` and ``trials.csv``, :mod:`clbench.sweeps`): its rule, its
    trials with their validation scores and health, and the selected trial's test numbers over its seeds."""
    parts = []
    for path in sorted((results / "sweeps").glob("*/selection.json")):
        sel = json.loads(path.read_text())
        rule = sel["rule"]
        searched = "; ".join(f"{k} from {d}" for k, d in sel["distributions"].items())
        if sel.get("fixed"):
            searched += "; every trial with " + ", ".join(f"{k} = {v}" for k, v in sel["fixed"].items())
        parts.append(f"<h3>Sweep <code>{html.escape(sel['sweep'])}</code> <small>(method "
                     f"<code>{html.escape(sel['method'])}</code> of <code>{html.escape(sel['experiment'])}</code>)"
                     f"</small></h3>")
        parts.append(f"<p class='rule'>{sel['n_trials']} trials, seeds {sel['seeds']}: {html.escape(searched)}. "
                     f"Selected on validation: the {rule['direction']} mean {html.escape(rule['metric'])} over the "
                     f"seeds; {sel['n_excluded']} trial(s) excluded for a failed run. "
                     + (f"Selected: <b>{html.escape(sel['selected'])}</b>. Its test numbers are reported as method "
                        f"<code>{html.escape(sel['sweep'])}</code>.</p>" if sel["selected"] else
                        "<b>No trial selected</b>: every trial was excluded (the reasons are in the table).</p>"))
        trials = path.parent / "trials.csv"
        if trials.exists():
            parts.append(table_html(_trials_frame(pd.read_csv(trials, keep_default_na=False), rule["metric"]),
                                    wide=("settings", "excluded")))
        test = pd.DataFrame([{"metric": k, "mean ± std": _mean_std(k, v["mean"], v["std"]), "seeds": v["n"]}
                             for k, v in sorted(sel["test"].items())])
        if len(test):
            parts.append("<p>The selected trial on test (mean ± std over its seeds; accuracies in %):</p>"
                         + table_html(test))
    return ("<h2 id='sweeps'>Sweeps</h2>" + "".join(parts)) if parts else ""


def build_report(results: str | Path, config: dict, out: str | Path, papers: Mapping[str, object]) -> None:
    """The report of ``results`` for ``config``, one section per paper of ``papers``."""
    from clbench.report.tables import summary_table

    results = Path(results)
    figures = results / "figures"
    scale = config.get("scale", "tiny")
    config_hash = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    summary = summary_table(pd.read_csv(results / "tables" / "metrics.csv"))
    seeds = sorted({s for e in config.get("experiments", {}).values() for s in e.get("seeds", [0])})
    health = read_health(results)
    studied = sum(bool(p.section_without_experiments) for p in papers.values())
    title = report_title(scale, studied)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'>"
             "<meta name='viewport' content='width=device-width, initial-scale=1'>"
             f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             f"<p class='note'>These numbers were computed at <b>{html.escape(SCALE_WORDS.get(scale, scale))}</b>. "
             "Where the papers report a number, it stands beside ours with its source; "
             + ("the comparison is of magnitude and of direction (the claims)." if scale == "paper" else
                f"at {html.escape(scale)} scale the comparison is of direction (the claims), not of magnitude.")
             + "</p>", selection_html(config)]
    toc, sections = [], []
    for key, paper in papers.items():
        section = paper_section(key, paper, summary, results, config, seeds or None, scale, health)
        if section is not None:
            sections.append(section)
            toc.append(f"<li><a href='#{key}'>{html.escape(paper.heading)}</a></li>")
            parts.append(section.html)
    overview = overview_html(sections, health is not None)
    curves = figures / "training_curves.png"
    if curves.exists():
        toc.append("<li><a href='#training'>Training curves</a></li>")
        parts.append("<h2 id='training'>Training curves</h2>")
        parts.append(figure(curves, "Training loss and k-NN validation accuracy per epoch: a row per experiment, "
                                    "a colour per method, a line style per seed; a loss panel per loss scale."))
    swept = sweeps_html(results)
    if swept:
        toc.append("<li><a href='#sweeps'>Sweeps</a></li>")
        parts.append(swept)
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
    parts.insert(3, overview + "<h2>Contents</h2><ul>" + "".join(toc) + "</ul>")
    write_text(out, "\n".join(p for p in parts if p))

"""Collect per-run result files into long tables and aggregate over seeds."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from clbench.io import write_text

RUN_PATH = re.compile(r"(?P<experiment>[^/]+)/(?P<method>[^/]+)/seed(?P<seed>\d+)/[^/]+$")


def parse_run_path(path: str | Path, runs_root: str | Path) -> dict:
    """``{runs_root}/{experiment}/{method}/seed{seed}/file`` -> its experiment, method and seed."""
    rel = Path(path).resolve().relative_to(Path(runs_root).resolve()).as_posix()
    m = RUN_PATH.fullmatch(rel)
    if not m:
        raise ValueError(f"{path} is not laid out as {runs_root}/<experiment>/<method>/seed<N>/<file>")
    return {"experiment": m["experiment"], "method": m["method"], "seed": int(m["seed"])}


def collect_json(paths, runs_root) -> pd.DataFrame:
    """One row per result JSON, its scalar fields as columns, plus experiment/method/seed."""
    rows = []
    for p in paths:
        with open(p) as f:
            data = json.load(f)
        rows.append({**parse_run_path(p, runs_root), **{k: v for k, v in data.items() if isinstance(v, (int, float))}})
    return pd.DataFrame(rows)


def aggregate(df: pd.DataFrame, metrics: list[str], by=("experiment", "method")) -> pd.DataFrame:
    """Mean, standard deviation and count over seeds for each metric."""
    g = df.groupby(list(by), sort=False)[metrics]
    mean, std, n = g.mean(), g.std(ddof=1), g.count()
    out = pd.concat({"mean": mean, "std": std, "n": n}, axis=1)
    out.columns = [f"{m}_{stat}" for stat, m in out.columns]
    return out.reset_index()


def format_mean_std(mean: float, std: float, scale: float = 100.0, digits: int = 1) -> str:
    if pd.isna(mean):
        return "—"
    if pd.isna(std):
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no tabulate dependency)."""
    cols = [_md_cell(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def _md_cell(v) -> str:
    return _cell(v).replace("|", r"\|")  # a bare pipe would split the cell


# Characters LaTeX treats as commands, plus the non-ASCII ones our cells use (pdflatex has no glyph for ±).
_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
          "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}",
          ">": r"\textgreater{}", "±": r"$\pm$", "≈": r"$\approx$", "×": r"$\times$", "–": "--", "—": "---"}


def latex_escape(text) -> str:
    """``text`` as LaTeX source that typesets as itself (``_`` -> ``\\_``, ``±`` -> ``$\\pm$`` ...)."""
    return "".join(_LATEX.get(ch, ch) for ch in str(text))


def to_latex(df: pd.DataFrame, align: str | None = None) -> str:
    """A booktabs ``tabular`` (needs ``\\usepackage{booktabs}``); ``align`` defaults to all left."""
    cols = [latex_escape(c) for c in df.columns]
    body = [" & ".join(latex_escape(_cell(v)) for v in row) + r" \\" for _, row in df.iterrows()]
    return "\n".join([r"\begin{tabular}{" + (align or "l" * len(cols)) + "}", r"\toprule", " & ".join(cols) + r" \\",
                      r"\midrule", *body, r"\bottomrule", r"\end{tabular}"]) + "\n"


def _cell(v) -> str:
    if isinstance(v, float):
        return "—" if pd.isna(v) else f"{v:.4g}"
    return "—" if v is None else str(v)


def collect_evaluations(paths, runs_root, experiments: dict, selected: dict | None = None) -> dict[str, pd.DataFrame]:
    """Read every run's ``evaluation.json`` into long tables.

    Returns ``metrics`` (experiment, paper, k, method, seed, metric, value), ``stage_probes``,
    ``corruptions`` and ``health`` (:func:`health_rows`). With a corruption grid and a baseline, ``mce`` is the mean corruption error
    relative to the baseline (Hendrycks). On experiments marked ``ood``, ``linear_top1`` is also reported as ``ood_top1``.
    For experiments with a ``baseline`` method, every accuracy-like metric also gets
    a ``<metric>_relative`` row: the method's value over the baseline's, same experiment and seed;
    where the baseline's own classifier was scored (``own_head``), the probes' top-1 also get
    ``<probe>_top1_relative_head`` rows (:func:`relative_to_baseline_head`). ``selected``: the runs of each
    sweep's selected trial (:func:`clbench.sweeps.selected_runs`), reported as the sweep's method.
    """
    rows, extra, health = [], {"stage_probes": [], "corruptions": []}, []
    selected = selected or {}  # a sweep's selected runs: path -> (the swept experiment, the sweep's name)
    for p in [*paths, *selected]:
        run = parse_run_path(p, runs_root)
        if p in selected:
            run["experiment"], run["method"] = selected[p]
        exp = experiments.get(run["experiment"], {})
        paper = exp.get("paper", "baseline")
        run = {"experiment": run["experiment"], "paper": paper if isinstance(paper, str) else "+".join(paper),
               "k": exp.get("k"),
               "method": run["method"], "seed": run["seed"]}
        with open(p) as f:
            data = json.load(f)
        for metric, value in data.get("metrics", {}).items():
            rows.append({**run, "metric": metric, "value": value})
        for name in extra:
            extra[name] += [{**run, **r} for r in data.get("tables", {}).get(name, [])]
        health += health_rows(run, data.get("health"))
    metrics = pd.DataFrame(rows, columns=["experiment", "paper", "k", "method", "seed", "metric", "value"])
    relative = []
    for name, exp in experiments.items():
        base = exp.get("baseline")
        if not base:
            continue
        sub = metrics[(metrics["experiment"] == name) & metrics["metric"].str.endswith("top1")]
        ref = sub[sub["method"] == base].set_index(["seed", "metric"])["value"]
        for _, r in sub.iterrows():
            key = (r["seed"], r["metric"])
            if key in ref.index and ref[key] > 0:
                relative.append({**r.to_dict(), "metric": f"{r['metric']}_relative", "value": r["value"] / ref[key]})
    relative += relative_to_baseline_head(metrics, experiments)
    if relative:
        metrics = pd.concat([metrics, pd.DataFrame(relative)], ignore_index=True)
    corr = pd.DataFrame(extra["corruptions"])
    if len(corr):
        from clbench.evaluate.robustness import robustness_summary

        for name, exp in experiments.items():
            part = corr[corr["experiment"] == name]
            if exp.get("baseline") and len(part) and (part["method"] == exp["baseline"]).any():
                rob = robustness_summary(part.rename(columns={"top1": "accuracy"}), baseline=exp["baseline"])
                for _, r in rob.iterrows():
                    base = part.iloc[0]
                    metrics = pd.concat([metrics, pd.DataFrame([{
                        "experiment": name, "paper": base["paper"], "k": base["k"], "method": r["method"],
                        "seed": r["seed"], "metric": "mce", "value": r["mce"]}])], ignore_index=True)
    # On an OOD experiment the test split is the unseen-combination one: its accuracy is the OOD accuracy.
    ood = [e for e, c in experiments.items() if c.get("ood")]
    alias = metrics[metrics["experiment"].isin(ood) & metrics["metric"].isin(["linear_top1", "linear_top1_relative"])]
    if len(alias):
        alias = alias.assign(metric=alias["metric"].str.replace("linear_top1", "ood_top1", regex=False))
        metrics = pd.concat([metrics, alias], ignore_index=True)
    return {"metrics": metrics, **{k: pd.DataFrame(v) for k, v in extra.items()},
            "health": pd.DataFrame(health, columns=HEALTH_COLUMNS)}


HEALTH_COLUMNS = ["experiment", "paper", "method", "seed", "stage", "status", "reasons"]


def health_table(results_dir) -> pd.DataFrame | None:
    """``tables/health.csv`` of a results directory, or None when it has none (runs from before health)."""
    path = Path(results_dir) / "tables" / "health.csv"
    return pd.read_csv(path, keep_default_na=False) if path.exists() else None


def health_rows(run: dict, health: dict | None) -> list[dict]:
    """A run's rows of ``health.csv``: its whole health (stage empty), then one per training stage; reasons
    joined with "; ". A run whose evaluation records no health reads status ``unknown``."""
    key = {k: run[k] for k in ("experiment", "paper", "method", "seed")}
    if health is None:
        return [{**key, "stage": "", "status": "unknown", "reasons": "its evaluation.json records no health"}]
    rows = [{**key, "stage": "", "status": health["status"], "reasons": "; ".join(health.get("reasons", []))}]
    for stage, h in enumerate(health.get("stages") or []):
        rows.append({**key, "stage": stage, "status": h["status"], "reasons": "; ".join(h.get("reasons", []))})
    return rows


# the probes whose top-1 is also compared with the baseline's own trained classifier (e.g. an MLP probe on a
# content latent against a plain CNN's trained head)
HEAD_RELATIVE_PROBES = ("linear_top1", "mlp_top1")


def relative_to_baseline_head(metrics: pd.DataFrame, experiments: dict) -> list[dict]:
    """``<probe>_top1_relative_head`` rows: a method's probe top-1 (:data:`HEAD_RELATIVE_PROBES`) over the
    top-1 of the baseline's own trained classifier (``head_top1``, evaluation ``own_head``), same
    experiment and seed; none where the baseline's head was not scored."""
    rows = []
    for name, exp in experiments.items():
        base = exp.get("baseline")
        sub = metrics[metrics["experiment"] == name]
        head = sub[(sub["method"] == base) & (sub["metric"] == "head_top1")].set_index("seed")["value"]
        for _, r in sub[sub["metric"].isin(HEAD_RELATIVE_PROBES)].iterrows():
            if r["seed"] in head.index and head[r["seed"]] > 0:
                rows.append({**r.to_dict(), "metric": f"{r['metric']}_relative_head", "value": r["value"] / head[r["seed"]]})
    return rows


def summary_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and n over seeds for every (experiment, method, metric)."""
    g = metrics.groupby(["paper", "experiment", "method", "metric"], sort=False)["value"]
    return g.agg(mean="mean", std="std", n="count").reset_index()


def is_percent_metric(metric: str) -> bool:
    """Accuracies (top-1, probes, the MMVP pair scores: shares of pairs correct) and AUROC/AUPR are shown
    in %; ratios, scores and epochs as they are."""
    return ("top1" in metric or metric.startswith(("probe_", "mmvp"))) and "relative" not in metric \
        or metric.endswith(("auroc", "aupr"))


def wide_table(summary: pd.DataFrame, experiment: str, metrics: list[str], percent: set[str] | None = None) -> pd.DataFrame:
    """One experiment as methods x metrics, cells 'mean ± std' (accuracies in %)."""
    percent = percent if percent is not None else {m for m in metrics if is_percent_metric(m)}
    sub = summary[summary["experiment"] == experiment]
    out = []
    for method, g in sub.groupby("method", sort=False):
        row = {"method": method}
        stats = g.set_index("metric")
        for m in metrics:
            if m in stats.index:
                scale = 100.0 if m in percent else 1.0
                row[m] = format_mean_std(stats.loc[m, "mean"], stats.loc[m, "std"], scale=scale,
                                         digits=1 if m in percent else 3)
            else:
                row[m] = "—"
        out.append(row)
    return pd.DataFrame(out, columns=["method", *metrics])


def write_tables(tables: dict[str, pd.DataFrame], out_dir) -> None:
    """Each table as CSV, plus the summary as Markdown and LaTeX, atomically."""
    out_dir = Path(out_dir)
    for name, df in tables.items():
        write_text(out_dir / f"{name}.csv", df.to_csv(index=False))
    summary = summary_table(tables["metrics"])
    write_text(out_dir / "summary.csv", summary.to_csv(index=False))
    shown = summary.assign(value=[format_mean_std(m, s, scale=1.0, digits=4) for m, s in zip(summary["mean"], summary["std"])])
    shown = shown[["paper", "experiment", "method", "metric", "value", "n"]]
    write_text(out_dir / "summary.md", to_markdown(shown))
    write_text(out_dir / "summary.tex", to_latex(shown))

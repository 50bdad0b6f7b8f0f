"""The claims engine: the papers' qualitative claims, checked against clbench's results.

A claim is an id, a paper, a sentence and a *check* over a long results DataFrame (columns
``experiment, method, seed, metric, value`` plus any others, e.g. ``stage``, ``attribute``,
``split``). Each side of a check selects rows by column values, averages them within a seed, then
takes mean +- std over seeds; the verdict compares the means: ``"holds"``, ``"fails"`` or
``"not run"`` (the data for it is absent). The paper modules (:mod:`clbench.papers`) define the
claims; nothing here names a paper. No torch import: only pandas, numpy and yaml.

Check kinds (``tolerance`` is slack in the claim's favour, in the metric's unit, default 0)
    greater   mean(a) - mean(b) >  -tolerance
    at_least  mean(a) - mean(b) >= -tolerance
    less      mean(a) - mean(b) <  +tolerance
    ordering  greater for every consecutive pair of ``order``
    within    lo - tolerance <= mean <= hi + tolerance   (lo or hi may be null)
    near      |mean - target| <= tolerance
    recovers  the ``over`` group (e.g. attribute) with the lowest mean at ``by`` = ``first``
              (e.g. stage 1) has a higher mean at ``later`` (a value, or "last" = the largest
              ``by`` value present): mean(later) - mean(first) > -tolerance

Sides: a string is a method name; a dict is a set of column filters. Other keys of the check
(``metric``, ``method``, ``split`` ...) are filters shared by every side. A paper's claims may use
their own metric or method names; ``names=`` in :func:`evaluate_claims` maps them to the pipeline's.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "Claim",
    "ClaimResult",
    "VERDICTS",
    "ACC_TOL",
    "load_claims",
    "evaluate_claim",
    "evaluate_claims",
    "to_long",
]

VERDICTS = ("holds", "fails", "not run")  # every ClaimResult.verdict is one of these

ACC_TOL = 0.005  # half a percentage point, for accuracies stored as fractions


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class Claim:
    """One qualitative claim of a paper, as a check over a long results DataFrame."""

    id: str
    paper: str
    text: str
    check: Mapping[str, Any]
    experiment: str | Sequence[str] | None = None  # None: evaluated per experiment with data
    scale: str | None = None  # "paper" when only expected to hold at the paper's scale
    note: str = ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Claim":
        unknown = set(d) - {"id", "paper", "text", "check", "experiment", "scale", "note"}
        if unknown:
            raise ValueError(f"claim {d.get('id')!r}: unknown keys {sorted(unknown)}")
        c = cls(
            id=str(d["id"]),
            paper=str(d["paper"]),
            text=str(d["text"]),
            check=dict(d["check"]),
            experiment=d.get("experiment"),
            scale=d.get("scale"),
            note=str(d.get("note", "")),
        )
        _validate_check(c.id, c.check)
        return c


@dataclass
class ClaimResult:
    id: str
    paper: str
    text: str
    experiment: str | None
    verdict: str
    summary: str
    kind: str
    tolerance: float
    numbers: list[dict] = field(default_factory=list)  # one per side: label, mean, std, n, seeds
    seed_agreement: float = float("nan")  # fraction of shared seeds where the check holds per seed
    reason: str = ""
    scale: str | None = None
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


_KIND_KEYS = {
    "greater": {"a", "b"},
    "at_least": {"a", "b"},
    "less": {"a", "b"},
    "ordering": {"order"},
    "within": set(),
    "near": {"target"},
    "recovers": {"over", "by", "first"},
}
_RESERVED = {"kind", "tolerance", "a", "b", "order", "lo", "hi", "target", "over", "by", "first", "later"}


def _validate_check(cid: str, check: Mapping[str, Any]) -> None:
    kind = check.get("kind")
    if kind not in _KIND_KEYS:
        raise ValueError(f"claim {cid!r}: unknown check kind {kind!r} (one of {sorted(_KIND_KEYS)})")
    missing = _KIND_KEYS[kind] - set(check)
    if missing:
        raise ValueError(f"claim {cid!r}: check {kind!r} needs {sorted(missing)}")
    if kind == "within" and check.get("lo") is None and check.get("hi") is None:
        raise ValueError(f"claim {cid!r}: 'within' needs lo and/or hi")
    if kind == "ordering" and len(check["order"]) < 2:
        raise ValueError(f"claim {cid!r}: 'ordering' needs at least two entries")


def load_claims(source: str | Path | Iterable[Mapping]) -> list[Claim]:
    """Claims from a YAML file (a list, or ``{claims: [...]}``) or an iterable of dicts (or :class:`Claim`)."""
    if isinstance(source, (str, Path)):
        import yaml

        data = yaml.safe_load(Path(source).read_text(encoding="utf-8"))
        items = data["claims"] if isinstance(data, Mapping) else data
    else:
        items = source
    claims = [c if isinstance(c, Claim) else Claim.from_dict(c) for c in items]
    ids = [c.id for c in claims]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise ValueError(f"duplicate claim ids: {sorted(dup)}")
    return claims


# ---- evaluation ---------------------------------------------------------------------------------


def to_long(
    df: pd.DataFrame,
    id_cols: Sequence[str] = ("experiment", "method", "seed"),
    metrics: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Wide per-run table (one column per metric) -> long (``metric``, ``value``) rows."""
    ids = [c for c in id_cols if c in df.columns]
    if metrics is None:
        metrics = [c for c in df.columns if c not in ids and pd.api.types.is_numeric_dtype(df[c])]
    long = df.melt(id_vars=ids, value_vars=list(metrics), var_name="metric", value_name="value")
    return long.dropna(subset=["value"]).reset_index(drop=True)


def _map_names(value: Any, names: Mapping[str, str] | None) -> Any:
    if not names:
        return value
    if isinstance(value, str):
        return names.get(value, value)
    if isinstance(value, Mapping):
        return {k: _map_names(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_names(v, names) for v in value]
    return value


def _selector(shared: Mapping[str, Any], side: Any) -> dict:
    sel = dict(shared)
    if isinstance(side, Mapping):
        sel.update(side)
    else:
        sel["method"] = side
    return sel


def _label(sel: Mapping[str, Any]) -> str:
    parts = [str(sel["method"])] if "method" in sel else []
    parts += [f"{k}={v}" for k, v in sel.items() if k != "method"]
    return " ".join(parts)


def _select(df: pd.DataFrame, sel: Mapping[str, Any]) -> tuple[pd.DataFrame | None, str]:
    mask = pd.Series(True, index=df.index)
    for col, val in sel.items():
        if col not in df.columns:
            return None, f"no column {col!r} in the results"
        if _is_number(val) and pd.api.types.is_numeric_dtype(df[col]):
            mask &= df[col] == val
        else:
            mask &= df[col].astype(str) == str(val)
    return df[mask], ""


def _seed_values(rows: pd.DataFrame) -> pd.Series:
    vals = pd.to_numeric(rows["value"], errors="coerce")
    if "seed" in rows.columns:
        return vals.groupby(rows["seed"].astype(str)).mean()
    return pd.Series([vals.mean()], index=["all"])


def _stats(label: str, per_seed: pd.Series) -> dict:
    v = per_seed.to_numpy(dtype=float)
    n = len(v)
    mean = float(np.mean(v)) if n else float("nan")
    std = float(np.std(v, ddof=1)) if n > 1 else 0.0 if n == 1 else float("nan")
    return {"label": label, "mean": mean, "std": std, "n": n,
            "per_seed": {str(k): float(x) for k, x in per_seed.items()}}


def _fmt(s: dict, with_label: bool = True) -> str:
    lab = f"{s['label']}=" if with_label and s["label"] else ""
    if not math.isfinite(s["mean"]):
        return f"{lab}nan"
    return f"{lab}{s['mean']:.4g}±{s['std']:.2g} (n={s['n']})"


def _pair_holds(kind: str, diff: float, tol: float) -> bool:
    if kind == "greater":
        return diff > -tol
    if kind == "at_least":
        return diff >= -tol
    if kind == "less":
        return diff < tol
    raise ValueError(kind)


_OPS = {"greater": ">", "at_least": ">=", "less": "<"}


def _agreement(kind: str, pairs: list[tuple[dict, dict]], tol: float) -> float:
    """Fraction of (pair, shared seed) cases where the per-seed comparison holds."""
    hits = total = 0
    for a, b in pairs:
        for seed in set(a["per_seed"]) & set(b["per_seed"]):
            total += 1
            hits += _pair_holds(kind, a["per_seed"][seed] - b["per_seed"][seed], tol)
    return hits / total if total else float("nan")


def _evaluate_on(claim: Claim, check: Mapping[str, Any], df: pd.DataFrame, experiment) -> ClaimResult:
    kind = check["kind"]
    tol = float(check.get("tolerance", 0.0))
    shared = {k: v for k, v in check.items() if k not in _RESERVED}
    base = ClaimResult(
        id=claim.id, paper=claim.paper, text=claim.text, experiment=experiment, verdict="not run",
        summary="", kind=kind, tolerance=tol, scale=claim.scale, note=claim.note,
    )

    header = "[" + ", ".join(f"{k}={v}" for k, v in shared.items()) + "] " if shared else ""

    def side(sel: Mapping[str, Any], label: str | None = None) -> tuple[dict | None, str]:
        rows, why = _select(df, sel)
        label = label or _label(sel)
        if rows is None:
            return None, why
        per_seed = _seed_values(rows).dropna()
        if per_seed.empty:
            return None, f"no results for {label}"
        return _stats(label, per_seed), ""

    if kind in ("greater", "at_least", "less", "ordering"):
        sides = [check["a"], check["b"]] if kind != "ordering" else list(check["order"])
        sels = [_selector(shared, s) for s in sides]
        labels = [s if isinstance(s, str) else _label(s) for s in sides]
        stats, missing = [], []
        for sel, lab in zip(sels, labels):
            s, why = side(sel, lab)
            if s is None:
                missing.append(why)
            stats.append(s)
        if missing:
            base.reason = "; ".join(missing)
            base.numbers = [s for s in stats if s is not None]
            base.summary = "not run: " + base.reason
            return base
        pair_kind = "greater" if kind == "ordering" else kind
        pairs = list(zip(stats[:-1], stats[1:]))
        ok = all(_pair_holds(pair_kind, a["mean"] - b["mean"], tol) for a, b in pairs)
        op = _OPS[pair_kind]
        base.summary = header + f" {op} ".join(_fmt(s) for s in stats) + (f" (tolerance {tol:g})" if tol else "")
        base.numbers = stats
        base.seed_agreement = _agreement(pair_kind, pairs, tol)
        base.verdict = "holds" if ok else "fails"
        return base

    if kind in ("within", "near"):
        s, why = side(shared)
        if s is None:
            base.reason = why
            base.summary = "not run: " + why
            return base
        base.numbers = [s]
        m = s["mean"]
        if kind == "within":
            lo, hi = check.get("lo"), check.get("hi")
            ok = (lo is None or m >= lo - tol) and (hi is None or m <= hi + tol)
            rng = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
            base.summary = header + f"{_fmt(s, False)} in {rng}" + (f" ± {tol:g}" if tol else "")
            vals = list(s["per_seed"].values())
            base.seed_agreement = float(np.mean([
                (lo is None or v >= lo - tol) and (hi is None or v <= hi + tol) for v in vals]))
        else:
            target = float(check["target"])
            ok = abs(m - target) <= tol
            base.summary = header + f"{_fmt(s, False)} ≈ {target:g} ± {tol:g}"
            base.seed_agreement = float(np.mean([abs(v - target) <= tol for v in s["per_seed"].values()]))
        base.verdict = "holds" if ok else "fails"
        return base

    if kind == "recovers":
        over, by = check["over"], check["by"]
        rows, why = _select(df, shared)
        if rows is None or rows.empty or over not in rows.columns or by not in rows.columns:
            base.reason = why or (f"no results for {_label(shared)}" if rows is None or rows.empty
                                  else f"no column {over!r} or {by!r} in the results")
            base.summary = "not run: " + base.reason
            return base
        by_vals = pd.to_numeric(rows[by], errors="coerce")
        first = check["first"]
        later = check.get("later", "last")
        if later == "last":
            later = by_vals.max()
        first_rows = rows[by_vals == float(first)]
        later_rows = rows[by_vals == float(later)]
        if first_rows.empty or later_rows.empty or float(later) == float(first):
            base.reason = f"need {by}={first} and a later {by} (got {sorted(by_vals.dropna().unique())})"
            base.summary = "not run: " + base.reason
            return base
        groups = {g: _seed_values(r).dropna() for g, r in first_rows.groupby(over)}
        groups = {g: v for g, v in groups.items() if not v.empty}
        if not groups:
            base.reason = f"no values at {by}={first}"
            base.summary = "not run: " + base.reason
            return base
        worst = min(groups, key=lambda g: groups[g].mean())
        later_vals = _seed_values(later_rows[later_rows[over].astype(str) == str(worst)]).dropna()
        if later_vals.empty:
            base.reason = f"no values for {over}={worst} at {by}={later}"
            base.summary = "not run: " + base.reason
            return base
        later_txt = f"{later:g}" if isinstance(later, float) else str(later)
        a = _stats(f"{over}={worst} {by}={later_txt}", later_vals)
        b = _stats(f"{over}={worst} {by}={first}", groups[worst])
        ok = _pair_holds("greater", a["mean"] - b["mean"], tol)
        base.numbers = [a, b]
        base.summary = header + f"{_fmt(a)} > {_fmt(b)}" + (f" (tolerance {tol:g})" if tol else "")
        base.seed_agreement = _agreement("greater", [(a, b)], tol)
        base.verdict = "holds" if ok else "fails"
        return base

    raise ValueError(f"unknown check kind {kind!r}")  # pragma: no cover - validated earlier


def evaluate_claim(
    claim: Claim | Mapping[str, Any],
    results: pd.DataFrame,
    *,
    seeds: Iterable[Any] | None = None,
    names: Mapping[str, str] | None = None,
) -> list[ClaimResult]:
    """Evaluate one claim; one result per experiment (see :func:`evaluate_claims`)."""
    if not isinstance(claim, Claim):
        claim = Claim.from_dict(claim)
    check = _map_names(dict(claim.check), names)
    df = results
    if "value" not in df.columns:
        raise KeyError("results need a 'value' column (long format; see to_long)")
    if seeds is not None and "seed" in df.columns:
        wanted = {str(s) for s in seeds}
        df = df[df["seed"].astype(str).isin(wanted)]
    exp_filter = _map_names(claim.experiment, names)
    has_exp = "experiment" in df.columns
    if exp_filter is not None:
        exps = [exp_filter] if isinstance(exp_filter, str) else list(exp_filter)
        if not has_exp:  # a frame already restricted to one experiment
            return [_evaluate_on(claim, check, df, exps[0])]
        return [_evaluate_on(claim, check, df[df["experiment"].astype(str) == str(e)], e) for e in exps]
    if not has_exp:
        return [_evaluate_on(claim, check, df, None)]
    out = []
    for exp, part in df.groupby(df["experiment"].astype(str), sort=True):
        r = _evaluate_on(claim, check, part, exp)
        if r.numbers:  # this experiment has data for at least one side of the claim
            out.append(r)
    if not out:
        r = _evaluate_on(claim, check, df.iloc[0:0], None)
        out.append(r)
    return out


def evaluate_claims(
    results: pd.DataFrame,
    claims: Iterable[Claim | Mapping[str, Any]],
    *,
    seeds: Iterable[Any] | None = None,
    names: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Evaluate ``claims`` over a long results DataFrame.

    ``results``: columns ``method, metric, value`` and usually ``experiment, seed`` (plus any
    columns a claim filters on). ``seeds`` restricts to the config's seeds. ``names`` maps the
    claim's method/metric/experiment names to the pipeline's (e.g. ``{"probe_r0_dc": "probe_r0_digit"}``).
    A claim without ``experiment`` is evaluated separately in every experiment that has data for
    it (one "not run" row when none does). Returns one row per (claim, experiment): id, paper,
    experiment, text, verdict, summary, kind, tolerance, seed_agreement, reason, scale, note,
    numbers (list of {label, mean, std, n, per_seed}).
    """
    claims = load_claims(claims)
    rows = []
    for c in claims:
        for r in evaluate_claim(c, results, seeds=seeds, names=names):
            rows.append(r.to_dict())
    cols = ["id", "paper", "experiment", "text", "verdict", "summary", "kind", "tolerance",
            "seed_agreement", "reason", "scale", "note", "numbers"]
    return pd.DataFrame(rows, columns=cols)

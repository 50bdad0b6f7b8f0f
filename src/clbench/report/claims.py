"""The claims engine: the papers' qualitative claims, checked against clbench's results.

A claim is an id, a paper, a sentence and a *check* over a long results DataFrame (columns
``experiment, method, seed, metric, value`` plus any others, e.g. ``stage``, ``attribute``,
``split``). Each side of a check selects rows and averages them within a seed; the seeds are the
evidence. The paper modules (:mod:`clbench.papers`) define the claims; nothing here names a paper.
No torch import: pandas, numpy and SciPy's Student t distribution. ``evaluate_claims(...,
health=)`` takes the runs' health table (``results/tables/health.csv``, :mod:`clbench.health`).

Check kinds (the claimed direction is what the rule tests; there is no slack in its favour)
    greater   a > b; ``b`` may be a list (a above each of them)
    less      a < b; ``b`` may be a list
    ordering  greater for every consecutive pair of ``order``
    within    lo <= value <= hi (lo or hi may be null): the band the claim's text states
    recovers  the same selection at ``by`` = ``later`` (a value, or "last" = the largest ``by`` present)
              above ``by`` = ``first``; the selection (e.g. the attribute) is fixed by the claim

Verdicts (:data:`VERDICTS`) and the rule that decides them (:data:`RULES`)
    one seed                  "direction only (n=1)"; ``direction`` says whether the one seed goes the
                              claimed way. One seed is no evidence of a difference, so never "holds".
    two or more seeds         a comparison is paired by seed: d_s = a_s - b_s (b_s - a_s for less);
                              a one-sided t-test of mean(d) > 0 at alpha = 0.05 -> "holds", of
                              mean(d) < 0 at alpha = 0.05 -> "fails", else "inconclusive". ordering and
                              a list of b: "holds" when every pair holds, "fails" when any pair fails.
                              within: one-sided one-sample t-tests against each edge -> "holds" when
                              the mean is inside both edges at alpha = 0.05, "fails" when it is outside
                              one of them at alpha = 0.05, else "inconclusive".
    identical differences     (every seed's difference the same, sd = 0: a t-test has no variance)
                              the exact one-sided sign test: p = 0.5^n for the claimed direction
                              when every difference goes that way (so 3 seeds cannot reach 0.05:
                              inconclusive; 5 can), and all-zero differences are inconclusive (p = 1).
                              The same for a band's edge.
    ``scale: paper`` claims   a magnitude of the paper's scale: at another scale the verdict is
                              "not comparable at this scale" (the numbers are still shown)
    an unhealthy run          "undecided": a side reads a run whose health (``health.csv``, passed as
                              ``health=``) is "failed"; the summary names it: ``undecided: <method>
                              seed <s> did not train (<reason>)``. Checked before any test.
    a missing or NaN seed     "undecided": a seed that has a value on one side of the claim but none
                              (NaN or no row) on another, or NaN on its only side, is never dropped
                              from the pairing: the summary names it, ``undecided: <side> seed <s>
                              has no value (NaN)`` (or ``(missing)``)
    no data                   "not run"

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
    "UNDECIDED",
    "RULES",
    "ALPHA",
    "load_claims",
    "evaluate_claim",
    "evaluate_claims",
    "to_long",
]

HOLDS, FAILS, INCONCLUSIVE = "holds", "fails", "inconclusive"
DIRECTION_ONLY = "direction only (n=1)"
NOT_COMPARABLE = "not comparable at this scale"
NOT_RUN = "not run"
UNDECIDED = "undecided"
VERDICTS = (HOLDS, FAILS, INCONCLUSIVE, DIRECTION_ONLY, NOT_COMPARABLE, UNDECIDED, NOT_RUN)

ALPHA = 0.05  # the one-sided tests' level

AS_CLAIMED, AGAINST, NO_DIFFERENCE = "as claimed", "against the claim", "no difference"

RULES = {
    "n=1": "one seed: the direction only, no verdict",
    "paired": f"one-sided paired t-test over seeds, alpha = {ALPHA:g}: holds when the claimed difference is "
              f"significant, fails when the opposite one is, else inconclusive",
    "pairs": f"every pair by a one-sided paired t-test over seeds, alpha = {ALPHA:g}: holds when every pair "
             f"holds, fails when any pair fails, else inconclusive",
    "band": f"one-sided one-sample t-tests against the band's edges, alpha = {ALPHA:g}: holds when the mean is "
            f"inside every edge, fails when it is outside one, else inconclusive",
    "scale": "a magnitude at the paper's scale: not compared at another scale",
    "identical": f"identical paired differences (sd = 0): the exact one-sided sign test, p = 0.5^n for the "
                 f"claimed direction (3 seeds cannot reach alpha = {ALPHA:g}); all-zero differences are inconclusive",
    "health": "a side reads a run whose health check failed: undecided, naming the run and the reason",
    "missing": "a seed with a value on one side but NaN or none on another is never dropped: undecided, "
               "naming the seed",
    "untested": "no t-test could be computed (see the evidence): inconclusive",
}


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
    scale: str | None = None  # "paper": a magnitude only comparable at the paper's scale
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
    rule: str = ""
    direction: str = ""  # the mean's direction relative to the claim: as claimed, against the claim, no difference
    p_value: float = float("nan")  # the test's p for the claimed direction (the largest over pairs or edges)
    numbers: list[dict] = field(default_factory=list)  # one per side: label, mean, std, n, per_seed
    seed_agreement: float = float("nan")  # fraction of (pair, seed) cases going the claimed way
    reason: str = ""
    scale: str | None = None
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


_KIND_KEYS = {
    "greater": {"a", "b"},
    "less": {"a", "b"},
    "ordering": {"order"},
    "within": set(),
    "recovers": {"by", "first"},
}
_RESERVED = {"kind", "a", "b", "order", "lo", "hi", "by", "first", "later"}


def _validate_check(cid: str, check: Mapping[str, Any]) -> None:
    kind = check.get("kind")
    if kind not in _KIND_KEYS:
        raise ValueError(f"claim {cid!r}: unknown check kind {kind!r} (one of {sorted(_KIND_KEYS)})")
    if "tolerance" in check:
        raise ValueError(f"claim {cid!r}: a check has no tolerance (no slack in the claim's favour); "
                         f"state the band in the claim's text and in lo/hi of a 'within' check")
    missing = _KIND_KEYS[kind] - set(check)
    if missing:
        raise ValueError(f"claim {cid!r}: check {kind!r} needs {sorted(missing)}")
    if kind == "within" and check.get("lo") is None and check.get("hi") is None:
        raise ValueError(f"claim {cid!r}: 'within' needs lo and/or hi")
    if kind == "within" and check.get("lo") is not None and check.get("hi") is not None and check["lo"] > check["hi"]:
        raise ValueError(f"claim {cid!r}: 'within' needs lo <= hi")
    if kind == "ordering" and len(check["order"]) < 2:
        raise ValueError(f"claim {cid!r}: 'ordering' needs at least two entries")
    if kind in ("greater", "less") and isinstance(check["b"], list) and not check["b"]:
        raise ValueError(f"claim {cid!r}: an empty list of b")


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


# ---- the statistics ------------------------------------------------------------------------------


def _identical(values: np.ndarray) -> bool:
    """Equal up to floating-point rounding (0.81 - 0.61 and 0.8 - 0.6 differ in the last bit)."""
    return bool(np.ptp(values) <= 1e-9 * float(np.max(np.abs(values))))


def _one_sided_p(values: np.ndarray) -> tuple[float, float]:
    """One-sample t-test of the values' mean against 0: (p for mean > 0, p for mean < 0). Needs n >= 2.

    Identical values (sd = 0) have no t statistic: the exact one-sided sign test decides, p = 0.5^n on
    their side and 1 on the other (1 on both when they are all 0), so a handful of seeds that tie
    exactly (a quantised metric) cannot reach significance by accident."""
    from scipy.special import stdtr

    n = len(values)
    mean = float(np.mean(values))
    if _identical(values):  # (np.std of equal floats can round to 1e-17 and fake a huge t)
        if mean == 0.0:
            return 1.0, 1.0
        return (0.5**n, 1.0) if mean > 0 else (1.0, 0.5**n)
    sd = float(np.std(values, ddof=1))
    t = mean / (sd / math.sqrt(n))
    below = float(stdtr(n - 1, t))  # P(T <= t)
    return 1.0 - below, below


def _direction(diff: float) -> str:
    return AS_CLAIMED if diff > 0 else AGAINST if diff < 0 else NO_DIFFERENCE


@dataclass
class _Decision:
    verdict: str
    direction: str
    p: float  # p for the claimed direction
    agreement: float
    n: int
    note: str = ""


def _decide_pair(a: dict, b: dict, sign: float) -> _Decision:
    """The claim ``sign * (a - b) > 0`` over the seeds both sides have."""
    seeds = sorted(set(a["per_seed"]) & set(b["per_seed"]))
    d = np.array([sign * (a["per_seed"][s] - b["per_seed"][s]) for s in seeds], dtype=float)
    if len(d) == 0:
        return _Decision(NOT_RUN, "", float("nan"), float("nan"), 0, "no seed has both sides")
    agreement = float(np.mean(d > 0))
    mean = float(np.mean(d))
    if len(d) == 1:
        return _Decision(DIRECTION_ONLY, _direction(mean), float("nan"), agreement, 1)
    if not np.all(np.isfinite(d)):
        return _Decision(INCONCLUSIVE, _direction(mean) if not math.isnan(mean) else "", float("nan"), agreement,
                         len(d), "a seed's difference is not finite (e.g. a target never reached); the t-test "
                                 "needs finite differences")
    p_claim, p_against = _one_sided_p(d)
    verdict = HOLDS if p_claim < ALPHA else FAILS if p_against < ALPHA else INCONCLUSIVE
    identical = _identical(d)
    return _Decision(verdict, _direction(mean), p_claim, agreement, len(d),
                     "identical differences: sign test" if identical else "")


def _combine(decisions: list[_Decision]) -> _Decision:
    """Several pairs: holds when all hold, fails when any fails; direction as claimed when all are."""
    verdicts = [d.verdict for d in decisions]
    if NOT_RUN in verdicts:
        return next(d for d in decisions if d.verdict == NOT_RUN)
    if all(v == DIRECTION_ONLY for v in verdicts):
        verdict = DIRECTION_ONLY
    elif FAILS in verdicts:
        verdict = FAILS
    elif all(v == HOLDS for v in verdicts):
        verdict = HOLDS
    else:
        verdict = INCONCLUSIVE
    directions = [d.direction for d in decisions]
    direction = AS_CLAIMED if all(x == AS_CLAIMED for x in directions) else AGAINST if AGAINST in directions \
        else NO_DIFFERENCE
    ps = [d.p for d in decisions if not math.isnan(d.p)]
    return _Decision(verdict, direction, max(ps) if ps else float("nan"),
                     float(np.mean([d.agreement for d in decisions])), min(d.n for d in decisions),
                     "; ".join(d.note for d in decisions if d.note))


def _decide_band(values: np.ndarray, lo: float | None, hi: float | None) -> _Decision:
    inside = [(lo is None or v >= lo) and (hi is None or v <= hi) for v in values]
    agreement = float(np.mean(inside))
    mean = float(np.mean(values))
    direction = "inside the band" if (lo is None or mean >= lo) and (hi is None or mean <= hi) else "outside the band"
    if len(values) == 1:
        return _Decision(DIRECTION_ONLY, direction, float("nan"), agreement, 1)
    ps_in, outside = [], False
    for edge, sign in ((lo, 1.0), (hi, -1.0)):
        if edge is None:
            continue
        p_in, p_out = _one_sided_p(sign * (values - edge))
        ps_in.append(p_in)
        outside |= p_out < ALPHA
    verdict = FAILS if outside else HOLDS if all(p < ALPHA for p in ps_in) else INCONCLUSIVE
    identical = _identical(values)
    return _Decision(verdict, direction, max(ps_in), agreement, len(values),
                     "identical differences: sign test" if identical else "")


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
    """The side's value per seed: the mean of its rows, NaN when any of them is NaN (never skipped)."""
    vals = pd.to_numeric(rows["value"], errors="coerce")
    if "seed" in rows.columns:
        return vals.groupby(rows["seed"].astype(str)).agg(lambda v: v.mean(skipna=False))
    return pd.Series([vals.mean(skipna=False)], index=["all"])


def _seed_order(seed: str):
    return (0, int(seed), "") if seed.lstrip("-").isdigit() else (1, 0, seed)


def _missing_seeds(sides: Sequence[tuple[str, pd.DataFrame]]) -> list[str]:
    """Every (side, seed) without a value: NaN, or no row where another side has one (see RULES["missing"])."""
    if any("seed" not in rows.columns for _, rows in sides):
        return []
    values = [(label, _seed_values(rows)) for label, rows in sides]
    seeds = sorted({s for _, v in values for s in v.index}, key=_seed_order)
    out = []
    for label, v in values:
        for seed in seeds:
            if seed not in v.index:
                out.append(f"{label} seed {seed} has no value (missing)")
            elif pd.isna(v[seed]):
                out.append(f"{label} seed {seed} has no value (NaN)")
    return out


RUN_KEYS = ("experiment", "method", "seed")


def _unhealthy_runs(sides: Sequence[tuple[str, pd.DataFrame]], health: pd.DataFrame | None) -> list[str]:
    """``<method> seed <s> did not train (<reason>)`` for every run a side reads whose health failed."""
    if health is None or health.empty or "status" not in health.columns:
        return []
    failed = health[health["status"].astype(str) == "failed"]
    out: list[str] = []
    for _, rows in sides:
        keys = [c for c in RUN_KEYS if c in rows.columns and c in failed.columns]
        if "method" not in keys or "seed" not in keys:
            continue
        for key in rows[keys].drop_duplicates().itertuples(index=False):
            match = failed
            for col, val in zip(keys, key):
                match = match[match[col].astype(str) == str(val)]
            if match.empty:
                continue
            if "stage" in match.columns:  # the whole run's row (no stage) holds every stage's reasons
                whole = match[match["stage"].isna() | (match["stage"].astype(str) == "")]
                match = whole if len(whole) else match
            reasons = [str(r) for r in match.get("reasons", pd.Series(dtype=str)).dropna() if str(r)]
            seed = dict(zip(keys, key))["seed"]
            out.append(f"{dict(zip(keys, key))['method']} seed {seed} did not train ({'; '.join(reasons) or 'failed'})")
    return list(dict.fromkeys(out))


def _stats(label: str, per_seed: pd.Series) -> dict:
    v = per_seed.to_numpy(dtype=float)
    n = len(v)
    with np.errstate(invalid="ignore"):  # a seed that never reached a target is inf: its std is nan
        mean = float(np.mean(v)) if n else float("nan")
        std = float(np.std(v, ddof=1)) if n > 1 else 0.0 if n == 1 else float("nan")
    return {"label": label, "mean": mean, "std": std, "n": n,
            "per_seed": {str(k): float(x) for k, x in per_seed.items()}}


def _fmt(s: dict, with_label: bool = True) -> str:
    lab = f"{s['label']}=" if with_label and s["label"] else ""
    if not math.isfinite(s["mean"]):
        return f"{lab}{s['mean']}"
    return f"{lab}{s['mean']:.4g}±{s['std']:.2g} (n={s['n']})"


def _evidence(decision: _Decision) -> str:
    if decision.verdict == DIRECTION_ONLY:
        return f"; one seed, {decision.direction}"
    if math.isnan(decision.p):
        return f"; {decision.note}" if decision.note else ""
    return f"; p = {decision.p:.3g} over {decision.n} seeds" + (f" ({decision.note})" if decision.note else "")


def _finish(base: ClaimResult, decision: _Decision, rule: str) -> ClaimResult:
    base.direction = decision.direction
    base.p_value = decision.p
    base.seed_agreement = decision.agreement
    if decision.verdict == NOT_RUN:
        base.reason = decision.note
        base.summary = "not run: " + decision.note
        return base
    base.verdict = decision.verdict
    untested = decision.verdict == INCONCLUSIVE and math.isnan(decision.p)
    base.rule = RULES["n=1"] if decision.verdict == DIRECTION_ONLY else RULES["untested"] if untested else rule
    if "identical differences" in decision.note:
        base.rule = f"{rule}; {RULES['identical']}"
    base.summary += _evidence(decision)
    return base


def _evaluate_on(claim: Claim, check: Mapping[str, Any], df: pd.DataFrame, experiment,
                 health: pd.DataFrame | None = None) -> ClaimResult:
    kind = check["kind"]
    shared = {k: v for k, v in check.items() if k not in _RESERVED}
    base = ClaimResult(
        id=claim.id, paper=claim.paper, text=claim.text, experiment=experiment, verdict=NOT_RUN,
        summary="", kind=kind, scale=claim.scale, note=claim.note,
    )

    header = "[" + ", ".join(f"{k}={v}" for k, v in shared.items()) + "] " if shared else ""
    read: list[tuple[str, pd.DataFrame]] = []  # every side's label and rows, for undecided()

    def side(sel: Mapping[str, Any], label: str | None = None) -> tuple[dict | None, str]:
        rows, why = _select(df, sel)
        label = label or _label(sel)
        if rows is None:
            return None, why
        if rows.empty:
            return None, f"no results for {label}"
        read.append((label, rows))
        per_seed = _seed_values(rows).dropna()
        return _stats(label, per_seed), ""

    def undecided() -> ClaimResult | None:
        """A side reads a failed run, or a seed without a value: the claim is undecided, naming them."""
        unhealthy = _unhealthy_runs(read, health)
        why = unhealthy or _missing_seeds(read)
        if not why:
            return None
        base.verdict = UNDECIDED
        base.rule = RULES["health"] if unhealthy else RULES["missing"]
        base.reason = "; ".join(why)
        base.summary = "undecided: " + base.reason
        return base

    def not_run(why: str, numbers: list | None = None) -> ClaimResult:
        base.reason = why
        base.numbers = numbers or []
        base.summary = "not run: " + why
        return base

    if kind in ("greater", "less", "ordering"):
        if kind == "ordering":
            sides, op, sign = list(check["order"]), ">", 1.0
        else:
            others = check["b"] if isinstance(check["b"], list) else [check["b"]]
            sides, op, sign = [check["a"], *others], ">" if kind == "greater" else "<", 1.0 if kind == "greater" else -1.0
        labels = [s if isinstance(s, str) else _label(s) for s in sides]
        stats, missing = [], []
        for s, lab in zip(sides, labels):
            st, why = side(_selector(shared, s), lab)
            if st is None:
                missing.append(why)
            stats.append(st)
        if missing:
            return not_run("; ".join(missing), [s for s in stats if s is not None])
        base.numbers = stats
        if undecided() is not None:
            return base
        if kind == "ordering":
            pairs = list(zip(stats[:-1], stats[1:]))
            base.summary = header + f" {op} ".join(_fmt(s) for s in stats)
        else:
            pairs = [(stats[0], other) for other in stats[1:]]
            base.summary = header + f"{_fmt(stats[0])} {op} " + ", ".join(_fmt(s) for s in stats[1:])
        base.numbers = stats
        decisions = [_decide_pair(a, b, sign) for a, b in pairs]
        return _finish(base, _combine(decisions), RULES["paired"] if len(pairs) == 1 else RULES["pairs"])

    if kind == "within":
        s, why = side(shared)
        if s is None:
            return not_run(why)
        base.numbers = [s]
        if undecided() is not None:
            return base
        lo, hi = check.get("lo"), check.get("hi")
        rng = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
        base.summary = header + f"{_fmt(s, False)} in {rng}"
        values = np.array(list(s["per_seed"].values()), dtype=float)
        return _finish(base, _decide_band(values, lo, hi), RULES["band"])

    if kind == "recovers":
        by = check["by"]
        rows, why = _select(df, shared)
        if rows is None or rows.empty or by not in rows.columns:
            return not_run(why or (f"no results for {_label(shared)}" if rows is None or rows.empty
                                   else f"no column {by!r} in the results"))
        by_vals = pd.to_numeric(rows[by], errors="coerce")
        first, later = check["first"], check.get("later", "last")
        if later == "last":
            later = by_vals.max()
        first_rows, later_rows = rows[by_vals == float(first)], rows[by_vals == float(later)]
        if first_rows.empty or later_rows.empty or float(later) == float(first):
            return not_run(f"need {by}={first} and a later {by} (got {sorted(by_vals.dropna().unique())})")
        later_txt = f"{later:g}" if isinstance(later, float) else str(later)
        a = _stats(f"{by}={later_txt}", _seed_values(later_rows).dropna())
        b = _stats(f"{by}={first}", _seed_values(first_rows).dropna())
        base.numbers = [a, b]
        read.extend([(a["label"], later_rows), (b["label"], first_rows)])
        if undecided() is not None:
            return base
        base.summary = header + f"{_fmt(a)} > {_fmt(b)}"
        return _finish(base, _decide_pair(a, b, 1.0), RULES["paired"])

    raise ValueError(f"unknown check kind {kind!r}")  # pragma: no cover - validated earlier


def _at_scale(result: ClaimResult, scale: str | None) -> ClaimResult:
    """A paper-scale magnitude at another scale: the numbers stand, the verdict is "not comparable"."""
    if result.scale == "paper" and scale is not None and scale != "paper" and result.verdict not in (NOT_RUN, UNDECIDED):
        result.verdict = NOT_COMPARABLE
        result.rule = RULES["scale"]
    return result


def evaluate_claim(
    claim: Claim | Mapping[str, Any],
    results: pd.DataFrame,
    *,
    seeds: Iterable[Any] | None = None,
    names: Mapping[str, str] | None = None,
    scale: str | None = None,
    health: pd.DataFrame | None = None,
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
            return [_at_scale(_evaluate_on(claim, check, df, exps[0], health), scale)]
        present = set(df["experiment"].astype(str))
        ran = [e for e in exps if str(e) in present]  # a listed experiment this configuration does not run is left out
        if not ran:
            return [_evaluate_on(claim, check, df.iloc[0:0], exps[0] if len(exps) == 1 else None)]
        return [_at_scale(_evaluate_on(claim, check, df[df["experiment"].astype(str) == str(e)], e, health), scale)
                for e in ran]
    if not has_exp:
        return [_at_scale(_evaluate_on(claim, check, df, None, health), scale)]
    out = []
    for exp, part in df.groupby(df["experiment"].astype(str), sort=True):
        r = _evaluate_on(claim, check, part, exp, health)
        if r.numbers:  # this experiment has data for at least one side of the claim
            out.append(_at_scale(r, scale))
    if not out:
        out.append(_evaluate_on(claim, check, df.iloc[0:0], None))
    return out


CLAIM_COLUMNS = ["id", "paper", "experiment", "text", "verdict", "summary", "kind", "rule", "direction", "p_value",
                 "seed_agreement", "reason", "scale", "note", "numbers"]


def evaluate_claims(
    results: pd.DataFrame,
    claims: Iterable[Claim | Mapping[str, Any]],
    *,
    seeds: Iterable[Any] | None = None,
    names: Mapping[str, str] | None = None,
    scale: str | None = None,
    health: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Evaluate ``claims`` over a long results DataFrame.

    ``results``: columns ``method, metric, value`` and usually ``experiment, seed`` (plus any
    columns a claim filters on). ``seeds`` restricts to the config's seeds. ``names`` maps the
    claim's method/metric/experiment names to the pipeline's (e.g. ``{"probe_r0_dc": "probe_r0_digit"}``).
    ``scale`` is the results' scale (``tiny``, ``paper`` ...): a ``scale: paper`` claim is "not
    comparable" at another; None compares every claim. ``health``: the runs' health table
    (``results/tables/health.csv``: experiment, method, seed, stage, status, reasons); a claim a side of
    which reads a "failed" run is "undecided" (None: no run is taken as unhealthy). A claim without ``experiment`` is evaluated
    separately in every experiment that has data for it (one "not run" row when none does); a claim
    that lists its experiments, in those of them the results have. Returns
    one row per (claim, experiment), columns :data:`CLAIM_COLUMNS`.
    """
    claims = load_claims(claims)
    rows = []
    for c in claims:
        for r in evaluate_claim(c, results, seeds=seeds, names=names, scale=scale, health=health):
            rows.append(r.to_dict())
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)

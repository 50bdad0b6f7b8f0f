"""A table as HTML: its own horizontal scroll box, number columns right-aligned, text left.

Apart from the report page (:mod:`clbench.report.html`) so that a paper's own HTML note (a table in place of a
one-bar figure) does not tie the result tables' jobs to the page's code.
"""

from __future__ import annotations

import html
import re
from typing import Iterable

import pandas as pd

__all__ = ["cell_text", "is_numeric_column", "table_html"]

# A cell that reads as a number (a mean ± std, a range, a count, several joined by "; ", a dash for
# none) is right-aligned.
_NUMBER = r"[-+−]?(?:\d[\d,]*\.?\d*|\.\d+)(?:e[-+]?\d+)?\s*%?"
_VALUE = rf"[≈~<>]?\s*{_NUMBER}(?:\s*[±–-]\s*{_NUMBER})*"
_NUMERIC_CELL = re.compile(rf"^\s*(?:{_VALUE}(?:\s*;\s*{_VALUE})*|—|nan|NaN)\s*$")


def cell_text(v) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "—"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def is_numeric_column(values) -> bool:
    """Whether every cell of a column reads as a number or is blank (a dash, nothing), and one is not blank."""
    texts = [t for t in (cell_text(v).strip() for v in values) if t not in ("", "—")]
    return bool(texts) and all(_NUMERIC_CELL.match(t) for t in texts)


def table_html(df: pd.DataFrame, html_columns: Iterable[str] = (), wide: Iterable[str] = ()) -> str:
    """``df`` as a table in its own horizontal scroll container: number columns right-aligned, text
    columns left-aligned. Cells of ``html_columns`` are HTML already (the rest is escaped); ``wide``
    columns hold sentences and get room to be read."""
    html_columns, wide = set(html_columns), set(wide)
    numeric = {c for c in df.columns if c not in html_columns and is_numeric_column(df[c])}

    def cls(col) -> str:
        names = [n for n, on in (("num", col in numeric), ("wide", col in wide)) if on]
        return f" class='{' '.join(names)}'" if names else ""

    # a long metric name may wrap after its underscores rather than widen its column
    head = "".join(f"<th{cls(c) if c in numeric else ''}>{html.escape(str(c)).replace('_', '_<wbr>')}</th>"
                   for c in df.columns)
    rows = []
    for values in df.itertuples(index=False):
        cells = "".join(f"<td{cls(c)}>{v if c in html_columns else html.escape(cell_text(v))}</td>"
                        for c, v in zip(df.columns, values))
        rows.append(f"<tr>{cells}</tr>")
    return f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"

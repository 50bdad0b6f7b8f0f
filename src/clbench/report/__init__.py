"""Aggregated tables, figures and the paper-style HTML report (no torch import here)."""

"""Which code made a result: the git commit of the package's checkout, whether its tree was dirty, and
the hash of the package code a job ran (:mod:`clbench.code_hash`).

The commit comes from ``git`` when the package lies in a repository that tracks it. A ``git archive``
export has no repository: there ``git_commit.txt`` (beside this module, marked ``export-subst`` in
``.gitattributes``) holds the commit, which ``git archive`` writes into it; its dirty state is unknown
(None). Every trainer records :func:`record` in ``run.json``; the report names the commit and flags
results made by different code (:func:`mixed_code`).
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
COMMIT_FILE = PACKAGE / "git_commit.txt"
UNKNOWN = "unknown"


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(PACKAGE), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _from_repository() -> dict | None:
    """Commit and dirty flag from git, when a repository tracks this package (not one it merely lies in)."""
    if _git("ls-files", "--error-unmatch", Path(__file__).name) is None:
        return None
    full = _git("rev-parse", "HEAD")
    if not full:
        return None
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"commit": full, "dirty": bool(status) if status is not None else None, "source": "git"}


def _from_export(path: Path = COMMIT_FILE) -> dict | None:
    """The commit ``git archive`` wrote into ``path`` (still the placeholder outside an export)."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if len(text) == 40 and all(c in "0123456789abcdef" for c in text):
        return {"commit": text, "dirty": None, "source": "git archive"}
    return None


@functools.lru_cache(maxsize=1)
def checkout() -> dict:
    """``{commit, commit_short, dirty, source}`` of the code this process runs (commit ``unknown`` when
    neither git nor an export says)."""
    found = _from_repository() or _from_export() or {"commit": UNKNOWN, "dirty": None, "source": None}
    return {**found, "commit_short": found["commit"][:12] if found["commit"] != UNKNOWN else UNKNOWN}


def describe(info: Mapping | None = None) -> str:
    """``abc123def456`` / ``abc123def456 (dirty)`` / ``unknown``."""
    info = info or checkout()
    short = info.get("commit_short") or str(info.get("commit", UNKNOWN))[:12]
    return f"{short} (dirty)" if info.get("dirty") else short


def record(code_hash: str | None) -> dict:
    """What ``run.json`` records under ``provenance``."""
    info = checkout()
    return {"commit": info["commit"], "commit_short": info["commit_short"], "dirty": info["dirty"],
            "code_hash": code_hash}


def mixed_code(runs: Iterable[tuple[str, Mapping | None]]) -> list[str]:
    """Notes on results made by different code, from ``(run name, run.json's provenance)`` pairs:

    - the runs of one method (same name but the seed) whose code hashes differ: their seeds ran different code;
    - the commits the runs come from, when more than one (or one dirty tree, or runs recording none).
    """
    runs = list(runs)
    notes = []
    by_method: dict[str, dict[str, list[str]]] = {}
    for name, prov in runs:
        method, _, seed = name.rpartition("/seed")
        code = (prov or {}).get("code_hash") or UNKNOWN
        by_method.setdefault(method or name, {}).setdefault(code, []).append(seed or name)
    for method, codes in sorted(by_method.items()):
        if len(codes) > 1:
            parts = "; ".join(f"code {code[:12]}: seeds {', '.join(sorted(seeds))}" for code, seeds in sorted(codes.items()))
            notes.append(f"{method}: its seeds ran different code ({parts})")
    commits: dict[str, list[str]] = {}
    for name, prov in runs:
        commits.setdefault(describe(prov) if prov else "not recorded", []).append(name)
    if len(commits) > 1 or any("dirty" in c or c in ("not recorded", UNKNOWN) for c in commits):
        listed = []
        for commit, names in sorted(commits.items(), key=lambda kv: -len(kv[1])):
            shown = ", ".join(sorted(names)[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
            listed.append(f"{commit}: {len(names)} run{'s' if len(names) != 1 else ''} ({shown})")
        notes.append("the runs come from " + ("different commits" if len(commits) > 1 else "one commit")
                     + ": " + "; ".join(listed))
    return notes

"""Which code made a result: the commit (also in a `git archive` export), the dirty flag, and the report's
note on results made by different code."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from clbench import provenance
from clbench.report.html import code_provenance_html, git_commit
from conftest import REPO

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _git(cwd, *args) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def _checkout_in(folder) -> dict:
    """provenance.checkout() as the module sees it from ``folder`` (run in a fresh interpreter)."""
    code = "import json, provenance; print(json.dumps(provenance.checkout()))"
    done = subprocess.run([sys.executable, "-c", code], cwd="/", env={"PYTHONPATH": str(folder), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


@pytest.fixture
def repository(tmp_path):
    """A repository holding the provenance module, its export-subst commit file and .gitattributes."""
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(provenance.__file__, repo / "provenance.py")
    shutil.copy(provenance.COMMIT_FILE, repo / provenance.COMMIT_FILE.name)
    (repo / ".gitattributes").write_text(f"{provenance.COMMIT_FILE.name} export-subst\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    return repo


def test_commit_and_dirty_flag_from_git(repository):
    head = _git(repository, "rev-parse", "HEAD")
    assert _checkout_in(repository) == {"commit": head, "commit_short": head[:12], "dirty": False, "source": "git"}
    with open(repository / "provenance.py", "a") as f:
        f.write("\n# edited\n")
    assert _checkout_in(repository)["dirty"] is True


def test_commit_from_a_git_archive_export(repository, tmp_path):
    head = _git(repository, "rev-parse", "HEAD")
    export = tmp_path / "export"
    export.mkdir()
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=repository, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(export)], input=archive, check=True)
    assert not (export / ".git").exists()
    assert _checkout_in(export) == {"commit": head, "commit_short": head[:12], "dirty": None, "source": "git archive"}


def test_without_git_or_export_the_commit_is_unknown(repository, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    shutil.copy(repository / "provenance.py", plain)
    shutil.copy(repository / provenance.COMMIT_FILE.name, plain)  # still the placeholder
    assert _checkout_in(plain)["commit"] == "unknown"


def test_the_repository_exports_its_commit():
    assert provenance.COMMIT_FILE.read_text().strip() == "$Format:%H$"
    rules = (REPO / ".gitattributes").read_text().splitlines()
    assert f"src/clbench/{provenance.COMMIT_FILE.name} export-subst" in rules


def _prov(commit, code, dirty=False):
    return {"commit": commit * 40, "commit_short": commit * 12, "dirty": dirty, "code_hash": code}


def test_mixed_code_notes():
    same = [("e/m/seed0", _prov("a", "h1")), ("e/m/seed1", _prov("a", "h1")), ("e/n/seed0", _prov("a", "h2"))]
    assert provenance.mixed_code(same) == []  # methods differ in code by design; one clean commit
    seeds = [("e/m/seed0", _prov("a", "h1")), ("e/m/seed1", _prov("b", "h9"))]
    notes = provenance.mixed_code(seeds)
    assert any(n.startswith("e/m: its seeds ran different code") and "seeds 1" in n for n in notes)
    assert any("different commits" in n and "bbbbbbbbbbbb: 1 run (e/m/seed1)" in n for n in notes)
    assert any("dirty" in n for n in provenance.mixed_code([("e/m/seed0", _prov("a", "h1", dirty=True))]))
    assert any("not recorded" in n for n in provenance.mixed_code([("e/m/seed0", None)]))


def test_the_report_names_its_commit_and_flags_mixed_code(tmp_path):
    assert git_commit() == provenance.describe()
    for seed, prov in enumerate([_prov("a", "h1"), _prov("a", "h2")]):
        run = tmp_path / "runs" / "e" / "m" / f"seed{seed}"
        run.mkdir(parents=True)
        (run / "run.json").write_text(json.dumps({"provenance": prov}))
    shown = code_provenance_html(tmp_path)
    assert "Results made by different code" in shown and "e/m: its seeds ran different code" in shown
    (tmp_path / "runs" / "e" / "m" / "seed1" / "run.json").write_text(json.dumps({"provenance": _prov("a", "h1")}))
    assert code_provenance_html(tmp_path) == ""

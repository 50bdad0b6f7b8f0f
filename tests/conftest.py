import os
import re
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("OUTDATED_IGNORE", "1")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture
def shared_mnist_raw() -> Path:
    raw = SHARED_DATA / "mnist" / "MNIST" / "raw"
    if not raw.exists():
        pytest.skip("../shared/data/mnist is not present (only developers' checkouts have it)")
    return raw


def snakemake_exe() -> str:
    """The snakemake of the running interpreter's environment (also when the venv is not activated)."""
    beside = Path(sys.executable).parent / "snakemake"
    exe = str(beside) if beside.exists() else shutil.which("snakemake")
    assert exe is not None, "snakemake is not installed: pip install -e '.[test]'"
    # Jobs call `clbench`, which must be found on PATH next to this interpreter.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return exe


def job_counts(stdout: str) -> dict[str, int]:
    """Jobs per rule from the 'Job stats' table a snakemake run or dry run prints."""
    stats = stdout.split("Job stats:")[1].split("\n\n")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M) if m.group(1) != "total"}

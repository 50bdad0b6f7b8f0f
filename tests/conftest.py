import os
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

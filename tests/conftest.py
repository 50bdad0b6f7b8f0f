import os
import shutil
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
    exe = shutil.which("snakemake")
    if exe is None:
        pytest.skip("snakemake is not installed")
    return exe

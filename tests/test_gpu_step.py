"""benchmarks/gpu_step.py: the GPU check runs its code path on the CPU at small shapes."""

from __future__ import annotations

import json
import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_step  # noqa: E402

COLUMNS = {"family", "device", "processes", "image", "encoder", "batch", "steps", "amp", "channels_last", "augment",
           "workers", "images/s", "ms/step", "data wait", "peak GiB", "loss"}


def test_every_family_has_a_paper_method():
    cfg = gpu_step.paper_config()
    for name in gpu_step.FAMILIES:
        spec, shape = gpu_step.family_spec(cfg, name, small=False, workers=None)
        assert spec["batch_size"] >= 1 and "mcl" not in spec and shape["size"] >= 28
    # the paper's global batch over its GPUs: VarCon on ImageNet-1K, 1024 over 8; MCL's CLIP, 8000 over 8
    assert gpu_step.family_spec(cfg, "varcon_imagenet", small=False, workers=None)[0]["batch_size"] == 128
    clip = gpu_step.family_spec(cfg, "clip_mcl_cc12m", small=False, workers=None)[0]
    assert clip["batch_size"] == 1000 and clip["clip"]["model"] == "ViT-L-14"


def test_small_run_on_the_cpu(tmp_path, capsys):
    out = tmp_path / "rows.json"
    families = ["clear_vae_styled_mnist", "mcl_infonce_trifeature224", "clip_mcl_cc12m"]
    rows = gpu_step.main(["--small", "--device", "cpu", "--only", *families, "--ddp", "off", "--json", str(out)])
    assert [r["family"] for r in rows] == families
    for row in rows:
        assert set(row) == COLUMNS
        assert row["device"] == "cpu" and row["amp"] == "off" and row["steps"] == gpu_step.SMALL["steps"]
        assert row["images/s"] > 0 and 0 <= row["data wait"] <= 1
    assert rows[1]["image"] == "3x32x32" and rows[1]["augment"] == "simclr on cpu"  # 224 px made small
    assert json.loads(out.read_text()) == rows
    assert "| clear_vae_styled_mnist | cpu |" in capsys.readouterr().out


@pytest.mark.slow
def test_two_process_ddp_step_on_the_cpu():
    rows = gpu_step.main(["--small", "--device", "cpu", "--only", "clear_vae_styled_mnist", "--ddp", "on"])
    single, ddp = rows
    assert (single["processes"], ddp["processes"]) == (1, 2)
    assert ddp["batch"] == 2 * single["batch"] and ddp["images/s"] > 0 and ddp["scaling"] is not None

"""The README's "Extending clbench" examples, executed: each adds its piece and uses it."""

import copy
import re
import sys
import types

import pytest
import yaml

from conftest import REPO


def readme_blocks(heading: str) -> list[tuple[str, str]]:
    """(language, code) of every fenced block in the README section under ``heading``."""
    text = (REPO / "README.md").read_text()
    start = text.index(f"\n{heading}\n")
    end = re.search(r"\n##+ ", text[start + 1:])
    section = text[start:start + 1 + end.start()] if end else text[start:]
    return re.findall(r"```(\w+)\n(.*?)```", section, re.S)


# --------------------------------------------------------------------------------------------------
# Adding a dataset


@pytest.fixture
def checkerboard_generator(monkeypatch):
    """The README's generator module and registry entry, removed again afterwards."""
    from clbench.data import build

    (_, module_code), (_, registration), (_, config) = readme_blocks("### Adding a dataset")
    module = types.ModuleType("clbench.data.checkerboard")
    exec(compile(module_code, "clbench/data/checkerboard.py", "exec"), module.__dict__)
    monkeypatch.setitem(sys.modules, "clbench.data.checkerboard", module)
    assert "checkerboard" not in build.GENERATORS
    exec(compile(registration, "clbench/data/build.py", "exec"), dict(vars(build)))  # as if written in build.py
    yield yaml.safe_load(config)
    build.GENERATORS.pop("checkerboard")


def test_readme_adding_a_dataset(checkerboard_generator, tmp_path):
    from clbench import workflow as wf
    from clbench.data import dataset_dir
    from clbench.data.build import GENERATORS, build_dataset
    from clbench.errors import ConfigError
    from snakemake.utils import update_config

    assert GENERATORS["checkerboard"].module == "clbench.data.checkerboard"
    schema = wf.load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    update_config(cfg, checkerboard_generator)  # the README's config entries, as a --configfile overlay
    wf.validate(cfg, schema)
    assert wf.check_config(cfg, schema) == []
    assert ("checkers_ssl", "infonce", 0) in list(wf.experiment_runs(cfg))

    # the refusal the README quotes, and the registered relation
    bad = copy.deepcopy(cfg)
    bad["datasets"]["checkers"]["options"]["sides"] = [3, 4]
    with pytest.raises(ConfigError) as error:
        wf.check_config(bad, schema)
    quoted = re.search(r"gives\n`(datasets\.checkers\.[^`]*)`", (REPO / "README.md").read_text()).group(1)
    assert str(error.value) == quoted
    bad["datasets"]["checkers"].update(image_size=12, options={"sides": [2, 8]})
    with pytest.raises(ConfigError, match=r"^datasets\.checkers\.options\.sides: every side must divide image_size \(12\)"):
        wf.check_config(bad, schema)

    # the build job's call: a tiny dataset directory of 2x2 and 4x4 boards
    meta = build_dataset(cfg["datasets"]["checkers"], tmp_path / "checkers", tmp_path / "resources")
    dataset_dir.verify(tmp_path / "checkers")
    assert meta["sizes"] == {"train": 400, "val": 100, "test": 100} and meta["image_shape"] == [1, 16, 16]
    assert meta["classes"] == ["2x2", "4x4"] and meta["factors"] == {"phase": ["dark", "light"]}
    train = dataset_dir.load(tmp_path / "checkers", "train")
    assert set(train["y"].tolist()) == {0, 1} and set(train["factor_phase"].tolist()) == {0, 1}
    x, y, phase = train["x"][:, 0], train["y"], train["factor_phase"]
    first = (y == 0) & (phase == 0)  # 2x2, dark top-left square: the top-left quarter is dark, the next one light
    assert (x[first, :8, :8] == 0).all() and (x[first, :8, 8:] == 255).all()
    second = (y == 1) & (phase == 1)  # 4x4, light top-left: squares of 4 pixels
    assert (x[second, :4, :4] == 255).all() and (x[second, :4, 4:8] == 0).all()
    again = build_dataset(cfg["datasets"]["checkers"], tmp_path / "again", tmp_path / "resources")
    assert again["hash"] == meta["hash"]  # seeded: the same spec gives the same arrays

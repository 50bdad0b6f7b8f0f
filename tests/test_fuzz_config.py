"""Random configurations: clbench.workflow accepts them and the dry run succeeds, or it refuses them with
a ConfigError whose message starts with the offending key — never a traceback from deep inside a job."""

import copy
import subprocess

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clbench import workflow
from clbench.errors import ConfigError
from conftest import REPO, snakemake_exe

SCHEMA = workflow.load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")
BASE = yaml.safe_load((REPO / "config.yaml").read_text())

values = st.one_of(st.integers(-5, 5000), st.floats(-1, 10, allow_nan=False), st.text(max_size=6),
                   st.booleans(), st.none(), st.lists(st.integers(0, 3), max_size=3))
method_keys = st.sampled_from(["epochs", "batch_size", "views", "augment", "objective", "projection_dim",
                               "warmup_epochs", "schedule", "bogus_key"])
dataset_keys = st.sampled_from(["n_train", "n_test", "seed", "generator", "recipe", "k", "extra"])
experiment_keys = st.sampled_from(["methods", "seeds", "dataset", "evaluations", "paper", "unknown"])


@st.composite
def mutated_configs(draw):
    cfg = copy.deepcopy(BASE)
    where = draw(st.sampled_from(["methods", "datasets", "experiments"]))
    name = draw(st.sampled_from(sorted(cfg[where])))
    key = draw({"methods": method_keys, "datasets": dataset_keys, "experiments": experiment_keys}[where])
    value = draw(values)
    cfg[where][name][key] = value
    return cfg, (where, name, key, value)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_configs())
def test_random_config_is_accepted_or_rejected_by_name(tmp_path_factory, case):
    cfg, (where, name, key, value) = case
    tmp = tmp_path_factory.mktemp("fuzz")
    (tmp / "config.yaml").write_text(yaml.safe_dump(cfg))
    try:
        checked = workflow.validate(copy.deepcopy(cfg), SCHEMA)
        workflow.check_config(checked, SCHEMA)
        refused = None
    except ConfigError as e:  # the message starts with a dotted key and names the mutated entry
        refused = str(e)
        assert refused.startswith(f"{e.key}: ") and e.key[0].isalpha(), refused
        assert f"{where}.{name}" in refused, refused
        assert key in refused or repr(value)[:20] in refused or str(value)[:20] in refused, refused
    proc = subprocess.run([snakemake_exe(), "-n", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp),
                           "--configfile", str(tmp / "config.yaml")], capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    if refused is None:
        assert proc.returncode == 0, out[-3000:]
    else:  # snakemake refuses it with the same message, before any job
        assert proc.returncode != 0 and "ConfigError" in out and refused.splitlines()[0] in out, out[-3000:]
        assert 'File "' not in out and "Traceback" not in out, out[-3000:]  # one message, no frame lines
    assert not (tmp / "results").exists()

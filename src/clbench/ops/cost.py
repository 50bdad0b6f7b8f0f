"""What a configuration costs before it runs: expected GPU- and CPU-hours per job, downloads and disk.

The expected time of a training or evaluation job is its work (images through the model, counted from
the config: epochs x training images x views, the k-NN monitor, embedding, probes, corruption cells)
divided by a throughput from :data:`TABLE` (``src/clbench/ops/throughput.json``), which
``benchmarks/throughput.py`` writes:

- each model's multiply-accumulates per image (MACs), counted with torch's FLOP counter at the shape
  the config trains it (``workloads``);
- the CPU it ran on, measured: training and forward images/s of every tiny workload at its own shape,
  and the effective MAC rate they give (used for larger shapes);
- a GPU, **not measured** (no GPU was lent where the table was made): NVIDIA's published ResNet-50
  training throughput on one A100 (mixed precision), as a MAC rate, with the same source's 8-GPU
  scaling, and a cap on images/s for small models, whose speed the data path bounds, not MACs.

SLURM time limits follow these estimates (:func:`runtime_minutes`): the expected minutes of a job
times :data:`SAFETY_FACTOR`, at least :data:`MIN_RUNTIME_MINUTES`. ``clbench plan`` prints them
(:mod:`clbench.ops.plan`). Dataset sizes and downloads are published figures (:data:`DATASETS`).

Snakemake imports this module while it parses the workflow (the SLURM time limits): no torch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from clbench import workflow as wf
from clbench.objectives import OBJECTIVES

TABLE = Path(__file__).with_name("throughput.json")

# SLURM time limit = expected time x SAFETY_FACTOR: the GPU figures are published, not measured here, and a
# shared node, the data path and checkpointing slow a job; a job past its limit resumes from its checkpoint
# when retried (the profile's retries), so the factor trades queue priority against a second submission.
SAFETY_FACTOR = 2.0
MIN_RUNTIME_MINUTES = 10
# a job's fixed cost: Python, torch and CUDA start-up, loading the dataset (assumed)
STARTUP_SECONDS = {"gpu": 60.0, "cpu": 5.0}
# CPU jobs that do not train: assumed rates (per core), stated in the plan
DECODE_IMAGES_PER_S = 500.0     # build_dataset: decode, resize and store one image (assumed)
DOWNLOAD_BYTES_PER_S = 50e6     # build_dataset: download rate (assumed)
SMALL_JOB_SECONDS = {"show_dataset": 30.0, "preview_augmentation": 30.0, "analyse": 300.0}  # assumed

GB = 1e9

# Published figures of the datasets the generators download: splits, native image size and channels, and
# the archives they fetch (bytes; an archive shared by datasets is downloaded once). "assumed" where the
# source states no size.
ARCHIVES = {
    "mnist": (11_594_722, "yann.lecun.com/exdb/mnist: the four .gz files"),
    "cifar10": (170_498_071, "torchvision CIFAR10: cifar-10-python.tar.gz"),
    "cifar100": (169_001_437, "torchvision CIFAR100: cifar-100-python.tar.gz"),
    "stl10": (2_640_397_119, "torchvision STL10: stl10_binary.tar.gz"),
    "celeba": (1_443_490_838 + 30_000_000, "torchvision CelebA: img_align_celeba.zip and annotations"),
    "pacs": (200_000_000, "PACS.zip from Google Drive (assumed: about 0.2 GB)"),
    "camelyon17": (10_300_000_000, "WILDS dataset table: camelyon17 v1.0, 10.3 GB"),
    "tu": (100_000_000, "TU Dortmund graph datasets (assumed: under 0.1 GB for the eight)"),
    "wiki1m": (121_000_000, "princeton-nlp/datasets-for-simcse: wiki1m_for_simcse.txt (assumed 0.12 GB)"),
    "senteval": (400_000_000, "princeton-nlp/datasets-for-simcse: senteval.tar (assumed 0.4 GB)"),
    "bert-base-uncased": (440_473_133, "Hugging Face bert-base-uncased: pytorch_model.bin"),
    "roberta-base": (501_200_538, "Hugging Face roberta-base: pytorch_model.bin"),
    "cc12m": (1_100_000_000_000, "CC12M via img2dataset at 256 px (assumed: about 1.1 TB)"),
}
DATASETS = {  # source -> n_train, n_val, n_test, image_size, channels, archives
    "mnist": dict(n_train=60_000, n_val=0, n_test=10_000, image_size=28, channels=3, archives=["mnist"]),
    "cifar10": dict(n_train=50_000, n_val=0, n_test=10_000, image_size=32, channels=3, archives=["cifar10"]),
    "cifar100": dict(n_train=50_000, n_val=0, n_test=10_000, image_size=32, channels=3, archives=["cifar100"]),
    "stl10": dict(n_train=105_000, n_val=0, n_test=8_000, image_size=96, channels=3, archives=["stl10"]),
    "celeba": dict(n_train=162_770, n_val=19_867, n_test=19_962, image_size=64, channels=3, archives=["celeba"]),
    "pacs": dict(n_train=8_000, n_val=1_000, n_test=1_000, image_size=227, channels=3, archives=["pacs"]),
    "camelyon17": dict(n_train=302_436, n_val=34_904, n_test=85_054, image_size=96, channels=3,
                       archives=["camelyon17"]),
    "imagenet100": dict(n_train=126_689, n_val=0, n_test=5_000, image_size=224, channels=3, archives=[]),
    "imagenet1k": dict(n_train=1_281_167, n_val=0, n_test=50_000, image_size=224, channels=3, archives=[]),
    "tu": dict(n_train=5_000, n_val=0, n_test=0, image_size=0, channels=0, archives=["tu"]),
    "sentences": dict(n_train=1_000_000, n_val=1_500, n_test=20_000, image_size=0, channels=0,
                      archives=["wiki1m", "senteval"]),
    "cc12m_mmvp": dict(n_train=12_400_000, n_val=1_000, n_test=300, image_size=224, channels=3, archives=["cc12m"]),
    "generated": dict(n_train=2_000, n_val=250, n_test=1_000, image_size=32, channels=3, archives=[]),
}


def dataset_source(spec: Mapping) -> str:
    """The :data:`DATASETS` entry a dataset spec reads."""
    generator = spec["generator"]
    if generator == "torchvision":
        return spec.get("name", "cifar10")
    if generator in ("styled_mnist", "mnist_on_stl"):
        return "mnist" if spec.get("source", "embedded") == "mnist" else "generated"
    if generator == "imagefolder":
        return "imagenet1k" if "1k" in str(spec.get("name", "")) else "imagenet100"
    return generator if generator in DATASETS else "generated"


def _generated_image_size(spec: Mapping) -> int:
    """The image size a generator writes by default (the MNIST canvas: 28 px)."""
    if spec["generator"] == "styled_mnist":
        return 28
    from clbench.data.build import GENERATORS, effective

    if spec["generator"] in GENERATORS:
        return int(effective(spec).get("image_size") or 32)
    return 32


def dataset_facts(spec: Mapping) -> dict:
    """Splits, image size, channels and archives of one dataset: the spec's values over the source's."""
    source = dataset_source(spec)
    facts = dict(DATASETS[source])
    if source == "generated":
        facts["image_size"] = _generated_image_size(spec)
    options = spec.get("options") or {}
    for key in ("n_train", "n_val", "n_test", "image_size"):
        value = spec.get(key, options.get(key))
        if value is not None:
            facts[key] = value
    archives = list(facts["archives"])
    if spec["generator"] == "mnist_on_stl" and options.get("background") == "stl10":
        archives.append("stl10")
    if spec["generator"] == "sentences":
        archives += list(options.get("models", []))
    if spec.get("root"):  # an existing copy: nothing is downloaded
        archives = []
    facts["archives"] = archives if spec.get("download") or spec["generator"] == "sentences" else []
    return facts


@dataclass(frozen=True)
class Workload:
    """One model at one input shape: what a job pushes its images through."""

    key: str
    family: str
    model: tuple  # (name, settings) the benchmark builds it from
    image_size: int
    channels: int


def workload(cfg: Mapping, experiment: str, method: str) -> Workload:
    spec = wf.method_spec(cfg, experiment, method)
    facts = dataset_facts(cfg["datasets"][cfg["experiments"][experiment]["dataset"]])
    family = OBJECTIVES[spec["objective"]].family
    # training crops (augment's crop_size) set the shape the model sees
    size, channels = int(spec.get("crop_size") or facts["image_size"]), int(facts["channels"])
    if family == "clear_vae":
        vae = spec.get("vae", {})
        model = ("vae", (vae.get("architecture", "conv3"), vae.get("width", 32)))
        key = f"vae-{model[1][0]}-w{model[1][1]}@{size}"
    elif family == "graph":
        graph = spec.get("graph", {})
        model = ("gin", (graph.get("num_layers", 3), graph.get("hidden_dim", 32)))
        key, size, channels = f"gin-l{model[1][0]}-h{model[1][1]}", 0, 0
    elif family == "sentence":
        model = ("sentence", (spec.get("sentence", {}).get("model", "bert-base-uncased"),))
        key, size, channels = f"sentence-{model[1][0]}", 0, 0
    elif family == "clip":
        model = ("clip", (spec.get("clip", {}).get("model") or "tiny",))
        key = f"clip-{model[1][0]}@{size}"
    else:
        enc = spec.get("encoder", {})
        name = enc.get("name", "small_cnn")
        if name == "small_cnn":
            settings = (name, enc.get("width", 32), enc.get("layers", 3), enc.get("pool", "avg"))
            key = f"small_cnn-w{settings[1]}-l{settings[2]}-{settings[3]}@{size}"
        else:
            settings = (name, enc.get("stem", "cifar"))
            key = f"{name}-{settings[1]}@{size}"
        model = ("encoder", settings)
    return Workload(key, family, model, size, channels)


def workloads(cfg: Mapping) -> dict[str, Workload]:
    """Every workload of a configuration's runs, by key."""
    return {w.key: w for w in (workload(cfg, e, m) for e, exp in cfg["experiments"].items() for m in exp["methods"])}


@lru_cache(maxsize=4)
def _load(path: str) -> dict:
    return json.loads(Path(path).read_text())


def load_table(path: str | Path | None = None) -> dict:
    return _load(str(path or TABLE))


def on_gpu(cfg: Mapping) -> bool:
    """Whether training and evaluation jobs run on GPUs (and so count GPU-hours)."""
    return cfg["device"] == "cuda" or (cfg["device"] == "auto" and cfg["gpus_per_train_job"] > 0)


def rates(table: Mapping, w: Workload, gpu: bool, threads: int = 1) -> tuple[float, float, str]:
    """(training images/s, forward images/s, where the figure comes from) of ``w`` on one GPU, or on a CPU
    job's ``threads`` cores (the table's CPU figures are per core-second)."""
    entry = table["workloads"].get(w.key)
    if not gpu and entry and "cpu_train_per_s" in entry:
        return entry["cpu_train_per_s"] * threads, entry["cpu_forward_per_s"] * threads, "measured"
    macs = entry["macs"] if entry else _nearest_macs(table, w)
    device = table["gpu" if gpu else "cpu"]
    scale = 1 if gpu else threads
    cap = device.get("max_images_per_s", math.inf)
    train = min(device["train_macs_per_s"] * scale / macs, cap)
    forward = min(device["forward_macs_per_s"] * scale / macs, cap)
    return train, forward, "published (not measured)" if gpu else "measured MAC rate"


def _nearest_macs(table: Mapping, w: Workload) -> float:
    """A workload the table lacks: the same model at another size, scaled by the image's area."""
    model = w.key.split("@")[0]
    for key, entry in table["workloads"].items():
        if key.split("@")[0] == model and "@" in key and entry.get("macs"):
            return entry["macs"] * (w.image_size / int(key.split("@")[1])) ** 2
    raise KeyError(f"{w.key}: not in {TABLE.name}; run benchmarks/throughput.py to count it")


# --------------------------------------------------------------------------------------------------
# one job's expected seconds


def _seeds_of_job(cfg: Mapping, experiment: str, wildcards: Mapping) -> int:
    """Seeds one job runs: all shared seeds in a grouped job (no seed wildcard), else one."""
    return 1 if "seed" in wildcards else max(1, len(wf.shared_seeds(cfg)))


def _scaling(table: Mapping, gpus: int) -> float:
    """Throughput of ``gpus`` data-parallel GPUs relative to one."""
    eff = table["gpu"].get("multi_gpu_efficiency", {}).get(str(gpus))
    return gpus * (eff if eff is not None else (1.0 if gpus <= 1 else 0.84))


def train_seconds(cfg: Mapping, experiment: str, method: str, stage: int | None = None, table=None) -> float:
    """Expected seconds of one seed's pretraining (one MCL stage when ``stage`` is given)."""
    table = table or load_table()
    spec = wf.method_spec(cfg, experiment, method)
    if stage is not None:
        spec = json.loads(wf.stage_spec(cfg, experiment, method, 0, stage))
    facts = dataset_facts(cfg["datasets"][cfg["experiments"][experiment]["dataset"]])
    gpu = on_gpu(cfg)
    train, forward, _ = rates(table, workload(cfg, experiment, method), gpu, cfg["train_threads"])
    epochs, views = spec.get("epochs", 1), spec.get("views", 1)
    n_train, n_val = facts["n_train"], facts["n_val"] or min(facts["n_test"], 10_000)
    images = epochs * n_train * views
    checks = epochs // spec["val_every"] if spec.get("val_every") else 0
    monitored = checks * (n_train + n_val)
    speed = _scaling(table, wf.method_gpus(cfg, experiment, method, stage) or 1) if gpu else 1.0
    return STARTUP_SECONDS["gpu" if gpu else "cpu"] + (images / train + monitored / forward) / speed


def evaluate_seconds(cfg: Mapping, experiment: str, method: str, table=None) -> float:
    """Expected seconds of one seed's evaluation (the clean one, at cell granularity)."""
    table = table or load_table()
    exp = cfg["experiments"][experiment]
    facts = dataset_facts(cfg["datasets"][exp["dataset"]])
    gpu = on_gpu(cfg)
    _, forward, _ = rates(table, workload(cfg, experiment, method), gpu, cfg["train_threads"])
    images = facts["n_train"] + facts["n_val"] + facts["n_test"]
    probe = wf.experiment_evaluation(cfg, experiment)["probe"]
    if probe.get("protocol", "features") == "augmented":
        images += probe.get("epochs", 100) * facts["n_train"]
    if "corruptions" in exp["evaluations"] and not wf.corruption_cells(cfg, experiment):
        corruptions = cfg["evaluation"]["corruptions"]
        names = wf.CORRUPTION_NAMES if corruptions["names"] == "all" else corruptions["names"]
        images += len(names) * len(corruptions["severities"]) * min(corruptions["n_test"], facts["n_test"])
    return STARTUP_SECONDS["gpu" if gpu else "cpu"] + images / forward


def _embedding_seconds(cfg: Mapping, experiment: str, method: str, size: str, table=None) -> float:
    """A job that starts up and embeds the dataset's ``size`` images (``n_test``, ``n_train``) once."""
    table = table or load_table()
    facts = dataset_facts(cfg["datasets"][cfg["experiments"][experiment]["dataset"]])
    gpu = on_gpu(cfg)
    _, forward, _ = rates(table, workload(cfg, experiment, method), gpu, cfg["train_threads"])
    return STARTUP_SECONDS["gpu" if gpu else "cpu"] + facts[size] / forward


def corruption_cell_seconds(cfg: Mapping, experiment: str, method: str, table=None) -> float:
    return _embedding_seconds(cfg, experiment, method, "n_test", table)


def cluster_seconds(cfg: Mapping, experiment: str, method: str, table=None) -> float:
    return _embedding_seconds(cfg, experiment, method, "n_train", table)


def build_seconds(cfg: Mapping, dataset: str) -> float:
    facts = dataset_facts(cfg["datasets"][dataset])
    images = facts["n_train"] + facts["n_val"] + facts["n_test"]
    return STARTUP_SECONDS["cpu"] + images / DECODE_IMAGES_PER_S + download_bytes(facts["archives"]) / DOWNLOAD_BYTES_PER_S


def corrupt_seconds(cfg: Mapping, dataset: str, table=None) -> float:
    table = table or load_table()
    facts = dataset_facts(cfg["datasets"][dataset])
    rate = table["cpu"]["corrupt_images_per_s_32px"] * (32 / max(facts["image_size"], 1)) ** 2
    return STARTUP_SECONDS["cpu"] + facts["n_test"] / rate


def download_bytes(archives) -> int:
    return sum(ARCHIVES[a][0] for a in set(archives))


def job_seconds(cfg: Mapping, rule: str, wildcards: Mapping) -> float | None:
    """Expected seconds of one job of ``rule`` (the resource name: grouped jobs run several seeds), or None
    for a rule this module does not estimate."""
    w = dict(wildcards)
    if rule in ("pretrain", "pretrain_stage", "cluster_stage", "evaluate", "evaluate_clean", "evaluate_corruption"):
        experiment, method = w["experiment"], w["method"]
        seeds = _seeds_of_job(cfg, experiment, w)
        if rule == "pretrain":
            return seeds * train_seconds(cfg, experiment, method)
        if rule == "pretrain_stage":
            return seeds * train_seconds(cfg, experiment, method, int(w["stage"]))
        if rule == "cluster_stage":
            return seeds * cluster_seconds(cfg, experiment, method)
        if rule == "evaluate_corruption":
            return corruption_cell_seconds(cfg, experiment, method)
        return seeds * evaluate_seconds(cfg, experiment, method)
    if rule == "build_dataset":
        return build_seconds(cfg, w["dataset"])
    if rule == "corrupt_split":
        return corrupt_seconds(cfg, w["dataset"])
    return SMALL_JOB_SECONDS.get(rule)


def runtime_minutes(cfg: Mapping, rule: str, wildcards: Mapping, safety_factor: float | None = None) -> int | None:
    """The SLURM time limit of one job: its expected minutes x the safety factor (``slurm.time_factor``,
    default :data:`SAFETY_FACTOR`), at least :data:`MIN_RUNTIME_MINUTES`; None where this module estimates
    nothing (the scale's size applies)."""
    try:
        seconds = job_seconds(cfg, rule, wildcards)
    except KeyError:  # a model the cost table lacks (benchmarks/throughput.py counts it): the scale's size
        return None
    if seconds is None:
        return None
    factor = safety_factor or cfg.get("slurm", {}).get("time_factor") or SAFETY_FACTOR
    return max(MIN_RUNTIME_MINUTES, math.ceil(seconds * factor / 60))

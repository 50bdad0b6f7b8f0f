"""The registry of dataset generators, and the dispatch of a dataset spec (one entry of the config's
``datasets:``) to its generator.

A :class:`Generator` names the module whose ``build(spec: dict, out_dir: Path, resources_dir: Path)
-> dict`` writes a dataset directory (:mod:`clbench.data.dataset_dir`) and returns its meta, and
declares the spec keys it reads, each as a JSON-schema fragment (type, bounds, choices, default),
plus relations between them. :func:`check_spec` refuses a spec against that declaration when the
workflow is planned, before any job runs, naming the dotted key. Modules are imported lazily, so
this registry is light (the workflow imports it) and building a synthetic dataset never imports torch.

Adding a dataset generator is one module plus one :func:`register_generator` call here (see the
README, "Extending clbench").
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clbench.errors import ConfigError, DatasetError

# keys every spec may carry, whatever its generator (a generator may still declare their valid values)
UNIVERSAL_KEYS = frozenset({"generator", "name", "source", "root", "download", "seed", "options"})


@dataclass(frozen=True)
class Generator:
    """A dataset generator.

    - ``module``: imported when a dataset is built; its ``build(spec, out_dir, resources_dir)``
      writes the dataset directory and returns its meta.
    - ``keys``: the spec keys it reads besides :data:`UNIVERSAL_KEYS`, each a JSON-schema fragment
      with an optional ``description`` (said when a value is refused) and ``default``. A key may sit
      at the top of the spec or under ``options:``.
    - ``relations``: functions ``relation(values, given)`` of the spec's effective values (declared
      defaults, then the spec, then its options) and of the keys the spec sets, returning
      ``(key, problem)`` for a refused combination, or None.
    """

    name: str
    module: str
    doc: str
    keys: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    relations: tuple[Callable[[dict, set], tuple[str, str] | None], ...] = ()

    def defaults(self) -> dict[str, Any]:
        return {key: schema["default"] for key, schema in self.keys.items() if "default" in schema}


GENERATORS: dict[str, Generator] = {}


def register_generator(generator: Generator) -> Generator:
    """Add ``generator`` to :data:`GENERATORS` (refusing a second one of the same name); returns it."""
    if generator.name in GENERATORS and GENERATORS[generator.name] is not generator:
        raise ValueError(f"dataset generator {generator.name!r} is already registered")
    GENERATORS[generator.name] = generator
    return generator


def effective(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The values a spec's generator reads: its declared defaults, then the spec, then ``options``."""
    generator = GENERATORS[spec["generator"]]
    given = {k: v for k, v in spec.items() if k != "options" and v is not None}
    return {**generator.defaults(), **given, **(spec.get("options") or {})}


def reads_key(spec: Mapping[str, Any], key: str) -> bool:
    """Whether ``spec``'s generator reads ``key`` for this spec: it declares it, and no relation
    refuses it given the spec's other values (e.g. styled_mnist reads k only for recipe ood)."""
    generator = GENERATORS[spec["generator"]]
    if key not in generator.keys:
        return False
    values, given = effective(spec), {k for k, v in spec.items() if v is not None} | {key}
    return all((relation(values, given) or (None,))[0] != key for relation in generator.relations)


def check_spec(spec: Mapping[str, Any], where: str) -> None:
    """Refuse a dataset spec against its generator's declaration, raising :class:`ConfigError` at
    the dotted key (``where`` is the spec's own key, e.g. ``datasets.styled_digits``)."""
    import jsonschema

    name = spec.get("generator")
    if name not in GENERATORS:
        raise ConfigError(f"{where}.generator", f"unknown generator {name!r}; known: {', '.join(sorted(GENERATORS))}")
    generator = GENERATORS[name]
    options = spec.get("options") or {}
    for at, block in ((where, {k: v for k, v in spec.items() if k != "options"}), (f"{where}.options", options)):
        for key, value in block.items():
            if key not in generator.keys:
                if key in UNIVERSAL_KEYS and at == where:
                    continue
                if value is None and at == where:
                    continue  # a schema default the generator has no use for
                known = ", ".join(sorted(generator.keys)) or "none besides the common ones"
                raise ConfigError(f"{at}.{key}", f"generator {name} reads no {key}; its keys: {known}")
            schema = generator.keys[key]
            error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(value))
            if error is not None:
                about = f" ({schema['description']})" if "description" in schema else ""
                inside = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
                raise ConfigError(f"{at}.{key}{inside}", f"{error.message}{about}")
    values = effective(spec)
    given = {k for k, v in spec.items() if k != "options" and v is not None} | set(options)
    for relation in generator.relations:
        refused = relation(values, given)
        if refused is not None:
            key, problem = refused
            raise ConfigError(f"{where}.{'options.' if key in options else ''}{key}", problem)


def build_dataset(spec: dict, out_dir: str | Path, resources_dir: str | Path = "resources") -> dict:
    """Write the dataset directory of ``spec`` into ``out_dir``; returns its meta. The generator's
    own module refuses what it cannot build (the workflow has checked the spec with :func:`check_spec`).

    ``spec["needs"]`` (see :func:`unmet_need`), when the experiments reading the dataset need something
    of data the plan could not see (a downloaded TU dataset's class sizes): a built dataset that does not
    meet it loses its ``meta.json`` (so nothing trusts the directory) and the job fails here, before any
    training job reads it, saying what to change.
    """
    spec = dict(spec)
    needs = spec.pop("needs", None)
    generator = spec.get("generator")
    if generator not in GENERATORS:
        raise ValueError(f"unknown dataset generator {generator!r}; expected one of {sorted(GENERATORS)}")
    module = importlib.import_module(GENERATORS[generator].module)
    meta = module.build(spec, Path(out_dir), Path(resources_dir))
    if needs and (problem := unmet_need(meta, needs)):
        (Path(out_dir) / "meta.json").unlink(missing_ok=True)
        raise DatasetError(f"{meta.get('name', generator)}: {problem}")
    return meta


def unmet_need(meta: Mapping, needs: Mapping) -> str | None:
    """What a built dataset's ``meta`` lacks of ``needs`` (None when it has all):
    ``{"min_class_size": n, "by": who needs it, "key": the config key to change}``: every class of a graph
    dataset (``meta["graph_stats"]``) holds at least ``n`` graphs."""
    least = needs.get("min_class_size")
    stats = meta.get("graph_stats") or {}
    small = {name: s["graphs"] for name, s in stats.items() if least and s["graphs"] < least}
    if not small:
        return None
    listed = ", ".join(f"class {name!r} has {n}" for name, n in sorted(small.items(), key=lambda kv: kv[1]))
    return (f"{listed} graphs, fewer than the {least} that {needs.get('by', 'its evaluation')} needs; use a dataset "
            f"whose classes hold at least {least} graphs, or remove the evaluation from {needs.get('key', 'it')}")


# --------------------------------------------------------------------------------------------------
# the generators (each module's docstring describes its keys in full; a test checks that the keys
# declared here are the ones its build accepts)


def _integer(minimum: int | None = None, maximum: int | None = None, null: bool = False, **extra) -> dict:
    out: dict[str, Any] = {"type": ["integer", "null"] if null else "integer", **extra}
    if minimum is not None:
        out["minimum"] = minimum
    if maximum is not None:
        out["maximum"] = maximum
    return out


def _fraction(**extra) -> dict:
    return {"type": "number", "minimum": 0, "exclusiveMaximum": 1, **extra}


_CAPS = {"n_train": _integer(1, null=True), "n_val": _integer(0, null=True), "n_test": _integer(1, null=True)}
_SIZES = {"n_train": _integer(1), "n_val": _integer(0), "n_test": _integer(1)}
_DIGITS = {"enum": ["embedded", "mnist"], "description": "scikit-learn's digits (offline) or MNIST"}
_BOOLEAN_OR_DEFAULT = {"type": ["boolean", "null"]}
_WORKERS = _integer(1, description="decoding threads")


def _only_with(key: str, other: str, allowed: tuple) -> Callable[[dict, set], tuple[str, str] | None]:
    """``key`` is read only when ``other`` is one of ``allowed``: elsewhere it would be silently ignored."""

    def relation(values: dict, given: set) -> tuple[str, str] | None:
        if key in given and values.get(other) not in allowed and values[key] is not False:
            return key, (f"applies only with {other}: {' or '.join(map(str, allowed))}, "
                         f"not {other}: {values.get(other)!r} (it would be ignored)")
        return None

    return relation


def _required(key: str) -> Callable[[dict, set], tuple[str, str] | None]:
    def relation(values: dict, given: set) -> tuple[str, str] | None:
        return None if key in given else (key, "required, but missing")

    return relation


register_generator(Generator(
    "styled_mnist", "clbench.data.styled_mnist",
    "CLEAR's Styled-MNIST: digits x 6 styles, independent or OOD-k",
    keys={
        "source": _DIGITS,
        "recipe": {"enum": ["independent", "ood"], "default": "independent"},
        # 6 styles; OOD-k holds at least one out of training for every digit
        "k": _integer(1, 5, default=3, description="ood: styles per digit seen in training, 1..5 of the 6 styles"),
        "ood_design": {"enum": ["random", "cyclic"], "default": "random",
                       "description": "ood: each digit's k styles drawn at random (the official code) or a cyclic design"},
        **_SIZES,
        "image_size": {"const": 28, "description": "the MNIST canvas"},
        "jitter": _BOOLEAN_OR_DEFAULT,
    },
    relations=(_only_with("k", "recipe", ("ood",)), _only_with("ood_design", "recipe", ("ood",))),
))

register_generator(Generator(
    "mnist_on_stl", "clbench.data.mnist_on_stl",
    "the sub-embedding poster's MNIST digits on STL-10 (or photograph) backgrounds, in view pairs",
    keys={
        "source": _DIGITS,
        "background": {"enum": ["embedded", "stl10"]},
        "background_root": {"type": ["string", "null"]},
        "backgrounds": {"type": ["array", "null"], "items": {"type": "string"}, "minItems": 1},
        "image_size": _integer(8),
        "grid": _integer(1, description="locations per side"),
        "digit_size": _integer(4, null=True),
        "tiles": _integer(2, description="tiles per side of each photograph, disjoint between splits"),
        "jitter": _BOOLEAN_OR_DEFAULT,
        "pairs": {"type": "boolean"},
        "vary": {"type": "array", "minItems": 1, "uniqueItems": True,
                 "items": {"enum": ["digit", "location", "background"]}},
        "share_nuisance": {"type": "boolean"},
        **_SIZES,
    },
))

register_generator(Generator(
    "trifeature", "clbench.data.trifeature",
    "MCL's Trifeature: shape x colour x texture, a share of the triplets held out",
    keys={
        "source": {"enum": ["embedded", "procedural", None], "description": "procedural, nothing to read"},
        "recipe": {"const": "heldout_triplets"},
        "holdout": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "image_size": _integer(8),
        "supersample": _integer(1, null=True),
        **_SIZES,
    },
))

register_generator(Generator(
    "gaussian_mixture", "clbench.data.gaussian_mixture",
    "CLEAR's MI simulation: a Gaussian mixture whose spread follows a schedule",
    keys={
        "d": _integer(1), "n_components": _integer(2), "period": _integer(1),
        "spreads": {"type": "array", "minItems": 1, "items": {"type": "number", "exclusiveMinimum": 0}},
        "separation": {"type": "number", "exclusiveMinimum": 0},
        "n_steps": _integer(1), "batch_size": _integer(1), "n_train": _integer(1, null=True),
        "n_val": _integer(0), "n_test": _integer(1), "mi_samples": _integer(1), "n_neighbors": _integer(1),
    },
))

register_generator(Generator(
    "torchvision", "clbench.data.torchvision_sources",
    "MNIST, CIFAR-10/100, STL-10 and CelebA from torchvision's files",
    keys={
        "name": {"enum": ["mnist", "cifar10", "cifar100", "stl10", "celeba"]},
        "image_size": _integer(1), "channels": {"enum": [1, 3]}, **_CAPS, "val_fraction": _fraction(),
        "unlabeled": {"type": "boolean"}, "n_unlabeled": _integer(0, null=True),
        "hair": {"enum": ["exclusive", "official", "all"]}, "workers": _WORKERS,
        "recipe": {"enum": ["official_partition", "ood_k"],
                   "description": "celeba: the official partition (default) or CLEAR's OOD-k split by hair colour"},
        "k": _integer(1, 3, description="celeba ood_k: hair colours per class seen in training, 1..3 of 4"),
        "ood_design": {"enum": ["random", "cyclic"],
                       "description": "celeba ood_k: each class's k hair colours at random (the official draw) or cyclic"},
    },
    relations=(_required("name"), _only_with("unlabeled", "name", ("stl10",)), _only_with("n_unlabeled", "name", ("stl10",)),
               _only_with("hair", "name", ("celeba",)), _only_with("recipe", "name", ("celeba",)),
               _only_with("k", "recipe", ("ood_k",)), _only_with("ood_design", "recipe", ("ood_k",))),
))

register_generator(Generator(
    "pacs", "clbench.data.pacs",
    "PACS: 7 classes x 4 domains, OOD-k or leave-one-domain-out",
    keys={
        "recipe": {"enum": ["ood_k", "lodo"], "default": "ood_k"},
        # 4 domains; OOD-k holds at least one out of training for every class
        "k": _integer(1, 3, default=2, description="ood_k: domains per class seen in training, 1..3 of the 4 domains"),
        "ood_design": {"enum": ["random", "cyclic"], "default": "random",
                       "description": "ood_k: each class's k domains drawn at random (the official code) or a cyclic "
                                      "design (every domain seen for some class)"},
        "test_domain": {"enum": ["art_painting", "cartoon", "photo", "sketch"]},
        "image_size": _integer(1), "val_fraction": _fraction(), **_CAPS, "workers": _WORKERS,
        "url": {"type": "string"}, "md5": {"type": ["string", "null"]},
    },
    relations=(_only_with("k", "recipe", ("ood_k",)), _only_with("ood_design", "recipe", ("ood_k",)),
               _only_with("test_domain", "recipe", ("lodo",))),
))

register_generator(Generator(
    "camelyon17", "clbench.data.camelyon",
    "Camelyon17-WILDS patches, hospital as style",
    keys={
        "split_scheme": {"enum": ["official", "mixed-to-test"]}, "ood_val": {"type": "boolean"},
        "image_size": _integer(1), **_CAPS, "n_ood_val": _integer(1, null=True),
        "storage": {"enum": ["array", "paths"]}, "workers": _WORKERS,
    },
    relations=(_only_with("n_ood_val", "ood_val", (True,)),),
))

register_generator(Generator(
    "imagefolder", "clbench.data.imagefolder",
    "an ImageFolder tree (ImageNet-100 / ImageNet-1K), kept on disk as a path index",
    keys={
        "classes": {"type": ["string", "array"], "items": {"type": "string"}},
        "storage": {"enum": ["paths", "array"]}, "image_size": _integer(1), **_CAPS,
        "val_fraction": _fraction(), "test_fraction": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "workers": _WORKERS,
    },
))

# graphs (packed in the dataset directory, see clbench.data.graphs): generated classes and TU datasets
register_generator(Generator(
    "graph_classes", "clbench.data.graphs",
    "generated graphs, one class per structure (cycles, trees, grids, SBMs ...), a share of edges rewired",
    keys={
        "classes": {"type": "array", "minItems": 2, "uniqueItems": True,
                    "items": {"enum": ["cycle", "tree", "grid", "ladder", "star_forest", "sbm1", "sbm2", "sbm3",
                                       "sbm4"]},
                    "default": ["tree", "cycle", "grid"], "description": "one structure per class"},
        "n_graphs": _integer(2, default=300, description="graphs in all (the evaluation cross-validates over them)"),
        "min_nodes": _integer(3, default=12), "max_nodes": _integer(3, default=30),
        "noise": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.15,
                  "description": "share of each graph's edges moved to random endpoints"},
    },
    relations=(lambda values, given: None if values["min_nodes"] <= values["max_nodes"]
               else ("max_nodes", f"must be >= min_nodes ({values['min_nodes']})"),),
))

register_generator(Generator(
    "tu", "clbench.data.tu",
    "a TU graph-classification dataset (NCI1, PROTEINS, DD, MUTAG, COLLAB, REDDIT-*, IMDB-*), torch_geometric's reader",
    keys={
        "name": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$", "description": "the TU dataset's name, e.g. MUTAG"},
        "node_features": {"enum": ["auto", "constant"], "default": "auto",
                          "description": "auto: one-hot node labels where the dataset has them, else the constant 1"},
    },
    relations=(_required("name"),),
))

register_generator(Generator(
    "sentences", "clbench.data.sentences",
    "SimCSE's Wikipedia sentences for training, SentEval's STS tasks for model selection and test",
    keys={
        "n_train": _integer(1, null=True, description="the first n training sentences (unset: all)"),
        "wiki_url": {"type": "string"}, "senteval_url": {"type": "string"},
        "models": {"type": "array", "items": {"type": "string"}, "uniqueItems": True,
                   "description": "Hugging Face models fetched with the data, for the training jobs to load offline"},
    },
))

# image-caption datasets for CLIP (clbench.data.image_text): captions beside the images, a pair benchmark as test
register_generator(Generator(
    "trifeature_captions", "clbench.data.trifeature_captions",
    "captioned Trifeature ('a red square with stripes') with an MMVP-style pair test per attribute",
    keys={
        "image_size": _integer(8, default=32), "n_values": _integer(2, 10, default=4,
                                                                     description="shapes, colours and textures used"),
        "n_pairs": _integer(1, default=15, description="test pairs per attribute"),
        "n_train": _integer(1, default=2000), "n_val": _integer(1, default=200),
    },
))

register_generator(Generator(
    "cc12m_mmvp", "clbench.data.cc12m_mmvp",
    "CC12M image-caption pairs (img2dataset files) for training, MMVP-VLM's 135 pairs as test",
    keys={
        "image_size": _integer(1, default=224), "n_train": _integer(1, null=True), "n_val": _integer(1, default=1000),
        "mmvp_root": {"type": ["string", "null"], "description": "an existing MMVP-VLM copy (Questions.csv + images)"},
        "url_list": {"type": ["string", "null"], "description": "CC12M's list file, downloaded with img2dataset"},
        "image_fit": {"enum": ["shortest_side", "centre_square"], "default": "shortest_side",
                      "description": "how test and clustering images are fitted to the square: open_clip's eval "
                                     "transform (shortest_side, the official code's) or a centre square, bilinear"},
        "workers": _WORKERS,
    },
))

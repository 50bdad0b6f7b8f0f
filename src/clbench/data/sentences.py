"""Unsupervised sentence-embedding data: SimCSE's Wikipedia sentences and SentEval's STS tasks.

The dataset directory (generator ``sentences``) keeps the usual contract; its arrays hold sentence
indices into a UTF-8 table stored in the same archive, so a million sentences take their bytes, not
a fixed-width string array sized by the longest one:

- ``text`` (uint8, the UTF-8 bytes of every sentence of the split, back to back) and ``offsets``
  (int64 ``[M + 1]``): sentence m is ``text[offsets[m]:offsets[m + 1]]`` (:func:`sentences`);
- ``train``: ``x`` the sentence index of each training sentence (``y`` 0: unlabelled);
- ``val`` (STS-B dev) and ``test`` (STS12-16, STS-B test, SICK-R test): ``x`` and ``x2`` the
  indices of a pair's two sentences, ``y`` its gold score (float64), ``factor_task`` its task
  (``meta["factors"]["task"]``) and ``factor_subset`` its subset (``meta["subsets"]``: the year's
  sources for STS12-16, the split otherwise).

Sources, in their published layouts:

- ``wiki1m_for_simcse.txt``: one sentence per line (SimCSE's 10^6 sentences from English Wikipedia);
- ``models`` (a spec key): Hugging Face models (``bert-base-uncased``, ``roberta-base``) fetched into
  ``resources/huggingface`` by the build job; ``meta["models"]`` maps each name to its local snapshot,
  which the training jobs load instead of reaching the hub;
- ``senteval/``: SentEval's ``data/downstream`` folder (``senteval.tar`` of SimCSE's download script):
  ``STS/STS1{2..6}-en-test/STS.input.<source>.txt`` (two tab-separated sentences per line) and
  ``STS.gs.<source>.txt`` (one gold score per line; an empty line is an unscored pair, dropped as
  SentEval drops it), ``STS/STSBenchmark/sts-{train,dev,test}.csv`` (tab-separated, no header:
  genre, file, year, id, score, sentence 1, sentence 2) and ``SICK/SICK_{train,trial,test_annotated}.txt``
  (tab-separated with a header: pair_ID, sentence_A, sentence_B, relatedness_score, entailment_judgment).

SentEval splits each sentence on whitespace and its batcher joins the tokens with single spaces;
the loaders normalise the same way (:func:`normalise`).
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import tarfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from clbench.data import dataset_dir
from clbench.data.imagefolder import download_hint, merged_spec, resolve_root
from clbench.errors import DatasetError

log = logging.getLogger(__name__)

WIKI_URL = "https://huggingface.co/datasets/princeton-nlp/datasets-for-simcse/resolve/main/wiki1m_for_simcse.txt"
SENTEVAL_URL = "https://huggingface.co/datasets/princeton-nlp/datasets-for-simcse/resolve/main/senteval.tar"
WIKI_FILE = "wiki1m_for_simcse.txt"
# the spec keys build reads besides the common ones (clbench.data.build declares their values)
ACCEPTED = ("n_train", "wiki_url", "senteval_url", "models")
# the files of a Hugging Face model repository that from_pretrained reads (no other frameworks' weights)
MODEL_FILES = ["*.json", "*.txt", "*.safetensors", "*.model"]

# SentEval's sources of each STS year (senteval/sts.py; STS13 without its licensed SMT source)
STS_SOURCES = {
    "STS12": ("MSRpar", "MSRvid", "SMTeuroparl", "surprise.OnWN", "surprise.SMTnews"),
    "STS13": ("FNWN", "headlines", "OnWN"),
    "STS14": ("deft-forum", "deft-news", "headlines", "images", "OnWN", "tweet-news"),
    "STS15": ("answers-forums", "answers-students", "belief", "headlines", "images"),
    "STS16": ("answer-answer", "headlines", "plagiarism", "postediting", "question-question"),
}
TEST_TASKS = (*STS_SOURCES, "STSBenchmark", "SICKRelatedness")

LAYOUT = f"""<root>/
  {WIKI_FILE}                        one sentence per line
  senteval/STS/STS12-en-test/STS.input.MSRpar.txt, STS.gs.MSRpar.txt, ... (STS12..STS16, SentEval's sources)
  senteval/STS/STSBenchmark/sts-dev.csv, sts-test.csv
  senteval/SICK/SICK_test_annotated.txt
"""

Pairs = tuple[list[str], list[str], np.ndarray]


def normalise(sentence: str) -> str:
    """SentEval's view of a sentence: its whitespace-separated tokens joined by single spaces."""
    return " ".join(sentence.split())


def read_wiki(path: str | os.PathLike, limit: int | None = None) -> list[str]:
    """The sentences of a one-sentence-per-line file (the first ``limit``), line ends stripped."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if limit is not None and len(out) >= limit:
                break
            out.append(line.rstrip("\n").rstrip("\r"))
    if not out:
        raise DatasetError(f"{path} holds no sentences")
    return out


def read_sts_source(folder: str | os.PathLike, source: str) -> Pairs:
    """One STS12-16 source: ``STS.input.<source>.txt`` pairs with their ``STS.gs.<source>.txt`` scores;
    pairs whose gold line is empty are dropped (SentEval: unscored)."""
    folder = Path(folder)
    pairs = (folder / f"STS.input.{source}.txt").read_text(encoding="utf-8").splitlines()
    gold = (folder / f"STS.gs.{source}.txt").read_text(encoding="utf-8").splitlines()
    if len(pairs) != len(gold):
        raise DatasetError(f"{folder}: {len(pairs)} pairs in STS.input.{source}.txt but {len(gold)} gold lines")
    s1, s2, scores = [], [], []
    for n, (pair, score) in enumerate(zip(pairs, gold), 1):
        if score.strip() == "":
            continue
        parts = pair.split("\t")
        if len(parts) != 2:
            raise DatasetError(f"{folder / f'STS.input.{source}.txt'} line {n}: expected 2 tab-separated sentences")
        s1.append(normalise(parts[0]))
        s2.append(normalise(parts[1]))
        scores.append(float(score))
    return s1, s2, np.asarray(scores, dtype=np.float64)


def _read_scored_pairs(path: str | os.PathLike, first: int, sentences: tuple[int, int], score: int) -> Pairs:
    """Tab-separated rows from line ``first`` on: two sentences and a gold score, at the given columns."""
    s1, s2, scores = [], [], []
    needed = max(*sentences, score) + 1
    with io.open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if n < first:
                continue
            cols = line.strip().split("\t")
            if len(cols) < needed:
                raise DatasetError(f"{path} line {n}: expected >= {needed} tab-separated columns, got {len(cols)}")
            s1.append(normalise(cols[sentences[0]]))
            s2.append(normalise(cols[sentences[1]]))
            scores.append(float(cols[score]))
    return s1, s2, np.asarray(scores, dtype=np.float64)


def read_stsb(path: str | os.PathLike) -> Pairs:
    """An STS-B ``sts-*.csv``: tab-separated genre, file, year, id, score, sentence 1, sentence 2 (no header)."""
    return _read_scored_pairs(path, first=1, sentences=(5, 6), score=4)


def read_sick(path: str | os.PathLike) -> Pairs:
    """A SICK ``SICK_*.txt``: a header line, then pair_ID, sentence_A, sentence_B, relatedness_score, ..."""
    return _read_scored_pairs(path, first=2, sentences=(1, 2), score=3)


def read_task(senteval: str | os.PathLike, task: str, split: str = "test") -> list[tuple[str, Pairs]]:
    """SentEval task ``task`` as ``[(subset, pairs)]``: STS12-16 one entry per source (their test
    sets), STSBenchmark / SICKRelatedness the one ``split`` (``dev`` or ``test``)."""
    senteval = Path(senteval)
    if task in STS_SOURCES:
        folder = senteval / "STS" / f"{task}-en-test"
        return [(source, read_sts_source(folder, source)) for source in STS_SOURCES[task]]
    if task == "STSBenchmark":
        return [(split, read_stsb(senteval / "STS" / "STSBenchmark" / f"sts-{split}.csv"))]
    if task == "SICKRelatedness":
        name = {"train": "train", "dev": "trial", "test": "test_annotated"}[split]
        return [(split, read_sick(senteval / "SICK" / f"SICK_{name}.txt"))]
    raise ValueError(f"unknown STS task {task!r}; known: {', '.join(TEST_TASKS)}")


# --------------------------------------------------------------------------------------------------
# the split archives


def pack(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """A sentence table: the UTF-8 bytes back to back (uint8) and the ``[M + 1]`` int64 offsets."""
    encoded = [t.encode("utf-8") for t in texts]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(), offsets


def sentences(split: Mapping[str, np.ndarray], key: str = "x") -> list[str]:
    """The sentences a split's ``key`` (``x`` or ``x2``) points to, in order."""
    text, offsets = split["text"].tobytes(), split["offsets"]
    return [text[offsets[i]:offsets[i + 1]].decode("utf-8") for i in np.asarray(split[key])]


def _pair_split(tasks: list[tuple[str, list[tuple[str, Pairs]]]], task_names: list[str],
                subset_names: list[str]) -> dict[str, np.ndarray]:
    texts: list[str] = []
    x, x2, y, task_id, subset_id = [], [], [], [], []
    for task, parts in tasks:
        for subset, (s1, s2, scores) in parts:
            start = len(texts)
            texts += s1 + s2
            n = len(s1)
            x.append(np.arange(start, start + n))
            x2.append(np.arange(start + n, start + 2 * n))
            y.append(scores)
            task_id.append(np.full(n, task_names.index(task)))
            key = f"{task}/{subset}"
            if key not in subset_names:
                subset_names.append(key)
            subset_id.append(np.full(n, subset_names.index(key)))
    text, offsets = pack(texts)
    return {"x": np.concatenate(x).astype(np.int64), "x2": np.concatenate(x2).astype(np.int64),
            "y": np.concatenate(y).astype(np.float64), "factor_task": np.concatenate(task_id).astype(np.int64),
            "factor_subset": np.concatenate(subset_id).astype(np.int64), "text": text, "offsets": offsets}


def sentence_figure(split: Mapping[str, np.ndarray], title: str, n: int = 12, width: int = 110):
    """A matplotlib Figure listing a split's first ``n`` sentences (pairs with their gold score), for
    ``clbench data show``."""
    from matplotlib.figure import Figure

    first = sentences({**split, "x": np.asarray(split["x"])[:n]}, "x")
    if "x2" in split:
        second = sentences({**split, "x2": np.asarray(split["x2"])[:n]}, "x2")
        lines = [f"{float(g):.2f}  {a[:width // 2]}  |  {b[:width // 2]}" for a, b, g in zip(first, second, split["y"])]
    else:
        lines = [s[:width] for s in first]
    fig = Figure(figsize=(11, 0.16 * len(lines) + 0.5))
    ax = fig.add_subplot()
    ax.axis("off")
    ax.set_title(title + (" (gold score, sentence 1 | sentence 2)" if "x2" in split else ""), fontsize=9, loc="left")
    ax.text(0, 1, "\n".join(lines), va="top", ha="left", family="monospace", fontsize=7, transform=ax.transAxes)
    return fig


def check_root(root: Path) -> DatasetError | None:
    """The first file of :data:`LAYOUT` that ``root`` lacks, as the error to raise, or None."""
    senteval = root / "senteval"
    needed = [root / WIKI_FILE, senteval / "STS" / "STSBenchmark" / "sts-dev.csv",
              senteval / "STS" / "STSBenchmark" / "sts-test.csv", senteval / "SICK" / "SICK_test_annotated.txt"]
    for task, sources in STS_SOURCES.items():
        folder = senteval / "STS" / f"{task}-en-test"
        needed += [folder / f"STS.{kind}.{s}.txt" for s in sources for kind in ("input", "gs")]
    for path in needed:
        if not path.is_file():
            return DatasetError(f"sentence data: {path} is missing.\nExpected layout:\n{LAYOUT}"
                                f"{download_hint('sentences', root.parent)}")
    return None


def fetch(tmp: Path, wiki_url: str = WIKI_URL, senteval_url: str = SENTEVAL_URL) -> None:
    """Download the Wikipedia sentences and SentEval's archive into ``tmp`` in :data:`LAYOUT`."""
    from torchvision.datasets.utils import download_url

    download_url(wiki_url, str(tmp), WIKI_FILE)
    download_url(senteval_url, str(tmp / ".download"), "senteval.tar")
    with tarfile.open(tmp / ".download" / "senteval.tar") as tar:
        tar.extractall(tmp / ".download" / "x", filter="data")
    extracted = tmp / ".download" / "x"
    # the archive holds SentEval's data/downstream folders (STS/, SICK/, ...), possibly under a parent
    found = next((p.parent for p in sorted(extracted.rglob("STSBenchmark")) if p.parent.name == "STS"), None)
    if found is None:
        raise DatasetError(f"{senteval_url} does not contain SentEval's STS/STSBenchmark folder")
    os.replace(found.parent, tmp / "senteval")
    shutil.rmtree(tmp / ".download")


def fetch_model(name: str, cache: Path, download: bool) -> Path:
    """The local snapshot of Hugging Face model ``name`` in ``cache`` (``resources/huggingface``),
    downloaded when ``download`` is true and it is not there yet."""
    from clbench.extras import require

    require("sentences", f"the pretrained sentence encoder {name}")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, cache_dir=str(cache), allow_patterns=MODEL_FILES,
                                      local_files_only=not download))
    except Exception as e:  # huggingface_hub's LocalEntryNotFoundError, HTTP errors, ...
        raise DatasetError(f"model {name}: no usable copy in {cache} ({e}). Set `download: true` to download it "
                           f"there, or give the method's sentence.model as a local folder.") from e


def build(spec: dict, out_dir: Path, resources_dir: Path) -> dict:
    p = merged_spec(spec, ACCEPTED, "sentences")
    urls = {"wiki_url": p.get("wiki_url", WIKI_URL), "senteval_url": p.get("senteval_url", SENTEVAL_URL)}
    root = resolve_root(spec, Path(resources_dir), "sentences", check_root, lambda tmp: fetch(tmp, **urls))
    senteval = root / "senteval"
    train_text = read_wiki(root / WIKI_FILE, p.get("n_train"))
    text, offsets = pack(train_text)
    n = len(train_text)
    task_names = list(TEST_TASKS)
    subsets: list[str] = []
    val = _pair_split([("STSBenchmark", read_task(senteval, "STSBenchmark", "dev"))], task_names, subsets)
    test = _pair_split([(t, read_task(senteval, t, "test")) for t in TEST_TASKS], task_names, subsets)
    splits = {"train": {"x": np.arange(n, dtype=np.int64), "y": np.zeros(n, dtype=np.int64),
                        "text": text, "offsets": offsets},
              "val": val, "test": test}
    # the pretrained models the experiments start from, fetched here so that training jobs read local files
    models = {name: str(fetch_model(name, Path(resources_dir) / "huggingface", bool(spec.get("download"))))
              for name in p.get("models") or []}
    meta: dict[str, Any] = {
        "name": spec.get("name") or "sentences", "generator": "sentences", "domain": "text",
        "source": str(root), "classes": [], "factors": {"task": task_names}, "subsets": subsets,
        "recipe": "train: wiki1m sentences; val: STS-B dev; test: STS12-16 (all sources), STS-B test, SICK-R test",
        "seed": p.get("seed", 0), "models": models,
        # the settings the splits were built with (the protocol card's data rows)
        "spec": {"generator": "sentences", **({"n_train": p["n_train"]} if p.get("n_train") else {}),
                 **({"models": list(models)} if models else {})},
    }
    log.info("%d training sentences; %d dev pairs; %d test pairs", n, len(val["y"]), len(test["y"]))
    return dataset_dir.save(out_dir, splits, meta)

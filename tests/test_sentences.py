"""Sentence embeddings (SimCSE-style; ADNCE's sentence experiments): losses, data loaders on fixtures in the
published file formats, the encoder, STS scoring, model selection, and a tiny train + evaluate end to end.

Offline: the data are fixtures written into tmp_path in each source's real layout; the model is a tiny
random BERT saved, with a fixture vocabulary, in the Hugging Face layout that ``from_pretrained`` reads
(the same call that loads ``bert-base-uncased``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from clbench.data import dataset_dir
from clbench.data import sentences as sd
from clbench.data.build import build_dataset
from clbench.errors import ConfigError, DatasetError
from clbench.losses.sentence import adnce_sentence, simcse

WORDS = ("a man woman dog cat plays runs eats sings guitar piano ball food in the park house red blue small big "
         "child rides bike car drives road slowly quickly").split()


# --------------------------------------------------------------------------------------------------
# fixtures in the published formats


def _sentence(rng: np.random.Generator, n: int = 6) -> str:
    return " ".join(rng.choice(WORDS, size=n))


def _pairs(rng, n):
    out = []
    for _ in range(n):
        s1 = _sentence(rng, int(rng.integers(3, 8)))
        words = s1.split()
        keep = int(rng.integers(0, len(words) + 1))
        s2 = " ".join(words[:keep] + [str(w) for w in rng.choice(WORDS, size=len(words) - keep)])
        out.append((s1, s2, round(5.0 * keep / len(words), 2)))
    return out


def write_sentence_root(root: Path, n_wiki: int = 96, n_pairs: int = 12, seed: int = 0) -> Path:
    """wiki1m_for_simcse.txt and SentEval's STS / SICK files, in their layouts, with made-up sentences."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / sd.WIKI_FILE).write_text("".join(_sentence(rng, int(rng.integers(3, 10))) + "\n" for _ in range(n_wiki)),
                                     encoding="utf-8")
    sts = root / "senteval" / "STS"
    for task, sources in sd.STS_SOURCES.items():
        folder = sts / f"{task}-en-test"
        folder.mkdir(parents=True)
        for source in sources:
            pairs = _pairs(rng, n_pairs)
            # sentences with untidy whitespace, and one unscored pair (an empty gold line)
            (folder / f"STS.input.{source}.txt").write_text(
                "".join(f"{a}  \t {b}\n" for a, b, _ in pairs) + "unscored pair\tnot counted\n", encoding="utf-8")
            (folder / f"STS.gs.{source}.txt").write_text("".join(f"{g}\n" for *_, g in pairs) + "\n", encoding="utf-8")
    stsb = sts / "STSBenchmark"
    stsb.mkdir(parents=True)
    for split in ("train", "dev", "test"):
        rows = [f"main-captions\tMSRvid\t2012test\t{i:04d}\t{g:.3f}\t{a}\t{b}\n"
                for i, (a, b, g) in enumerate(_pairs(rng, 3 * n_pairs))]
        (stsb / f"sts-{split}.csv").write_text("".join(rows), encoding="utf-8")
    sick = root / "senteval" / "SICK"
    sick.mkdir(parents=True)
    for name in ("train", "trial", "test_annotated"):
        rows = ["pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\n"]
        rows += [f"{i}\t{a}\t{b}\t{1 + 0.8 * g:.1f}\tNEUTRAL\n" for i, (a, b, g) in enumerate(_pairs(rng, 2 * n_pairs))]
        (sick / f"SICK_{name}.txt").write_text("".join(rows), encoding="utf-8")
    return root


def write_tiny_bert(folder: Path, hidden: int = 16, seed: int = 0) -> Path:
    """A random 1-layer BERT and a WordPiece tokenizer of the fixture vocabulary, saved as from_pretrained
    reads them."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, "unscored", "pair", "not",
                                "counted"]) + "\n", encoding="utf-8")
    BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True).save_pretrained(folder)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab.read_text().split()), hidden_size=hidden, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=64)
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def sentence_data(tmp_path_factory):
    base = tmp_path_factory.mktemp("sentences")
    root = write_sentence_root(base / "root")
    meta = build_dataset({"generator": "sentences", "root": str(root)}, base / "data", base / "resources")
    return root, base / "data", meta


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return write_tiny_bert(tmp_path_factory.mktemp("bert") / "tiny-bert")


def _spec(model_dir, objective="adnce_sentence", **sentence):
    return {"objective": objective, "epochs": 1, "batch_size": 16, "optimizer": {"name": "adamw", "lr": 1e-3},
            "sentence": {"model": str(model_dir), "eval_steps": 2, "max_steps": 6, **sentence}}


# --------------------------------------------------------------------------------------------------
# losses


def _loop_reference(z1, z2, t, mu=None, sigma=None):
    """One anchor at a time, straight from the definitions (SimCSE when mu is None)."""
    b = z1.shape[0]
    total = 0.0
    for i in range(b):
        s = [float(torch.nn.functional.cosine_similarity(z1[i], z2[j], dim=0)) for j in range(b)]
        if mu is None:
            w = [1.0] * b
        else:
            g = [math.exp(-((sj - mu) ** 2) / (2 * sigma**2)) for sj in s]
            w = [gj / (sum(g) / b) for gj in g]  # mean over the whole row, the diagonal included
        denominator = sum(w[j] * math.exp(s[j] / t) for j in range(b))
        total += -math.log(math.exp(s[i] / t) / denominator)
    return total / b


def test_losses_match_loop_references():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(7, 5, generator=g, dtype=torch.float64), torch.randn(7, 5, generator=g, dtype=torch.float64)
    assert float(simcse(z1, z2, 0.05)) == pytest.approx(_loop_reference(z1, z2, 0.05), rel=1e-10)
    for t, mu, sigma in ((0.07, 0.4, 1.0), (0.06, 2.0, 1.0), (0.5, -0.3, 0.2)):
        ours = float(adnce_sentence(z1, z2, t, mu, sigma))
        assert ours == pytest.approx(_loop_reference(z1, z2, t, mu, sigma), rel=1e-10)


def test_adnce_sentence_weights_the_positive_and_detaches_the_weights():
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(6, 4, generator=g, dtype=torch.float64)
    t, mu, sigma = 0.1, 0.4, 0.3
    # the positive unweighted in the denominator (the image form) gives another value: the diagonal is inside
    s = torch.nn.functional.normalize(z1, dim=1) @ torch.nn.functional.normalize(z2, dim=1).T
    w = torch.exp(-((s - mu) ** 2) / (2 * sigma**2))
    w = w / w.mean(1, keepdim=True)
    unweighted_positive = w.clone()
    unweighted_positive.diagonal().fill_(1.0)
    def value(weights):
        return float((-(s.diagonal() / t) + torch.log((weights * torch.exp(s / t)).sum(1))).mean())
    ours = float(adnce_sentence(z1, z2, t, mu, sigma))
    assert ours == pytest.approx(value(w), rel=1e-10)
    assert abs(ours - value(unweighted_positive)) > 1e-3
    # mu = s_ii for every row would give the positive the largest weight; sigma -> inf gives SimCSE
    assert float(adnce_sentence(z1, z2, t, mu, 1e6)) == pytest.approx(float(simcse(z1, z2, t)), rel=1e-8)
    # the weights carry no gradient: the gradient equals that of the loss with the weights as constants
    a, b = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    adnce_sentence(a, b, t, mu, sigma).backward()
    a2, b2 = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    sn = torch.nn.functional.normalize(a2, dim=1) @ torch.nn.functional.normalize(b2, dim=1).T
    (-(sn.diagonal() / t) + torch.log((w * torch.exp(sn / t)).sum(1))).mean().backward()
    torch.testing.assert_close(a.grad, a2.grad)
    torch.testing.assert_close(b.grad, b2.grad)


def test_losses_refuse_bad_input():
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match="temperature"):
        simcse(z, z, 0.0)
    with pytest.raises(ValueError, match="sigma"):
        adnce_sentence(z, z, 0.1, 0.4, -1.0)
    with pytest.raises(ValueError, match="same shape"):
        simcse(z, z[:3])


# --------------------------------------------------------------------------------------------------
# loaders


def test_loaders_read_each_published_format(tmp_path):
    root = write_sentence_root(tmp_path / "root", n_wiki=5, n_pairs=4)
    wiki = sd.read_wiki(root / sd.WIKI_FILE)
    assert len(wiki) == 5 and all(s and "\n" not in s for s in wiki)
    assert sd.read_wiki(root / sd.WIKI_FILE, limit=2) == wiki[:2]
    s1, s2, gold = sd.read_sts_source(root / "senteval" / "STS" / "STS12-en-test", "MSRpar")
    assert len(s1) == len(s2) == len(gold) == 4  # the unscored fifth pair is dropped
    assert "unscored pair" not in s1 and all(s == " ".join(s.split()) for s in s1 + s2)
    s1, s2, gold = sd.read_stsb(root / "senteval" / "STS" / "STSBenchmark" / "sts-dev.csv")
    assert len(s1) == 12 and gold.dtype == np.float64 and gold.min() >= 0 and gold.max() <= 5
    s1, s2, gold = sd.read_sick(root / "senteval" / "SICK" / "SICK_test_annotated.txt")
    assert len(s1) == 8 and s1[0] != "sentence_A" and 1.0 <= gold.min() and gold.max() <= 5.0
    tasks = {t: sd.read_task(root / "senteval", t) for t in sd.TEST_TASKS}
    assert [s for s, _ in tasks["STS14"]] == list(sd.STS_SOURCES["STS14"])
    assert [s for s, _ in tasks["SICKRelatedness"]] == ["test"]


def test_sts_loader_reads_a_real_line_exactly(tmp_path):
    folder = tmp_path / "STS16-en-test"
    folder.mkdir()
    (folder / "STS.input.headlines.txt").write_text("Three  dogs run.\tThree dogs are running.\nA\tB\n")
    (folder / "STS.gs.headlines.txt").write_text("4.4\n\n")
    assert sd.read_sts_source(folder, "headlines")[:2] == (["Three dogs run."], ["Three dogs are running."])
    (folder / "STS.gs.headlines.txt").write_text("4.4\n")
    with pytest.raises(DatasetError, match="gold lines"):
        sd.read_sts_source(folder, "headlines")


def test_dataset_directory(sentence_data):
    root, data, meta = sentence_data
    dataset_dir.verify(data)
    train, val, test = (dataset_dir.load(data, s) for s in dataset_dir.SPLITS)
    assert sd.sentences(train) == sd.read_wiki(root / sd.WIKI_FILE)
    dev = sd.read_stsb(root / "senteval" / "STS" / "STSBenchmark" / "sts-dev.csv")
    assert sd.sentences(val, "x") == dev[0] and sd.sentences(val, "x2") == dev[1]
    np.testing.assert_array_equal(val["y"], dev[2])
    assert meta["factors"]["task"] == list(sd.TEST_TASKS)
    counts = np.bincount(test["factor_task"])
    assert counts.tolist() == [12 * len(sd.STS_SOURCES[t]) for t in sd.STS_SOURCES] + [36, 24]
    sick = test["factor_task"] == 6
    np.testing.assert_array_equal(test["y"][sick], sd.read_sick(root / "senteval" / "SICK" /
                                                                "SICK_test_annotated.txt")[2])
    assert meta["sizes"] == {"train": 96, "val": 36, "test": len(test["y"])}


def test_show_lists_sentences(sentence_data, tmp_path):
    from clbench.data.show import show

    _, data, _ = sentence_data
    for split in ("train", "test"):
        assert show(data, tmp_path / f"{split}.png", split=split).stat().st_size > 1000


def test_missing_files_are_named(tmp_path):
    root = write_sentence_root(tmp_path / "root", n_wiki=3, n_pairs=2)
    (root / "senteval" / "STS" / "STS15-en-test" / "STS.gs.belief.txt").unlink()
    with pytest.raises(DatasetError, match="STS.gs.belief.txt"):
        build_dataset({"generator": "sentences", "root": str(root)}, tmp_path / "d", tmp_path / "r")


def test_download_lays_files_out(tmp_path, monkeypatch):
    """The download step: the two files fetched (here from local file URLs), the archive unpacked into the layout."""
    import tarfile

    src = write_sentence_root(tmp_path / "src", n_wiki=4, n_pairs=2)
    tar = tmp_path / "senteval.tar"
    with tarfile.open(tar, "w") as t:  # SentEval's archive holds data/downstream's folders
        t.add(src / "senteval" / "STS", arcname="downstream/STS")
        t.add(src / "senteval" / "SICK", arcname="downstream/SICK")
    spec = {"generator": "sentences", "download": True, "n_train": 3,
            "options": {"wiki_url": (src / sd.WIKI_FILE).as_uri(), "senteval_url": tar.as_uri()}}
    monkeypatch.setattr("torchvision.datasets.utils.download_url", _copy_url)
    meta = build_dataset(spec, tmp_path / "data", tmp_path / "resources")
    assert (tmp_path / "resources" / "sentences" / "senteval" / "SICK" / "SICK_trial.txt").is_file()
    assert meta["sizes"]["train"] == 3


def test_models_are_fetched_by_the_build_and_read_by_training(tmp_path, tiny_bert, monkeypatch):
    """The build job fetches the models into resources/huggingface and records their snapshots; the training
    job loads the snapshot of its sentence.model instead of the hub."""
    import huggingface_hub

    import clbench.train.sentence as trainer

    calls = []

    def snapshot(name, cache_dir, allow_patterns, local_files_only):
        calls.append((name, Path(cache_dir), local_files_only))
        return str(tiny_bert)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot)
    root = write_sentence_root(tmp_path / "root", n_wiki=40, n_pairs=3)
    spec = {"generator": "sentences", "root": str(root), "options": {"models": ["org/some-bert"]}}
    meta = build_dataset(spec, tmp_path / "data", tmp_path / "resources")
    assert calls == [("org/some-bert", tmp_path / "resources" / "huggingface", True)]  # no download asked
    assert meta["models"] == {"org/some-bert": str(tiny_bert)}
    assert meta["spec"] == {"generator": "sentences", "models": ["org/some-bert"]}
    info = trainer.train(_spec("org/some-bert", max_steps=2), tmp_path / "data", tmp_path / "run", tmp_path / "c",
                         device="cpu")
    assert info["spec"]["sentence"]["model"] == "org/some-bert" and (tmp_path / "run" / "model.pt").exists()


def _copy_url(url, root, filename=None, md5=None):
    import shutil
    from urllib.parse import urlparse

    Path(root).mkdir(parents=True, exist_ok=True)
    shutil.copy(urlparse(url).path, Path(root) / filename)


# --------------------------------------------------------------------------------------------------
# scoring


def test_spearman_matches_scipy():
    from scipy.stats import spearmanr

    from clbench.evaluate.sts import spearman

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=50), rng.normal(size=50)
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).correlation, abs=1e-12)
    a, b = rng.integers(0, 5, 40).astype(float), rng.integers(0, 3, 40).astype(float)  # many ties
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).correlation, abs=1e-12)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_embeddings_are_cls_before_the_mlp(tiny_bert):
    from clbench.models.sentence import SentenceEncoder

    model = SentenceEncoder.pretrained(_spec(tiny_bert))
    with torch.no_grad():
        model.mlp[0].weight.add_(1.0)  # a head far from the identity
    texts = ["a man plays the guitar", "the dog runs in the park"]
    model.eval()
    batch = model.tokenize(texts, None, "cpu")
    with torch.no_grad():
        cls = model.encoder(**batch).last_hidden_state[:, 0]
        projected = model(batch)
    torch.testing.assert_close(model.embed(texts), cls)
    assert not torch.allclose(projected, cls)
    # dropout in train mode: two passes differ (the augmentation); embed is deterministic
    model.train()
    with torch.no_grad():
        assert not torch.allclose(model(batch), model(batch))
    torch.testing.assert_close(model.embed(texts), model.embed(texts))
    assert model.training


def test_sts_scores_are_spearman_of_cosines(sentence_data, tiny_bert):
    from scipy.stats import spearmanr

    from clbench.evaluate.sentence_runner import SentenceRun
    from clbench.evaluate.sts import sts_metrics
    from clbench.models.sentence import SentenceEncoder

    _, data, meta = sentence_data
    model = SentenceEncoder.pretrained(_spec(tiny_bert))
    test = dataset_dir.load(data, "test")
    out = sts_metrics(SentenceRun(model, test, meta, {}))
    e1, e2 = model.embed(sd.sentences(test, "x")), model.embed(sd.sentences(test, "x2"))
    cos = torch.nn.functional.cosine_similarity(e1.double(), e2.double()).numpy()
    for t, task in enumerate(sd.TEST_TASKS):
        mask = test["factor_task"] == t  # STS12-16: one correlation over all sources ("all")
        metric = {"STSBenchmark": "stsb", "SICKRelatedness": "sickr"}.get(task, task.lower())
        assert out["metrics"][metric] == pytest.approx(spearmanr(cos[mask], test["y"][mask]).correlation, abs=1e-5)
    assert out["metrics"]["sts_avg"] == pytest.approx(np.mean([out["metrics"][m] for m in
                                                               ("sts12", "sts13", "sts14", "sts15", "sts16", "stsb",
                                                                "sickr")]))
    assert {r["source"] for r in out["tables"]["sts"] if r["task"] == "STS13"} == {"all", *sd.STS_SOURCES["STS13"]}


# --------------------------------------------------------------------------------------------------
# training, model selection, evaluation


def test_model_selection_keeps_the_best_dev_checkpoint(sentence_data, tiny_bert, tmp_path, monkeypatch):
    import clbench.train.sentence as trainer
    from clbench.models.sentence import load_sentence_model

    _, data, _ = sentence_data
    scores = iter([0.1, 0.7, 0.3])  # the dev Spearman of steps 2, 4, 6
    kept = {}

    def fake_dev(model, split, device):
        rho = next(scores)
        kept[rho] = {k: v.clone() for k, v in model.state_dict().items()}
        return rho

    monkeypatch.setattr(trainer, "dev_spearman", fake_dev)
    info = trainer.train(_spec(tiny_bert), data, tmp_path / "run", tmp_path / "ckpt", seed=0, device="cpu")
    assert info["best_step"] == 4 and info["best_val_stsb_spearman"] == 0.7
    best = load_sentence_model(tmp_path / "run" / "model.pt")
    for k, v in best.state_dict().items():
        torch.testing.assert_close(v, kept[0.7][k])
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert rows[0].split(",")[:3] == ["step", "epoch", "loss"] and len(rows) == 4
    assert not (tmp_path / "ckpt").exists()


def test_a_killed_run_resumes_at_its_last_evaluation(sentence_data, tiny_bert, tmp_path, monkeypatch):
    import clbench.train.sentence as trainer

    _, data, _ = sentence_data
    spec = _spec(tiny_bert, "simcse")
    whole = trainer.train(spec, data, tmp_path / "whole", tmp_path / "c1", seed=3, device="cpu")
    real, calls = trainer.dev_spearman, []

    def dies_at_the_third(model, split, device):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        return real(model, split, device)

    monkeypatch.setattr(trainer, "dev_spearman", dies_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(spec, data, tmp_path / "resumed", tmp_path / "c2", seed=3, device="cpu")
    assert (tmp_path / "c2" / "last.pt").exists() and not (tmp_path / "resumed" / "model.pt").exists()
    monkeypatch.setattr(trainer, "dev_spearman", real)
    resumed = trainer.train(spec, data, tmp_path / "resumed", tmp_path / "c2", seed=3, device="cpu")
    assert resumed["resumed_from_step"] == 4 and resumed["best_step"] == whole["best_step"]
    import pandas as pd  # the same losses and dev scores as the uninterrupted run (CPU: deterministic)

    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "whole" / "metrics.csv").drop(columns="seconds"),
                                  pd.read_csv(tmp_path / "resumed" / "metrics.csv").drop(columns="seconds"))


def test_linear_schedule_decays_to_zero():
    from clbench.train.sentence import linear_decay

    f = linear_decay(10, "linear")
    assert [f(s) for s in (0, 5, 10)] == [1.0, 0.5, 0.0]
    assert linear_decay(10, "constant")(7) == 1.0


def test_train_and_evaluate_end_to_end(sentence_data, tiny_bert, tmp_path):
    """The CLI path of the pretrain and evaluate rules: clbench train / clbench evaluate run."""
    from clbench.cli import main
    from clbench.evaluate.evaluators import model_domain

    _, data, _ = sentence_data
    run = tmp_path / "runs" / "adnce_sts" / "adnce" / "seed0"
    spec = _spec(tiny_bert)
    assert main(["train", "--spec", json.dumps(spec), "--dataset", str(data), "--out", str(run),
                 "--checkpoint-dir", str(tmp_path / "ckpt"), "--seed", "0", "--device", "cpu"]) == 0
    info = json.loads((run / "run.json").read_text())
    assert info["spec"] == spec and info["steps"] == 6 and info["best_step"] in (2, 4, 6)
    assert model_domain(run / "model.pt") == "text"
    assert main(["evaluate", "run", "--model", str(run / "model.pt"), "--metrics", str(run / "metrics.csv"),
                 "--dataset", str(data), "--spec", json.dumps({"evaluations": ["sts"]}), "--device", "cpu",
                 "--out", str(run / "evaluation.json")]) == 0
    result = json.loads((run / "evaluation.json").read_text())
    assert set(result["metrics"]) == {"sts_avg", "sts12", "sts13", "sts14", "sts15", "sts16", "stsb", "sickr",
                                      "sts_avg_cls_before_pooler", "sts_avg_cls"}
    assert all(-1 <= v <= 1 for v in result["metrics"].values())
    # the same seed trains the same model; the other objective trains another
    run2 = tmp_path / "again"
    main(["train", "--spec", json.dumps(spec), "--dataset", str(data), "--out", str(run2),
          "--checkpoint-dir", str(tmp_path / "ckpt2"), "--seed", "0", "--device", "cpu"])
    assert (run2 / "metrics.csv").read_text().split("\n")[1].split(",")[:3] == \
        (run / "metrics.csv").read_text().split("\n")[1].split(",")[:3]


def test_the_evaluate_command_picks_the_evaluator_by_the_models_domain(tmp_path, tiny_bert):
    from clbench.evaluate.evaluators import evaluator_for
    from clbench.evaluate.runner import evaluate_run
    from clbench.evaluate.sentence_runner import evaluate_sentence_run
    from clbench.models.checkpoint import save_model
    from clbench.models.methods import build_method
    from clbench.models.sentence import SentenceEncoder, save_sentence_model

    cnn = {"objective": "info_nce", "views": 2, "augment": "simclr", "encoder": {"name": "small_cnn", "width": 4,
                                                                                 "feature_dim": 8}, "projection_dim": 4}
    save_model(tmp_path / "image.pt", build_method(cnn, 1, 4, 16), cnn, {"in_channels": 1, "num_classes": 4,
                                                                         "image_size": 16})
    save_sentence_model(tmp_path / "text.pt", SentenceEncoder.pretrained(_spec(tiny_bert)))
    assert evaluator_for(tmp_path / "image.pt") is evaluate_run
    assert evaluator_for(tmp_path / "text.pt") is evaluate_sentence_run


def test_image_evaluations_are_refused_for_a_sentence_model(sentence_data, tiny_bert, tmp_path):
    from clbench.evaluate.sentence_runner import evaluate_sentence_run
    from clbench.models.sentence import SentenceEncoder, save_sentence_model

    _, data, _ = sentence_data
    save_sentence_model(tmp_path / "model.pt", SentenceEncoder.pretrained(_spec(tiny_bert, "simcse")))
    with pytest.raises(ValueError, match="do not apply to a sentence encoder"):
        evaluate_sentence_run(tmp_path / "model.pt", data, {"evaluations": ["linear_probe"]})


# --------------------------------------------------------------------------------------------------
# configuration


def _config(**method):
    return {
        "datasets": {"sts": {"generator": "sentences", "download": True, "options": {"models": ["bert-base-uncased"]}},
                     "digits": {"generator": "styled_mnist"}},
        "methods": {"adnce": {"objective": "adnce_sentence", "loss": {"temperature": 0.07, "mu": 0.4, "sigma": 1.0},
                              "epochs": 1, "batch_size": 64, "optimizer": {"name": "adamw", "lr": 3e-5},
                              "sentence": {"model": "bert-base-uncased"}, **method},
                    "simcse": {"objective": "simcse", "loss": {"temperature": 0.07}},
                    "infonce": {"objective": "info_nce", "views": 2, "augment": "simclr"}},
        "experiments": {"adnce_sts": {"dataset": "sts", "methods": ["simcse", "adnce"], "evaluations": ["sts"],
                                      "paper": "adnce"}},
    }


def _check(cfg):
    from clbench.workflow import check_config, load_schema, validate

    schema = load_schema(Path(__file__).parents[1] / "workflow" / "schemas" / "config.schema.yaml")
    return check_config(validate(cfg, schema), schema)


def test_config_accepts_the_sentence_experiment():
    _check(_config())


@pytest.mark.parametrize("change, key", [
    ({"sentence": {"max_length": 0}}, "methods.adnce.sentence.max_length"),
    ({"sentence": {"pooler": "avg"}}, "methods.adnce.sentence"),
    ({"sentence": {"schedule": "cosine"}}, "methods.adnce.sentence.schedule"),
    ({"loss": {"sigma": 0}}, "methods.adnce.loss.sigma"),
    ({"loss": {"similarity": "dot"}}, "methods.adnce.loss.similarity"),
])
def test_config_refuses_bad_sentence_settings(change, key):
    with pytest.raises(ConfigError) as e:
        _check(_config(**change))
    assert str(e.value).startswith(key)


def test_config_refuses_mixed_domains():
    cfg = _config()
    cfg["experiments"]["adnce_sts"]["methods"] = ["adnce", "infonce"]
    cfg["experiments"]["adnce_sts"]["evaluations"] = ["sts"]
    with pytest.raises(ConfigError, match="^experiments.adnce_sts.methods"):
        _check(cfg)
    cfg = _config(gpus=2)
    with pytest.raises(ConfigError, match="^methods.adnce.gpus"):
        _check(cfg)
    cfg = _config()
    cfg["methods"]["infonce"]["sentence"] = {"max_length": 16}
    with pytest.raises(ConfigError, match="^methods.infonce.sentence"):
        _check(cfg)
    cfg = _config()
    cfg["experiments"]["adnce_sts"]["evaluations"] = ["sts", "knn"]
    cfg["experiments"]["digits"] = {"dataset": "digits", "methods": ["infonce"], "evaluations": ["sts"]}
    with pytest.raises(ConfigError, match="^experiments.digits.evaluations"):
        _check(cfg)


# --------------------------------------------------------------------------------------------------
# the test embedding (sentence.pooler) and the head's initialisation


def test_sts_pooler_setting_picks_the_headline_and_reports_both(sentence_data, tiny_bert):
    from clbench.evaluate.sentence_runner import SentenceRun
    from clbench.evaluate.sts import sts_metrics
    from clbench.models.sentence import SentenceEncoder

    _, data, meta = sentence_data
    test = dataset_dir.load(data, "test")
    torch.manual_seed(0)
    before = SentenceEncoder.pretrained(_spec(tiny_bert))
    with torch.no_grad():
        before.mlp[0].weight.copy_(torch.randn_like(before.mlp[0].weight))  # a head that reshapes the space
    head = SentenceEncoder.pretrained({**_spec(tiny_bert), "sentence": {**_spec(tiny_bert)["sentence"],
                                                                        "pooler": "cls"}})
    head.load_state_dict(before.state_dict())
    texts = ["a man plays the guitar", "the dog runs in the park"]
    batch = before.tokenize(texts, None, "cpu")
    before.eval()
    with torch.no_grad():
        torch.testing.assert_close(before.embed(texts, pooler="cls"), before.mlp(before.cls(batch)))
    a, b = sts_metrics(SentenceRun(before, test, meta, {})), sts_metrics(SentenceRun(head, test, meta, {}))
    assert a["metrics"]["sts_avg"] == a["metrics"]["sts_avg_cls_before_pooler"]
    assert b["metrics"]["sts_avg"] == b["metrics"]["sts_avg_cls"]
    # both runs report both averages, equal since the weights are; the headlines differ
    assert a["metrics"]["sts_avg_cls"] == pytest.approx(b["metrics"]["sts_avg_cls"])
    assert a["metrics"]["sts_avg_cls_before_pooler"] == pytest.approx(b["metrics"]["sts_avg_cls_before_pooler"])
    assert a["metrics"]["sts_avg"] != pytest.approx(b["metrics"]["sts_avg"], abs=1e-6)
    with pytest.raises(ValueError, match="pooler"):
        SentenceEncoder.pretrained({**_spec(tiny_bert), "sentence": {"pooler": "avg"}})


def test_mlp_head_starts_as_berts_initialisation(tiny_bert):
    from clbench.models.sentence import SentenceEncoder

    torch.manual_seed(0)
    weight = SentenceEncoder.pretrained(_spec(tiny_bert)).mlp[0].requires_grad_(False)
    assert torch.count_nonzero(weight.bias) == 0
    assert float(weight.weight.mean()) == pytest.approx(0.0, abs=0.005)
    assert float(weight.weight.std()) == pytest.approx(0.02, rel=0.15)  # PyTorch's default would be 1/sqrt(3 h)

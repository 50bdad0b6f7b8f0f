"""CLIP in MCL stages: data (MMVP-VLM, img2dataset, captioned Trifeature), the pair score, the model's
freezing and optimisation rules, the loss, the stage settings, and a tiny run end to end."""

import json
import math

import numpy as np
import pytest
import torch

from clbench.data import dataset_dir
from clbench.data.build import build_dataset
from clbench.data.image_text import (MMVP_IMAGES, MMVP_PATTERNS, CaptionFiles, captions_of, load_img2dataset,
                                     load_mmvp)
from clbench.evaluate.mmvp import pair_correct, pattern_slug, score_representation

TINY_VIT = {"embed_dim": 16, "quick_gelu": True,
            "vision_cfg": {"image_size": 16, "layers": 8, "width": 32, "patch_size": 8, "head_width": 16},
            "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 2}}
TINY_RN = {**TINY_VIT, "vision_cfg": {"image_size": 32, "layers": [1, 1, 1, 1], "width": 8, "head_width": 8}}


def clip_spec(config=TINY_VIT, **clip):
    return {"objective": "clip", "clip": {"model": "test-tiny-clip", "config": config, **clip}, "epochs": 1,
            "batch_size": 20, "optimizer": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.2}, "schedule": "constant"}


def jpeg(path, rgb, size=(20, 12)):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, rgb).save(path)


def mmvp_fixture(root):
    """MMVP-VLM's layout: Questions.csv (Index, Type, Question) and MLLM_VLM Images/<pattern>/<qid>.jpg."""
    rows = [(1, MMVP_PATTERNS[0], "The arrow points left."), (2, MMVP_PATTERNS[0], "The arrow points right."),
            (3, MMVP_PATTERNS[0], "The dog faces the camera."), (4, MMVP_PATTERNS[0], "The dog faces away."),
            (5, MMVP_PATTERNS[7], "The sign says STOP."), (6, MMVP_PATTERNS[7], "The sign says GO.")]
    root.mkdir(parents=True)
    with open(root / "Questions.csv", "w", newline="") as f:
        f.write("Index,Type,Question\n" + "".join(f'{q},{t},"{s}"\n' for q, t, s in rows))
    for q, t, _ in rows:
        jpeg(root / MMVP_IMAGES / t / f"{q}.jpg", (40 * q, 10, 200 - 20 * q))
    return rows


def img2dataset_fixture(root, n=6):
    for i in range(n):
        key = f"{i:09d}"
        jpeg(root / "00000" / f"{key}.jpg", (30 * i, 100, 50))
        if i != 3:  # an image whose download kept no caption is not a training pair
            (root / "00000" / f"{key}.txt").write_text(f"caption number {i}\n")
    (root / "00000_stats.json").write_text("{}")


def test_mmvp_loader_reads_the_official_layout(tmp_path):
    rows = mmvp_fixture(tmp_path / "MMVP_VLM")
    bench = load_mmvp(tmp_path / "MMVP_VLM")
    assert bench["qid"].tolist() == [r[0] for r in rows]
    assert bench["statement"][4] == "The sign says STOP."
    assert bench["path"][1] == f"{MMVP_IMAGES}/{MMVP_PATTERNS[0]}/2.jpg"
    assert bench["y"].tolist() == [0, 0, 0, 0, 7, 7]
    (tmp_path / "MMVP_VLM" / MMVP_IMAGES / MMVP_PATTERNS[7] / "6.jpg").unlink()
    with pytest.raises(Exception, match="missing"):
        load_mmvp(tmp_path / "MMVP_VLM")


def test_img2dataset_loader_keeps_captioned_images(tmp_path):
    img2dataset_fixture(tmp_path / "cc")
    paths = load_img2dataset(tmp_path / "cc")
    assert paths.tolist() == [f"00000/{i:09d}.jpg" for i in (0, 1, 2, 4, 5)]
    assert CaptionFiles(tmp_path / "cc", paths)[3] == "caption number 4"


def test_cc12m_mmvp_dataset_is_a_path_index_of_both(tmp_path):
    mmvp_fixture(tmp_path / "MMVP_VLM")
    img2dataset_fixture(tmp_path / "cc")
    meta = build_dataset({"generator": "cc12m_mmvp", "root": str(tmp_path / "cc"),
                          "mmvp_root": str(tmp_path / "MMVP_VLM"), "image_size": 16, "n_val": 1},
                         tmp_path / "out", tmp_path / "res")
    assert meta["sizes"] == {"train": 4, "val": 1, "test": 6} and meta["storage"] == "paths"
    dataset_dir.verify(tmp_path / "out")
    train, test = dataset_dir.load(tmp_path / "out", "train"), dataset_dir.load(tmp_path / "out", "test")
    assert np.asarray(train["x"][:2]).shape == (2, 3, 16, 16)
    assert all(c.startswith("caption number") for c in (captions_of(train, meta)[i] for i in range(4)))
    x = np.asarray(test["x"])  # the MMVP images, decoded through the links
    assert x.shape == (6, 3, 16, 16) and abs(int(x[0, 0].mean()) - 40) <= 2
    assert str(test["prompt"]) == "a photo of " and test["statement"][0] == "The arrow points left."


def test_mmvp_download_needs_a_copy_or_the_hub(tmp_path):
    img2dataset_fixture(tmp_path / "cc")
    with pytest.raises(Exception, match="mmvp_root"):
        build_dataset({"generator": "cc12m_mmvp", "root": str(tmp_path / "cc")}, tmp_path / "out", tmp_path / "res")


def test_trifeature_pairs_differ_in_their_pattern_only(tmp_path):
    build_dataset({"generator": "trifeature_captions", "n_train": 20, "n_val": 5, "n_pairs": 4}, tmp_path, tmp_path)
    test = dataset_dir.load(tmp_path, "test")
    names = [str(p) for p in test["pattern_names"]]
    assert names == ["colour", "shape", "texture"] and len(test["y"]) == 24
    assert (test["qid"] == np.arange(1, 25)).all()
    for i in range(0, 24, 2):
        differs = {f for f in ("shape", "colour", "texture") if test[f"factor_{f}"][i] != test[f"factor_{f}"][i + 1]}
        assert differs == {names[test["y"][i]]}
        assert test["statement"][i] != test["statement"][i + 1]
    train = dataset_dir.load(tmp_path, "train")
    assert str(train["caption"][0]).startswith("a ") and " with " in str(train["caption"][0])


def test_pair_score_needs_both_statements_right():
    e = np.eye(4, dtype=np.float32)
    # pair 0: both statements match their own image; pair 1: statement 2 points at image 1 as well;
    # pair 2: image 1 is the even qid (qids 6, 5), both right; pair 3: both statements swapped
    img = np.stack([e[0], e[1], e[0], e[1], e[0], e[1], e[0], e[1]])
    txt = np.stack([e[0], e[1], e[0], e[0], e[1], e[0], e[1], e[0]])
    qid = np.array([1, 2, 3, 4, 6, 5, 7, 8])
    assert pair_correct(img, txt, qid).tolist() == [True, False, True, False]
    mean, scores = score_representation(img, txt, qid, np.array([0, 0, 0, 0, 1, 1, 1, 1]), ["a", "b"])
    assert scores == {"a": {"pairs": 2, "correct": 1, "score": 0.5}, "b": {"pairs": 2, "correct": 1, "score": 0.5}}
    assert mean == 0.5 and pattern_slug(MMVP_PATTERNS[4]) == "positional_and_relational_context"


def test_pair_score_is_the_softmax_over_the_two_images_at_100():
    # cos 0.30 vs 0.29 is p = softmax(30, 29) = 0.73 > 0.5: image 1, although the margin is small
    img = np.array([[1.0, 0.0], [0.0, 1.0]])
    t1 = np.array([0.30, 0.29])
    txt = np.stack([t1, [0.0, 1.0]])
    assert pair_correct(img, txt, np.array([1, 2])).tolist() == [True]
    assert pair_correct(img, txt, np.array([2, 1])).tolist() == [False]


def test_clip_loss_matches_a_reference():
    from clbench.losses.clip import clip_loss

    g = torch.Generator().manual_seed(0)
    img, txt, scale = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g), torch.tensor(math.log(20.0))
    a, b = img / img.norm(dim=1, keepdim=True), txt / txt.norm(dim=1, keepdim=True)
    logits = 20.0 * a @ b.T
    i2t = -sum(torch.log_softmax(logits[i], 0)[i] for i in range(6)) / 6
    t2i = -sum(torch.log_softmax(logits[:, i], 0)[i] for i in range(6)) / 6
    assert torch.allclose(clip_loss(img, txt, scale), (i2t + t2i) / 2, atol=1e-5)


def test_freezing_leaves_the_last_image_groups_and_logit_scale():
    from clbench.models.methods import build_method

    model = build_method(clip_spec(lock_text=True, unlocked_image_groups=6), 3, 1, 16)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    blocks = {int(n.split(".")[4]) for n in trainable if ".resblocks." in n}
    # 8 blocks: groups [stem], blocks 0-6, [block 7, ln_post], proj -> the last 6 are blocks 3-7, ln_post, proj
    assert blocks == {3, 4, 5, 6, 7}
    assert all(n.startswith("clip.visual.") or n == "clip.logit_scale" for n in trainable)
    assert {"clip.logit_scale", "clip.visual.proj", "clip.visual.ln_post.weight"} <= trainable
    assert "clip.visual.conv1.weight" not in trainable and "clip.visual.transformer.resblocks.2.attn.in_proj_weight" not in trainable
    everything = build_method(clip_spec(), 3, 1, 16)
    assert all(p.requires_grad for p in everything.parameters())


def test_logit_scale_is_clamped_at_ln_100():
    from clbench.models.methods import build_method

    model = build_method(clip_spec(), 3, 1, 16)
    with torch.no_grad():
        model.clip.logit_scale.fill_(7.0)
    model.clamp_logit_scale()
    assert float(model.clip.logit_scale.detach()) == pytest.approx(math.log(100))


def test_weight_decay_spares_gains_biases_and_logit_scale():
    from clbench.models.clip import weight_decay_groups
    from clbench.models.methods import build_method

    model = build_method(clip_spec(lock_text=True), 3, 1, 16)
    names = {id(p): n for n, p in model.named_parameters()}
    plain, decay = weight_decay_groups(model.named_parameters(), 0.2)
    assert plain["weight_decay"] == 0.0 and decay["weight_decay"] == 0.2
    plain_names, decay_names = {names[id(p)] for p in plain["params"]}, {names[id(p)] for p in decay["params"]}
    assert "clip.logit_scale" in plain_names and "clip.visual.ln_post.weight" in plain_names
    assert "clip.visual.transformer.resblocks.0.attn.in_proj_bias" in plain_names
    assert "clip.visual.transformer.resblocks.0.mlp.c_fc.weight" in decay_names and "clip.visual.proj" in decay_names
    assert not any(n.startswith("clip.transformer.") for n in plain_names | decay_names)  # frozen text tower


def test_pretrained_weights_load_through_the_same_names(monkeypatch):
    """``pretrained`` copies open_clip's weights of the named architecture into the model."""
    import open_clip

    from clbench.models.methods import build_method

    source = build_method(clip_spec(), 3, 1, 16).clip
    calls = []
    real = open_clip.create_model

    def create(name, pretrained=None, **kw):
        calls.append((name, pretrained))
        return source if pretrained else real(name, pretrained=None, **kw)

    monkeypatch.setattr(open_clip, "create_model", create)
    model = build_method(clip_spec(pretrained="openai"), 3, 1, 16)
    model.load_pretrained()
    assert calls[-1] == ("test-tiny-clip", "openai")
    assert torch.equal(model.clip.visual.proj, source.visual.proj)


def test_stage_settings(tmp_path):
    from clbench import workflow as wf

    cfg = {"results_dir": "r", "methods": {"m": {"objective": "clip", "epochs": 3,
                                                 "mcl": {"stages": 3, "clusters": 2, "first_stage": "initial",
                                                         "init": "previous", "order": "round_robin"}}},
           "experiments": {"e": {"dataset": "d", "methods": ["m"]}}}
    s0, s2 = json.loads(wf.stage_spec(cfg, "e", "m", 1, 0)), json.loads(wf.stage_spec(cfg, "e", "m", 1, 2))
    assert s0["epochs"] == 0 and "init_from" not in s0 and "cluster_order" not in s0
    assert s2["epochs"] == 3 and s2["init_from"] == "r/runs/e/m/seed1/stage1/model.pt"
    assert s2["cluster_order"] == "round_robin" and "mcl" not in s2
    cfg["methods"]["m"]["mcl"] = {"stages": 2, "clusters": 2}
    assert json.loads(wf.stage_spec(cfg, "e", "m", 0, 1)) == {"objective": "clip", "epochs": 3}


def test_round_robin_visits_the_clusters_in_turn():
    from clbench.data.samplers import ClusterBatchSampler

    ids = np.array([0] * 30 + [1] * 10 + [2] * 20)
    s = ClusterBatchSampler(ids, batch_size=10, seed=0, order="round_robin")
    assert [int(ids[b[0]]) for b in s.batches(0)] == [0, 1, 2, 0, 2, 0]
    assert all(len(set(ids[b])) == 1 for b in s.batches(0)) and s.summary()["order"] == "round_robin"
    shuffled = ClusterBatchSampler(ids, batch_size=10, seed=0)
    assert "order" not in shuffled.summary()


def test_batches_of_all_clusters_are_shuffled_together():
    """The default order: every epoch a new order of all batches, clusters mixed, never cluster after cluster
    (the official sampler shuffles its list of batches)."""
    from clbench.data.samplers import ClusterBatchSampler

    ids = np.repeat([0, 1, 2, 3], 50)
    s = ClusterBatchSampler(ids, batch_size=10, seed=0)
    orders = []
    for epoch in range(4):
        clusters = [int(ids[b[0]]) for b in s.batches(epoch)]
        assert sorted(clusters) == [c for c in range(4) for _ in range(5)]
        runs = 1 + sum(a != b for a, b in zip(clusters, clusters[1:]))
        assert runs > 8, clusters  # 4 runs: one cluster's batches after another's
        orders.append(clusters)
    assert len({tuple(o) for o in orders}) == 4  # a new order each epoch


def test_clip_training_clamps_the_logit_scale_at_ln_100_after_every_step(tmp_path):
    """A stage that starts above the clamp (exp(7) ~ 1097) ends at ln 100, as open_clip's training
    (``logit_scale.clamp_(0, math.log(100))`` after each step) and MCL's official code."""
    from clbench.cli import main
    from clbench.models.checkpoint import save_model
    from clbench.models.methods import build_method

    data = tmp_path / "data"
    build_dataset({"generator": "trifeature_captions", "n_train": 40, "n_val": 10, "n_pairs": 3}, data, tmp_path)
    spec = clip_spec(TINY_RN)
    start = build_method(spec, 3, 1, 32)
    with torch.no_grad():
        start.clip.logit_scale.fill_(7.0)
    save_model(tmp_path / "start.pt", start, spec, {"in_channels": 3, "num_classes": 1, "image_size": 32})
    main(["train", "--spec", json.dumps({**spec, "init_from": str(tmp_path / "start.pt")}), "--dataset", str(data),
          "--out", str(tmp_path / "run"), "--checkpoint-dir", str(tmp_path / "ck"), "--device", "cpu"])
    blob = torch.load(tmp_path / "run" / "model.pt", map_location="cpu", weights_only=True)
    assert float(blob["state_dict"]["clip.logit_scale"]) == pytest.approx(math.log(100), abs=1e-3)


def test_tiny_clip_stages_train_cluster_and_evaluate(tmp_path):
    """Stage 0, K-means on its image features, stage 1 on one-cluster batches from stage 0's model,
    the concatenated model and its pair scores: the CLI path the workflow's jobs take."""
    from clbench.cli import main

    data = tmp_path / "data"
    build_dataset({"generator": "trifeature_captions", "n_train": 80, "n_val": 20, "n_pairs": 3}, data, tmp_path)
    spec = clip_spec(TINY_RN, crop_scale=[0.9, 1.0], warmup_steps=2)
    run = tmp_path / "run"
    main(["train", "--spec", json.dumps(spec), "--dataset", str(data), "--out", str(run / "stage0"),
          "--checkpoint-dir", str(tmp_path / "ck0")])
    main(["cluster", "--model", str(run / "stage0" / "model.pt"), "--dataset", str(data), "--k", "2",
          "--out", str(run / "stage0" / "clusters.npy")])
    stage1 = {**spec, "init_from": str(run / "stage0" / "model.pt"), "cluster_order": "round_robin"}
    main(["train", "--spec", json.dumps(stage1), "--dataset", str(data), "--out", str(run / "stage1"),
          "--checkpoint-dir", str(tmp_path / "ck1"), "--clusters", str(run / "stage0" / "clusters.npy")])
    info = json.loads((run / "stage1" / "run.json").read_text())
    assert info["batch_sampler"]["mixed_batches"] == 0 and info["batch_sampler"]["order"] == "round_robin"
    main(["mcl-combine", "--stages", str(run / "stage0"), str(run / "stage1"), "--out", str(run)])
    main(["evaluate", "run", "--model", str(run / "model.pt"), "--dataset", str(data), "--spec",
          json.dumps({"evaluations": ["mmvp_pairs"]}), "--out", str(run / "evaluation.json")])
    result = json.loads((run / "evaluation.json").read_text())
    metrics = result["metrics"]
    assert {"mmvp", "mmvp_colour", "mmvp_shape", "mmvp_texture", "mmvp_stage0", "mmvp_stage1"} <= set(metrics)
    assert all(0.0 <= metrics[k] <= 1.0 for k in ("mmvp", "mmvp_stage0", "mmvp_stage1"))
    reps = {r["representation"] for r in result["tables"]["mmvp_patterns"]}
    assert reps == {"concat", "stage0", "stage1"}


def test_vanilla_stage_is_the_starting_model(tmp_path):
    """epochs: 0 writes the model it starts from (MCL's vanilla CLIP stage) without a step."""
    from clbench.models.checkpoint import load_model
    from clbench.train.clip_loop import train

    data = tmp_path / "data"
    build_dataset({"generator": "trifeature_captions", "n_train": 40, "n_val": 10, "n_pairs": 2}, data, tmp_path)
    spec = clip_spec(TINY_RN)
    train(spec, data, tmp_path / "a", tmp_path / "ck")
    train({**spec, "epochs": 0, "init_from": str(tmp_path / "a" / "model.pt")}, data, tmp_path / "b", tmp_path / "ck2")
    a, b = load_model(tmp_path / "a" / "model.pt"), load_model(tmp_path / "b" / "model.pt")
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_previous_stage_init_is_refused_for_image_methods():
    from clbench import workflow as wf
    from clbench.errors import ConfigError

    spec = {"objective": "info_nce", "views": 2, "augment": "simclr", "mcl": {"stages": 2, "clusters": 2,
                                                                              "init": "previous"}}
    with pytest.raises(ConfigError, match=r"methods\.m\.mcl\.init"):
        wf.check_method_settings(spec, "methods.m")
    wf.check_method_settings({"objective": "clip", "clip": {"model": "ViT-B-32"}, "mcl": {"init": "previous"}},
                             "methods.c")


def _clip_step(share=None):
    from clbench.models.methods import build_method

    torch.manual_seed(0)
    model = build_method(clip_spec(TINY_RN), 3, 1, 32).eval()  # eval: BatchNorm with running statistics
    g = torch.Generator().manual_seed(1)
    images = torch.rand(8, 3, 32, 32, generator=g)
    tokens = model.tokenize([f"a {c} square with stripes" for c in ("red", "green", "blue", "pink")] * 2)
    share = share or slice(None)
    return model, images[share], tokens[share]


def _clip_rank_grads(rank, world, init_file, out_dir):
    import torch.distributed as dist

    from clbench.train import distributed

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    model, images, tokens = _clip_step(slice(rank * 4, (rank + 1) * 4))
    ddp = distributed.wrap(distributed.LossTerms(model), distributed.Context(rank, world), torch.device("cpu"))
    terms = ddp(images, tokens)
    terms["loss"].backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    torch.save({"loss": terms["loss"].detach(), "grads": grads}, f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


def test_two_process_clip_step_equals_the_global_batch_step(tmp_path):
    """The gradient-keeping gather and DDP's averaging give the one-process step on the global batch."""
    import torch.multiprocessing as mp

    mp.spawn(_clip_rank_grads, args=(2, str(tmp_path / "pg"), str(tmp_path)), nprocs=2, join=True)
    model, images, tokens = _clip_step()
    ref = model.loss_terms(images, tokens)
    ref["loss"].backward()
    ref_grads = {k: p.grad for k, p in model.named_parameters() if p.grad is not None}
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        torch.testing.assert_close(got["loss"], ref["loss"].detach(), rtol=1e-5, atol=1e-6)
        assert got["grads"].keys() == ref_grads.keys()
        for k, g in got["grads"].items():
            torch.testing.assert_close(g, ref_grads[k], rtol=1e-4, atol=1e-6, msg=f"gradient of {k}")


# ---- the official image transforms (open_clip's) on non-square images ---------------------------------------

NON_SQUARE = [((300, 200), "png"), ((200, 333), "png"), ((640, 360), "jpg"), ((225, 224), "png"), ((97, 311), "jpg")]


def _non_square_images(root):
    """Smooth colour gradients with some noise (a resize that differed would show), saved as PNG and JPEG."""
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for (w, h), ext in NON_SQUARE:
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([255 * xx / w, 255 * yy / h, 128 + 60 * np.sin(xx / 7.0 + yy / 11.0)], -1)
        img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
        path = root / f"{w}x{h}.{ext}"
        Image.fromarray(img).save(path, quality=90) if ext == "jpg" else Image.fromarray(img).save(path)
        paths.append(path)
    return paths


def _open_clip_uint8(transform, path):
    """open_clip's transform output (normalised float CHW) back in uint8 pixel units."""
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    from PIL import Image

    with Image.open(path) as img:
        t = transform(img)
    mean, std = torch.tensor(OPENAI_DATASET_MEAN)[:, None, None], torch.tensor(OPENAI_DATASET_STD)[:, None, None]
    return (t * std + mean) * 255.0


def test_eval_images_are_open_clip_eval_transform_on_non_square_images(tmp_path):
    """MMVP and the clustering read images as the official preprocess_val: short side to 224 (bicubic), centre crop."""
    from open_clip.transform import image_transform

    from clbench.data.dataset_dir import LazyImages

    paths = _non_square_images(tmp_path)
    reference = image_transform(224, is_train=False)
    lazy = LazyImages(tmp_path, [p.name for p in paths], 3, 224, fit="shortest_side")
    ours = np.asarray(lazy[np.arange(len(paths))])
    for i, path in enumerate(paths):
        diff = (torch.as_tensor(ours[i]).float() - _open_clip_uint8(reference, path)).abs()
        assert diff.max() < 0.51, (path.name, float(diff.max()))  # uint8 rounding only
    # the former fit (a centre square, bilinear) is measurably another image
    old = np.asarray(LazyImages(tmp_path, [paths[2].name], 3, 224)[0:1])[0]
    assert (torch.as_tensor(old).float() - _open_clip_uint8(reference, paths[2])).abs().mean() > 0.5


def test_training_views_are_open_clip_train_transform_of_the_whole_image(tmp_path):
    """The same draws give the same crop as open_clip's RandomResizedCrop(224, scale (0.9, 1), bicubic) of the file."""
    from open_clip.transform import AugmentationCfg, image_transform

    from clbench.data.dataset_dir import LazyImages
    from clbench.train.clip_loop import FullImageViews

    paths = _non_square_images(tmp_path)
    reference = image_transform(224, is_train=True, aug_cfg=AugmentationCfg(scale=(0.9, 1.0)))
    views = FullImageViews(LazyImages(tmp_path, [p.name for p in paths], 3, 224, fit="shortest_side"), 224,
                           (0.9, 1.0))
    for i, path in enumerate(paths):
        torch.manual_seed(100 + i)
        ours = torch.as_tensor(views(i)).float()
        torch.manual_seed(100 + i)
        diff = (ours - _open_clip_uint8(reference, path)).abs()
        assert ours.shape == (3, 224, 224) and diff.max() < 0.51, (path.name, float(diff.max()))


def test_cc12m_mmvp_reads_its_images_through_the_eval_transform(tmp_path):
    mmvp_fixture(tmp_path / "MMVP_VLM")
    img2dataset_fixture(tmp_path / "cc")
    meta = build_dataset({"generator": "cc12m_mmvp", "root": str(tmp_path / "cc"),
                          "mmvp_root": str(tmp_path / "MMVP_VLM"), "image_size": 16, "n_val": 1},
                         tmp_path / "out", tmp_path / "res")
    assert meta["image_fit"] == "shortest_side"
    assert dataset_dir.load(tmp_path / "out", "test")["x"].fit == "shortest_side"


def test_clip_precision_setting():
    from clbench.train.clip_loop import autocast_dtype, training_settings

    cuda = torch.device("cuda")
    assert autocast_dtype(training_settings({"clip": {"precision": "fp16"}}), cuda) == torch.float16
    assert autocast_dtype(training_settings({"clip": {"precision": "bf16"}}), cuda) == torch.bfloat16
    assert autocast_dtype(training_settings({"clip": {"precision": "fp16"}}), torch.device("cpu")) is None
    assert training_settings({"clip": {}})["precision"] == "auto"

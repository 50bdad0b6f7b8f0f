"""CL-DRO / ADNCE: Gaussian-weighted negatives (arXiv 2310.11048).

InfoNCE with detached Gaussian weights (mu, sigma) on the negatives' similarities. The report
compares ADNCE with InfoNCE (SimCLR) under linear evaluation and weighted k-NN; on graphs (TU datasets,
GraphCL's GIN) with GraphCL under an RBF SVC in 10-fold cross-validation; and on sentence embeddings
(paper scale) with unsupervised SimCSE under SentEval's STS Spearman correlation.
"""

from __future__ import annotations

from clbench.papers.registry import register_paper
from clbench.report.paper import ExperimentRecord, Paper, Source

KEY = "adnce"

# --------------------------------------------------------------------------------------------------
# the protocol of the image experiments (junkangwu/ADNCE, image/)

_CODE = "ADNCE official code, image/"
_README = f"{_CODE}README.md (reproduction commands)"
# temperature, mu, sigma per dataset; InfoNCE (the estimator "easy") runs at the same temperature
DATASET_LOSS = {"cifar10": (0.4, 0.7, 0.5), "cifar100": (0.3, 0.5, 1.0), "stl10": (0.2, 0.8, 1.0)}


def _method_sources(per_dataset: tuple[float, float, float] | None, objective: str, dataset: str | None) -> dict:
    estimator = "adnce" if objective == "adnce" else "easy"
    src = {
        "objective": Source(f"{_CODE}model.py (DRO_Loss, estimator {estimator})", objective),
        "loss.similarity": Source(f"{_CODE}model.py (dot products of L2-normalised projections)", "cosine"),
        "encoder.name": Source(f"{_CODE}model.py (torchvision resnet50)", "resnet50"),
        "encoder.stem": Source(f"{_CODE}model.py (3x3 stride-1 conv1, no max-pool)", "cifar", unset="cifar"),
        "projection_hidden_dim": Source(f"{_CODE}model.py (g: Linear 2048 -> 512, BN, ReLU, Linear)", 512),
        "projection_batch_norm": Source(f"{_CODE}model.py (g: Linear 2048 -> 512, BN, ReLU, Linear)", True,
                                        unset=True),
        "projection_dim": Source(f"{_CODE}train_test.sh (feature_dim)", 128),
        "optimizer.name": Source(f"{_CODE}main.py (optim.Adam)", "adam"),
        "optimizer.lr": Source(f"{_CODE}main.py (optim.Adam)", 0.001),
        "optimizer.weight_decay": Source(f"{_CODE}main.py (optim.Adam)", 1e-6),
        "schedule": Source(f"{_CODE}main.py (no scheduler)", "constant"),
        "warmup_epochs": Source(f"{_CODE}main.py (no scheduler)", 0),
        "epochs": Source(f"{_CODE}train_test.sh", 400),
        "batch_size": Source(_README, 256),
        "augment": Source(f"{_CODE}utils.py (train_transform)", "simclr"),
        "views": Source(f"{_CODE}main.py (pos_1, pos_2)", 2),
    }
    if per_dataset is not None:
        temperature, mu, sigma = per_dataset
        src["loss.temperature"] = Source(_README, temperature)
        if objective == "adnce":
            src["loss.mu"] = Source(f"{_README}: w1", mu)
            src["loss.sigma"] = Source(f"{_README}: w2", sigma)
    if dataset == "stl10":
        src["crop_size"] = Source(f"{_CODE}utils.py (RandomResizedCrop(32))", 32)
    return src


def protocol(record: ExperimentRecord) -> dict:
    """Where the settings of an experiment with InfoNCE and ADNCE come from: the official image code,
    with the README's per-dataset temperature, mu and sigma on CIFAR-10, CIFAR-100 and STL-10."""
    if record.methods_with(objective="adnce_sentence") or record.methods_with(objective="simcse"):
        return sentence_protocol(record)
    dataset = record.dataset.get("name") if record.dataset.get("generator") == "torchvision" else None
    per_dataset = DATASET_LOSS.get(dataset)
    out: dict = {}
    for method, spec in record.methods.items():
        if spec.get("objective") in ("adnce", "info_nce") and "mcl" not in spec:
            out[method] = _method_sources(per_dataset, spec["objective"], dataset)
    if not out:
        return {}
    linear = f"{_CODE}linear.py"
    out["evaluation"] = {
        "probe.kind": Source(f"{linear} (Linear(2048, C) on the frozen encoder)", "linear"),
        "probe.optimizer": Source(f"{linear} (optim.Adam)", "adam", unset="adam"),
        "probe.lr": Source(f"{linear} (optim.Adam)", 0.001),
        "probe.weight_decay": Source(f"{linear} (optim.Adam)", 1e-6),
        "probe.epochs": Source(f"{linear} (--epochs)", 100),
        "probe.batch_size": Source(f"{linear} (--batch_size)", 512),
        "probe.schedule": Source(f"{linear} (no scheduler)", "constant", unset="constant"),
        "probe.standardize": Source(f"{linear} (the encoder's flattened features)", False, unset=True),
        "probe.protocol": Source(f"{linear} (utils.get_dataset(pair=False): trains on train_transform images, "
                                 f"tests on test_transform ones)", "augmented", unset="features"),
        "probe.augment": Source(f"{_CODE}utils.py train_transform (RandomResizedCrop, flip, jitter, greyscale)",
                                "simclr"),
        "knn.k": Source(f"{_CODE}train_test.sh (k)", 200),
        "evaluations": Source(f"{_CODE}linear.py (linear evaluation) and main.py test() (weighted kNN)",
                              ["linear_probe", "knn"]),
    }
    if per_dataset is not None:
        out["evaluation"]["knn.temperature"] = Source(f"{_CODE}main.py test() (the training temperature)",
                                                      per_dataset[0])
    if dataset is not None:
        out["data"] = {"name": Source(f"{_README}: dataset_name", dataset)}
    if dataset == "stl10":
        out["data"]["unlabeled"] = Source(f"{_CODE}utils.py (STL10 split 'train+unlabeled' for pretraining)", True)
        out["evaluation"]["probe.crop_size"] = Source(
            f"{_CODE}utils.py train_transform (RandomResizedCrop(32) of the 96 px STL-10 images; test_transform keeps "
            f"96 px), used by linear.py", 32)
    return out


# --------------------------------------------------------------------------------------------------
# sentence embeddings (junkangwu/ADNCE, sentence/: unsupervised SimCSE with the loss replaced)

_SENTENCE = "ADNCE official code, sentence/"
_SENTENCE_README = f"{_SENTENCE}README.md (reproduction commands)"
_RUN = f"{_SENTENCE}run_unsup_example.sh"
# model -> (temperature, mu, sigma, batch size, learning rate): "bash main_frame.sh 0 adnce mu sigma t model bsz lr"
SENTENCE_SETTINGS = {"bert-base-uncased": (0.07, 0.4, 1.0, 64, 3e-5), "roberta-base": (0.06, 2.0, 1.0, 512, 1e-5)}


# the test embedding: what the official evaluation asked for, and what it most likely scored
_POOLER = (f"assumed: [CLS] before the MLP, SimCSE's evaluation.py cls_before_pooler, its convention for unsupervised "
           f"(--mlp_only_train) models. {_SENTENCE}evaluate.sh line 7 asks for --pooler cls, the pooler_output of the "
           f"checkpoint in result/; run_unsup_example.sh (train.py) saves the trained head as mlp.*, and "
           f"main_frame.sh lines 14-15 evaluate it without simcse_to_huggingface.py, which would rename it to "
           f"pooler.*, so the 74.6 most likely scored [CLS] through a randomly initialised pooler (N(0, 0.02) "
           f"weights and tanh: nearly a random rotation, closer to cls_before_pooler than to the trained head); "
           f"the STS evaluation reports the trained head's average too (sts_avg_cls)")
_HEAD_INIT = "N(0, 0.02) weights, zero bias"
_SIMCSE_TEMPERATURE = (f"{_SENTENCE}train.py lines 89-90 (ModelArguments.temp default 0.05), unsupervised SimCSE's "
                       f"published temperature (Gao et al. 2021); the README's commands give ADNCE's temperatures only")


def _sentence_method_sources(spec: dict) -> dict:
    objective = spec["objective"]
    model = (spec.get("sentence") or {}).get("model")
    src = {
        "sentence.pooler": Source(_POOLER, "cls_before_pooler", unset="cls_before_pooler"),
        "sentence.head_init": Source(f"{_SENTENCE}simcse/models.py lines 87-96 (cl_init builds MLPLayer, then "
                                     f"init_weights: BERT's initialisation, initializer_range 0.02)", _HEAD_INIT,
                                     unset=_HEAD_INIT),
        "objective": Source(f"{_SENTENCE}simcse/models.py cl_forward "
                            f"(loss_mode {'adnce' if objective == 'adnce_sentence' else 'easy'})", objective),
        "sentence.model": Source(f"{_SENTENCE_README}: model_name",
                                 model if model in SENTENCE_SETTINGS else "bert-base-uncased"),
        "sentence.max_length": Source(f"{_RUN} (--max_seq_length 32)", 32, unset=32),
        "sentence.eval_steps": Source(f"{_RUN} (--eval_steps 125, --metric_for_best_model stsb_spearman, "
                                      f"--load_best_model_at_end)", 125, unset=125),
        "sentence.schedule": Source(f"{_RUN} (transformers Trainer default: linear decay, no warm-up)", "linear",
                                    unset="linear"),
        "sentence.fp16": Source(f"{_RUN} (--fp16)", True, unset=True),
        "sentence.max_grad_norm": Source(f"{_SENTENCE}simcse/trainers.py (clip_grad_norm_ at the transformers "
                                         f"4.2.1 default max_grad_norm 1.0, requirements.txt)", 1.0, unset=1.0),
        "sentence.dropout": Source(f"{_SENTENCE}simcse/models.py (the pretrained config's dropout, the only "
                                   f"augmentation: both passes of a batch see it)", 0.1),
        "epochs": Source(f"{_RUN} (--num_train_epochs 1)", 1),
        "optimizer.name": Source(f"{_SENTENCE}simcse/trainers.py (transformers Trainer: AdamW)", "adamw"),
        "optimizer.weight_decay": Source(f"{_SENTENCE}simcse/trainers.py (transformers Trainer default 0)", 0.0),
    }
    if model in SENTENCE_SETTINGS:
        t, mu, sigma, batch, lr = SENTENCE_SETTINGS[model]
        src["loss.temperature"] = (Source(f"{_SENTENCE_README}: temp", t) if objective == "adnce_sentence"
                                   else Source(_SIMCSE_TEMPERATURE, 0.05))
        src["batch_size"] = Source(f"{_SENTENCE_README}: bsz", batch)
        src["optimizer.lr"] = Source(f"{_SENTENCE_README}: lr", lr)
        if objective == "adnce_sentence":
            src["loss.mu"] = Source(f"{_SENTENCE_README}: w1", mu)
            src["loss.sigma"] = Source(f"{_SENTENCE_README}: w2", sigma)
    return src


def sentence_protocol(record: ExperimentRecord) -> dict:
    """Where the settings of a sentence experiment come from: the official sentence/ code (SimCSE's trainer with
    the loss replaced), the README's per-model temperature, mu, sigma, batch and learning rate."""
    out: dict = {m: _sentence_method_sources(spec) for m, spec in record.methods.items()
                 if spec.get("objective") in ("adnce_sentence", "simcse")}
    out["data"] = {"generator": Source(f"{_RUN} (--train_file data/wiki1m_for_simcse.txt); SentEval's STS data "
                                       f"(evaluation.py)", "sentences"),
                   "models": Source(f"{_SENTENCE_README}: model_name (the pretrained models, fetched with the data)",
                                    ["bert-base-uncased", "roberta-base"])}
    out["evaluation"] = {"evaluations": Source(
        f"{_SENTENCE}evaluation.py (--task_set sts --mode test: STS12-16 'all' Spearman, STS-B and SICK-R test "
        f"Spearman, their average; [CLS] before the MLP as SimCSE's cls_before_pooler for --mlp_only_train models)",
        ["sts"])}
    return out


_STS = {"source": "the paper's table of sentence embedding results (average Spearman x 100 of STS12-16, STS-B, "
                  "SICK-R)", "dataset": "STS (SentEval)", "metric": "sts", "unit": "%", "scale": "paper"}

SENTENCE_REPORTED = (
    {"id": "adnce.sts.bert", **_STS, "method": "ADNCE (BERT-base)", "method_key": "adnce_bert",
     "experiment": "adnce_sts_bert", "value": 74.6, "backbone": "BERT-base",
     "checked": "protocol from the official sentence/README.md command (main_frame.sh 0 adnce 0.4 1.0 0.07 "
                "bert-base-uncased 64 3e-5); the repository has no per-task numbers or logs",
     "note": "measured by configs/paper.yaml (adnce_sts_bert); the tiny default has no sentence experiment, "
             "since no English text for a meaningful STS test ships offline"},
)

SENTENCE_CLAIMS = (
    {
        "id": "adnce.beats_simcse_sts",
        "paper": KEY,
        "text": "ADNCE's average STS Spearman (STS12-16, STS-B, SICK-R) is above unsupervised SimCSE's at the same "
                "settings (paper, BERT-base: ADNCE 74.6).",
        "check": {"kind": "greater", "metric": "sts_avg", "a": "adnce_bert", "b": "simcse_bert"},
    },
    {
        "id": "adnce.beats_simcse_sts_roberta",
        "paper": KEY,
        "text": "With RoBERTa-base too, ADNCE's average STS Spearman is above SimCSE's at the same settings.",
        "check": {"kind": "greater", "metric": "sts_avg", "a": "adnce_roberta", "b": "simcse_roberta"},
    },
)


_IMAGE = {"source": "the paper's table of image classification results (linear evaluation, ResNet-50)",
          "metric": "linear_top1", "unit": "%", "scale": "paper", "backbone": "ResNet-50"}

REPORTED = (
    {"id": "adnce.cifar10.adnce", **_IMAGE, "dataset": "CIFAR-10", "method": "ADNCE", "method_key": "adnce",
     "experiment": "adnce_cifar10", "value": 91.88,
     "checked": "protocol (400 epochs, then linear.sh) from the official image/train_test.sh"},
    {"id": "adnce.cifar10.infonce", **_IMAGE, "dataset": "CIFAR-10", "method": "InfoNCE (SimCLR)",
     "method_key": "infonce", "experiment": "adnce_cifar10", "value": 91.19,
     "checked": "not checked against a second source"},
    {"id": "adnce.cifar100.adnce", **_IMAGE, "dataset": "CIFAR-100", "method": "ADNCE", "method_key": "adnce",
     "experiment": "adnce_cifar100", "value": 70.75, "checked": "not checked against a second source"},
    {"id": "adnce.cifar100.infonce", **_IMAGE, "dataset": "CIFAR-100", "method": "InfoNCE (SimCLR)",
     "method_key": "infonce", "experiment": "adnce_cifar100", "value": 69.92,
     "checked": "not checked against a second source"},
    *SENTENCE_REPORTED,
)

CLAIMS = (
    {
        "id": "adnce.beats_infonce_linear",
        "paper": KEY,
        "text": "ADNCE's linear-evaluation top-1 is above InfoNCE's at the same temperature "
                "(paper: CIFAR-10 91.88 vs 91.19, CIFAR-100 70.75 vs 69.92).",
        "check": {"kind": "greater", "metric": "linear_top1", "a": "adnce", "b": "infonce"},
    },
    {
        "id": "adnce.beats_infonce_knn",
        "paper": KEY,
        "text": "ADNCE's weighted kNN top-1 (k = 200) is above InfoNCE's at the same temperature.",
        "check": {"kind": "greater", "metric": "knn_top1", "a": "adnce", "b": "infonce"},
    },
    *SENTENCE_CLAIMS,
)

# --------------------------------------------------------------------------------------------------
# graphs: GraphCL-style TU experiments (junkangwu/ADNCE, graph/)

_GRAPH = "ADNCE official code, graph/"
_GRAPH_README = f"{_GRAPH}README.md (reproduction commands: go_adnce.sh <gpu> <dataset> <aug> <mode> <mu> <sigma> <t>)"
_GRAPH_TRAIN = f"{_GRAPH}gsimclr_robust.py"
_GRAPH_AUG = f"{_GRAPH}aug.py"
# TU dataset -> (augmentation, mu, temperature); sigma 1.0 throughout (graph/README.md)
GRAPH_DATASETS = {
    "NCI1": ("random3", 0.7, 0.05), "PROTEINS": ("random4", 1.5, 0.05), "DD": ("random2", 0.2, 0.2),
    "MUTAG": ("random2", 0.7, 0.15), "COLLAB": ("random4", 0.3, 0.1), "REDDIT-BINARY": ("random2", 0.3, 0.15),
    "REDDIT-MULTI-5K": ("random2", 0.8, 0.15), "IMDB-BINARY": ("random2", 0.7, 0.55),
}
GRAPH_OBJECTIVES = ("graph_info_nce", "graph_adnce")
GRAPH_METRICS = ("svc_top1", "svc_top1_epoch10")


# random2 passes --noise_ratio to both of its augmentations, and go_adnce.sh never sets it
_RANDOM2_RATES = (f"assumed: the official random2 cannot run as shipped; GraphCL's rates ({_GRAPH_AUG} lines 254-259 "
                  f"call drop_nodes and subgraph with self.noise_ratio, the --noise_ratio that {_GRAPH}arguments.py "
                  f"line 28 leaves None and go_adnce.sh never sets: int(node_num * None) raises a TypeError at "
                  f"aug.py line 311; 0.1 and 0.2 are the functions' own defaults, lines 307 and 354, GraphCL's rates)")
_SELF_LOOPS = "every node"


def _graph_method_sources(objective: str, per_dataset: tuple[str, float, float] | None,
                          augment: str | None = None) -> dict:
    mode = "adnce" if objective == "graph_adnce" else "easy"
    random2 = (augment or (per_dataset[0] if per_dataset else None)) == "random2"
    src = {
        "objective": Source(f"{_GRAPH_TRAIN} (simclr.loss_cal, mode {mode})", objective),
        "graph.hidden_dim": Source(f"{_GRAPH}arguments.py (--hidden-dim 32)", 32, unset=32),
        "graph.num_layers": Source(f"{_GRAPH}go_adnce.sh (--num-gc-layers 3)", 3, unset=3),
        "graph.eval_epochs": Source(f"{_GRAPH_TRAIN} (epochs 20, log_interval 10: evaluated at 10 and 20)", [10, 20],
                                    unset=[10, 20]),
        "graph.node_drop_rate": Source(_RANDOM2_RATES if random2 else f"{_GRAPH_AUG} (drop_nodes, noise_ratio 0.1)",
                                       0.1, unset=0.1),
        "graph.subgraph_keep": Source(_RANDOM2_RATES if random2 else f"{_GRAPH_AUG} (subgraph, noise_ratio 0.2)",
                                      0.2, unset=0.2),
        "graph.self_loops": Source(f"assumed: a self-loop on every node; {_GRAPH_AUG} lines 232-234 add them for "
                                   f"range(edge_index.max()), which skips each graph's highest-numbered node",
                                   _SELF_LOOPS, unset=_SELF_LOOPS),
        "graph.edge_perturb_rate": Source(f"{_GRAPH_AUG} (permute_edges, edge_num / 10)", 0.1, unset=0.1),
        "graph.attr_mask_rate": Source(f"{_GRAPH_AUG} (mask_nodes, node_num / 10)", 0.1, unset=0.1),
        "graph.subgraph_growth": Source(f"{_GRAPH_AUG} (subgraph: the neighbourhood union is discarded, so it "
                                        f"grows from the start node's neighbours)", "seed", unset="seed"),
        "epochs": Source(f"{_GRAPH_TRAIN} (epochs = 20)", 20),
        "batch_size": Source(f"{_GRAPH_TRAIN} (batch_size = 128)", 128),
        "optimizer.name": Source(f"{_GRAPH_TRAIN} (torch.optim.Adam)", "adam"),
        "optimizer.lr": Source(f"{_GRAPH}go_adnce.sh (lr 0.01)", 0.01),
        "optimizer.weight_decay": Source(f"{_GRAPH_TRAIN} (torch.optim.Adam, no weight decay)", 0.0),
        "schedule": Source(f"{_GRAPH_TRAIN} (no scheduler)", "constant"),
        "warmup_epochs": Source(f"{_GRAPH_TRAIN} (no scheduler)", 0),
    }
    if per_dataset is not None:
        augment, mu, temperature = per_dataset
        src["graph.augment"] = Source(_GRAPH_README, augment)
        src["loss.temperature"] = Source(f"{_GRAPH_README}: temp", temperature)
        if objective == "graph_adnce":
            src["loss.mu"] = Source(f"{_GRAPH_README}: w1", mu)
            src["loss.sigma"] = Source(f"{_GRAPH_README}: w2", 1.0)
    return src


def graph_protocol(record: ExperimentRecord) -> dict:
    """Where the settings of a graph experiment come from: the official graph code, with the README's
    per-dataset augmentation, mu, sigma and temperature on the eight TU datasets."""
    name = record.dataset.get("name") if record.dataset.get("generator") == "tu" else None
    per_dataset = GRAPH_DATASETS.get(name)
    out: dict = {method: _graph_method_sources(spec["objective"], per_dataset, (spec.get("graph") or {}).get("augment"))
                 for method, spec in record.methods.items() if spec.get("objective") in GRAPH_OBJECTIVES}
    if not out:
        return {}
    out["evaluation"] = {"evaluations": Source(
        f"{_GRAPH}evaluate_embedding.py (svc_classify, search=True: RBF SVC, C in 1e-3..1e3 by 5-fold grid search, "
        f"in a shuffled stratified 10-fold CV over all graphs)", ["graph_svc"]),
        "graph_svc.outer_folds": Source(
            f"assumed: the outer StratifiedKFold(10, shuffle) seeded with the run's seed; "
            f"{_GRAPH}evaluate_embedding.py line 133 leaves random_state None (NumPy's global state after training)",
            "seeded by the run's seed", unset="seeded by the run's seed")}
    out["run"] = {"seeds": Source(f"{_GRAPH}go_adnce.sh (for seed in 0 1 2 3 4)", [0, 1, 2, 3, 4])}
    if name is not None:
        out["data"] = {"name": Source(_GRAPH_README, name),
                       "node_features": Source(f"{_GRAPH_AUG} (one-hot node labels; the constant 1 for datasets "
                                               f"without them)", "auto", unset="auto")}
    return out


def _protocol(record: ExperimentRecord) -> dict:
    """The image protocol's sources and the graph protocol's, for an experiment of either."""
    return {**protocol(record), **graph_protocol(record)}


# No TU accuracies: graph/README.md gives the reproduction commands but no numbers, and the repository holds
# no result logs, so the paper's graph table is not sourced here.
GRAPH_CLAIMS = (
    {
        "id": "adnce.graph_beats_graphcl",
        "paper": KEY,
        "text": "On graphs, ADNCE's embeddings classify better than GraphCL's (RBF SVC, 10-fold CV, epoch 20) "
                "at the same augmentation and temperature.",
        "check": {"kind": "greater", "metric": "svc_top1", "a": "adnce_graph", "b": "graphcl"},
    },
    {
        "id": "adnce.graph_beats_graphcl_epoch10",
        "paper": KEY,
        "text": "The same at epoch 10, the official code's other scored epoch.",
        "check": {"kind": "greater", "metric": "svc_top1_epoch10", "a": "adnce_graph", "b": "graphcl"},
    },
)

PAPER = register_paper(Paper(
    key=KEY,
    title="Understanding Contrastive Learning via Distributionally Robust Optimization",
    heading="CL-DRO / ADNCE: Gaussian-weighted negatives (arXiv 2310.11048)",
    summary="InfoNCE with detached Gaussian weights on the negatives (mu, sigma); CIFAR-10/100, STL-10; "
            "STS sentence embeddings (BERT, RoBERTa).",
    citation="Junkang Wu, Jiawei Chen, Jiancan Wu, Wentao Shi, Xiang Wang, Xiangnan He. Understanding Contrastive "
             "Learning via Distributionally Robust Optimization. NeurIPS 2023.",
    arxiv="2310.11048",
    code="https://github.com/junkangwu/ADNCE",
    metrics=("linear_top1", "knn_top1") + GRAPH_METRICS
            + ("sts_avg", "sts12", "sts13", "sts14", "sts15", "sts16", "stsb", "sickr"),
    reported=REPORTED,
    metric_names={"sts": "sts_avg"},  # the paper's STS average is the sts evaluation's sts_avg
    claims=CLAIMS + GRAPH_CLAIMS,
    protocol=_protocol,
))

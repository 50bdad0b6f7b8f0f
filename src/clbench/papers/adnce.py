"""CL-DRO / ADNCE: Gaussian-weighted negatives (arXiv 2310.11048).

InfoNCE with detached Gaussian weights (mu, sigma) on the negatives' similarities. The report
compares ADNCE with InfoNCE (SimCLR) under linear evaluation and weighted k-NN.
"""

from __future__ import annotations

from clbench.papers.registry import register_paper
from clbench.report.claims import ACC_TOL
from clbench.report.paper import Paper

KEY = "adnce"

_IMAGE = {"source": "image classification results (ResNet-50, linear evaluation)", "metric": "linear_top1",
          "unit": "%", "scale": "paper", "backbone": "ResNet-50"}

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
    {"id": "adnce.sts.bert", "source": "sentence embedding results (STS, BERT-base)", "dataset": "STS (SentEval)",
     "method": "ADNCE (BERT-base)", "method_key": "adnce_bert", "experiment": "adnce_sts", "metric": "sts",
     "value": 74.6, "unit": "%", "scale": "paper", "backbone": "BERT-base",
     "checked": "not checked against a second source",
     "note": "sentence experiments are outside clbench's image pipeline; listed for completeness"},
)

CLAIMS = (
    {
        "id": "adnce.ge_infonce_linear",
        "paper": KEY,
        "text": "ADNCE is at least as good as InfoNCE under linear evaluation "
                "(paper: CIFAR-10 91.88 vs 91.19, CIFAR-100 70.75 vs 69.92).",
        "check": {"kind": "at_least", "metric": "linear_top1", "a": "adnce", "b": "infonce", "tolerance": ACC_TOL},
    },
    {
        "id": "adnce.ge_infonce_knn",
        "paper": KEY,
        "text": "ADNCE is at least as good as InfoNCE under weighted kNN (k=200).",
        "check": {"kind": "at_least", "metric": "knn_top1", "a": "adnce", "b": "infonce", "tolerance": ACC_TOL},
    },
)

PAPER = register_paper(Paper(
    key=KEY,
    title="Understanding Contrastive Learning via Distributionally Robust Optimization",
    heading="CL-DRO / ADNCE: Gaussian-weighted negatives (arXiv 2310.11048)",
    summary="InfoNCE with detached Gaussian weights on the negatives (mu, sigma); CIFAR-10/100, STL-10.",
    citation="Junkang Wu, Jiawei Chen, Jiancan Wu, Wentao Shi, Xiang Wang, Xiangnan He. Understanding Contrastive "
             "Learning via Distributionally Robust Optimization. NeurIPS 2023.",
    arxiv="2310.11048",
    code="https://github.com/junkangwu/ADNCE",
    metrics=("linear_top1", "knn_top1"),
    reported=REPORTED,
    claims=CLAIMS,
))

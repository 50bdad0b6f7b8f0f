"""Datasets: sources (embedded, torchvision, WILDS, PACS, ImageFolder), generators, splits, corruptions.

Every dataset is materialised as a *dataset directory* (see :mod:`clbench.data.dataset_dir`).
"""

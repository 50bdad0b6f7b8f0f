"""Image encoders: a small CNN for 28x28/32x32 data and torchvision ResNets (CIFAR or ImageNet stem)."""

from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    """Three stride-2 conv blocks (width, 2*width, 4*width; BN, ReLU), global average pool, linear.

    The same block layout as CLEAR's VAE encoder (32/64/128 channels at width 32), so the plain
    CNN baseline and the contrastive encoders share one backbone.
    """

    def __init__(self, in_channels: int = 1, width: int = 32, feature_dim: int = 128):
        super().__init__()
        chans = [in_channels, width, 2 * width, 4 * width]
        layers: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Linear(chans[-1], feature_dim), nn.ReLU(inplace=True))
        self.out_dim = feature_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def resnet(name: str, in_channels: int = 3, stem: str = "cifar") -> nn.Module:
    """torchvision ResNet-18/50, fc removed. ``stem``: ``cifar`` (3x3 stride-1 conv, no max-pool: the
    small-image choice of SimCLR/SupCon/ADNCE on CIFAR and STL) or ``imagenet`` (torchvision's 7x7
    stride-2 conv and max-pool, for 224 px ImageNet)."""
    import torchvision

    if stem not in ("cifar", "imagenet"):
        raise ValueError(f"unknown ResNet stem {stem!r}; expected cifar or imagenet")
    net = getattr(torchvision.models, name)(weights=None)
    if stem == "cifar":
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    net.out_dim = net.fc.in_features
    net.fc = nn.Identity()
    return net


def build_encoder(spec: dict, in_channels: int) -> nn.Module:
    """Build the encoder described by a method's ``encoder:`` config; ``.out_dim`` is its feature size."""
    name = spec.get("name", "small_cnn")
    if name == "small_cnn":
        return SmallCNN(in_channels, spec.get("width", 32), spec.get("feature_dim", 128))
    if name in ("resnet18", "resnet50"):
        return resnet(name, in_channels, spec.get("stem", "cifar"))
    raise ValueError(f"unknown encoder {name!r}; expected small_cnn, resnet18 or resnet50")

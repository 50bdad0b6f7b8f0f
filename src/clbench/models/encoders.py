"""Image encoders: a small CNN for 28x28/32x32 data and torchvision ResNets (CIFAR or ImageNet stem)."""

from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    """Stride-2 conv blocks (BN, ReLU; channels doubling from ``width``), then one of two tops:

    - ``layers=3`` (default): three 3x3 convs (width, 2*width, 4*width): the block layout of CLEAR's
      VAE encoder, so the plain CNN baseline and the contrastive encoders share one backbone;
    - ``layers=5``: five 4x4 convs (width ... 16*width), CLEAR's 64 px baseline
      (``SimpleCNN64Classifier`` in scotsun/clear-vae: 64 px ends at 2x2, 2048 values at width 32).

    The top:

    - ``pool="avg"`` (default): global average pool, Linear(channels, feature_dim), ReLU;
    - ``pool="flatten"``: the feature map flattened (channels * s * s values for an ``image_size``
      input, ``s`` the map's side: 2048 for 28 px at width 32 and three layers), no further layer. This
      is the official CLEAR CNN baseline's backbone (``SimpleCNNClassifier``), whose MLP head sits on the
      flattened map (see the ``cross_entropy`` method's ``classifier``).
    """

    KERNELS = {3: 3, 5: 4}  # layers -> kernel size; every conv has stride 2 and padding 1

    def __init__(self, in_channels: int = 1, width: int = 32, feature_dim: int = 128, pool: str = "avg",
                 image_size: int | None = None, layers: int = 3):
        super().__init__()
        if layers not in self.KERNELS:
            raise ValueError(f"small_cnn layers must be one of {sorted(self.KERNELS)}, got {layers!r}")
        kernel = self.KERNELS[layers]
        chans = [in_channels] + [width * 2**i for i in range(layers)]
        blocks: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            blocks += [nn.Conv2d(cin, cout, kernel, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout),
                       nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*blocks)
        if pool == "avg":
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Sequential(nn.Linear(chans[-1], feature_dim), nn.ReLU(inplace=True))
            self.out_dim = feature_dim
        elif pool == "flatten":
            if not image_size:
                raise ValueError("small_cnn with pool: flatten needs the image size")
            side = int(image_size)
            for _ in range(layers):
                side = (side + 2 - kernel) // 2 + 1
            if side < 1:
                raise ValueError(f"small_cnn with {layers} layers shrinks {image_size} px to nothing")
            self.pool = nn.Identity()
            self.fc = nn.Identity()
            self.out_dim = chans[-1] * side * side
        else:
            raise ValueError(f"unknown small_cnn pool {pool!r}; expected avg or flatten")

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


def build_encoder(spec: dict, in_channels: int, image_size: int | None = None) -> nn.Module:
    """Build the encoder described by a method's ``encoder:`` config; ``.out_dim`` is its feature size."""
    name = spec.get("name", "small_cnn")
    if name == "small_cnn":
        return SmallCNN(in_channels, spec.get("width", 32), spec.get("feature_dim", 128), spec.get("pool", "avg"),
                        image_size, spec.get("layers", 3))
    if name in ("resnet18", "resnet50"):
        return resnet(name, in_channels, spec.get("stem", "cifar"))
    raise ValueError(f"unknown encoder {name!r}; expected small_cnn, resnet18 or resnet50")

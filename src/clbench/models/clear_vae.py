"""CLEAR-VAE: a VAE whose latent is split into content ``z_c`` and style ``z_s``.

Two architectures (the ``clear_vae`` objective's ``architecture`` setting), both with one linear
layer giving ``mu_c, logvar_c, mu_s, logvar_s`` and a mirror-image decoder ending in a sigmoid:

- ``conv3`` (the default; the official code's ``VAE``, for 28 px Styled-MNIST): three 3x3 stride-2
  convs (width, 2*width, 4*width; BN, ReLU); decoder linear + ReLU, three transposed 3x3 convs.
- ``conv5`` (the official code's ``VAE64``, for 64 px PACS, CelebA and Camelyon17): five 4x4 stride-2
  convs (width, 2, 4, 8, 16 * width; BN, ReLU), so 64 px ends at 2x2 and, at width 32, a 2048-wide
  flattened feature; decoder linear + BN + ReLU, five transposed 4x4 convs (BN, ReLU between them)
  and, as in the official decoder, a BatchNorm on the output before the sigmoid.

Both work for any square input the encoder can shrink (conv5 needs at least 32 px): the
transposed convs' output padding is computed from the encoder's feature-map sizes.
"""

from __future__ import annotations

import torch
from torch import nn

# architecture -> (conv layers, kernel size); every conv has stride 2 and padding 1
ARCHITECTURES = {"conv3": (3, 3), "conv5": (5, 4)}


def _conv_sizes(size: int, n: int = 3, kernel: int = 3) -> list[int]:
    sizes = [size]
    for _ in range(n):
        sizes.append((sizes[-1] + 2 - kernel) // 2 + 1)  # stride 2, padding 1
    return sizes


class ClearVAE(nn.Module):
    def __init__(self, in_channels: int = 1, image_size: int = 28, z_content: int = 8, z_style: int = 8,
                 width: int = 32, architecture: str = "conv3"):
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ValueError(f"unknown CLEAR-VAE architecture {architecture!r}; "
                             f"expected one of {sorted(ARCHITECTURES)}")
        n, kernel = ARCHITECTURES[architecture]
        sizes = _conv_sizes(image_size, n, kernel)
        if sizes[-1] < 1:
            raise ValueError(f"architecture {architecture} halves the image {n} times; {image_size} px is too small")
        chans = [in_channels] + [width * 2**i for i in range(n)]
        enc: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            enc += [nn.Conv2d(cin, cout, kernel, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout),
                    nn.ReLU(inplace=True)]
        self.encoder = nn.Sequential(*enc, nn.Flatten())
        self.bottom = (chans[-1], sizes[-1], sizes[-1])
        flat = chans[-1] * sizes[-1] ** 2
        self.z_content, self.z_style = z_content, z_style
        self.heads = nn.Linear(flat, 2 * (z_content + z_style))
        five = architecture == "conv5"
        self.decoder_in = nn.Sequential(nn.Linear(z_content + z_style, flat), *([nn.BatchNorm1d(flat)] if five else []),
                                        nn.ReLU(inplace=True))
        dec: list[nn.Module] = []
        rev = chans[::-1]
        for i, (cin, cout) in enumerate(zip(rev[:-1], rev[1:])):
            target, source = sizes[-2 - i], sizes[-1 - i]
            pad = target - ((source - 1) * 2 - 2 + kernel)
            dec.append(nn.ConvTranspose2d(cin, cout, kernel, stride=2, padding=1, output_padding=pad))
            if i < len(rev) - 2 or five:
                dec.append(nn.BatchNorm2d(cout))
            if i < len(rev) - 2:
                dec.append(nn.ReLU(inplace=True))
        self.decoder = nn.Sequential(*dec, nn.Sigmoid())

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(mu_c, logvar_c, mu_s, logvar_s)``."""
        h = self.heads(self.encoder(x))
        c, s = self.z_content, self.z_style
        return h[:, :c], h[:, c : 2 * c], h[:, 2 * c : 2 * c + s], h[:, 2 * c + s :]

    def decode(self, z_c: torch.Tensor, z_s: torch.Tensor) -> torch.Tensor:
        h = self.decoder_in(torch.cat([z_c, z_s], 1)).view(-1, *self.bottom)
        return self.decoder(h)

    @staticmethod
    def reparameterise(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled():
            return mu
        return sample(mu, logvar)

    def forward(self, x: torch.Tensor):
        mu_c, lv_c, mu_s, lv_s = self.encode(x)
        z_c, z_s = self.reparameterise(mu_c, lv_c), self.reparameterise(mu_s, lv_s)
        return self.decode(z_c, z_s), (mu_c, lv_c, z_c), (mu_s, lv_s, z_s)


def sample(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """z ~ N(mu, exp(logvar)) by reparameterisation (whatever the grad mode)."""
    return mu + torch.randn_like(mu) * (0.5 * logvar).exp()


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over latent dims, averaged over the batch."""
    return (0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)).mean()

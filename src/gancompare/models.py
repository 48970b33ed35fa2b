"""Generator/discriminator pairs of SPEC: `mlp`, `dcgan28`, `dcgan64`, chosen by `model.arch`.

Every builder takes the data shape (C, H, W) or (2,) and returns (G, D). D returns one logit or
critic score per sample, shape [N]; losses are computed from it by `losses.py`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from gancompare.errors import ConfigError

NORMS = ("none", "batch", "layer")


def norm_layer(kind: str, channels: int, conv: bool) -> nn.Module:
    """Normalisation by name. `layer` normalises each sample on its own (GroupNorm with one group
    is layer norm over C×H×W), which keeps a gradient penalty's per-sample gradients meaningful."""
    if kind == "none":
        return nn.Identity()
    if kind == "batch":
        return nn.BatchNorm2d(channels) if conv else nn.BatchNorm1d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels) if conv else nn.LayerNorm(channels)
    raise ConfigError("model.d_norm / model.g_norm", f"unknown norm '{kind}'",
                      f"choose one of {', '.join(NORMS)}")


def init_weights(module: nn.Module, std: float) -> None:
    """DCGAN initialisation: every weight N(0, std), norm scales N(1, std), biases 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d | nn.GroupNorm | nn.LayerNorm) \
                and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


class ImageHeadConv2d(nn.Conv2d):
    """A stride-1 Conv2d to a few output channels (G's last layer, 128 → C), computed as one
    channels-last matmul to the K×K taps, then `fold` (col2im) summing the taps into place.

    oneDNN runs a 128 → 1, 7×7 conv at about 16 GFLOP/s on this CPU, a third of the baseline
    step; the matmul and fold take its forward and backward 3× faster. Same parameters, state
    dict and initialisation as nn.Conv2d, same numbers up to float summation order.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ph, pw = self.padding if isinstance(self.padding, tuple) else (0, 0)
        kh, kw = self.kernel_size
        if (self.stride, self.dilation, self.groups) != ((1, 1), (1, 1), 1) \
                or isinstance(self.padding, str) or ph >= kh or pw >= kw:
            return super().forward(x)
        n, c, h, w = x.shape
        # taps[n, position, out·K·K]: every input pixel times every (flipped) kernel tap
        taps = x.permute(0, 2, 3, 1).reshape(n, h * w, c) @ \
            self.weight.flip(-1, -2).permute(1, 0, 2, 3).reshape(c, -1)
        # fold adds tap (i, j) of input pixel q into output pixel q - (i, j) + padding
        y = F.fold(taps.transpose(1, 2), (h + 2 * ph - kh + 1, w + 2 * pw - kw + 1),
                   (kh, kw), padding=(kh - 1 - ph, kw - 1 - pw))
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)


class Dropout(nn.Dropout):
    """nn.Dropout drawn as `rand >= p`: aten's bernoulli_ takes 1.5 ms per 128×1024 on this
    CPU, three times a uniform draw, and it was a fifth of the mlp step. Same distribution."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.rand(x.shape, device=x.device) >= self.p
        return x * keep.to(x.dtype).mul_(1 / (1 - self.p))


class Discriminator(nn.Module):
    """Wraps a body that ends in one unit, so every D returns a flat [N] vector of logits."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).flatten()


def mlp(shape: tuple[int, ...], latent_dim: int = 100, d_norm: str = "none",
        g_norm: str = "none", image_output: bool = True) -> tuple[nn.Module, nn.Module]:
    """Fully connected GAN on flattened data. Images end in tanh; 2-D points in a linear layer
    (a mixture on {-4..4}^2 lies outside tanh's range)."""
    size = math.prod(shape)
    g_layers: list[nn.Module] = []
    width_in = latent_dim
    for width in (256, 512, 1024):
        g_layers += [nn.Linear(width_in, width), norm_layer(g_norm, width, conv=False),
                     nn.LeakyReLU(0.2)]
        width_in = width
    g_layers += [nn.Linear(1024, size), nn.Tanh() if image_output else nn.Identity(),
                 nn.Unflatten(1, shape)]
    d_layers: list[nn.Module] = [nn.Flatten()]
    width_in = size
    for i, width in enumerate((1024, 512, 256)):
        d_layers += [nn.Linear(width_in, width), norm_layer(d_norm, width, conv=False),
                     nn.LeakyReLU(0.2)]
        if i < 2:  # SPEC: dropout after the first two hidden layers
            d_layers.append(Dropout(0.3))
        width_in = width
    d_layers.append(nn.Linear(256, 1))
    return nn.Sequential(*g_layers), Discriminator(nn.Sequential(*d_layers))


def dcgan28(shape: tuple[int, ...], latent_dim: int = 50, d_norm: str = "none",
            g_norm: str = "none", image_output: bool = True) -> tuple[nn.Module, nn.Module]:
    """The stable baseline of the failure-modes tutorial, for 28×28 data (C channels)."""
    c = _image_channels(shape, 28, "dcgan28")
    generator = nn.Sequential(
        nn.Linear(latent_dim, 128 * 7 * 7), norm_layer(g_norm, 128 * 7 * 7, conv=False),
        nn.LeakyReLU(0.2),
        nn.Unflatten(1, (128, 7, 7)),
        nn.ConvTranspose2d(128, 128, 4, stride=2, padding=1), norm_layer(g_norm, 128, conv=True),
        nn.LeakyReLU(0.2),  # 14×14
        nn.ConvTranspose2d(128, 128, 4, stride=2, padding=1), norm_layer(g_norm, 128, conv=True),
        nn.LeakyReLU(0.2),  # 28×28
        ImageHeadConv2d(128, c, 7, padding=3),
        nn.Tanh(),
    )
    discriminator = nn.Sequential(
        nn.Conv2d(c, 64, 4, stride=2, padding=1), norm_layer(d_norm, 64, conv=True),
        nn.LeakyReLU(0.2),  # 14×14
        nn.Conv2d(64, 64, 4, stride=2, padding=1), norm_layer(d_norm, 64, conv=True),
        nn.LeakyReLU(0.2),  # 7×7
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 1),
    )
    return generator, Discriminator(discriminator)


def dcgan64(shape: tuple[int, ...], latent_dim: int = 100, d_norm: str = "batch",
            g_norm: str = "none", image_output: bool = True) -> tuple[nn.Module, nn.Module]:
    """DCGAN for 64×64 data; kernel 4 divisible by stride 2 avoids checkerboard artifacts."""
    c = _image_channels(shape, 64, "dcgan64")
    g_layers: list[nn.Module] = [
        nn.Linear(latent_dim, 8 * 8 * 512), norm_layer(g_norm, 8 * 8 * 512, conv=False), nn.ReLU(),
        nn.Unflatten(1, (512, 8, 8)),
    ]
    for c_in, c_out in ((512, 256), (256, 128), (128, 64)):  # 8 → 16 → 32 → 64
        g_layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1),
                     norm_layer(g_norm, c_out, conv=True), nn.ReLU()]
    # Conv(C, 4×4, same): an even kernel pads 1 before and 2 after, as Keras' 'same' does.
    g_layers += [nn.ZeroPad2d((1, 2, 1, 2)), ImageHeadConv2d(64, c, 4), nn.Tanh()]
    discriminator = nn.Sequential(
        nn.Conv2d(c, 64, 5, stride=2, padding=2), norm_layer(d_norm, 64, conv=True),
        nn.LeakyReLU(0.2),  # 32×32
        nn.Conv2d(64, 128, 5, stride=2, padding=2), norm_layer(d_norm, 128, conv=True),
        nn.LeakyReLU(0.2),  # 16×16
        nn.Flatten(),
        Dropout(0.3),
        nn.Linear(128 * 16 * 16, 1),
    )
    return nn.Sequential(*g_layers), Discriminator(discriminator)


def _image_channels(shape: tuple[int, ...], resolution: int, arch: str) -> int:
    if len(shape) != 3 or shape[1:] != (resolution, resolution):
        raise ConfigError("model", f"{arch} needs {resolution}×{resolution} images, the data has "
                          f"shape {tuple(shape)}", "use model=mlp for 2-D point data")
    return shape[0]


ARCHITECTURES: dict[str, Callable[..., tuple[nn.Module, nn.Module]]] = {
    "mlp": mlp,
    "dcgan28": dcgan28,
    "dcgan64": dcgan64,
}


def build_models(arch: str, shape: tuple[int, ...], latent_dim: int, d_norm: str, g_norm: str,
                 init_std: float, image_output: bool) -> tuple[nn.Module, nn.Module]:
    """(G, D) for `model.arch`, initialised N(0, init_std)."""
    if arch not in ARCHITECTURES:
        raise ConfigError("model.arch", f"unknown architecture '{arch}'",
                          f"choose one of {', '.join(ARCHITECTURES)}")
    for key, kind in (("model.d_norm", d_norm), ("model.g_norm", g_norm)):
        if kind not in NORMS:
            raise ConfigError(key, f"unknown norm '{kind}'", f"choose one of {', '.join(NORMS)}")
    generator, discriminator = ARCHITECTURES[arch](
        tuple(shape), latent_dim=latent_dim, d_norm=d_norm, g_norm=g_norm,
        image_output=image_output)
    init_weights(generator, init_std)
    init_weights(discriminator, init_std)
    return generator, discriminator

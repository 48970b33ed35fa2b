"""Generator/discriminator pairs of SPEC, chosen by `model.arch`: `mlp`, `dcgan28`, `dcgan64`,
PacGAN's 2-D mixture networks `pacgan-mlp`, and the DCGAN of PacGAN's and VEEGAN's Stacked MNIST
experiments `veegan-dcgan`.

Every builder takes the data shape (C, H, W) or (2,) and the packing degree m, and returns
(G, D). D returns one logit or critic score per sample (per pack of m samples), shape [N]; losses
are computed from it by `losses.py`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from gancompare.errors import ConfigError

NORMS = ("none", "batch", "layer", "spectral")


def norm_layer(kind: str, channels: int, conv: bool) -> nn.Module:
    """Normalisation by name. `layer` normalises each sample on its own (GroupNorm with one group
    is layer norm over C×H×W), which keeps a gradient penalty's per-sample gradients meaningful.
    `spectral` is no layer: it reparametrises the weights (`spectral_norm` below)."""
    if kind in ("none", "spectral"):
        return nn.Identity()
    if kind == "batch":
        return nn.BatchNorm2d(channels) if conv else nn.BatchNorm1d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels) if conv else nn.LayerNorm(channels)
    raise ConfigError("model.d_norm / model.g_norm", f"unknown norm '{kind}'",
                      f"choose one of {', '.join(NORMS)}")


def init_weights(module: nn.Module, std: float, norm_std: float | None = None) -> None:
    """DCGAN initialisation: every weight N(0, std), norm scales N(1, norm_std) (default std;
    0 gives Blocks' and PyTorch's constant 1), biases 0."""
    norm_std = std if norm_std is None else norm_std
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d | nn.GroupNorm | nn.LayerNorm) \
                and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, norm_std)
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
    CPU, three times a uniform draw, and it was a fifth of the mlp step. Same distribution.

    `noise`, when set, replaces the draw: several seeds trained as one batched computation
    (`seeds.py`) draw each run's uniforms from that run's own generator and hand them in."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__(p)
        self.noise: torch.Tensor | None = None

    @property
    def draws(self) -> bool:
        """Whether a forward pass draws random numbers (in training, 0 < p < 1)."""
        return self.training and 0 < self.p < 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if self.p == 1:  # nn.Dropout's p = 1: all dropped (1 / (1 - p) would make 0 · inf)
            return torch.zeros_like(x)
        noise = torch.rand(x.shape, device=x.device) if self.noise is None else self.noise
        return x * (noise >= self.p).to(x.dtype).mul_(1 / (1 - self.p))


class Discriminator(nn.Module):
    """Wraps a body that ends in one unit, so every D returns a flat [N] vector of logits.

    With packing (PacGAN, `model.pack=m`) D judges m samples at once: rows m·i … m·i+m−1 of its
    input are concatenated along the first feature axis (the coordinates of 2-D points, the
    channels of images), so [N·m, C, …] gives N logits.
    """

    def __init__(self, body: nn.Module, pack: int = 1) -> None:
        super().__init__()
        self.body = body
        self.pack = pack

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pack > 1:
            x = x.unflatten(0, (-1, self.pack)).flatten(1, 2)
        return self.body(x).flatten()


class Maxout(nn.Module):
    """Maxout layer (Goodfellow et al. 2013): a linear map to width × pieces, then the max over
    each unit's pieces."""

    def __init__(self, width_in: int, width: int, pieces: int) -> None:
        super().__init__()
        self.linear = nn.Linear(width_in, width * pieces)
        self.width, self.pieces = width, pieces

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).unflatten(-1, (self.width, self.pieces)).amax(-1)


def mlp(shape: tuple[int, ...], latent_dim: int = 100, d_norm: str = "none",
        g_norm: str = "none", image_output: bool = True,
        pack: int = 1) -> tuple[nn.Module, nn.Module]:
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
    width_in = size * pack
    for i, width in enumerate((1024, 512, 256)):
        d_layers += [nn.Linear(width_in, width), norm_layer(d_norm, width, conv=False),
                     nn.LeakyReLU(0.2)]
        if i < 2:  # SPEC: dropout after the first two hidden layers
            d_layers.append(Dropout(0.3))
        width_in = width
    d_layers.append(nn.Linear(256, 1))
    return nn.Sequential(*g_layers), Discriminator(nn.Sequential(*d_layers), pack)


def dcgan28(shape: tuple[int, ...], latent_dim: int = 50, d_norm: str = "none",
            g_norm: str = "none", image_output: bool = True,
            pack: int = 1) -> tuple[nn.Module, nn.Module]:
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
        nn.Conv2d(c * pack, 64, 4, stride=2, padding=1), norm_layer(d_norm, 64, conv=True),
        nn.LeakyReLU(0.2),  # 14×14
        nn.Conv2d(64, 64, 4, stride=2, padding=1), norm_layer(d_norm, 64, conv=True),
        nn.LeakyReLU(0.2),  # 7×7
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 1),
    )
    return generator, Discriminator(discriminator, pack)


def dcgan64(shape: tuple[int, ...], latent_dim: int = 100, d_norm: str = "batch",
            g_norm: str = "none", image_output: bool = True,
            pack: int = 1) -> tuple[nn.Module, nn.Module]:
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
        nn.Conv2d(c * pack, 64, 5, stride=2, padding=2), norm_layer(d_norm, 64, conv=True),
        nn.LeakyReLU(0.2),  # 32×32
        nn.Conv2d(64, 128, 5, stride=2, padding=2), norm_layer(d_norm, 128, conv=True),
        nn.LeakyReLU(0.2),  # 16×16
        nn.Flatten(),
        Dropout(0.3),
        nn.Linear(128 * 16 * 16, 1),
    )
    return nn.Sequential(*g_layers), Discriminator(discriminator, pack)


def pacgan_mlp(shape: tuple[int, ...], latent_dim: int = 2, d_norm: str = "none",
               g_norm: str = "batch", image_output: bool = False,
               pack: int = 1) -> tuple[nn.Module, nn.Module]:
    """PacGAN's 2-D mixture networks (Lin et al. 2018, their code's `create_model_brick`):
    G z → 4 × (400, no bias, batch norm, ReLU) → linear 2; D 3 maxout layers of 200 units with
    5 pieces → linear 1, on m packed samples. Batch norm as in Blocks: eps 1e-4, population
    statistics updated with weight 0.05."""
    size = math.prod(shape)
    g_layers: list[nn.Module] = []
    width_in = latent_dim
    for _ in range(4):
        norm = nn.BatchNorm1d(400, eps=1e-4, momentum=0.05) if g_norm == "batch" \
            else norm_layer(g_norm, 400, conv=False)
        g_layers += [nn.Linear(width_in, 400, bias=g_norm == "none"), norm, nn.ReLU()]
        width_in = 400
    g_layers += [nn.Linear(400, size), nn.Tanh() if image_output else nn.Identity(),
                 nn.Unflatten(1, shape)]
    d_layers: list[nn.Module] = [nn.Flatten()]
    width_in = size * pack
    for _ in range(3):
        d_layers += [Maxout(width_in, 200, 5), norm_layer(d_norm, 200, conv=False)]
        width_in = 200
    d_layers.append(nn.Linear(200, 1))
    return nn.Sequential(*g_layers), Discriminator(nn.Sequential(*d_layers), pack)


def same_padding(size_in: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'SAME' padding (before, after) of a strided conv: out = ceil(in / stride),
    the odd pixel padded after."""
    size_out = -(-size_in // stride)
    total = max((size_out - 1) * stride + kernel - size_in, 0)
    return total // 2, total - total // 2


def conv_same(c_in: int, c_out: int, size_in: int, kernel: int = 5,
              stride: int = 2) -> list[nn.Module]:
    before, after = same_padding(size_in, kernel, stride)
    return [nn.ZeroPad2d((before, after, before, after)), nn.Conv2d(c_in, c_out, kernel, stride)]


def deconv_same(c_in: int, c_out: int, size_in: int, size_out: int, kernel: int = 5,
                stride: int = 2) -> list[nn.Module]:
    """TensorFlow's conv2d_transpose with 'SAME' padding to size_out: the full transposed conv,
    then the forward conv's padding cropped away (a negative ZeroPad2d crops)."""
    before, _ = same_padding(size_out, kernel, stride)
    after = (size_in - 1) * stride + kernel - size_out - before
    return [nn.ConvTranspose2d(c_in, c_out, kernel, stride),
            nn.ZeroPad2d((-before, -after, -before, -after))]


def veegan_dcgan(shape: tuple[int, ...], latent_dim: int = 100, d_norm: str = "batch",
                 g_norm: str = "batch", image_output: bool = True,
                 pack: int = 1) -> tuple[nn.Module, nn.Module]:
    """The DCGAN of PacGAN's Stacked MNIST experiment in VEEGAN's setting (their code's
    VEEGAN_experiment/model.py, from DCGAN-tensorflow) with 64 base filters on 28×28:
    G z → linear 2·2·512, BN, ReLU → deconv 5×5/2 to 4×4×256, 7×7×128, 14×14×64 (each BN,
    ReLU) → deconv to 28×28×C, tanh; D conv 5×5/2 to 14×14×64 (LeakyReLU 0.2, no BN), 7×7×128,
    4×4×256, 2×2×512 (each BN, LeakyReLU 0.2) → linear 1. 'SAME' padding as TensorFlow pads."""
    c = _image_channels(shape, 28, "veegan-dcgan")
    sizes = (2, 4, 7, 14, 28)
    widths = (512, 256, 128, 64)
    g_layers: list[nn.Module] = [
        nn.Linear(latent_dim, widths[0] * sizes[0] ** 2), nn.Unflatten(1, (widths[0], 2, 2)),
        norm_layer(g_norm, widths[0], conv=True), nn.ReLU()]
    for i in range(4):
        c_out = widths[i + 1] if i < 3 else c
        g_layers += deconv_same(widths[i], c_out, sizes[i], sizes[i + 1])
        g_layers += [norm_layer(g_norm, c_out, conv=True), nn.ReLU()] if i < 3 else [nn.Tanh()]
    d_layers: list[nn.Module] = []
    c_in = c * pack
    for i, width in enumerate(reversed(widths)):  # 28 → 14 → 7 → 4 → 2
        d_layers += conv_same(c_in, width, sizes[-1 - i])
        d_layers += [norm_layer(d_norm if i else "none", width, conv=True), nn.LeakyReLU(0.2)]
        c_in = width
    d_layers += [nn.Flatten(), nn.Linear(widths[0] * sizes[0] ** 2, 1)]
    return nn.Sequential(*g_layers), Discriminator(nn.Sequential(*d_layers), pack)


def _image_channels(shape: tuple[int, ...], resolution: int, arch: str) -> int:
    if len(shape) != 3 or shape[1:] != (resolution, resolution):
        raise ConfigError("model", f"{arch} needs {resolution}×{resolution} images, the data has "
                          f"shape {tuple(shape)}",
                          "use model=mlp or model=pacgan-mlp for 2-D point data")
    return shape[0]


def spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018): every conv and linear weight divided by its
    largest singular value, estimated by one power iteration per training forward pass
    (`torch.nn.utils.parametrizations.spectral_norm`; a transposed conv's along dim 1). Applied
    after initialisation, so the N(0, std) weights are what gets normalised."""
    from torch.nn.utils.parametrizations import spectral_norm as parametrize

    for m in list(module.modules()):
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            parametrize(m)
    return module


ARCHITECTURES: dict[str, Callable[..., tuple[nn.Module, nn.Module]]] = {
    "mlp": mlp,
    "dcgan28": dcgan28,
    "dcgan64": dcgan64,
    "pacgan-mlp": pacgan_mlp,
    "veegan-dcgan": veegan_dcgan,
}


def build_models(arch: str, shape: tuple[int, ...], latent_dim: int, d_norm: str, g_norm: str,
                 init_std: float, image_output: bool, pack: int = 1,
                 norm_init_std: float | None = None) -> tuple[nn.Module, nn.Module]:
    """(G, D) for `model.arch`, weights initialised N(0, init_std), norm scales
    N(1, norm_init_std) (default init_std), D judging `pack` samples at once."""
    if arch not in ARCHITECTURES:
        raise ConfigError("model.arch", f"unknown architecture '{arch}'",
                          f"choose one of {', '.join(ARCHITECTURES)}")
    for key, kind in (("model.d_norm", d_norm), ("model.g_norm", g_norm)):
        if kind not in NORMS:
            raise ConfigError(key, f"unknown norm '{kind}'", f"choose one of {', '.join(NORMS)}")
    if not isinstance(pack, int) or pack < 1:
        raise ConfigError("model.pack", f"{pack!r} is not a number of samples >= 1",
                          "set model.pack=1 (no packing) or e.g. model.pack=2 (PacGAN2)")
    layers = {k: "none" if k == "spectral" else k for k in (d_norm, g_norm)}
    generator, discriminator = ARCHITECTURES[arch](
        tuple(shape), latent_dim=latent_dim, d_norm=layers[d_norm], g_norm=layers[g_norm],
        image_output=image_output, pack=pack)
    norm_std = init_std if norm_init_std is None else norm_init_std
    init_weights(generator, init_std, norm_std)
    init_weights(discriminator, init_std, norm_std)
    if d_norm == "spectral":
        spectral_norm(discriminator)
    if g_norm == "spectral":
        spectral_norm(generator)
    return generator, discriminator

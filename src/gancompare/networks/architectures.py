"""Generator/discriminator pairs of SPEC, each named by `model.networks` (`_target_`, partial) in
its `conf/model/` file: `mlp`, `dcgan28`, `dcgan64`, PacGAN's 2-D mixture networks `pacgan_mlp`,
and the DCGAN of PacGAN's and VEEGAN's Stacked MNIST experiments `veegan_dcgan`. Adding a model is
one builder here plus one YAML file.

Every builder takes the data shape (C, H, W) or (2,) and the packing degree m, and returns
(G, D). D returns one logit or critic score per sample (per pack of m samples), shape [N]; losses
are computed from it by `losses.py`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import nn

from gancompare.errors import ConfigError
from gancompare.networks.layers import (
    NORMS,
    Discriminator,
    Dropout,
    ImageHeadConv2d,
    Maxout,
    conv_same,
    deconv_same,
    init_weights,
    norm_layer,
    spectral_norm,
)


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


Networks = Callable[..., tuple[nn.Module, nn.Module]]


def build_models(networks: Networks, shape: tuple[int, ...], latent_dim: int, d_norm: str,
                 g_norm: str, init_std: float, image_output: bool, pack: int = 1,
                 norm_init_std: float | None = None) -> tuple[nn.Module, nn.Module]:
    """(G, D) from a builder of this module (what `model.networks` names), weights initialised
    N(0, init_std), norm scales N(1, norm_init_std) (default init_std), D judging `pack`
    samples at once."""
    for key, kind in (("model.d_norm", d_norm), ("model.g_norm", g_norm)):
        if kind not in NORMS:
            raise ConfigError(key, f"unknown norm '{kind}'", f"choose one of {', '.join(NORMS)}")
    if not isinstance(pack, int) or pack < 1:
        raise ConfigError("model.pack", f"{pack!r} is not a number of samples >= 1",
                          "set model.pack=1 (no packing) or e.g. model.pack=2 (PacGAN2)")
    layers = {k: "none" if k == "spectral" else k for k in (d_norm, g_norm)}
    pair = networks(tuple(shape), latent_dim=latent_dim, d_norm=layers[d_norm],
                    g_norm=layers[g_norm], image_output=image_output, pack=pack)
    if not (isinstance(pair, tuple) and len(pair) == 2
            and all(isinstance(m, nn.Module) for m in pair)):
        name = getattr(getattr(networks, "func", networks), "__name__", repr(networks))
        raise ConfigError("model.networks._target_", f"{name} returned {type(pair).__name__}, "
                          "not a pair of modules (G, D)", "name a builder of "
                          "gancompare.networks.architectures, as conf/model/ does")
    generator, discriminator = pair
    norm_std = init_std if norm_init_std is None else norm_init_std
    init_weights(generator, init_std, norm_std)
    init_weights(discriminator, init_std, norm_std)
    if d_norm == "spectral":
        spectral_norm(discriminator)
    if g_norm == "spectral":
        spectral_norm(generator)
    return generator, discriminator
